package store

import (
	"context"
	"sync"
	"time"

	"github.com/ittybit-oss/ittybit/controlplane/internal/state"
)

// Group commit: concurrent CreateTasks calls are gathered into one log
// entry. A call waits only while earlier entries hold every in-flight slot,
// so a lone request goes out at once, and under load each entry carries
// everything that queued meanwhile.
const (
	maxBatch    = 512 // tasks per log entry
	maxInFlight = 4   // entries being committed at once
)

type batchCall struct {
	reqs  []state.CreateRequest
	reply chan batchReply
}

type batchReply struct {
	results []state.CreateResult
	err     error
}

type batcher struct {
	s     *Store
	in    chan *batchCall
	slots chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newBatcher(s *Store) *batcher {
	b := &batcher{s: s, in: make(chan *batchCall, 4096), slots: make(chan struct{}, maxInFlight), stop: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run()
	}()
	return b
}

// submit queues reqs for the next entry and waits for the outcome.
func (b *batcher) submit(ctx context.Context, reqs []state.CreateRequest) ([]state.CreateResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	c := &batchCall{reqs: reqs, reply: make(chan batchReply, 1)}
	select {
	case b.in <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, ErrClosed
	}
	select {
	case r := <-c.reply:
		return r.results, r.err
	case <-ctx.Done():
		// The entry may still commit; a retry with the same keys is safe.
		return nil, ctx.Err()
	}
}

func (b *batcher) run() {
	for {
		var first *batchCall
		select {
		case first = <-b.in:
		case <-b.stop:
			return
		}
		select {
		case b.slots <- struct{}{}:
		case <-b.stop:
			first.reply <- batchReply{err: ErrClosed}
			return
		}
		calls, n := []*batchCall{first}, len(first.reqs)
	gather:
		for n < maxBatch {
			select {
			case c := <-b.in:
				calls = append(calls, c)
				n += len(c.reqs)
			default:
				break gather
			}
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() { <-b.slots }()
			b.commit(calls, n)
		}()
	}
}

func (b *batcher) commit(calls []*batchCall, n int) {
	reqs := make([]state.CreateRequest, 0, n)
	for _, c := range calls {
		reqs = append(reqs, c.reqs...)
	}
	// The apply outlives any one caller's context: others share the entry.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := b.s.apply(ctx, cmdCreateTasks, createTasksCmd{Now: time.Now().UnixMilli(), Requests: reqs})
	var results []state.CreateResult
	if err == nil {
		results = res.([]state.CreateResult)
	}
	at := 0
	for _, c := range calls {
		r := batchReply{err: err}
		if err == nil {
			r.results = results[at : at+len(c.reqs)]
		}
		at += len(c.reqs)
		c.reply <- r
	}
}

func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
	// Fail what is still queued.
	for {
		select {
		case c := <-b.in:
			c.reply <- batchReply{err: ErrClosed}
		default:
			return
		}
	}
}

package store

import (
	"context"
	"sync"
)

// Group commit: concurrent calls are gathered into one log entry. A call
// waits only while earlier entries hold every in-flight slot, so a lone
// request goes out at once, and under load each entry carries everything
// that queued meanwhile.
const (
	maxBatch    = 512 // requests per log entry
	maxInFlight = 4   // entries being committed at once
)

type batchCall[Req, Res any] struct {
	reqs  []Req
	reply chan batchReply[Res]
}

type batchReply[Res any] struct {
	results []Res
	err     error
}

// batcher gathers requests and commits them with commit, which returns one
// result per request, in order.
type batcher[Req, Res any] struct {
	commitFn func(reqs []Req) ([]Res, error)
	in       chan *batchCall[Req, Res]
	slots    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newBatcher[Req, Res any](commit func([]Req) ([]Res, error)) *batcher[Req, Res] {
	b := &batcher[Req, Res]{commitFn: commit, in: make(chan *batchCall[Req, Res], 4096), slots: make(chan struct{}, maxInFlight), stop: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run()
	}()
	return b
}

// submit queues reqs for the next entry and waits for the outcome.
func (b *batcher[Req, Res]) submit(ctx context.Context, reqs []Req) ([]Res, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	c := &batchCall[Req, Res]{reqs: reqs, reply: make(chan batchReply[Res], 1)}
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

func (b *batcher[Req, Res]) run() {
	for {
		var first *batchCall[Req, Res]
		select {
		case first = <-b.in:
		case <-b.stop:
			return
		}
		select {
		case b.slots <- struct{}{}:
		case <-b.stop:
			first.reply <- batchReply[Res]{err: ErrClosed}
			return
		}
		calls, n := []*batchCall[Req, Res]{first}, len(first.reqs)
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

func (b *batcher[Req, Res]) commit(calls []*batchCall[Req, Res], n int) {
	reqs := make([]Req, 0, n)
	for _, c := range calls {
		reqs = append(reqs, c.reqs...)
	}
	results, err := b.commitFn(reqs)
	at := 0
	for _, c := range calls {
		r := batchReply[Res]{err: err}
		if err == nil {
			r.results = results[at : at+len(c.reqs)]
		}
		at += len(c.reqs)
		c.reply <- r
	}
}

func (b *batcher[Req, Res]) close() {
	close(b.stop)
	b.wg.Wait()
	// Fail what is still queued.
	for {
		select {
		case c := <-b.in:
			c.reply <- batchReply[Res]{err: ErrClosed}
		default:
			return
		}
	}
}

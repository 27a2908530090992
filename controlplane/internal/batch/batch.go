// Package batch gathers concurrent requests into batches (group commit):
// a call waits only while earlier batches hold every in-flight slot, so a
// lone request goes out at once, and under load each batch carries
// everything that queued meanwhile. The store commits creates and step
// updates so, many to a log entry; a follower forwards its creates to the
// leader so, many to a request.
package batch

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is what a call gets when the batcher was closed before its
// batch went out.
var ErrClosed = errors.New("closed")

type batchCall[Req, Res any] struct {
	reqs  []Req
	reply chan batchReply[Res]
}

type batchReply[Res any] struct {
	results []Res
	err     error
}

// Batcher gathers requests and commits them with commit, which returns one
// result per request, in order.
type Batcher[Req, Res any] struct {
	commitFn func(reqs []Req) ([]Res, error)
	max      int
	closed   error
	in       chan *batchCall[Req, Res]
	slots    chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New starts a batcher that sends batches of at most max requests, at
// most inFlight at once, through commit. Calls made once it is closed
// fail with closed (ErrClosed when nil).
func New[Req, Res any](max, inFlight int, closed error, commit func([]Req) ([]Res, error)) *Batcher[Req, Res] {
	if closed == nil {
		closed = ErrClosed
	}
	b := &Batcher[Req, Res]{commitFn: commit, max: max, closed: closed, in: make(chan *batchCall[Req, Res], 4096), slots: make(chan struct{}, inFlight), stop: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.run()
	}()
	return b
}

// Submit queues reqs for the next batch and waits for the outcome.
func (b *Batcher[Req, Res]) Submit(ctx context.Context, reqs []Req) ([]Res, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	c := &batchCall[Req, Res]{reqs: reqs, reply: make(chan batchReply[Res], 1)}
	select {
	case b.in <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stop:
		return nil, b.closed
	}
	select {
	case r := <-c.reply:
		return r.results, r.err
	case <-ctx.Done():
		// The entry may still commit; a retry with the same keys is safe.
		return nil, ctx.Err()
	}
}

func (b *Batcher[Req, Res]) run() {
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
			first.reply <- batchReply[Res]{err: b.closed}
			return
		}
		calls, n := []*batchCall[Req, Res]{first}, len(first.reqs)
	gather:
		for n < b.max {
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

func (b *Batcher[Req, Res]) commit(calls []*batchCall[Req, Res], n int) {
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

// Close stops the batcher: it waits for the batches going out, and fails
// the calls still queued.
func (b *Batcher[Req, Res]) Close() {
	close(b.stop)
	b.wg.Wait()
	// Fail what is still queued.
	for {
		select {
		case c := <-b.in:
			c.reply <- batchReply[Res]{err: b.closed}
		default:
			return
		}
	}
}

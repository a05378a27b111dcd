package apply

import (
	"context"
	"sync/atomic"
)

// pipeline runs the engine's target calls on their own goroutine, in the
// order given, so the engine can receive and compact the next chunk while
// the target applies this one (the source's walsender keeps decoding
// instead of waiting on a full socket). Exactly-once is kept by ordering:
// a position is confirmed by an op queued after the commit that made it
// durable, and ops after a failure are skipped.
type pipeline struct {
	ops    chan func(context.Context) error
	done   chan struct{}
	failed atomic.Bool
	fail   chan struct{} // closed at the first failure
	err    error         // first failure; read only after done is closed
}

func startPipeline(ctx context.Context) *pipeline {
	p := &pipeline{ops: make(chan func(context.Context) error), done: make(chan struct{}), fail: make(chan struct{})}
	go func() {
		defer close(p.done)
		for op := range p.ops {
			if p.err != nil {
				continue // drain: nothing after a failure may run
			}
			if err := op(ctx); err != nil {
				p.err = err
				p.failed.Store(true)
				close(p.fail)
			}
		}
	}()
	return p
}

// submit hands op to the writer; it waits while the writer is busy with the
// previous one, which bounds memory to the chunk being built plus one.
func (p *pipeline) submit(ctx context.Context, op func(context.Context) error) error {
	if p.failed.Load() {
		return p.stop()
	}
	select {
	case p.ops <- op:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// barrier returns once every op submitted before it has run (or failed).
func (p *pipeline) barrier(ctx context.Context) error {
	reached := make(chan struct{})
	if err := p.submit(ctx, func(context.Context) error { close(reached); return nil }); err != nil {
		return err
	}
	select {
	case <-reached:
		return nil
	case <-p.fail:
		return p.stop()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop waits for every submitted op and returns the first failure. Only the
// engine's goroutine calls it, once.
func (p *pipeline) stop() error {
	select {
	case <-p.done:
	default:
		close(p.ops)
		<-p.done
	}
	return p.err
}

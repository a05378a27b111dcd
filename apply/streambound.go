package apply

import (
	"context"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/source"
)

// streamBound is the online copies' source session with its calls ended
// when the replication stream ends. The engine makes them between events
// (a publication listing, the start of a chunk); when the stream finds the
// network dead meanwhile, the call would otherwise wait for its own
// deadline over the same dead network (a listing's is 10 times
// --source-timeout) before the run reconnects.
type streamBound struct {
	c    *source.Copier
	done <-chan struct{}
}

func (b streamBound) bound(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-b.done:
			cancel(errStreamEnded)
		case <-stop:
		}
	}()
	return ctx, func() {
		close(stop)
		<-watched
		cancel(nil)
	}
}

// ended is err, or errStreamEnded when the stream's end cut the call short.
func ended(ctx context.Context, err error) error {
	if err != nil && context.Cause(ctx) == errStreamEnded {
		return errStreamEnded
	}
	return err
}

func (b streamBound) Published(ctx context.Context) (source.Listing, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	l, err := b.c.Published(ctx)
	return l, ended(ctx, err)
}

func (b streamBound) BeginChunk(ctx context.Context, relid uint32) (*source.Chunk, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	ch, err := b.c.BeginChunk(ctx, relid)
	return ch, ended(ctx, err)
}

func (b streamBound) XidNow(ctx context.Context) (uint64, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	x, err := b.c.XidNow(ctx)
	return x, ended(ctx, err)
}

func (b streamBound) Storage(ctx context.Context, relid uint32) (string, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	s, err := b.c.Storage(ctx, relid)
	return s, ended(ctx, err)
}

func (b streamBound) LockHolders(ctx context.Context, relid uint32) (string, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	h, err := b.c.LockHolders(ctx, relid)
	return h, ended(ctx, err)
}

func (b streamBound) LinksWithout(ctx context.Context, relid uint32, partitions []uint32) (string, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	s, err := b.c.LinksWithout(ctx, relid, partitions)
	return s, ended(ctx, err)
}

func (b streamBound) WALPosition(ctx context.Context) (lsn.LSN, error) {
	ctx, stop := b.bound(ctx)
	defer stop()
	l, err := b.c.WALPosition(ctx)
	return l, ended(ctx, err)
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// Pauser lets another goroutine of the process that runs Run stop the copy
// at exactly one source position, briefly, while replication goes on
// around it (Config.Pause). walmirror verify through a running walmirror
// uses it: it needs the copy holding exactly the transactions a source
// snapshot shows while it opens a read transaction on it.
//
// The position is not known in advance (it is the consistent point of a
// temporary slot created for the purpose), and the copy can never go back,
// so a pause is taken in two steps:
//
//  1. Hold(floor), with floor the source's WAL position read before the
//     slot is created (so floor <= its consistent point): the engine goes
//     on applying transactions whose commit record begins before floor;
//     at the first that begins at or after it, it commits what it holds and
//     waits for the position.
//  2. At(c), once the slot's consistent point c is known: the engine
//     applies every transaction whose commit record begins before c (as
//     Config.StopAt = c-1 would), commits, and waits, paused, with nothing
//     open. Wait returns the state it committed; the caller opens its read
//     transaction and calls Release, and the engine goes on.
//
// The engine waits at most HoldLimit for At and PauseLimit for Release,
// then goes on without (Release then reports it): the stream is not
// consumed while it waits, and the server ends a silent walsender after
// wal_sender_timeout (60s by default). A hold fails (Wait returns the
// reason) while tables are being copied online: such a copy is not
// comparable until they are complete.
//
// One hold at a time; the zero value is ready to use.
type Pauser struct {
	hold atomic.Pointer[Hold]
}

// Limits of the engine's waits (see Pauser).
var (
	HoldLimit  = 30 * time.Second
	PauseLimit = 20 * time.Second
)

// ErrPauseBusy is returned by Hold while another hold is in progress.
var ErrPauseBusy = errors.New("another pause of the copy is in progress")

// Hold asks the engine to apply no transaction whose commit record begins
// at or after floor until At names the position to pause at. Release ends
// the hold in any state.
func (p *Pauser) Hold(floor lsn.LSN) (*Hold, error) {
	h := &Hold{p: p, floor: floor, atSet: make(chan struct{}), paused: make(chan struct{}), release: make(chan struct{})}
	if !p.hold.CompareAndSwap(nil, h) {
		return nil, ErrPauseBusy
	}
	return h, nil
}

// Hold is one pause of the copy in progress (see Pauser).
type Hold struct {
	p       *Pauser
	floor   lsn.LSN
	atSet   chan struct{} // closed by At
	paused  chan struct{} // closed when the engine paused, or the hold failed
	release chan struct{} // closed by Release

	mu       sync.Mutex
	at       lsn.LSN
	known    bool // at is set
	done     bool // paused or failed: the engine looks no more
	released bool
	state    schema.State // what the engine committed before pausing
	err      error        // why the hold failed
	gaveUp   string       // why the engine stopped waiting before Release
	seen     lsn.LSN      // the last stream position the engine looked at
	looked   bool         // an engine looked at the hold at all
}

// At sets the position to pause at: the copy is to hold exactly the
// transactions whose commit record begins before c.
func (h *Hold) At(c lsn.LSN) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.known {
		return
	}
	h.at, h.known = c, true
	close(h.atSet)
}

// Wait waits until the engine has paused at the position and returns the
// state it committed (the copy's stored position is at or before the
// position); an error says why it did not. On ctx's end the hold is left
// as it is (Release it).
func (h *Hold) Wait(ctx context.Context) (schema.State, error) {
	select {
	case <-h.paused:
	case <-ctx.Done():
		return schema.State{}, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state, h.err
}

// Seen says the last stream position the engine looked at while holding
// (ok false when no engine looked: walmirror was not streaming), for a
// message when Wait gives up.
func (h *Hold) Seen() (lsn.LSN, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen, h.looked
}

// Release lets the engine go on, and ends the hold. It returns an error
// when the engine had stopped waiting before it: the copy may have moved
// before the caller's read transaction began.
func (h *Hold) Release() error {
	h.mu.Lock()
	if !h.released {
		h.released = true
		close(h.release)
	}
	why := h.gaveUp
	h.mu.Unlock()
	h.p.hold.CompareAndSwap(h, nil)
	if why != "" {
		return errors.New(why)
	}
	return nil
}

// active returns the hold the engine must honour, nil when none.
func (p *Pauser) active() *Hold {
	if p == nil {
		return nil
	}
	h := p.hold.Load()
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.released {
		return nil
	}
	return h
}

func (h *Hold) look(pos lsn.LSN) (at lsn.LSN, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen, h.looked = max(h.seen, pos), true
	return h.at, h.known
}

// fail ends the hold with err (Wait returns it).
func (h *Hold) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return
	}
	h.done, h.err = true, err
	close(h.paused)
}

// waitAt waits for At (or Release, or HoldLimit).
func (h *Hold) waitAt(ctx context.Context) (lsn.LSN, bool, error) {
	t := time.NewTimer(HoldLimit)
	defer t.Stop()
	select {
	case <-h.atSet:
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.at, true, nil
	case <-h.release:
		return 0, false, nil
	case <-ctx.Done():
		h.fail(errors.New("walmirror is stopping"))
		return 0, false, ctx.Err()
	case <-t.C:
		h.fail(fmt.Errorf("the position to pause at did not come within %s: walmirror goes on", HoldLimit))
		return 0, false, nil
	}
}

// pauseHere reports st as paused and waits for Release (or PauseLimit).
func (h *Hold) pauseHere(ctx context.Context, st schema.State) error {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return nil
	}
	h.done, h.state = true, st
	close(h.paused)
	h.mu.Unlock()
	t := time.NewTimer(PauseLimit)
	defer t.Stop()
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		h.giveUp("walmirror stopped while the copy was paused")
		return ctx.Err()
	case <-t.C:
		h.giveUp(fmt.Sprintf("the copy was not released within %s: walmirror went on", PauseLimit))
		return nil
	}
}

func (h *Hold) giveUp(why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gaveUp = why
}

// pauseBefore honours a hold before the engine handles ev: between source
// transactions, it commits what it holds and waits when ev would take the
// copy past the hold's floor (position not known yet) or shows that every
// transaction before the position has been applied (ev begins one at or
// after it, or is a keepalive at or past it).
func (e *engine) pauseBefore(ctx context.Context, ev source.Event) error {
	h := e.pause.active()
	if h == nil {
		return nil
	}
	if e.copying() {
		tables := make([]string, 0, len(e.fills))
		for _, f := range e.fills {
			tables = append(tables, f.copy.Table)
		}
		slices.Sort(tables)
		h.fail(fmt.Errorf("tables are being copied online (%s): a copy in progress differs from its source by design; verify once they are complete (walmirror status shows their progress)", strings.Join(tables, ", ")))
		return nil
	}
	if e.inTx {
		return nil
	}
	var pos lsn.LSN
	begin := false
	switch m := ev.Msg.(type) {
	case nil:
		pos = ev.WALEnd
	case *pgoutput.Begin:
		pos, begin = m.FinalLSN, true
	default:
		return nil
	}
	at, known := h.look(pos)
	if !known {
		if !begin || pos < h.floor {
			return nil
		}
		if err := e.settle(ctx); err != nil {
			return err
		}
		var err error
		if at, known, err = h.waitAt(ctx); err != nil || !known {
			return err
		}
	}
	// As StopAt = at-1 would: a transaction whose commit record begins
	// before at is applied, one that begins at or after it is not.
	if begin && pos < at || !begin && pos < at-1 {
		return nil
	}
	if err := e.settle(ctx); err != nil {
		return err
	}
	if e.state.LSN > at {
		h.fail(fmt.Errorf("the copy is at %s, already past %s", e.state.LSN, at))
		return nil
	}
	e.log.Debug("paused at the requested position", "at", at, "stored", e.state.LSN)
	return h.pauseHere(ctx, e.state)
}

// settle commits what the engine holds and waits until the commit is done.
func (e *engine) settle(ctx context.Context) error {
	if e.open {
		if err := e.commit(ctx); err != nil {
			return err
		}
	}
	return e.sync(ctx, func(context.Context) error { return nil })
}

// pauseIdle asks for a keepalive while the engine waits for the stream to
// reach a pause's position on a quiet source.
func (e *engine) pauseIdle() {
	if e.pause == nil || e.inTx {
		return
	}
	if h := e.pause.active(); h != nil {
		if _, known := h.look(0); known {
			e.conf.RequestReply()
		}
	}
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// Progress follows how far a run has applied the source, so that a caller
// can wait until the copy holds what it wrote (read-your-writes): write to
// PostgreSQL, take pg_current_wal_lsn() after the commit, then WaitFor that
// position before reading the copy.
//
// pg_current_wal_lsn() covers a commit only once the commit is flushed:
// with synchronous_commit = off (set for the transaction, the session or
// the server) it usually lies before the commit record, and WaitFor
// returns before the copy holds the write (196 reads in 200 missed it in
// a test). Take pg_current_wal_insert_lsn() after such a commit: it covers
// the commit always, but also WAL other sessions wrote after it, which
// the source may not flush (so not send) for a while: with one session
// idle in a transaction that wrote, a wait took 20 s. With synchronous
// commits, pg_current_wal_lsn() is the better choice.
//
// It learns the applied position from Run's hooks (Hook wires it): each
// target commit (CommitInfo.State.LSN), the copy being complete
// (Config.OnReady: when streaming starts with no table being copied, and
// when the last online copy completes), and each keepalive that shows
// everything received applied (Position.CaughtUp), which carries the copy
// past WAL that held nothing for it, so an idle source or a position
// beyond the last change does not hold a waiter up. While tables are
// copied online (a chunked initial copy, a table that joined the
// publication, a resync), the position stays where it was.
//
// When the run returns (Config.OnStop, which Hook also sets), WaitFor
// stops waiting for positions the copy has not reached: it returns an
// error wrapping ErrStopped and the run's error, until Run is called
// again with a Config hooked to p (a restart loop can keep one Progress
// and one hooked Config: waiters then wait for the new run instead of
// failing while it starts and copies). Run tells p when it begins; a
// caller that starts it on another goroutine (go apply.Run(...)) and may
// let a waiter in first calls Starting before. Set a Config's own hooks
// before Hook: a hook set after it replaces p's. A Progress follows one
// Run at a time.
//
// The zero value is ready to use; its methods are safe for concurrent use.
type Progress struct {
	mu      sync.Mutex
	applied lsn.LSN
	changed chan struct{} // closed when applied moves, then replaced
	// copying: the last commit stored tables still being copied online
	// (State.Copies); their rows up to a position are not all in the copy
	// yet, so the position stays until a commit with none.
	copying bool
	// stop is closed when the run ends (Stopped), with why; a new one is
	// made when streaming starts again.
	stop    chan struct{}
	stopped bool
	stopErr error
}

// ErrStopped is what WaitFor returns (wrapped, with the error Run
// returned, if any) when the run has ended before the copy reached the
// position waited for: it will not reach it until Run is called again.
var ErrStopped = errors.New("replication stopped")

// stoppedError is WaitFor's error after the run ended.
type stoppedError struct {
	applied, want lsn.LSN
	err           error // what Run returned; nil when it ended cleanly
}

func (e *stoppedError) Error() string {
	msg := fmt.Sprintf("replication stopped with the copy at %s", e.applied)
	if e.want != 0 {
		msg += fmt.Sprintf(", before %s", e.want)
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *stoppedError) Unwrap() []error {
	if e.err == nil {
		return []error{ErrStopped}
	}
	return []error{ErrStopped, e.err}
}

// Hook sets cfg's OnCommit, OnPosition, OnStreaming, OnReady and OnStop to
// report to p, calling the hooks already set first, and has Run tell p
// when it begins.
func (p *Progress) Hook(cfg *Config) {
	cfg.OnCommit = chain(cfg.OnCommit, p.Committed)
	cfg.OnPosition = chain(cfg.OnPosition, p.Position)
	cfg.OnStreaming = chain(cfg.OnStreaming, p.Streaming)
	cfg.OnReady = chain(cfg.OnReady, p.Ready)
	cfg.OnStop = chain(cfg.OnStop, p.Stopped)
	prev := cfg.onStart
	cfg.onStart = func() {
		if prev != nil {
			prev()
		}
		p.Starting()
	}
	prevCopying := cfg.onCopying
	cfg.onCopying = func() {
		if prevCopying != nil {
			prevCopying()
		}
		p.setCopying(true)
	}
}

// Starting takes the start of a run (Run calls it when it begins, with a
// Config hooked to p): it reports to p from now on, so a previous run's
// end no longer answers waiters, who wait for this run instead. The
// position and copying state stay as they were. Call it before starting
// Run on another goroutine when a waiter may come first (helper-114: a
// WaitFor just after go apply.Run(...) failed with the previous run's
// end in 8 of 10 tries). A Run refused because another Run uses its sink
// calls no hook: its waiters then wait until their deadline, unless the
// caller reports Run's error with Stopped.
func (p *Progress) Starting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		p.stopped, p.stopErr, p.stop = false, nil, nil
	}
}

// chain returns a hook calling first (when set), then next.
func chain[T any](first, next func(T)) func(T) {
	if first == nil {
		return next
	}
	return func(v T) { first(v); next(v) }
}

// Committed takes a target commit (Config.OnCommit). A commit that
// stores tables still being copied online (State.Copies) does not move
// the position, nor do keepalives after it, until a commit stores none.
func (p *Progress) Committed(c CommitInfo) {
	p.setCopying(len(c.State.Copies) > 0)
	p.advance(c.State.LSN)
}

// setCopying records whether tables are being copied online; waiters
// wake when the copies end (positions they wait for may be reached
// already).
func (p *Progress) setCopying(copying bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.copying && !copying && p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	p.copying = copying
}

// holds says whether the copy holds everything up to l: a table being
// copied online lacks rows of every position, old ones too (a copy of a
// table again empties it first). p.mu is held.
func (p *Progress) holds(l lsn.LSN) bool { return !p.copying && reached(p.applied, l) }

// Position takes a keepalive (Config.OnPosition): when caught up,
// everything up to the server's WAL end is applied.
func (p *Progress) Position(pos Position) {
	if pos.CaughtUp {
		p.advance(pos.ServerWALEnd)
	}
}

// Streaming takes the start of streaming (Config.OnStreaming): a run
// reports to p again. It does not move the position: tables may still be
// copied online from there (a chunked initial copy, also one that replaces
// a copy an earlier run reported: --resync after a lost slot), so until
// Ready or a commit with no copies says otherwise, no position is held,
// not even one reached before. (Run calls Ready straight after when
// nothing is being copied.)
func (p *Progress) Streaming(lsn.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		p.stopped, p.stopErr, p.stop = false, nil, nil
	}
	p.copying = true
}

// Ready takes the copy being complete (Config.OnReady): it holds
// everything up to st.LSN, with no table being copied.
func (p *Progress) Ready(st schema.State) {
	if len(st.Copies) > 0 {
		return
	}
	p.setCopying(false)
	p.advance(st.LSN)
}

// Stopped takes the end of a run (Config.OnStop), with the error Run
// returned: WaitFor calls waiting for a position the copy has not reached,
// and later ones, return an error wrapping ErrStopped and err.
func (p *Progress) Stopped(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wasStopped := p.stopped
	p.stopped, p.stopErr = true, err
	if wasStopped { // a run that never streamed: p.stop is closed already
		return
	}
	if p.stop == nil {
		p.stop = make(chan struct{})
	}
	close(p.stop)
	if p.changed != nil { // Notify's listeners look again, and learn from Err
		close(p.changed)
		p.changed = nil
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Err returns nil while a run reports to p (or before one starts), and
// once the run has returned an error wrapping ErrStopped and the run's
// error, if any.
func (p *Progress) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		return nil
	}
	return &stoppedError{applied: p.applied, err: p.stopErr}
}

// advance records that everything up to l is applied; the position never
// moves back.
func (p *Progress) advance(l lsn.LSN) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l <= p.applied || p.copying {
		return
	}
	p.applied = l
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// Applied returns the source position up to which everything is committed
// in the copy (0 before streaming starts).
func (p *Progress) Applied() lsn.LSN {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied
}

// Notify returns a channel that is closed the next time the applied
// position moves, or when the run returns: the cheapest "the copy
// changed, look again" signal. Call it again for the next change. Once
// the run has returned (Err is not nil) it returns a closed channel until
// a run streams again: a listener checks Err after each wake, or it
// would spin.
func (p *Progress) Notify() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped { // nothing will move it until a run streams again
		return closedChan
	}
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.changed
}

// WaitFor blocks until everything the source committed up to l is
// committed in the copy, and returns nil (while a table is being copied
// online, that is when its copy is complete, whatever l); or until ctx ends, and returns
// ctx.Err() (context.DeadlineExceeded for a timeout); or, once the run
// has returned (see Stopped), at once with an error wrapping ErrStopped
// and the run's error (errors.Is(err, ErrSlotLost), for one). A position
// the source has passed with nothing for this copy counts as applied
// once a keepalive shows it.
func (p *Progress) WaitFor(ctx context.Context, l lsn.LSN) error {
	for {
		p.mu.Lock()
		if p.holds(l) {
			p.mu.Unlock()
			return nil
		}
		if p.stopped {
			err := &stoppedError{applied: p.applied, want: l, err: p.stopErr}
			p.mu.Unlock()
			return err
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		if p.stop == nil {
			p.stop = make(chan struct{})
		}
		ch, stop := p.changed, p.stop
		p.mu.Unlock()
		select {
		case <-ch:
		case <-stop:
		case <-ctx.Done():
			p.mu.Lock()
			held := p.holds(l)
			p.mu.Unlock()
			if held { // both at once: the copy is there
				return nil
			}
			return ctx.Err()
		}
	}
}

// reached says whether a copy complete up to applied holds everything the
// source committed up to l. applied is a record's end (a commit's, or how
// far the decoder has read) or a page boundary, and a commit record takes
// at least 40 bytes (past a page header, at least 8), so none ends within
// 24 bytes after applied: a position there counts as reached. That is
// where pg_current_wal_insert_lsn() points after a record that ended its
// page (past the next page's header), and nothing moves the copy past it
// until the source writes again. (A segment's first page has a 40-byte
// header: one page in 2048 with 16 MB segments still waits there.)
func reached(applied, l lsn.LSN) bool {
	if applied >= l {
		return true
	}
	const pageHeader = 24 // SizeOfXLogShortPHD
	return applied != 0 && l-applied <= pageHeader
}

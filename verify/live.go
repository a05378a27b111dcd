package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Live is a copy that walmirror run is replicating into, verified by that
// process itself (its POST /verify): the engine pauses at the comparison's
// position while the copy's read transaction begins, then goes on.
type Live struct {
	// Pause is the running engine's (apply.Config.Pause).
	Pause *apply.Pauser
	// Open returns a reader of the copy on a connection of its own (SQLite
	// and PostgreSQL: a new connection; DuckDB: a second connection of the
	// process's database) holding a read transaction open; it must be a
	// PositionReader: RunLive reads the stored position through it first,
	// which fixes what the transaction sees.
	Open func(ctx context.Context) (ReadCloser, error)
	// CatchUp bounds the wait for the engine to reach the comparison's
	// position (it may be behind); 0 means DefaultCatchUp.
	CatchUp time.Duration
}

// DefaultCatchUp is how long RunLive waits for the running engine to
// reach the comparison's position by default.
const DefaultCatchUp = 5 * time.Minute

// PositionReader is a ReadCloser that can say the copy's stored position
// as its read transaction sees it.
type PositionReader interface {
	ReadCloser
	Position(ctx context.Context) (lsn.LSN, error)
}

// ErrBusy is returned by RunLive while another verification pauses the copy.
var ErrBusy = errors.New("another verification of this copy is in progress")

// RunLive is Run for a copy the calling process replicates into: cfg.Source
// is the running copy's (its slot included). Nothing is written to the
// copy and the engine is never stopped for longer than it takes to create
// the temporary slot and to open the copy's read transaction.
//
// The engine is held first at the source's current WAL position, read
// before the temporary slot is created (so at or before its consistent
// point C): it applies nothing that committed after it until C is known.
// Then it applies exactly the transactions whose commit record begins
// before C (as Run's StopAt C-1 does), commits, and pauses; the copy's
// read transaction begins (and reads the stored position, which must be
// the one the engine paused at), and the engine goes on while both sides
// are read: the source in the slot's snapshot, the copy in its read
// transaction. An error wrapping context.DeadlineExceeded means the engine
// did not reach C within CatchUp.
func RunLive(ctx context.Context, cfg Config, live Live) (rep *Report, err error) {
	began := time.Now()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if live.CatchUp <= 0 {
		live.CatchUp = DefaultCatchUp
	}
	adm, err := source.Connect(ctx, cfg.Source)
	if err != nil {
		return nil, err
	}
	floor, err := adm.CurrentLSN(ctx)
	adm.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	held := time.Now()
	hold, err := live.Pause.Hold(floor)
	if errors.Is(err, apply.ErrPauseBusy) {
		return nil, ErrBusy
	}
	if err != nil {
		return nil, err
	}
	released := false
	release := func() error {
		if released {
			return nil
		}
		released = true
		return hold.Release()
	}
	defer func() { _ = release() }()

	// The engine applies nothing at or after floor meanwhile: creating
	// the slot may not hold it up for long.
	log.Info("verify: taking a snapshot of the source through a temporary slot", "hold_from", floor)
	// The engine waits at most HoldLimit for the position: so does taking
	// the snapshot, or less when the caller says so (--snapshot-timeout).
	wait := apply.HoldLimit - 5*time.Second
	if cfg.SnapshotWait > 0 && cfg.SnapshotWait < wait {
		wait = cfg.SnapshotWait
	}
	sctx, cancel := context.WithTimeout(ctx, wait)
	scfg := cfg.Source
	if scfg.Logger == nil {
		scfg.Logger = log // says what creating the slot waits for
	}
	sn, err := source.OpenComparison(sctx, scfg)
	slow := errors.Is(sctx.Err(), context.DeadlineExceeded) // before cancel, which sets Canceled
	cancel()
	if err != nil {
		if slow && ctx.Err() == nil {
			return nil, fmt.Errorf("creating the temporary slot took longer than %s (it waits for the transactions in progress on the source to end: commit or roll them back, COMMIT PREPARED or ROLLBACK PREPARED for a prepared one): walmirror was not held up longer; verify again later: %w", wait, err)
		}
		return nil, err
	}
	defer sn.Close(context.WithoutCancel(ctx))
	at := sn.ConsistentPoint
	hold.At(at)
	log.Info("verify: waiting for the copy to reach the comparison's position", "at", at)
	wctx, cancel := context.WithTimeout(ctx, live.CatchUp)
	st, err := hold.Wait(wctx)
	late := errors.Is(wctx.Err(), context.DeadlineExceeded) // before cancel, which sets Canceled
	cancel()
	if err != nil {
		if late && ctx.Err() == nil {
			seen, looked := hold.Seen()
			why := "walmirror is not streaming (initial copy or reconnecting?)"
			if looked {
				why = fmt.Sprintf("its stream was last at %s", seen)
			}
			return nil, fmt.Errorf("the copy did not reach the comparison's position %s within %s (%s): %w", at, live.CatchUp, why, context.DeadlineExceeded)
		}
		return nil, err
	}
	if st.Phase != schema.PhaseStreaming || len(st.Copies) > 0 {
		return nil, errors.New("the copy is not complete yet (an initial copy or online copies in progress)")
	}
	reader, err := live.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the copy for reading: %w", err)
	}
	defer reader.Close()
	// The read transaction sees the copy as the engine paused it: the
	// stored position proves it (every commit moves it).
	pr, ok := reader.(PositionReader)
	if !ok {
		return nil, errors.New("this kind of copy cannot be verified while walmirror runs")
	}
	seen, err := pr.Position(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the copy's stored position: %w", err)
	}
	if err := release(); err != nil {
		return nil, fmt.Errorf("the copy's read transaction began too late: %w", err)
	}
	// An upper bound of the engine's waits: it applied what came before
	// the floor, and after the pause, meanwhile.
	heldFor := time.Since(held)
	if seen != st.LSN {
		return nil, fmt.Errorf("the copy's read transaction sees it at %s, not at %s where walmirror paused it", seen, st.LSN)
	}
	log.Info("verify: comparing; the copy replicates on meanwhile", "at", at, "copy_at", st.LSN, "held_for", heldFor.Round(time.Millisecond))

	tables, err := sn.Tables(ctx)
	if err != nil {
		return nil, err
	}
	if tables, err = pick(tables, cfg.Tables, cfg.Source.Publication); err != nil {
		return nil, err
	}
	rep = &Report{LSN: at, From: st.LSN, Live: true}
	if rep.Tables, err = compareAll(ctx, log, sn, cfg.Source, tables, reader, cfg.Options); err != nil {
		return nil, err
	}
	for i := range rep.Tables {
		if tr := &rep.Tables[i]; tr.Absent && tr.SourceRows == 0 && tr.Err == "" {
			// An empty table created since the running walmirror last
			// listed the publication (every --poll-interval) has no copy
			// yet: nothing says it differs (helper-136). One with rows does.
			tr.Err = "an empty table the copy has not created yet: the running walmirror creates it when it next lists the publication (--poll-interval); verify again then"
		}
	}
	if rep.Kept, err = kept(ctx, reader, cfg.Tables, tables); err != nil {
		return nil, err
	}
	rep.Took = time.Since(began)
	return rep, nil
}

// Waiter waits until a running copy has applied the source up to a
// position with no table being copied (apply.Progress.WaitFor).
type Waiter interface {
	WaitFor(ctx context.Context, l lsn.LSN) error
}

// RepairLive is RepairTables for a copy the calling process replicates
// into (live as RunLive's, rep a report of RunLive with Options.Keys): it
// writes a resync request for what rep found different into the source's
// WAL (as walmirror resync --table and --key do), naming the running
// copy's slot (cfg.Source.Slot), so the running engine copies those rows
// or tables again online, in order with everything else it applies;
// waits (applied) until the copy has applied the request with no table
// being copied; and verifies those tables again with RunLive. Nothing is
// paused beyond RunLive's own holds.
func RepairLive(ctx context.Context, cfg Config, live Live, applied Waiter, rep *Report) (*Repair, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rp, relids, keys, err := plan(rep)
	if err != nil || len(rp.Tables) == 0 {
		return rp, err
	}
	adm, err := source.Connect(ctx, cfg.Source)
	if err != nil {
		return rp, err
	}
	at, committed, err := adm.RequestResync(ctx, apply.EncodeResyncKeys(cfg.Source.Slot, relids, rp.Tables, keys))
	adm.Close(context.WithoutCancel(ctx))
	if err != nil {
		return rp, fmt.Errorf("%w (nothing was copied)", err)
	}
	rp.RequestedAt = at
	log.Info("verify: copying again what differs, through the running walmirror", "copies", rp.copies(), "request", at)
	began := time.Now()
	if err := applied.WaitFor(ctx, committed); err != nil {
		return rp, fmt.Errorf("wait for the copies (requested at %s; the running walmirror finishes them): %w", at, err)
	}
	rp.CopyTook = time.Since(began)
	log.Info("verify: copied what differed again", "copies", rp.copies(), "took", rp.CopyTook.Round(time.Millisecond))
	again := cfg
	again.Tables = rp.Tables
	after, err := RunLive(ctx, again, live)
	if err != nil {
		return rp, fmt.Errorf("verify the copied tables again: %w", err)
	}
	rp.After = after
	return rp, nil
}

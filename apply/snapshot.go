package apply

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/walmirror/walmirror/internal/faultpoint"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// snapshot creates the slot and copies every published table as of the slot's
// consistent point, all in one target transaction that also stores that
// point. A marker committed first makes a crash at any later instant lead to
// a clean redo, never to a partial copy taken for complete.
func (r *runner) snapshot(ctx context.Context, src *source.Source) (_ schema.State, err error) {
	st := schema.State{Slot: r.cfg.Source.Slot, SystemID: src.SystemID(), Timeline: src.Timeline(), Publication: r.cfg.Source.Publication, Phase: schema.PhaseSnapshot, SlotGuard: true}
	if err := r.sink.Begin(ctx); err != nil {
		return st, fmt.Errorf("begin target transaction: %w", err)
	}
	if err := r.sink.Commit(ctx, st); err != nil {
		return st, fmt.Errorf("mark snapshot in progress: %w", err)
	}
	r.stored(st)
	snap, err := src.CreateSlot(ctx)
	if err != nil {
		return st, err
	}
	defer func() {
		snap.Close(context.WithoutCancel(ctx))
		if err != nil && !errors.Is(err, errSlotReplaced) {
			r.dropFailedSlot(ctx, src, err)
		}
	}()
	tables, err := snap.Tables(ctx)
	if err != nil {
		return st, err
	}
	budget, err := r.tableBudget(ctx)
	if err != nil {
		return st, err
	}
	began := time.Now()
	if err := r.sink.Begin(ctx); err != nil {
		return st, fmt.Errorf("begin target transaction: %w", err)
	}
	if r.chunked(snap.Estimates, len(tables), budget) {
		return r.chunkedStart(ctx, src, snap, tables, st, budget)
	}
	committed := false
	defer func() {
		if !committed {
			_ = r.sink.Rollback(context.WithoutCancel(ctx)) // the marker makes the next start redo it
		}
	}()
	total, err := r.copyTables(ctx, snap, tables)
	if err != nil {
		return st, rolledBack(err)
	}
	st.LSN, st.Phase = snap.ConsistentPoint, schema.PhaseStreaming
	if err := r.slotStillOurs(ctx, src, snap.ConsistentPoint); err != nil {
		return st, err
	}
	faultpoint.Hit("snapshot.before-commit")
	if err := r.sink.Commit(ctx, st); err != nil {
		return st, fmt.Errorf("commit initial snapshot: %w", err)
	}
	committed = true
	r.stored(st)
	r.copiedAt = st.LSN
	r.snapshotProgress(SnapshotProgress{Tables: len(tables), TablesDone: len(tables), Rows: total, Done: true})
	r.log.Info("initial snapshot complete", "tables", len(tables), "rows", total,
		"consistent_point", st.LSN, "took", time.Since(began).Round(time.Millisecond))
	return st, nil
}

// rolledBack is err from a copy in the initial copy's first transaction.
// The sink's remedy for a value it cannot store changes the target column;
// that transaction is rolled back, so the target may have no such table to
// change.
func rolledBack(err error) error {
	if !errors.Is(err, schema.ErrUnstorable) {
		return err
	}
	return fmt.Errorf("%w; the initial copy's first target transaction is rolled back, so the target may not have that table to change yet: "+
		"run again with --initial-copy chunked, which creates the tables empty and commits them before copying rows, "+
		"change the column when it stops at this value again, and run again (or leave the table out of the publication)", err)
}

// chunked decides between a one-transaction initial copy and a chunked one
// (Config.InitialCopy): auto copies in chunks from autoChunkedRows rows,
// and when the tables are more than one target transaction should create
// and load (budget, 0: no bound).
func (r *runner) chunked(estimates map[uint32]int64, tables, budget int) bool {
	switch r.cfg.InitialCopy {
	case "chunked":
		return true
	case "single":
		return false
	}
	if budget > 0 && tables > budget {
		return true
	}
	var total int64
	for _, n := range estimates {
		total += max(n, 0)
	}
	return total >= autoChunkedRows
}

// tableBudgeter is a sink whose target bounds the tables one transaction
// may create and load: a PostgreSQL target holds about four locks a table
// until the commit, in a lock table every session shares.
type tableBudgeter interface {
	TablesPerTransaction(ctx context.Context) (int, error)
}

// tableBudget is the sink's bound on the tables an initial copy's first
// transaction creates and loads; 0 when it has none. A one-transaction copy
// of 600 tables into a target of 200 lock slots failed with "out of shared
// memory", and so did a chunked one, which created every table first.
func (r *runner) tableBudget(ctx context.Context) (int, error) {
	tb, ok := r.sink.(tableBudgeter)
	if !ok {
		return 0, nil
	}
	n, err := tb.TablesPerTransaction(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the target's lock table size: %w", err)
	}
	return max(n, 0), nil
}

// autoChunkedRows is AutoChunkedRows, lowered by tests.
var autoChunkedRows int64 = AutoChunkedRows

// atOnceRows bounds the rows an automatic chunked initial copy copies in
// its first transaction (small tables, atOnce).
const atOnceRows = 1_000_000

// atOnce picks, for an automatic chunked initial copy (auto), the tables
// too small to make more than one chunk (by the source's estimate), up to
// atOnceRows rows in all: they are copied in the transaction that starts
// the copy, from the slot's snapshot, as a single copy would. An online
// copy of each would cost a lock, a snapshot, a watermark's round trip and
// a commit (some 10-30 ms) for a few rows: seconds for a database that has
// hundreds of small tables beside its big ones. A crash before that
// transaction commits redoes it (at most atOnceRows rows); a table with no
// estimate (source.estimateExpr) is copied online, and so is a partitioned one
// (its sum leaves out partitions with no estimate). --initial-copy
// chunked copies every table online, as asked.
func (r *runner) atOnce(tables []*schema.Table, estimates map[uint32]int64, partitioned map[uint32]bool, budget int) (now, online []*schema.Table) {
	if r.cfg.InitialCopy == "chunked" {
		return nil, tables
	}
	limit := int64(r.cfg.CopyChunkRows)
	if limit <= 0 {
		limit = DefaultCopyChunkRows
	}
	var rows int64
	for _, t := range tables {
		est, ok := estimates[t.ID]
		if ok && est >= 0 && est < limit && rows+est <= atOnceRows && !partitioned[t.ID] && (budget == 0 || len(now) < budget) {
			rows += est
			now = append(now, t)
		} else {
			online = append(online, t)
		}
	}
	return now, online
}

// chunkedStart begins a chunked initial copy: the target tables are
// created empty and listed as copies in progress, committed with the slot's
// consistent point; the stream then copies them chunk by chunk (backfill.go).
// Past the sink's budget of tables a transaction (tableBudget) a table is
// only listed: its first chunk creates it, as for a table that joins the
// publication.
func (r *runner) chunkedStart(ctx context.Context, src *source.Source, snap *source.Snapshot, tables []*schema.Table, st schema.State, budget int) (schema.State, error) {
	committed := false
	defer func() {
		if !committed {
			_ = r.sink.Rollback(context.WithoutCancel(ctx))
		}
	}()
	now, online := r.atOnce(tables, snap.Estimates, snap.Partitioned, budget)
	var copied int64
	if len(now) > 0 {
		var err error
		if copied, err = r.copyTables(ctx, snap, now); err != nil {
			return st, rolledBack(err)
		}
	}
	var total int64
	for i, t := range online {
		if budget == 0 || len(now)+i < budget {
			if err := ensureShape(ctx, r.sink, t); err != nil {
				return st, fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
			}
			if err := r.sink.Truncate(ctx, []*schema.Table{t}); err != nil {
				return st, fmt.Errorf("empty target table for %s: %w", t.QualifiedName(), err)
			}
		}
		est := snap.Estimates[t.ID]
		total += max(est, 0)
		st.Copies = append(st.Copies, schema.TableCopy{RelID: t.ID, Table: schema.DisplayName(t.Schema, t.Name), Estimate: est, Reason: schema.InitialCopy})
	}
	st.LSN, st.Phase = snap.ConsistentPoint, schema.PhaseStreaming
	if err := r.slotStillOurs(ctx, src, snap.ConsistentPoint); err != nil {
		return st, err
	}
	if len(online) > 0 && r.cfg.onCopying != nil {
		// Before the commit that empties them: a copy that replaces one
		// (Resync after a lost slot) no longer holds positions it held
		// (helper-138: WaitFor returned while the table was empty).
		r.cfg.onCopying()
	}
	if err := r.sink.Commit(ctx, st); err != nil {
		return st, fmt.Errorf("commit initial snapshot: %w", err)
	}
	committed = true
	r.stored(st)
	if len(now) > 0 {
		r.log.Info("copied the small tables at once", "tables", len(now), "rows", copied)
	}
	r.log.Info("initial copy will be made in chunks while streaming", "tables", len(online), "estimated_rows", total,
		"consistent_point", st.LSN)
	return st, nil
}

// errSlotReplaced: the slot an initial copy made was dropped, and maybe
// made again, before the copy committed.
var errSlotReplaced = errors.New("replication slot replaced during the initial copy")

// slotStillOurs checks, just before an initial copy commits, that the slot
// is still the one it made (its consistent point): the slot is idle while
// the copy runs, and another run following the same target may take it for
// one an interrupted copy left behind and drop it (helper-71: the copy then
// streamed from the other run's later slot and skipped what came between,
// exit 0). The copy is rolled back and the slot, someone else's now, left.
func (r *runner) slotStillOurs(ctx context.Context, src *source.Source, consistent lsn.LSN) error {
	at, ok, err := src.SlotConfirmed(ctx)
	if err != nil {
		// The catalog session sat idle through the copy: a connection
		// lost meanwhile must not cost the copy. Only a definite answer
		// stops it; the stream's start checks the slot again (SlotGuard).
		r.log.Warn("could not check that the replication slot is still the one the initial copy made", "err", err)
		return nil
	}
	if ok && at == consistent {
		return nil
	}
	return fmt.Errorf("%w: replication slot %q was dropped while this run made its initial copy (another walmirror run on the same target and slot?), so the copy is not the slot's and was rolled back: run again once only one walmirror follows this target",
		errSlotReplaced, r.cfg.Source.Slot)
}

// dropFailedSlot drops the slot of an initial copy that failed: the target
// is marked as having none complete, so the next start redoes it with a
// new slot anyway, and a slot left behind would hold the source's WAL for
// a copy that may never be tried again. Best effort: its walsender may
// take a moment to leave, and the connection may be the thing that failed.
func (r *runner) dropFailedSlot(ctx context.Context, src *source.Source, cause error) {
	stopped := ctx.Err() != nil || errors.Is(cause, context.Canceled)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// A commit can fail after it happened (the connection lost while the
	// target committed): a copy that follows the slot keeps it. So does a
	// target that cannot say. A copy another run made of the same target
	// meanwhile, following its own slot, does not keep this one (helper-110:
	// two first runs at once, the loser's slot left pinning WAL).
	if st, found, err := r.sink.ReadState(ctx); err != nil || found && st.Phase == schema.PhaseStreaming && st.Slot == r.cfg.Source.Slot {
		r.log.Debug("keeping the replication slot of the initial copy: the target follows it, or cannot say", "err", err)
		return
	}
	for {
		err := src.DropSlot(ctx)
		if err == nil {
			if stopped {
				// A stop asked for (SIGTERM): no failure (helper-133).
				r.log.Info("stopped during the initial copy: rolled it back and dropped its replication slot (the next start copies again)", "slot", r.cfg.Source.Slot)
				return
			}
			r.log.Info("dropped the replication slot of the failed initial copy (the next start creates it again)", "slot", r.cfg.Source.Slot, "cause", cause)
			return
		}
		if !errors.Is(err, source.ErrSlotActive) { // active: its walsender is leaving
			r.log.Warn("could not drop the replication slot of the failed initial copy: the next start drops it, or drop it by hand (walmirror drop)", "slot", r.cfg.Source.Slot, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			r.log.Warn("could not drop the replication slot of the failed initial copy: the next start drops it, or drop it by hand (walmirror drop)", "slot", r.cfg.Source.Slot, "err", err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *runner) snapshotProgress(p SnapshotProgress) {
	if r.cfg.OnSnapshot != nil {
		r.cfg.OnSnapshot(p)
	}
}

// stored reports a state an initial copy's commit stored (Config.OnStored).
func (r *runner) stored(st schema.State) {
	if r.cfg.OnStored != nil {
		r.cfg.OnStored(st)
	}
}

package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Config is one verification.
type Config struct {
	// Source names the source (DSN, Timeout) and the publication the copy
	// is made from. Its Slot is ignored: the copy's own is used.
	Source source.Config
	// Tables limits the comparison to these tables (schema.table, quoted
	// parts as --tables takes them); empty: every published table.
	Tables  []string
	Options Options
	Logger  *slog.Logger
	// SlotWait is how long the copy's slot may stay in use before Run
	// concludes that walmirror is running into the copy; 0 means 5s (a
	// walsender outlives its client briefly).
	SlotWait time.Duration
	// SnapshotWait bounds how long taking the source's snapshot may wait
	// for the transactions open on the source to end (a temporary slot
	// waits for every one; a forgotten prepared transaction would hold it
	// forever); 0 means DefaultSnapshotWait.
	SnapshotWait time.Duration
}

// DefaultSnapshotWait is Config.SnapshotWait's default.
const DefaultSnapshotWait = 5 * time.Minute

// Target is the copy to verify.
type Target struct {
	// Sink is the copy as walmirror writes it: Run reads its state through
	// it and brings it to the comparison's position with apply.Run, as
	// walmirror run --stop-at-lsn would.
	Sink apply.Sink
	// Open returns a reader of the copy. Run calls it once the copy is at
	// the comparison's position and closes what it returns.
	Open func(ctx context.Context) (ReadCloser, error)
}

// ReadCloser is a Reader holding a read transaction open.
type ReadCloser interface {
	Reader
	Close() error
}

// ErrInUse is wrapped by Run's error when a walmirror process is
// replicating into the copy (its slot is streaming, or the copy moved while
// it was being read): this version verifies a copy nothing else writes to.
var ErrInUse = errors.New("walmirror is replicating into this target")

// Run compares the copy with the source as of one source position and
// reports what differs. An error means the copy could not be verified (a
// table that could not be read is reported in its TableReport instead).
//
// The position is the consistent point C of a temporary logical slot
// created on the source: its exported snapshot shows exactly the
// transactions whose commit record lies before C. The copy is brought to
// the same point by the engine with StopAt C-1. That stops before a
// transaction whose commit record begins at C or later, and after one whose
// commit record ends at C or later; a commit record that begins before C
// ends at or before it (C is the end of a WAL record, and records do not
// overlap). So the copy applies exactly the transactions whose commit
// record begins before C, as the snapshot shows them, whether its stored
// position ends up before C (nothing published committed in between) or
// at it. A stored position past C would mean something else wrote to the
// copy meanwhile: Run refuses it.
//
// The catch-up can take up an online copy (a resync requested, a table
// that joined the publication or was rewritten while no walmirror ran),
// and a bounded run goes on past its stop until such copies are complete:
// the copy then ends past C with nothing else writing to it. Run then
// verifies again at a new position, a few times at most.
func Run(ctx context.Context, cfg Config, target Target) (*Report, error) {
	began := time.Now()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.SlotWait <= 0 {
		cfg.SlotWait = 5 * time.Second
	}
	var again []CopiedAgain // tables the catch-ups copied again
	for attempt := 1; ; attempt++ {
		rep, err := runAt(ctx, cfg, target, log, &again)
		if !errors.Is(err, errMovedPast) || attempt == 3 {
			if rep != nil {
				rep.Took, rep.CopiedAgain = time.Since(began), again
			}
			return rep, err
		}
		log.Info("the copy went past the comparison's position (online copies the catch-up took up were completed): verifying at a new position", "why", err)
	}
}

// errMovedPast: the copy's stored position went past the comparison's
// while verify brought it there.
var errMovedPast = errors.New("the copy moved past the comparison's position")

// movedPastError is err, which is also errMovedPast.
type movedPastError struct{ err error }

func (e movedPastError) Error() string   { return e.err.Error() }
func (e movedPastError) Unwrap() []error { return []error{e.err, errMovedPast} }

// runAt is one attempt of Run; tables its catch-up copies again are added
// to again.
func runAt(ctx context.Context, cfg Config, target Target, log *slog.Logger, again *[]CopiedAgain) (*Report, error) {
	began := time.Now()
	st, ok, err := target.Sink.ReadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the copy's state: %w", err)
	}
	if !ok || st.Phase != schema.PhaseStreaming {
		return nil, errors.New("the target holds no complete copy yet: run walmirror run into it first")
	}
	if len(st.Copies) > 0 {
		names := make([]string, len(st.Copies))
		for i, c := range st.Copies {
			names[i] = c.Table
		}
		return nil, fmt.Errorf("tables are still being copied into the target (%s): a copy in progress differs from its source by design; let walmirror run finish them (walmirror status shows their progress), then verify", strings.Join(names, ", "))
	}
	cfg.Source.Slot = st.Slot
	// Creating the slot waits for the transactions in progress on the
	// source to end.
	log.Info("taking a snapshot of the source through a temporary slot", "copy_at", st.LSN)
	scfg := cfg.Source
	if scfg.Logger == nil {
		scfg.Logger = log // says what creating the slot waits for
	}
	wait := cfg.SnapshotWait
	if wait <= 0 {
		wait = DefaultSnapshotWait
	}
	sctx, cancel := context.WithTimeout(ctx, wait)
	sn, err := source.OpenComparison(sctx, scfg)
	slow := errors.Is(sctx.Err(), context.DeadlineExceeded) // before cancel, which sets Canceled
	cancel()
	if err != nil {
		if slow && ctx.Err() == nil {
			return nil, fmt.Errorf("taking the source's snapshot waited %s for transactions open on the source to end (a temporary slot waits for every one): "+
				"commit or roll them back (COMMIT PREPARED or ROLLBACK PREPARED for a prepared one), then verify again: %w", wait, err)
		}
		return nil, err
	}
	defer sn.Close(context.WithoutCancel(ctx))
	if err := sn.WaitSlotIdle(ctx, st.Slot, cfg.SlotWait); err != nil {
		if errors.Is(err, source.ErrSlotActive) {
			return nil, fmt.Errorf("%w (%v): stop it, verify, and start it again", ErrInUse, err)
		}
		return nil, err
	}
	at := sn.ConsistentPoint
	if st.LSN > at {
		return nil, fmt.Errorf("the copy is at %s, past the source's current position %s: is another walmirror writing to it?", st.LSN, at)
	}
	tables, err := sn.Tables(ctx)
	if err != nil {
		return nil, err
	}
	if tables, err = pick(tables, cfg.Tables, cfg.Source.Publication); err != nil {
		return nil, err
	}

	if st.LSN < at {
		caughtUp := time.Now()
		log.Info("bringing the copy to the comparison's position", "from", st.LSN, "to", at)
		acfg := apply.Config{Source: cfg.Source, StopAt: at - 1, Logger: log}
		acfg.OnInterrupted = func(err error) {
			// Not a difference the source's own change explains (an enum
			// label renamed: the copy was as it should be until then).
			if de := (*schema.DivergedError)(nil); errors.As(err, &de) && de.SourceChange == "" {
				*again = append(*again, CopiedAgain{Table: de.Table, Reason: de.Err.Error()})
			}
		}
		if err := apply.Run(ctx, target.Sink, acfg); err != nil {
			return nil, fmt.Errorf("bring the copy to %s: %w", at, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		log.Debug("the copy is at the comparison's position", "took", time.Since(caughtUp))
	}
	reached, _, err := target.Sink.ReadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the copy's state: %w", err)
	}
	if reached.LSN > at {
		return nil, movedPastError{fmt.Errorf("%w: the copy moved past %s to %s while verify brought it there", ErrInUse, at, reached.LSN)}
	}

	reader, err := target.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer reader.Close()
	rep := &Report{LSN: at, From: st.LSN}
	if rep.Tables, err = compareAll(ctx, log, sn, cfg.Source, tables, reader, cfg.Options); err != nil {
		return nil, err
	}
	if rep.Kept, err = kept(ctx, reader, cfg.Tables, tables); err != nil {
		return nil, err
	}
	// Every commit into the copy moves its stored position: an unchanged
	// one proves nothing was committed while the tables were read.
	after, _, err := target.Sink.ReadState(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the copy's state: %w", err)
	}
	if after.LSN != reached.LSN || schema.EncodeCopies(after.Copies) != schema.EncodeCopies(reached.Copies) {
		return nil, fmt.Errorf("%w: the copy moved from %s to %s while it was read", ErrInUse, reached.LSN, after.LSN)
	}
	rep.Took = time.Since(began)
	return rep, nil
}

// compareAll compares tables one by one under the snapshot sn.
func compareAll(ctx context.Context, log *slog.Logger, sn *source.Snapshot, scfg source.Config, tables []*schema.Table, reader Reader, opts Options) ([]TableReport, error) {
	src := SourceReader(sn)
	out := make([]TableReport, 0, len(tables))
	var adm *source.Admin // opened at the first difference
	defer func() {
		if adm != nil {
			adm.Close(context.WithoutCancel(ctx))
		}
	}()
	for _, t := range tables {
		began := time.Now()
		var tr TableReport
		// Each table's locks go after its comparison: thousands of tables
		// and their indexes filled the source's lock table (every session's).
		if err := sn.Released(ctx, func() error {
			tr = Compare(ctx, NewTable(t), src, reader, opts)
			return nil
		}); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if tr.Different() && t.Storage != "" {
			// TRUNCATE and table rewrites are not MVCC-safe: committed
			// after the snapshot was taken, before the table was read,
			// they show the snapshot the new data files (helper-128: a
			// false "different"). Those change the table's data files.
			var now string
			var err error
			if adm == nil {
				adm, err = source.Connect(ctx, scfg)
			}
			if err == nil {
				now, err = adm.Storage(ctx, t.ID)
			}
			if err != nil {
				// The difference stands (helper-137: the report was lost).
				log.Warn("could not check whether the source table was truncated or rewritten while verify ran", "table", tr.Table, "err", err)
			} else if schema.DataFiles(now) != schema.DataFiles(t.Storage) {
				tr = TableReport{Table: tr.Table, RelID: tr.RelID, Key: tr.Key, Method: tr.Method,
					Err: "the source table was truncated or rewritten while verify ran (its data files changed since the comparison's snapshot, which then shows their rows, not the snapshot's): verify it again"}
			}
		}
		tr.Took = time.Since(began)
		log.Debug("compared table", "table", tr.Table, "status", tr.Status(), "method", tr.Method, "rows", tr.SourceRows, "took", tr.Took)
		out = append(out, tr)
	}
	return out, nil
}

// keptLister is a Reader that lists the copy's tables no published table
// maps to any more (Report.Kept).
type keptLister interface {
	Kept(ctx context.Context, published []*schema.Table) ([]string, error)
}

// kept is Report.Kept: nothing when only some tables were compared (named).
func kept(ctx context.Context, r Reader, named []string, published []*schema.Table) ([]string, error) {
	kl, ok := r.(keptLister)
	if !ok || len(named) > 0 {
		return nil, nil
	}
	names, err := kl.Kept(ctx, published)
	if err != nil {
		return nil, fmt.Errorf("list the copy's tables: %w", err)
	}
	return names, nil
}

// pick keeps the named tables (all when none are named), in the order given.
func pick(tables []*schema.Table, names []string, publication string) ([]*schema.Table, error) {
	if len(names) == 0 {
		return tables, nil
	}
	var out []*schema.Table
	for _, n := range names {
		tn, err := source.ParseTableName(n)
		if err != nil {
			return nil, fmt.Errorf("--table: %w", err)
		}
		i := slices.IndexFunc(tables, func(t *schema.Table) bool { return t.Schema == tn.Schema && t.Name == tn.Name })
		if i < 0 {
			return nil, fmt.Errorf("--table %s: not in publication %q", tn.Schema+"."+tn.Name, publication)
		}
		if !slices.Contains(out, tables[i]) {
			out = append(out, tables[i])
		}
	}
	return out, nil
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Config is one replication job.
type Config struct {
	Source source.Config
	Limits Limits
	// StopAt ends the run once everything committed up to it is applied.
	StopAt lsn.LSN
	// StopAtNow resolves StopAt to the source's current WAL position at start.
	StopAtNow bool
	// Resync lets a target whose slot is gone or invalidated be rebuilt: the
	// slot is created again and every published table copied afresh, as
	// InitialCopy says: in one target transaction ("single"), so readers
	// see the old copy until it commits, or chunk by chunk ("chunked"), so
	// they see each table emptied and filling up.
	Resync bool
	// InitialCopy chooses how a new copy takes the source's rows: "single"
	// copies every table in one target transaction (readers never see a
	// partial table; a crash starts it over), "chunked" commits chunk by
	// chunk while the stream flows (a crash resumes after the last chunk),
	// and "auto" (the default) is chunked when the published tables hold
	// AutoChunkedRows rows or more by the source's estimate.
	InitialCopy string
	// ResyncTables are tables (or rows of them) to copy again online from
	// the position the copy stands at when the run starts, as a
	// walmirror.resync request there would: source changes to them after
	// that position wait for their copy instead of meeting rows the copy
	// lacks (verify --repair). A table already being copied is left to
	// that copy; the copies are recorded in the target with its first
	// commit, so a later run finishes them.
	ResyncTables []ResyncTable
	// CopyChunkRows is how many rows the first chunk of an online copy
	// reads (default 50,000); the next ones read between an eighth and 16
	// times as many, as CopyChunkTime has them.
	CopyChunkRows int
	// CopyChunkTime is how long one chunk of an online copy should take,
	// from opening it to its commit (default 1s; negative: every chunk
	// reads CopyChunkRows rows). A chunk that took under half of it makes
	// the next one twice as big; one that took longer, or during which the
	// stream brought more than 10,000 changes to rows the copy has not
	// reached, makes it half as big. The stream waits while a chunk's rows
	// are read and written, and a crash redoes at most the chunk in
	// flight: this bounds both.
	CopyChunkTime time.Duration
	// PollInterval is how often the publication is checked for tables that
	// joined it (default 10s; negative: never).
	PollInterval time.Duration
	// Pipeline applies each chunk to the target on a writer goroutine while
	// the next is received and compacted (experimental).
	Pipeline bool
	// MaxBackoff caps the wait between reconnects after a connection loss.
	MaxBackoff time.Duration
	// SlotBusyWait is how long a run that has not streamed yet waits for a
	// slot held by another connection (another walmirror, or the lingering
	// walsender of a previous one) before it ends with an error naming the
	// holder; zero means DefaultSlotBusyWait. Once streaming has worked, a
	// busy slot is retried like any connection loss (it is most likely
	// this run's own previous connection).
	SlotBusyWait time.Duration
	Logger       *slog.Logger
	// OnCommit, when set, is called after each target commit while
	// streaming, online copies' chunks included (progress displays, lag
	// measurement), except commits that only store a position the stream
	// passed with nothing for the copy. A commit may carry no Changes and
	// leave the position where it was (around a TRUNCATE, a rename or a
	// table that joined the publication, the engine stores a table's new
	// shape or copy progress in a commit of its own). A one-transaction initial
	// copy reports through OnSnapshot (Done) and OnReady instead. It runs
	// on the apply path: keep it quick.
	OnCommit func(CommitInfo)
	// OnStored, when set, is called after every target commit that stored
	// a state, those that only store a position included and the initial
	// copy's, with that state (a display of the stored position;
	// walmirror's DuckDB state file).
	OnStored func(schema.State)

	// Optional hooks for metrics and progress logs, like OnCommit: each runs
	// on the apply path (the writer goroutine when pipelining), so keep it
	// quick and never block. None changes what is applied or confirmed. A
	// hook that panics panics Run (with Pipeline, the writer goroutine:
	// the process ends) after closing the replication connection and
	// calling OnStop, so a caller that recovers can run again on a
	// reopened sink (what the target holds is as committed: exactly once).
	//
	// OnPosition is called for each keepalive the engine handles: the
	// server's WAL end, and whether everything received is applied; and
	// at the first transaction after a caught-up report (see Position).
	OnPosition func(Position)
	// OnSnapshot reports the initial copy's progress: when its tables are
	// known, after each chunk of rows written and each table, and once
	// committed (Done).
	OnSnapshot func(SnapshotProgress)
	// OnStreaming is called when streaming starts, after the first start
	// and after each reconnect: after the initial copy, or while its
	// tables are still copied when it is chunked (OnReady says when the
	// copy is complete).
	OnStreaming func(from lsn.LSN)
	// OnInterrupted is called when a connection loss is about to be retried.
	OnInterrupted func(err error)
	// OnReady is called when the copy is complete: when streaming starts
	// with no online copy in progress (after the initial copy, after each
	// reconnect), after the commit that completes the last online copy
	// in progress (a chunked initial copy, a table that joined, a resync),
	// and when a run to the source's position now (StopAtNow) ends right
	// after its one-transaction initial copy, without streaming.
	OnReady func(schema.State)
	// ChangeKeys makes CommitInfo.Changes list, per commit, the tables
	// changed and up to this many keys of each (beyond it, "all rows"); a
	// negative value lists tables only. Zero (the default) lists nothing,
	// saving the per-row work.
	ChangeKeys int
	// Pause, when set, lets another goroutine stop the copy at one source
	// position briefly while it runs (see Pauser).
	Pause *Pauser
	// StopOnDivergence makes Run return ErrDiverged when a change finds the
	// copy no longer holding what the source held (a row inserted at the
	// source is there already, one it updated is missing: someone else
	// wrote to the copy). By default that table is copied again online
	// instead, from the stored position, and the run goes on (the log
	// warns, and OnInterrupted is called).
	StopOnDivergence bool
	// OnStop is called once when Run returns, with the error it returns
	// (nil when ctx ended or StopAt was reached): nothing is applied after
	// it until Run is called again (Progress.Hook sets it, so that waiters
	// learn the copy is no longer kept current). Not when Run refuses a
	// sink another Run in this process is using: no hook is called then.
	OnStop func(err error)

	// onStart is called when Run begins (Progress.Hook sets it): a run
	// reports to the Progress again, so WaitFor waits for it rather than
	// returning the previous run's end.
	onStart func()
	// onCopying is called before a commit that empties tables to copy them
	// online at the start of a chunked initial copy (Progress.Hook sets
	// it): positions held before are not held until the copy completes.
	onCopying func()
}

// SnapshotProgress describes the initial copy while it runs.
type SnapshotProgress struct {
	Tables     int    // tables to copy
	TablesDone int    // tables copied so far
	Table      string // the table being copied ("" before the first and when done)
	Rows       int64  // rows written so far, all tables
	Done       bool   // the copy is committed
}

// ResyncTable is a table to copy again online (Config.ResyncTables).
type ResyncTable struct {
	RelID uint32 // pg_class oid
	Name  string // schema.name, for the log
	// Keys, when set, limits the copy to the rows with these keys (see
	// EncodeResyncKeys).
	Keys [][]string
}

// Online copy defaults (Config.CopyChunkRows, PollInterval, InitialCopy).
const (
	DefaultCopyChunkRows = 50_000
	DefaultCopyChunkTime = time.Second
	DefaultPollInterval  = 10 * time.Second
	AutoChunkedRows      = 5_000_000
)

// DefaultSlotBusyWait outlasts PostgreSQL's default wal_sender_timeout
// (60s), after which the server ends a walsender whose client is gone.
const DefaultSlotBusyWait = 90 * time.Second

// Run replicates until ctx is cancelled (returns nil), the stop position is
// reached (nil), or a permanent error. Connection losses after a successful
// start are retried with exponential backoff and jitter; each attempt resumes
// from the position stored in the target, so nothing is lost or doubled.
func Run(ctx context.Context, sink Sink, cfg Config) (err error) {
	// Refused for a sink another Run in this process uses, Run calls no
	// hook: they were most likely set up for that other Run
	// (Progress.Hook), and told its waiters its copy had stopped while it
	// was kept current (helper-114: a double start).
	release, err := claimSink(sink)
	if err != nil {
		return err
	}
	defer release()
	if cfg.onStart != nil {
		cfg.onStart()
	}
	if cfg.OnStop != nil {
		// Also when a hook panics: the stream is closed by then (the slot
		// is free), and waiters learn the copy is no longer kept current.
		defer func() {
			if p := recover(); p != nil {
				// One line: the stack is the panic's own (helper-82: a
				// multi-kilobyte message in every later WaitFor error).
				cfg.OnStop(fmt.Errorf("%w (in a hook?): %v", ErrPanicked, p))
				panic(p)
			}
			cfg.OnStop(err)
		}()
	}
	return markFull(sink, run(ctx, sink, cfg))
}

func run(ctx context.Context, sink Sink, cfg Config) error {
	cfg = cfg.withDefaults() // per field: see Validate
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkSink(sink); err != nil {
		return err
	}
	cfg.Source.Logger = cfg.Logger
	log := cfg.Logger
	r := &runner{sink: sink, cfg: cfg, log: log}
	started := false
	for {
		err := r.once(ctx, &started)
		switch {
		case err == nil, errors.Is(err, errStopReached):
			return nil
		case ctx.Err() != nil:
			log.Info("stopped")
			return nil
		case errors.Is(err, errRelinked), errors.Is(err, errStaleState), errors.Is(err, errUndescribed):
			continue
		case r.cfg.Source.Protocol == 0 && source.IsStreamUndecodable(err):
			// Every try would fail alike, and the failing transaction
			// cannot be told: decode at commit for the rest of the run.
			r.cfg.Source.Protocol = 1
			log.Warn("PostgreSQL could not decode a transaction while it streamed (a server bug: DDL in a subtransaction rolled back); decoding each transaction at its commit (protocol 1) for the rest of this run", "err", err)
			continue
		case r.recopy(ctx, err):
			if cfg.OnInterrupted != nil {
				cfg.OnInterrupted(err)
			}
			continue
		case !started || source.IsPermanent(err) && !slotHeld(err):
			return r.divergedHint(err)
		}
		if err := r.slotBusy(ctx, err); err != nil {
			return err
		}
		if cfg.OnInterrupted != nil {
			cfg.OnInterrupted(err)
		}
		// Said once per outage, not once per attempt.
		if r.failures == 0 {
			// A session that fails soon after it resumed (a source that
			// crashes decoding a transaction, helper-120: PostgreSQL 18.4
			// restarted 20 times in 20 s) keeps the backoff growing
			// across outages; one that streamed for a while starts over.
			// The run's first outage resumed nothing: "soon after it
			// began" (helper-122: "again" at a source restart in the
			// run's first half minute).
			resumed := !r.downSince.IsZero()
			r.downSince = time.Now()
			if !r.streamingSince.IsZero() && time.Since(r.streamingSince) < stableSession {
				r.relapses++
				msg := "replication interrupted again soon after it resumed; reconnecting with a longer backoff"
				if !resumed {
					msg = "replication interrupted soon after it began; reconnecting with a longer backoff"
				}
				log.Warn(msg, "err", err, "times", r.relapses)
			} else {
				r.relapses = 0
				log.Warn("replication interrupted; reconnecting with backoff", "err", err)
			}
		} else {
			log.Debug("reconnect failed", "attempt", r.failures, "err", err)
		}
		r.failures++
		r.streamingSince = time.Time{}
		wait := min(cfg.MaxBackoff, 250*time.Millisecond<<min(r.failures+r.relapses, 10))
		wait = wait/2 + rand.N(wait/2+1) // jitter: a fleet does not reconnect in step
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// stableSession is how long a session must stream for the reconnect
// backoff to start over when it fails.
const stableSession = 30 * time.Second

type runner struct {
	sink      Sink
	cfg       Config
	log       *slog.Logger
	failures  int       // consecutive failed attempts since streaming last worked
	downSince time.Time // when the current outage began
	// streamingSince is when the current session began streaming (zero
	// when none is), relapses how many sessions in a row failed within
	// stableSession of it: the backoff grows with them.
	streamingSince time.Time
	relapses       int
	streamed       bool      // streaming has started at least once in this run
	busySince      time.Time // when the slot was first found held by another connection
	// mirror: the publication publishes every operation (at the last start).
	mirror bool
	// recopied is the stored position at which each table was last set to
	// be copied again after it diverged.
	recopied map[uint32]lsn.LSN
	// warnedKey: tables whose key the stream cannot carry, warned of.
	warnedKey map[uint32]bool
	// links: PostgreSQL 14's partition links as listings showed them (linkWatch).
	links map[uint32]linkSeen
	// unsentMoves: restarts per table of its online copy for keys moved
	// with unsent large values (restartUnsentMove), across attempts.
	unsentMoves map[uint32]int
	// relinked: what the session that ended with errRelinked knew of its
	// partitions, for the next.
	relinked *partitionState
	// unseen: the transactions sessions delivered that no snapshot has
	// shown yet (engine.unseen), for the next session: a commit a stalled
	// synchronous standby keeps from being visible is before the next
	// session's start, which the server does not send again, and a copy
	// the next session begins must still see it (helper-147). Lost with
	// the process.
	unseen unseenXids
	// copiedAt: the consistent point of the one-transaction initial copy
	// this run committed (snapshot), zero if it made none.
	copiedAt lsn.LSN
	// undescribed: the end of the source transaction a session was ended
	// before, for a change to a table the server had not described
	// (engine.undescribed); a second time there is an error.
	undescribed lsn.LSN
}

// recopy handles an error that says a change found the copy differing from
// the source (schema.DivergedError): unless Config.StopOnDivergence, the
// table is recorded as being copied again online, in a target transaction
// of its own that keeps the stored position, and it returns true; the next
// attempt then streams from that position with the copy under way, so the
// change that failed, and every later one to rows not yet copied, waits
// for it (as a walmirror resync request standing there would have them).
// A table that diverges again before the position moves, or a publication
// that leaves operations out (a copy of it keeps rows the source deleted,
// which a new copy would lose), ends the run instead.
func (r *runner) recopy(ctx context.Context, err error) bool {
	var de *schema.DivergedError
	if !errors.As(err, &de) || r.cfg.StopOnDivergence && de.SourceChange == "" || !r.mirror || ctx.Err() != nil {
		return false
	}
	st, found, rerr := r.sink.ReadState(ctx)
	if rerr != nil || !found || st.Phase != schema.PhaseStreaming {
		return false
	}
	if at, ok := r.recopied[de.RelID]; ok && at == st.LSN {
		return false // copied again from here already, and it differs again
	}
	st.Copies = slices.DeleteFunc(st.Copies, func(c schema.TableCopy) bool { return c.RelID == de.RelID })
	reason, why := "the copy differed from the source", "the copy of a table differs from the source (someone else wrote to it?)"
	switch {
	case de.Unidentified:
		reason, why = "a change could not name its row", "the source sent a change that cannot name its row of the copy"
	case de.SourceChange != "":
		reason, why = de.SourceChange, "a change found the copy's rows as they were before "+de.SourceChange
	case de.Perhaps != "":
		why = "the copy of a table differs from the source (" + de.Perhaps + "? or someone else wrote to it?)"
	}
	st.Copies = append(st.Copies, schema.TableCopy{RelID: de.RelID, Table: de.Table, Estimate: -1, Reason: reason})
	if rerr := r.sink.Begin(ctx); rerr != nil {
		return false
	}
	if rerr := r.sink.Commit(ctx, st); rerr != nil {
		_ = r.sink.Rollback(context.WithoutCancel(ctx))
		r.log.Error("could not record a new copy of the table that differs from the source", "table", de.Table, "err", rerr)
		return false
	}
	r.stored(st)
	if r.recopied == nil {
		r.recopied = map[uint32]lsn.LSN{}
	}
	r.recopied[de.RelID] = st.LSN
	level := slog.LevelWarn
	if de.SourceChange != "" {
		level = slog.LevelInfo // the source's doing, as a listing finds it
	}
	r.log.Log(ctx, level, why+": copying the table again online, from the stored position",
		"table", de.Table, "at", st.LSN, "err", err)
	return true
}

// explain sets de.SourceChange when the source itself changed de's table
// so that the copy's rows read otherwise, with no WAL for them: an enum or
// composite type its columns use changed since the shape the target stored
// (ALTER TYPE ... RENAME VALUE), or the table was rewritten (its data
// files replaced), which the next listing copies the table again for
// (checkStorage). A change that came first found the copy's rows
// as they were: before, that was blamed on someone writing to the copy (a
// warning; --stop-on-divergence and verify's catch-up stopped; helper-109).
func (r *runner) explain(ctx context.Context, c storageReader, de *schema.DivergedError) {
	ss, ok := r.sink.(shapeStore)
	if !ok {
		return
	}
	text, found, err := ss.Shape(ctx, de.RelID)
	if err != nil || !found {
		return
	}
	stored, err := schema.DecodeStored(text)
	if err != nil || stored.Storage == "" {
		return
	}
	now, err := c.Storage(ctx, de.RelID)
	if err != nil || now == "" {
		return
	}
	// DDL on some columns since explains nothing (helper-132).
	storage, attached := columnsOnly(upgradeSig(stored.Storage, now), now)
	was, _, _ := strings.Cut(storage, "|")
	is, _, _ := strings.Cut(now, "|")
	switch {
	case attached:
		de.Perhaps = "a table attached to a partitioned table and detached again while walmirror was not streaming, whose changes meanwhile were published as that table's"
	case dataFiles(storage) == dataFiles(now) && beforeInh(was) != beforeInh(is) && inhPart(was) == inhPart(is):
		de.SourceChange = "an enum or composite type its columns use changed (ALTER TYPE ... RENAME VALUE or ADD ATTRIBUTE)"
	case inhPart(was) != "" || inhPart(is) != "":
		// helper-112: attached, updated through the root and detached
		// between two cron runs, blamed on someone writing to the copy.
		de.Perhaps = "a partition attached and detached (or dropped) again while walmirror was not streaming, whose rows the copy never had"
	case dataFiles(storage) != dataFiles(now) && columnsRewritten(ctx, c, de.RelID, stored.Columns):
		// helper-134: a rewrite that changed key values and kept the
		// shape (PostgreSQL 18's SET EXPRESSION of a published generated
		// key, ALTER COLUMN ... TYPE ... USING to the same type), with
		// changes by the new keys before a listing saw it. Such a rewrite
		// rewrites a column's catalog row with the table's; VACUUM FULL,
		// CLUSTER and TRUNCATE do not, and excuse nothing (helper-136: a
		// row deleted from the copy went unreported under
		// --stop-on-divergence).
		de.SourceChange = "a rewrite of the table on the source (ALTER TABLE ... SET EXPRESSION, or ALTER COLUMN ... TYPE ... USING), which changes rows with no WAL for them"
	}
}

// columnsRewritten asks c whether relid's last pg_class change rewrote one
// of the stored columns too (source.Copier.ColumnsRewritten); false when
// it cannot say.
func columnsRewritten(ctx context.Context, c storageReader, relid uint32, cols []schema.StoredColumn) bool {
	cr, ok := c.(interface {
		ColumnsRewritten(ctx context.Context, relid uint32, attnums []int16) (bool, error)
	})
	if !ok {
		return false
	}
	var nums []int16
	for _, col := range cols {
		if col.Num > 0 {
			nums = append(nums, col.Num)
		}
	}
	yes, err := cr.ColumnsRewritten(ctx, relid, nums)
	return err == nil && yes
}

// divergedHint adds to a divergence that ends the run what to do.
func (r *runner) divergedHint(err error) error {
	var de *schema.DivergedError
	switch {
	case !errors.As(err, &de):
		return err
	case r.cfg.StopOnDivergence && de.Perhaps != "":
		return fmt.Errorf("%w; not necessarily someone else's write: %s; to copy %s again online, run again without --stop-on-divergence (Config.StopOnDivergence in Go)", err, de.Perhaps, de.Table)
	case r.cfg.StopOnDivergence:
		return fmt.Errorf("%w; to copy %s again online, run again without --stop-on-divergence (Config.StopOnDivergence in Go)", err, de.Table)
	case !r.mirror:
		return fmt.Errorf("%w; the publication leaves operations out, so the copy keeps rows the source deleted, which walmirror does not copy again on its own: "+
			"delete the copy's row with that key by hand (or, in an update, add the missing one), then run again", err)
	}
	return fmt.Errorf("%w; it differed again right after it was copied again (something keeps writing to the copy?)", err)
}

// slotHeld says whether err is the slot held by another connection, which
// slotBusy waits for: also a slot this run must drop (an interrupted
// initial copy's, held by the killed run's walsender still making it;
// helper-116: the next run stopped at once, "stop that process first").
// Not a slot a target with no state finds in use: another copy's, which
// stops the run at once.
func slotHeld(err error) bool {
	_, held := source.SlotBusy(err)
	return held && !errors.Is(err, ErrSlotExists)
}

// slotBusy decides about an error before a retry: a slot held by another
// connection is waited for up to SlotBusyWait while this run has not
// streamed yet, then it ends the run naming the holder.
func (r *runner) slotBusy(ctx context.Context, err error) error {
	pid, busy := source.SlotBusy(err)
	if !busy || r.streamed {
		r.busySince = time.Time{}
		return nil
	}
	holder := ""
	if adm, cerr := source.Connect(ctx, r.cfg.Source); cerr == nil { // who holds it, for the operator
		if st, serr := adm.Slot(ctx, r.cfg.Source.Slot); serr == nil && st.Active {
			holder, pid = st.Holder, st.ActivePID
		}
		adm.Close(context.WithoutCancel(ctx))
	}
	if r.busySince.IsZero() {
		r.busySince = time.Now()
		attrs := []any{"slot", r.cfg.Source.Slot, "server_pid", pid, "wait", r.cfg.SlotBusyWait}
		if holder != "" { // (released by the time it was looked up: helper-119 saw holder="")
			attrs = append(attrs, "holder", holder)
		}
		r.log.Warn("the replication slot is in use by another connection; waiting for it to be released", attrs...)
	}
	if time.Since(r.busySince) < r.cfg.SlotBusyWait {
		return nil
	}
	busyErr := &source.SlotActiveError{Slot: r.cfg.Source.Slot, PID: pid, Holder: holder}
	return fmt.Errorf("gave up after %s: %w (another walmirror following the same slot?)", r.cfg.SlotBusyWait.Round(time.Second), busyErr)
}

func (r *runner) once(ctx context.Context, started *bool) error {
	scfg := r.cfg.Source
	if st, found, err := r.sink.ReadState(ctx); err == nil && found {
		// Refused before the source is changed (a publication created on
		// the wrong cluster: helper-122); prepare reads the state again.
		if err := r.checkTarget(st); err != nil {
			return err
		}
		if !r.cfg.Resync {
			scfg.ExpectSystemID = st.SystemID
		}
	}
	src, err := source.Open(ctx, scfg)
	if mis := (*source.SystemMismatchError)(nil); errors.As(err, &mis) {
		return otherCluster(mis.Want, mis.Got)
	}
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	r.mirror = src.PublishesEverything()
	// The configuration has been proven; from here on a lost connection (even
	// during the initial copy, which redoes itself) is worth a reconnect.
	*started = true

	st, err := r.prepare(ctx, src)
	if err != nil {
		return err
	}
	stopAt := r.cfg.StopAt
	if r.cfg.StopAtNow && stopAt == 0 {
		if stopAt, err = src.CurrentLSN(ctx); err != nil {
			return err
		}
		r.cfg.StopAt = stopAt // a reconnect keeps the same goal
		r.log.Info("will stop at the current source position", "lsn", stopAt)
	}
	if r.cfg.StopAtNow && stopAt != 0 && st.LSN >= stopAt && st.LSN == r.copiedAt && len(st.Copies) == 0 && len(r.cfg.ResyncTables) == 0 {
		// The copy this run just made is as of the source's position now:
		// the source wrote no WAL since the copy's snapshot, so there is
		// nothing to stream, and no change without WAL the poll owed at a
		// bounded run's end could find. A one-off copy ends here, without
		// a replication session, a keepalive's wait and a listing.
		r.log.Info("reached stop position", "stop_at", stopAt, "stored", st.LSN, "transactions", 0, "rows", 0)
		if r.cfg.OnPosition != nil {
			// As a keepalive would say: the source's WAL ends here, applied.
			r.cfg.OnPosition(Position{ServerWALEnd: st.LSN, CaughtUp: true})
		}
		if r.cfg.OnReady != nil {
			r.cfg.OnReady(st)
		}
		return nil
	}
	// A run to the source's position now owes a publication poll even when
	// the target holds that position already (engine.pollOwed): what the
	// source did with no WAL the stream carries (a table rewritten, a
	// partition that lost rows the stream wrote through it) shows only there.
	if stopAt != 0 && st.LSN >= stopAt && len(st.Copies) == 0 && len(r.cfg.ResyncTables) == 0 && !r.cfg.StopAtNow {
		if st.LSN > stopAt {
			// A copy cannot be set back: one made now (a new target) is as
			// of its slot's consistent point, whatever the stop position.
			r.log.Warn("target already holds everything up to the stop position, and more: its copy is as of a later position, which a bounded run cannot undo",
				"stored", st.LSN, "stop_at", stopAt)
		} else {
			r.log.Info("target already holds everything up to the stop position", "stored", st.LSN, "stop_at", stopAt)
		}
		return nil
	}

	for i, rt := range r.cfg.ResyncTables {
		nsp, _, _, err := src.RelName(ctx, rt.RelID)
		if err != nil {
			return err
		}
		if nsp == "" {
			return &ConfigError{Field: fmt.Sprintf("ResyncTables[%d].RelID", i), Value: rt.RelID, Reason: fmt.Sprintf("no table has this oid on the source (%s)", rt.Name)}
		}
	}

	// The online copies' session first: an error after Start would leave
	// the stream's goroutine holding the slot.
	copier, err := src.OpenCopier(ctx)
	if err != nil {
		return err
	}
	defer copier.Close(context.WithoutCancel(ctx))
	// A copy an older walmirror kept may have confirmed idle positions it
	// did not store: guarded from a commit at or past the slot's position.
	guardFrom := lsn.LSN(0)
	if !st.SlotGuard {
		guardFrom = ^lsn.LSN(0)
		if c, ok, err := src.SlotConfirmed(ctx); err == nil && ok {
			guardFrom = c
		}
	}
	stream, err := src.Start(ctx, st.LSN, st.SlotGuard)
	if ahead := (*source.SlotAheadError)(nil); errors.As(err, &ahead) {
		if now, found, rerr := r.sink.ReadState(ctx); rerr == nil && found && now.LSN >= ahead.Confirmed {
			// Another run committed and let go of the slot since this one
			// read the state: start again from the state as it is.
			return errStaleState
		}
		return mark(ErrSlotLost, fmt.Errorf("%w; run with --resync (Config.Resync in Go) to recreate the slot and copy every table again", err))
	}
	if err != nil {
		return err
	}
	// Deferred: a hook that panics (and a caller that recovers) must not
	// leave the stream's goroutine holding the slot.
	defer func() {
		if cerr := stream.Close(context.WithoutCancel(ctx)); cerr != nil {
			// The data is committed either way; the next start re-reports the position.
			r.log.Debug("closing replication stream", "err", cerr)
		}
	}()
	r.streamed, r.busySince = true, time.Time{}
	r.streamingSince = time.Now()
	if r.failures > 0 {
		r.log.Info("replication resumed", "attempts", r.failures, "down_for", time.Since(r.downSince).Round(time.Millisecond))
		r.failures = 0
	}
	r.log.Info("streaming", "slot", r.cfg.Source.Slot, "from", st.LSN)
	if r.cfg.OnStreaming != nil {
		r.cfg.OnStreaming(st.LSN)
	}
	// Copies asked for (ResyncTables) are recorded by the first commit:
	// ready once they are done (engine.readyOwed).
	if r.cfg.OnReady != nil && len(st.Copies) == 0 && len(r.cfg.ResyncTables) == 0 {
		r.cfg.OnReady(st)
	}
	e := newEngine(r.sink, r.log, r.cfg.Limits, st, stopAt)
	e.guardFrom = guardFrom
	if r.warnedKey == nil {
		r.warnedKey = map[uint32]bool{}
	}
	e.warnedKey = r.warnedKey // once per run, not per attempt
	if r.unsentMoves == nil {
		r.unsentMoves = map[uint32]int{}
	}
	e.unsentMoves = r.unsentMoves // a reconnect does not reset the count (restartUnsentMove)
	e.unseen = r.unseen
	if src.Version() < 150000 {
		if r.links == nil {
			r.links = map[uint32]linkSeen{}
		}
		e.links = &linkWatch{seen: r.links, from: st.LSN}
		if r.relinked != nil {
			e.resumePartitions(r.relinked)
			r.relinked = nil
		}
	}
	e.conf = stream
	e.catalog = src
	e.pipelined = r.cfg.Pipeline
	e.onCommit = r.cfg.OnCommit
	e.onStored = r.cfg.OnStored
	e.onPosition = r.cfg.OnPosition
	e.onReady = r.cfg.OnReady
	e.track = r.cfg.ChangeKeys != 0 && r.cfg.OnCommit != nil
	e.changes.limit = max(r.cfg.ChangeKeys, 0)
	e.copier = streamBound{c: copier, done: stream.Done()}
	e.backlog = stream.Backlog
	e.chunkRows = r.cfg.CopyChunkRows
	if e.chunkRows <= 0 {
		e.chunkRows = DefaultCopyChunkRows
	}
	e.chunkTime = r.cfg.CopyChunkTime
	if e.chunkTime == 0 {
		e.chunkTime = DefaultCopyChunkTime
	}
	e.pause = r.cfg.Pause
	e.undescribedAt = r.undescribed
	e.resyncAtStart = r.cfg.ResyncTables
	e.readyOwed = len(st.Copies) == 0 && len(r.cfg.ResyncTables) > 0
	e.pollFirst = r.cfg.StopAtNow
	e.pollEvery = r.cfg.PollInterval
	if e.pollEvery == 0 {
		e.pollEvery = DefaultPollInterval
	}
	err = e.run(ctx, stream.Events())
	r.unseen = e.unseen
	if de := (*schema.DivergedError)(nil); errors.As(err, &de) && !de.Unidentified {
		r.explain(ctx, copier, de)
	}
	if errors.Is(err, errRelinked) {
		r.relinked = e.partitionState()
	}
	r.undescribed = e.undescribedAt
	if e.committed {
		// The copies asked for are recorded in the target (or done): a
		// reconnect must not start them again.
		r.cfg.ResyncTables = nil
	}
	if errors.Is(err, errStreamEnded) {
		err = stream.Err()
	}
	if errors.Is(err, errStopReached) {
		r.log.Info("reached stop position", "stop_at", stopAt, "stored", e.state.LSN,
			"transactions", e.stats.Transactions, "rows", e.stats.Rows)
	}
	return err
}

// errStaleState: the state a start read was older than the slot another
// run then confirmed and let go of; the run starts again at once.
var errStaleState = errors.New("the target's state moved on since it was read")

// CheckPublication refuses to follow a complete copy (st, as stored) through
// another publication than its own (ErrTargetMismatch): caught up through
// another publication's changes, the copy would take in tables it was
// never made of and miss changes to its own.
func CheckPublication(st schema.State, publication string) error {
	if st.Phase != schema.PhaseStreaming || st.Publication == "" || st.Publication == publication {
		return nil
	}
	return mark(ErrTargetMismatch, fmt.Errorf("the target is a copy of publication %q, not %q: pass --publication %s (Config.Source.Publication in Go), or make the copy of %q in a fresh target",
		st.Publication, publication, st.Publication, publication))
}

// checkTarget refuses a target stored (st) for another slot or, complete,
// for another publication.
func (r *runner) checkTarget(st schema.State) error {
	if slotName := r.cfg.Source.Slot; st.Slot != slotName {
		return mark(ErrTargetMismatch, fmt.Errorf("the target follows slot %q, not %q: pass --slot %s (Config.Source.Slot in Go) or use a fresh target", st.Slot, slotName, st.Slot))
	}
	return CheckPublication(st, r.cfg.Source.Publication)
}

// otherCluster refuses a source cluster (now) other than the copy's.
func otherCluster(copied, now string) error {
	return mark(ErrTargetMismatch, fmt.Errorf("the target was copied from another PostgreSQL cluster (system %s, this one is %s): "+
		"if the source named is the copy's and was replaced (upgraded with pg_upgrade, restored from a dump or from another cluster's backup), "+
		"run with --resync (Config.Resync in Go) to copy every table again; otherwise check the source named, or use a fresh target", copied, now))
}

// prepare checks that the target and the slot belong together and takes the
// initial snapshot when there is none (or an interrupted one), returning the
// state to stream from.
func (r *runner) prepare(ctx context.Context, src *source.Source) (schema.State, error) {
	slotName := r.cfg.Source.Slot
	st, found, err := r.sink.ReadState(ctx)
	if err != nil {
		return st, fmt.Errorf("read walmirror state from target: %w", err)
	}
	if found {
		if err := r.checkTarget(st); err != nil {
			return st, err
		}
	}
	if found && st.SystemID != "" && st.SystemID != src.SystemID() {
		if !r.cfg.Resync {
			return st, otherCluster(st.SystemID, src.SystemID())
		}
		// helper-113: --resync refused too, so after pg_upgrade or a dump
		// restored into a new cluster only a fresh target went on.
		slot, err := src.Slot(ctx)
		if err != nil {
			return st, err
		}
		if slot.Exists {
			// pg_upgrade (17+) carries a caught-up slot over, but a slot of
			// that name may as well be another copy's of this cluster: not
			// dropped here.
			return st, mark(ErrSlotExists, fmt.Errorf("the target was copied from another PostgreSQL cluster (system %s, this one is %s) and this one has a replication slot %q too: "+
				"if it is the copy's, carried over by pg_upgrade, drop it (walmirror drop --source ... --slot %s, without --target) and run with --resync again; "+
				"if another copy follows it, give this copy another slot: a fresh target with another --slot (Config.Source.Slot in Go)", st.SystemID, src.SystemID(), slotName, slotName))
		}
		r.log.Warn("resynchronising: the source is another PostgreSQL cluster than the copy's (upgraded, or restored into a new one?); creating the slot and copying every table again",
			"slot", slotName, "copied_from_system", st.SystemID, "source_system", src.SystemID())
		return r.snapshot(ctx, src)
	}
	st.Publication = r.cfg.Source.Publication // a target stored by an older version: from its next commit on
	slot, err := src.Slot(ctx)
	if err != nil {
		return st, err
	}
	if found && st.Phase == schema.PhaseStreaming {
		var problem string
		switch {
		case !slot.Exists:
			problem = fmt.Sprintf("replication slot %q is gone but the target follows it (stored position %s): changes since then cannot be streamed", slotName, st.LSN)
		case slot.Lost:
			cause := slot.Cause
			if cause == "" {
				cause = source.InvalidationCause("")
			}
			problem = fmt.Sprintf("replication slot %q was invalidated: %s, so changes since %s cannot be streamed", slotName, cause, st.LSN)
		default:
			if problem, err = src.OtherHistory(ctx, st.Timeline, st.LSN); err != nil {
				return st, err
			}
			if problem == "" && st.SlotGuard {
				// Start checks again, as the stream takes the slot.
				c, ok, err := src.SlotConfirmed(ctx)
				if err != nil {
					return st, err
				}
				if ok && c > st.LSN {
					// Another run may have committed and confirmed since
					// the state was read: read it again, after the slot.
					if now, found, err := r.sink.ReadState(ctx); err != nil {
						return st, fmt.Errorf("read walmirror state from target: %w", err)
					} else if found && now.LSN >= c {
						now.Publication = st.Publication
						st = now // its copies too
					} else {
						problem = (&source.SlotAheadError{Slot: slotName, From: st.LSN, Confirmed: c}).Error()
					}
				}
			}
			if problem == "" {
				st.Timeline = src.Timeline()
				return st, nil
			}
		}
		if !r.cfg.Resync {
			return st, mark(ErrSlotLost, errors.New(problem+"; run with --resync (Config.Resync in Go) to recreate the slot and copy every table again"))
		}
		r.log.Warn("resynchronising: "+problem+"; recreating the slot and copying every table again", "slot", slotName)
		if slot.Exists {
			if err := src.DropSlot(ctx); err != nil {
				return st, err
			}
		}
		return r.snapshot(ctx, src)
	}
	// No complete copy yet.
	if slot.Exists {
		if !found {
			if ss, err := src.SlotState(ctx); err == nil && ss.Active {
				return st, mark(ErrSlotExists, fmt.Errorf("%w; this target has no walmirror state, so another copy follows that slot", ss.ActiveError()))
			}
			return st, mark(ErrSlotExists, fmt.Errorf("replication slot %q already exists but this target has no walmirror state: if no other copy follows it, drop it (walmirror drop --slot %s, or SELECT pg_drop_replication_slot('%s')), or choose another --slot", slotName, slotName, slotName))
		}
		r.log.Info("redoing an interrupted initial snapshot", "slot", slotName)
		if err := src.DropSlot(ctx); err != nil {
			return st, err
		}
	}
	return r.snapshot(ctx, src)
}

// sinksInUse holds the sinks a Run in this process is using, by address.
var sinksInUse sync.Map

// claimSink refuses a sink another Run is using: a sink holds one target
// transaction at a time, and the second Run sat in the slot-busy wait
// (helper-82). Only pointer sinks are tracked (by address; not pointers to
// zero-size values, which may share one), not wrappers of one.
func claimSink(s Sink) (release func(), err error) {
	v := reflect.ValueOf(s)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().Elem().Size() == 0 {
		return func() {}, nil
	}
	key := v.Pointer()
	if _, taken := sinksInUse.LoadOrStore(key, struct{}{}); taken {
		return nil, fmt.Errorf("apply.Run: sink %T is in use by another Run in this process: a sink holds one target transaction at a time; give each Run its own sink (and target)", s)
	}
	return func() { sinksInUse.Delete(key) }, nil
}

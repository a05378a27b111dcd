package apply

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/walmirror/walmirror/internal/faultpoint"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// Limits bound what one target transaction and one buffered chunk hold.
type Limits struct {
	// A target transaction is committed at a source commit once it holds
	// CommitRows changes or CommitBytes of them, or is CommitInterval old, or
	// when no more input is waiting (so an idle stream is never held back).
	CommitRows     int
	CommitBytes    int
	CommitInterval time.Duration
	// Buffered changes are written to the open target transaction once they
	// reach ChunkRows or ChunkBytes: a source transaction of any size is
	// applied with bounded memory.
	ChunkRows  int
	ChunkBytes int
}

// DefaultLimits suit a local file target.
func DefaultLimits() Limits {
	return Limits{CommitRows: 100_000, CommitBytes: 64 << 20, CommitInterval: 250 * time.Millisecond, ChunkRows: 20_000, ChunkBytes: 16 << 20}
}

// errStopReached ends the engine cleanly at --stop-at-lsn.
var errStopReached = errors.New("stop LSN reached")

// confirmer is the part of a stream the engine reports to.
type confirmer interface {
	Confirm(lsn.LSN)
	RequestReply()
}

// positionCommitter is a sink that commits a transaction in which only the
// state changed (a position passed) otherwise than Commit: DuckDB's
// published copy is not made again for it.
type positionCommitter interface {
	CommitPosition(ctx context.Context, st schema.State) error
}

// floorer is a confirmer that says where the oldest transaction it
// streams started (source.Stream.Floor).
type floorer interface{ Floor() lsn.LSN }

// engine applies the stream to the sink.
type engine struct {
	sink   Sink
	log    *slog.Logger
	limits Limits
	state  schema.State // last committed
	stopAt lsn.LSN      // 0: run until cancelled
	conf   confirmer
	// catalog, when set, is asked what older rows hold in the columns of a
	// changed shape (see fills).
	catalog Catalog
	// pipe, when set, runs target calls on a writer goroutine (Config.Pipeline).
	pipelined bool
	pipe      *pipeline
	// sinkOpen: the sink holds an open transaction. Touched only by whoever
	// runs target calls (the writer goroutine when pipelining).
	sinkOpen bool
	// onCommit, when set, sees each target commit.
	onCommit   func(CommitInfo)
	onStored   func(schema.State)
	onPosition func(Position) // when set, sees each keepalive
	onReady    func(schema.State)
	// readyOwed: the run began with copies asked for (ResyncTables) and
	// none stored, so OnReady waits for a commit that stores none.
	readyOwed  bool
	track      bool        // collect changes (Config.ChangeKeys)
	changes    changeLog   // the open target transaction's, when tracking
	srcCommits []time.Time // commit times of the source transactions in the open target transaction

	tables  map[uint32]*schema.Table
	types   map[uint32]string
	ensured map[*schema.Table]bool
	buffers map[uint32]*tableBuffer
	order   []uint32 // tables with buffered changes, first touch first
	// reshaped are tables whose Relation message came in the open target
	// transaction: their shape is applied by its commit at the latest.
	reshaped []uint32

	inTx     bool // inside a source transaction
	skipping bool // that transaction is already applied
	// ownFlush: that transaction holds walmirror's own flush message
	// (source.FlushPrefix, a transaction of its own before PostgreSQL 17);
	// it is not counted as a source transaction.
	ownFlush    bool
	open        bool // a target transaction is open
	openedAt    time.Time
	pendingN    int     // changes since the last commit
	pendingSize int     // their bytes
	chunkN      int     // changes buffered
	chunkSize   int     // bytes buffered
	lastEnd     lsn.LSN // end of the last source transaction seen
	// A position the stream passed with nothing for the copy, to store
	// before the slot may be confirmed there (passed), and when the last
	// such store was.
	owed        lsn.LSN
	passedAt    time.Time
	passedEvery time.Duration
	passedBytes lsn.LSN
	// guardFrom: commits at or past it store schema.State.SlotGuard (a copy
	// an older walmirror confirmed further than it stored: from the slot's
	// position at the start on).
	guardFrom lsn.LSN
	// positionOnly: the commit being made stores a position alone, which
	// the OnCommit hook does not hear of (nothing readers see changed) and
	// a positionCommitter sink may take more cheaply.
	positionOnly bool

	stats Stats

	// Online copies (backfill.go).
	copier chunkReader // nil: no online copies (every table is taken as complete)
	// backlog is how many received events wait to be handed over
	// (source.Stream.Backlog; nil: none can).
	backlog       func() int
	chunkRows     int           // rows per chunk (the first chunk's, when chunkTime is set)
	chunkTime     time.Duration // Config.CopyChunkTime: chunk sizes adapt to it (0: they do not)
	pollEvery     time.Duration
	lastPoll      time.Time
	fills         map[uint32]*fill
	fillOrder     []uint32
	fillsChanged  bool // Copies changed since the last commit
	inflight      *chunkWait
	retryAt       time.Time                        // no chunk before then
	behindSince   time.Time                        // chunks wait for the stream since then (farBehind)
	keepaliveEnd  lsn.LSN                          // the last keepalive's position
	chunkDone     *chunkWait                       // a chunk whose watermark came: commit now
	copiedCache   map[uint32]bool                  // per table: the target holds it complete (or is copying it)
	warnedKey     map[uint32]bool                  // per table: its key of unpublished generated columns was warned of
	unsentMoves   map[uint32]int                   // per table: restarts of its online copy for keys moved with unsent large values (restartUnsentMove)
	storage       map[uint32]string                // per table: the Storage polls last found acted on
	links         *linkWatch                       // PostgreSQL 14: partition links and where they were first seen (nil on 15+)
	storedNames   map[uint32]string                // per table not described in this run: the name its stored shape has (checkStorage)
	partTracks    map[uint32]*partTrack            // per partitioned table published through its root: keys written since the poll found its storage as known (partitions.go)
	trackLooked   map[uint32]bool                  // per table: its stored signature was read for tracking in this run
	listings      uint64                           // publication listings taken so far in this run (partTrack's stamps)
	truncXids     map[uint32]truncXid              // per table: the source transaction of its last streamed TRUNCATE
	unseen        unseenXids                       // delivered source transactions no snapshot has shown yet
	describedAt   map[uint32]lsn.LSN               // per table: where the stream last described it (describedSince)
	describedXid  map[uint32]uint32                // per table: the source transaction that last described it, if one did (describedSince)
	storedCols    map[uint32][]schema.StoredColumn // per table the stream has not described: its stored shape's columns (checkColumns)
	pollSoon      bool                             // poll at the next caught-up moment, whatever the interval
	pollAfter     time.Time                        // no poll before then (a locked table)
	listStuck     time.Time                        // since when listings meet a locked table (zero: the last one did not)
	listWarned    bool                             // and that was said (listLocked)
	polled        *polled                          // a publication listing waiting for the stream to pass its position
	pollFirst     bool                             // a bounded run lists the publication before it ends (StopAtNow)
	waiting       bool                             // the last event was a keepalive: the server has sent all it had
	xid           uint32                           // the source transaction being received
	seen          seenState                        // which delivered transactions the source's catalog reads see (seeTransaction)
	txChanges     int64                            // changesSeen() at its Begin
	undescribedAt lsn.LSN                          // see undescribed
	heldRows      int64                            // row changes an online copy took over (not applied as such)
	txEnd         lsn.LSN                          // and its commit's position
	pause         *Pauser                          // Config.Pause (pause.go)
	resyncAtStart []ResyncTable                    // Config.ResyncTables
	committed     bool                             // a target commit succeeded (read after run returns)
	shownCaughtUp bool                             // the last Position the hook got said CaughtUp
}

// chunkReader is what online copies read the source through.
type chunkReader interface {
	BeginChunk(ctx context.Context, relid uint32) (*source.Chunk, error)
	Published(ctx context.Context) (source.Listing, error)
	XidNow(ctx context.Context) (uint64, error)
}

// CommitInfo describes one target commit, for progress displays and lag
// measurement.
type CommitInfo struct {
	State schema.State
	Stats Stats
	At    time.Time // when the target commit returned
	// SourceCommits are the source commit times of the transactions this
	// target commit made durable; only valid during the call.
	SourceCommits []time.Time
	// Duration is how long the target took to commit.
	Duration time.Duration
	// Changes lists the tables this commit changed, with their keys up to
	// Config.ChangeKeys per table (nil unless ChangeKeys is set); only valid
	// during the call.
	Changes []TableChange
}

// Position is what a keepalive told the engine, for lag measurement.
//
// It is reported for each keepalive the engine handles, and, when the
// last report said CaughtUp, at the Begin of the next transaction (not
// caught up; ServerWALEnd that transaction's commit position), so that
// lag does not read 0 while a large transaction is applied.
type Position struct {
	// ServerWALEnd is how far the server's decoder has read.
	ServerWALEnd lsn.LSN
	// CaughtUp: nothing is in flight and everything received is applied, so
	// the copy is complete up to ServerWALEnd (stored, then confirmed, about a
	// second after the last commit).
	CaughtUp bool
}

// Stats counts what was applied, for progress logs and the demo. The
// counts are since the engine started (a reconnect starts a new one).
type Stats struct {
	Transactions, Rows, Commits int64
	LastCommitTime              time.Time // source commit time of the last applied transaction
	// Rows by operation, and TRUNCATE statements.
	Inserts, Updates, Deletes, Truncates int64
}

func newEngine(sink Sink, log *slog.Logger, limits Limits, st schema.State, stopAt lsn.LSN) *engine {
	return &engine{
		sink: sink, log: log, limits: limits, state: st, stopAt: stopAt,
		tables: map[uint32]*schema.Table{}, types: map[uint32]string{},
		ensured: map[*schema.Table]bool{}, buffers: map[uint32]*tableBuffer{},
		lastEnd: st.LSN, passedEvery: passedEvery, passedBytes: passedBytes, fills: map[uint32]*fill{}, copiedCache: map[uint32]bool{}, storage: map[uint32]string{},
		storedNames: map[uint32]string{}, partTracks: map[uint32]*partTrack{}, trackLooked: map[uint32]bool{},
		truncXids: map[uint32]truncXid{}, describedAt: map[uint32]lsn.LSN{}, describedXid: map[uint32]uint32{}, storedCols: map[uint32][]schema.StoredColumn{},
	}
}

// run consumes events until the stream ends, ctx is cancelled or the stop LSN
// is reached (errStopReached). An open target transaction is rolled back on
// any other exit: what it held is streamed again next time.
func (e *engine) run(ctx context.Context, events <-chan []source.Event) (err error) {
	if e.pipelined {
		e.pipe = startPipeline(ctx)
	}
	defer func() {
		if e.pipe != nil {
			// Every queued call finishes (or is skipped after a failure)
			// before the run may end: a stop position is only reached once
			// its commit really happened.
			switch perr := e.pipe.stop(); {
			case perr == nil:
			case err == nil || errors.Is(err, errStopReached):
				err = perr
			case !errors.Is(err, perr):
				err = errors.Join(err, perr)
			}
		}
		if e.sinkOpen && !errors.Is(err, errStopReached) {
			if rerr := e.sink.Rollback(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("roll back target: %w", rerr))
			}
			e.sinkOpen = false
		}
		e.open = false
	}()
	if e.copier != nil {
		e.loadFills(e.state.Copies)
		for _, rt := range e.resyncAtStart {
			if _, ok := e.fills[rt.RelID]; ok {
				continue // being copied already (or recorded by an earlier attempt)
			}
			if rt.Keys != nil {
				if err := e.requestKeys(ctx, rt.RelID, rt.Name, rt.Keys); err != nil {
					return err
				}
			} else {
				e.startFill(rt.RelID, rt.Name, -1, "resync requested")
			}
		}
		e.pollSoon = true // at the first caught-up moment
	}
	// Online copies and publication polls happen between transactions while
	// the stream is quiet; a ticker finds such moments on an idle source.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var n uint32
	for {
		// A plain receive when a batch is waiting (the usual case while
		// catching up) costs a fraction of a two-way select; cancellation is
		// still seen within 1024 batches.
		var batch []source.Event
		var ok bool
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case batch, ok = <-events:
		default:
			select {
			case batch, ok = <-events:
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
				if err := e.idleWork(ctx); err != nil {
					return err
				}
				continue
			}
		}
		if !ok {
			return errStreamEnded
		}
		for i, ev := range batch {
			idle := i == len(batch)-1 && len(events) == 0 && (e.backlog == nil || e.backlog() == 0)
			if err := e.handle(ctx, ev, idle); err != nil {
				return err
			}
			if idle {
				if err := e.idleWork(ctx); err != nil {
					return err
				}
			}
		}
	}
}

var errStreamEnded = errors.New("replication stream ended")

func (e *engine) handle(ctx context.Context, ev source.Event, idle bool) error {
	e.waiting = ev.Msg == nil && !e.inTx
	if e.pause != nil {
		if err := e.pauseBefore(ctx, ev); err != nil {
			return err
		}
	}
	if ev.Msg == nil { // keepalive
		e.keepaliveEnd = max(e.keepaliveEnd, ev.WALEnd)
		if e.inTx {
			e.position(Position{ServerWALEnd: ev.WALEnd})
			return nil
		}
		if !e.open && e.fillsChanged {
			// Online copies a poll started are recorded before the slot
			// moves on.
			if err := e.ensureOpen(ctx); err != nil {
				return err
			}
		}
		if e.open {
			// The server sends a keepalive whenever it waits for WAL, which
			// under a steady load is after nearly every transaction: commit
			// only on the usual terms, or a backlog would be applied one
			// transaction per target commit.
			if !e.commitDue(idle) {
				e.position(Position{ServerWALEnd: ev.WALEnd})
				return nil
			}
			if err := e.commit(ctx); err != nil {
				return err
			}
		}
		// Nothing in flight and all received is applied: let the slot move on
		// past WAL that held nothing for us, so an idle publication pins none
		// (at once when this keepalive ends a bounded run).
		e.log.Debug("keepalive: confirm", "wal_end", ev.WALEnd)
		if err := e.passed(ctx, ev.WALEnd, e.stopAt != 0 && ev.WALEnd >= e.stopAt); err != nil {
			return err
		}
		if e.onPosition != nil {
			// Behind the confirmation (and the commit) when pipelining.
			// Not caught up while a table is being copied: its rows are not
			// all in the copy yet.
			pos := Position{ServerWALEnd: ev.WALEnd, CaughtUp: !e.copying()}
			e.shownCaughtUp = pos.CaughtUp
			if err := e.call(ctx, func(context.Context) error { e.onPosition(pos); return nil }); err != nil {
				return err
			}
		}
		// Caught up: tables that joined the publication or were rewritten
		// (also before a bounded run ends here).
		if err := e.poll(ctx, ev.WALEnd); err != nil {
			return fmt.Errorf("look for tables that joined the publication or were rewritten: %w", err)
		}
		if e.stopAt != 0 {
			// A publication listing still waiting for the stream to pass
			// its position may start copies: it is seen through first; so
			// is a poll a bounded run still owes (one put off while DDL
			// held a table, or asked for by a Relation message).
			if ev.WALEnd >= e.stopAt && !e.copying() && e.polled == nil && !e.pollOwed() {
				// The poll may have written (a stored shape's upgraded
				// signature): commit it, as a stop at a Begin does.
				if e.open {
					if err := e.commit(ctx); err != nil {
						return err
					}
				}
				return errStopReached
			}
			e.conf.RequestReply()
		}
		return nil
	}
	switch m := ev.Msg.(type) {
	case *pgoutput.Begin:
		if e.stopAt != 0 && m.FinalLSN > e.stopAt && !e.copying() && !e.pollOwed() {
			if e.open {
				if err := e.commit(ctx); err != nil {
					return err
				}
			}
			return errStopReached
		}
		e.inTx = true
		e.ownFlush = false
		e.txChanges = e.changesSeen()
		e.xid, e.txEnd = m.Xid, m.FinalLSN
		e.skipping = m.FinalLSN < e.state.LSN
		if e.shownCaughtUp && !e.skipping && e.onPosition != nil {
			// Hooks heard "caught up" last; a transaction applied for a
			// while (a large one sent at its commit) would otherwise look
			// like none: the server has WAL up to its commit at least.
			// Behind the caught-up report when pipelining, as it went.
			e.shownCaughtUp = false
			pos := Position{ServerWALEnd: m.FinalLSN}
			if err := e.call(ctx, func(context.Context) error { e.onPosition(pos); return nil }); err != nil {
				return err
			}
		}
		e.stats.LastCommitTime = m.CommitTime
	case *pgoutput.Commit:
		e.inTx = false
		if e.skipping {
			e.skipping = false
			return nil
		}
		e.unseen.add(e.xid)
		e.lastEnd = m.EndLSN
		// PostgreSQL 14 sends transactions with nothing published too
		// (empty): not counted, as later versions do not send them.
		if !e.ownFlush && e.changesSeen() > e.txChanges {
			e.stats.Transactions++
			if e.onCommit != nil && e.open {
				e.srcCommits = append(e.srcCommits, m.CommitTime)
			}
		}
		stop := e.stopAt != 0 && m.EndLSN > e.stopAt && !e.copying() && !e.pollOwed()
		if !e.open && e.fillsChanged {
			// Online copies this transaction started (a resync request, a
			// table's first change) are recorded with its position before
			// the source may forget it.
			if err := e.ensureOpen(ctx); err != nil {
				return err
			}
		}
		if !e.open {
			// Nothing to write for this transaction: nothing is in flight.
			if err := e.passed(ctx, m.EndLSN, stop); err != nil {
				return err
			}
		} else if stop || e.commitDue(idle) {
			if err := e.commit(ctx); err != nil {
				return err
			}
		}
		if stop {
			return errStopReached
		}
	case *pgoutput.Relation:
		return e.relation(ctx, m)
	case *pgoutput.TypeMsg:
		e.types[m.TypeID] = m.Namespace + "." + m.Name
	case *pgoutput.Insert:
		return e.change(ctx, m.RelationID, schema.RowChange{Op: schema.Insert, New: m.New})
	case *pgoutput.Update:
		return e.change(ctx, m.RelationID, schema.RowChange{Op: schema.Update, Old: m.Old, New: m.New})
	case *pgoutput.Delete:
		return e.change(ctx, m.RelationID, schema.RowChange{Op: schema.Delete, Old: m.Old})
	case *pgoutput.Truncate:
		return e.truncate(ctx, m)
	case *pgoutput.LogicalMessage:
		return e.message(ctx, m)
	}
	return nil
}

// message handles the watermarks of online copies and resync requests.
func (e *engine) message(ctx context.Context, m *pgoutput.LogicalMessage) error {
	switch {
	case m.Prefix == source.WatermarkPrefix && !m.Transactional():
		if err := e.watermark(ctx, string(m.Content)); err != nil {
			return err
		}
		w := e.chunkDone
		if w == nil {
			return nil
		}
		e.chunkDone = nil
		// Every transaction committed before the watermark has come: the
		// copy is complete up to it.
		e.lastEnd = max(e.lastEnd, m.LSN)
		if e.open {
			at := time.Now()
			if err := e.commit(ctx); err != nil {
				return err
			}
			w.timing.commit = time.Since(at)
		}
		e.chunkCommitted(w)
		if e.stopAt != 0 && e.lastEnd >= e.stopAt && !e.copying() && !e.pollOwed() {
			return errStopReached
		}
	case m.Prefix == source.ResyncPrefix && m.Transactional() && !e.skipping && e.copier != nil:
		return e.resync(ctx, m.Content)
	case m.Prefix == source.FlushPrefix && m.Transactional():
		e.ownFlush = true
	}
	return nil
}

// copying reports whether online copies are in progress: a bounded run
// goes on past its stop position until they are complete, so the copy it
// leaves is whole.
func (e *engine) copying() bool { return len(e.fills) > 0 || e.inflight != nil }

// pollOwed reports whether a publication poll is due (every run owes one at
// its first caught-up moment, and a Relation message asks for another) or a
// listing waits for the stream to pass its position. A rewrite with no
// change after it shows only to that poll, so a bounded run does not end at
// a transaction past its stop position while one is owed: it goes on to the
// next keepalive, which polls, and ends there (the keepalive path). A source
// that commits transactions while the run starts would otherwise end it
// before any poll: a workload on the source's database, or on PostgreSQL 14
// (which sends transactions with no published change as an empty BEGIN and
// COMMIT) any write there, such as autovacuum's ANALYZE.
//
// Only a run to the source's position at its start (Config.StopAtNow) goes
// on so: a run to a given position (StopAt, as verify's) ends exactly there.
func (e *engine) pollOwed() bool {
	return e.pollFirst && e.copier != nil && (e.pollSoon || e.polled != nil)
}

// idleWork runs between source transactions when no input is waiting:
// publication polls and the next chunk of an online copy.
func (e *engine) idleWork(ctx context.Context) error {
	e.pauseIdle()
	if e.owed >= e.state.LSN+e.passedBytes && e.owed > e.state.LSN && !e.inTx && !e.open && time.Since(e.passedAt) >= e.passedEvery {
		if err := e.passed(ctx, e.owed, true); err != nil {
			return err
		}
	}
	if e.inTx || e.copier == nil {
		return nil
	}
	if e.pollSoon || e.pollEvery > 0 && time.Since(e.lastPoll) >= e.pollEvery {
		// A keepalive says when the server has sent all it had, and the
		// poll runs at it. Also when the last event was one: an idle
		// server sends the next only every wal_sender_timeout / 2 (never
		// with 0), and a table that joined an idle publication waited
		// for it.
		e.conf.RequestReply()
	}
	if err := e.nextChunk(ctx); err != nil {
		return fmt.Errorf("online copy: %w", err)
	}
	return nil
}

// commitDue says whether the open target transaction should be committed at
// a source commit boundary: when no input is waiting (low latency when caught
// up), or when it is big or old enough (throughput when behind).
func (e *engine) commitDue(idle bool) bool {
	if e.inflight != nil {
		return false // a chunk's rows wait for its watermark
	}
	return idle || e.pendingN >= e.limits.CommitRows || e.pendingSize >= e.limits.CommitBytes ||
		time.Since(e.openedAt) >= e.limits.CommitInterval
}

func (e *engine) relation(ctx context.Context, m *pgoutput.Relation) error {
	if err := e.seeTransaction(ctx); err != nil {
		return err
	}
	cols := make([]schema.Column, len(m.Columns))
	var typeNames map[uint32]string
	for i, c := range m.Columns {
		cols[i] = schema.Column{Name: c.Name, TypeID: c.TypeID, Typmod: c.Typmod, Key: c.Flags&1 != 0}
		if name, ok := e.types[c.TypeID]; ok {
			if typeNames == nil {
				typeNames = map[uint32]string{}
			}
			typeNames[c.TypeID] = name
		}
	}
	return e.describe(ctx, m.RelationID, m.Namespace, m.Name, m.ReplicaIdentity, cols, typeNames)
}

// seenState is what seeTransaction knows: the last snapshot it read, the
// transaction it last found visible, and whether walmirror's own session
// is a synchronous standby of the source (then it does not wait).
type seenState struct {
	snap     source.XidSnapshot
	xid      uint32
	syncSelf bool
	logged   time.Time
}

// seeTransaction waits, at a Relation message, until the source's catalog
// reads see the transaction being received. What the engine makes of the
// message reads the catalog as it is now (the table's columns, its name,
// its partitions and publication membership, its data files), and that
// must be at least as new as the message. The stream delivers a commit
// once it is in the WAL; other sessions see it a moment later, when the
// committing backend leaves the proc array, or only once a synchronous
// standby answered. Read before that, a partition attached in the
// transaction looked not yet attached: its rows, behind an online copy's
// progress, were changed in the same transaction with no row in the copy
// to change (a divergence). A session that is itself a synchronous standby
// would wait for ever (the commit waits for walmirror to confirm it): it
// says so once and reads the catalog as it is.
func (e *engine) seeTransaction(ctx context.Context) error {
	sn, ok := e.catalog.(snapshotter)
	if !ok || !e.inTx || e.xid == 0 || e.seen.xid == e.xid || e.seen.syncSelf {
		return nil
	}
	if e.seen.snap.Xmax != 0 && e.seen.snap.Sees(e.xid) {
		e.seen.xid = e.xid // ended before the last snapshot read
		return nil
	}
	start, checked := time.Now(), false
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		snap, err := sn.Snapshot(ctx)
		if err != nil {
			return fmt.Errorf("wait for source transaction %d to show: %w", e.xid, err)
		}
		e.seen.snap = snap
		if snap.Sees(e.xid) {
			e.seen.xid = e.xid
			return nil
		}
		now := time.Now()
		if !checked && now.Sub(start) >= time.Second {
			checked = true
			self, err := sn.SlotSyncStandby(ctx)
			if err != nil {
				return fmt.Errorf("wait for source transaction %d to show: %w", e.xid, err)
			}
			if self {
				e.seen.syncSelf = true
				e.log.Warn("walmirror's replication session is a synchronous standby of the source (synchronous_standby_names): a transaction's commit waits for walmirror, so walmirror cannot wait to see it, and reads the source catalog as it is; "+
					"what it reads of a table's columns and partitions may then be older than the stream, so a table may be copied again (with --stop-on-divergence, a partition attached and changed in one transaction stops the run). Leave walmirror out of synchronous_standby_names",
					"xid", e.xid)
				return nil
			}
		}
		if now.Sub(start) >= 5*time.Second && now.Sub(e.seen.logged) >= time.Minute {
			e.seen.logged = now
			e.log.Warn("waiting for a source transaction the stream delivered to show to other sessions before reading the source catalog (its commit waits for a synchronous standby? see synchronous_standby_names)",
				"xid", e.xid, "waiting", now.Sub(start).Round(time.Second))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// describe takes a table's shape as the source describes it at this point
// of the stream: a Relation message, or an online copy's snapshot at its
// watermark (shapeWatermark).
func (e *engine) describe(ctx context.Context, relid uint32, nsp, name string, ident byte, cols []schema.Column, typeNames map[uint32]string) error {
	if e.inTx {
		e.describedAt[relid], e.describedXid[relid] = e.txEnd, e.xid
	} else {
		e.describedAt[relid] = e.lastEnd
		delete(e.describedXid, relid)
	}
	old, known := e.tables[relid]
	if known && (old.Schema != nsp || old.Name != name) {
		if n, ok := e.catalog.(relNamer); ok {
			// pgoutput names a partitioned table (publish_via_partition_root)
			// as its partitions' cached entries last did: after the table is
			// renamed, a message can carry the old name. Renames of such a
			// table are taken from the catalog (here, and by the publication
			// poll, checkStorage), never from an older name.
			cnsp, cname, partitioned, err := n.RelName(ctx, relid)
			if err != nil {
				return fmt.Errorf("look up %s in the source catalog: %w", schema.DisplayName(nsp, name), err)
			}
			if partitioned && (cnsp != nsp || cname != name) {
				nsp, name = old.Schema, old.Name
			}
		}
	}
	t := schema.NewTable(relid, nsp, name, ident, cols)
	t.TypeNames = typeNames
	if known && e.catalog == nil && old.SameShape(t) {
		return nil
	}
	// The catalog is asked even for a message that looks the same: a column
	// dropped and added again under its name, last, looks the same.
	if e.catalog != nil {
		attrs, err := e.catalog.Attributes(ctx, relid)
		if err != nil {
			return fmt.Errorf("look up %s in the source catalog: %w", t.QualifiedName(), err)
		}
		matched := match(t, attrs)
		var knownMax int16
		if known {
			knownMax = old.MaxNum
		}
		if lateDrop(attrs, knownMax) {
			stored, found, err := e.storedShape(ctx, relid)
			if err != nil {
				return err
			}
			if found {
				knownMax = max(knownMax, stored.MaxNum)
			}
			unambiguous(matched, attrs, knownMax)
		}
		cloned := false
		for i, a := range matched {
			// A domain's Type message names its base type; the snapshot,
			// and so the copy's column, names the domain.
			if a != nil && a.TypeName != "" && a.TypeID == cols[i].TypeID && typeNames[a.TypeID] != a.TypeName {
				if !cloned {
					// The caller's map may be another table's (schema.Table
					// is not changed once made).
					typeNames = maps.Clone(typeNames)
					if typeNames == nil {
						typeNames = map[uint32]string{}
					}
					cloned = true
				}
				typeNames[a.TypeID] = a.TypeName
				t.TypeNames = typeNames
			}
		}
		if ident == schema.IdentityFull && len(attrs) > 0 && attrs[0].PartialOld {
			// Old rows of its partitions hold only their own keys
			// (Attribute.PartialOld): as a table without an identity, its
			// updates and deletes are refused as diverged by the sinks and
			// the table copied again, where matched as whole rows they
			// would change nothing.
			ident = schema.IdentityDefault
			cols = slices.Clone(cols)
			for i := range cols {
				cols[i].Key = false // FULL flags every column
			}
			t = schema.NewTable(relid, nsp, name, ident, cols)
			t.TypeNames = typeNames
		}
		if untrustedKey(t, attrs, matched) {
			// Keys that may repeat: keyless, as the copy describes the
			// table (its inserts appended, as the source's).
			cols = slices.Clone(cols)
			for i := range cols {
				cols[i].Key = false
			}
			t = schema.NewTable(relid, nsp, name, ident, cols)
			t.TypeNames = typeNames
		}
		t.Fills, t.Nums = fills(t, matched), nums(matched)
		if t.Identity == schema.IdentityFull && !t.HasKey() {
			t.Lookup = lookup(matched)
		}
		e.warnUnsentKey(t, attrs)
		// Only this message's columns: the catalog may be ahead of the
		// stream (columns added since). ensureShape keeps a higher
		// stored one (the copy's, which saw unpublished columns too).
		for _, n := range t.Nums {
			t.MaxNum = max(t.MaxNum, n)
		}
		for _, a := range attrs {
			if a.Generated && !a.Dropped {
				t.MaxNum = max(t.MaxNum, a.Num) // unpublished: DROP EXPRESSION would make it appear
			}
		}
		if known {
			// Storage is verified by the publication poll only (checkStorage).
			t.Storage = old.Storage
		}
		// A Relation message follows a relcache invalidation, which a
		// rewrite causes: look at storage at the next caught-up moment.
		e.pollSoon = true
		if err := e.checkMembership(ctx, t, old); err != nil {
			return err
		}
		if known && old.SameShape(t) && sameNums(old.Nums, t.Nums) {
			return nil
		}
	}
	if err := e.refill(ctx, t, known); err != nil {
		return err
	}
	if known {
		// Rows buffered so far have the old shape: write them before the
		// target table changes.
		if err := e.flushTable(ctx, relid); err != nil {
			return err
		}
		delete(e.buffers, relid) // the next changes have the new shape
		e.log.Info("source table changed shape", "table", t.QualifiedName(), "columns", len(t.Columns))
	}
	e.tables[relid] = t
	if !e.skipping {
		// The target table takes this shape in this transaction even if
		// the rows that follow net out to nothing (see commit).
		e.reshaped = append(e.reshaped, relid)
	}
	return nil
}

// warnUnsentKey warns, once per table, of a key the stream cannot carry: a
// primary key or identity index with generated columns, which PostgreSQL
// before 18 does not publish (18 refuses such updates unless the
// publication publishes them).
// pgoutput then sends updates and deletes with no old row, which cannot
// name a row: each copies the table again.
func (e *engine) warnUnsentKey(t *schema.Table, attrs []source.Attribute) {
	if t.Identity != schema.IdentityDefault && t.Identity != schema.IdentityIndex || slices.ContainsFunc(t.Columns, func(c schema.Column) bool { return c.Key }) || e.warnedKey[t.ID] {
		return
	}
	var key []string
	for _, a := range attrs {
		if a.Key && a.Generated && !a.Dropped {
			key = append(key, a.Name)
		}
	}
	if len(key) == 0 {
		return
	}
	if e.warnedKey == nil {
		e.warnedKey = map[uint32]bool{}
	}
	e.warnedKey[t.ID] = true
	e.log.Warn("the table's key includes generated columns the publication does not publish (PostgreSQL before 18 publishes none): "+
		"before 18 its updates and deletes cannot name their rows, so each copies the table again online (run ALTER TABLE ... REPLICA IDENTITY FULL on the source table); "+
		"PostgreSQL 18 refuses them on the source until the publication publishes the columns (ALTER PUBLICATION ... SET (publish_generated_columns = stored), or name them in its column list)",
		"table", t.QualifiedName(), "key", key)
}

// refill starts the online copy of a table again when its shape changes
// while it is copied (held changes have the old shape), and copies a table
// again when the source rewrote it: what older rows hold in a column is
// then not in the stream (a volatile default, ALTER COLUMN ... TYPE ...
// USING), but a copy reads it.
func (e *engine) refill(ctx context.Context, t *schema.Table, changed bool) error {
	if e.copier == nil || e.skipping {
		return nil
	}
	t.Recopying = false
	if f := e.fills[t.ID]; f != nil {
		if !changed && f.copy.After != nil {
			// A copy resumed in this run: its chunks so far were written in
			// the shape the target stored, which the source may have left.
			old, found, err := e.storedShape(ctx, t.ID)
			if err != nil {
				return err
			}
			if found {
				if change, _, err := schema.Diff(old, t); err != nil || !change.Empty() {
					changed = true
				}
			}
		}
		if changed {
			e.startFill(t.ID, f.copy.Table, f.copy.Estimate, "the table changed shape while it was copied")
			e.unknownFills(t)
			// Its rows are replaced by the copy's first chunk: the target
			// may take this shape however its rows would convert.
			t.Replacing = true
		} else if f.copy.Keys == nil && f.copy.After == nil {
			// A whole-table copy not begun (a table whose published
			// columns grew: PostgreSQL 18's publish_generated_columns, a
			// wider column list): its first chunk replaces every row, so
			// what older rows hold in a column the target gains is moot.
			// Before, such a column stopped every run ("has a default and
			// PostgreSQL stored no value"). So is a column the copy lost
			// (schema.Table.LostColumn).
			e.unknownFills(t)
			t.Recopying = true
			// So is how the stored shape's columns map to this one: a
			// copy begun for columns the stream cannot follow (a column
			// dropped and added again while walmirror was behind) stopped
			// every later start there, before its first chunk (fuzzing).
			old, found, err := e.storedShape(ctx, t.ID)
			if err != nil {
				return err
			}
			if found {
				if _, _, err := schema.Diff(old, t); err != nil {
					t.Replacing = true
				}
			}
		}
		return nil
	}
	why, err := e.unfollowable(ctx, t)
	if err != nil {
		return err
	}
	// Its rows are replaced by the copy: the target takes the new shape
	// however the old one's columns map to it.
	replace := why != ""
	if why == "" {
		if why, err = e.rewritten(ctx, t); err != nil {
			return err
		}
	}
	// A column retyped by a rewrite, or in a way the target cannot convert
	// exactly: the copy replaces the rows, so the target need not convert
	// them. Also when a column added with values the stream does not carry
	// is why the table is copied (helper-105: ADD COLUMN ... DEFAULT
	// gen_random_uuid(), then ALTER COLUMN ... TYPE jsonb USING, stopped
	// every SQLite run at the conversion it cannot make).
	rewrote, err := e.retyped(ctx, t)
	if err != nil {
		return err
	}
	if rewrote != "" {
		// The copy's first chunk stores the storage it read; the poll
		// compares with that from then on, not with the one before the
		// rewrite (which would copy the table once more).
		delete(e.storage, t.ID)
	}
	inconvertible := ""
	if rewrote == "" {
		if inconvertible, err = e.inconvertible(ctx, t); err != nil {
			return err
		}
	}
	replace = replace || rewrote != "" || inconvertible != ""
	if why == "" {
		why = cmp.Or(rewrote, inconvertible)
	}
	if why == "" {
		return nil
	}
	e.startFill(t.ID, schema.DisplayName(t.Schema, t.Name), -1, why)
	// A key that takes a column whose older rows' values are unknown (a
	// surrogate key added with an identity or a sequence) cannot be
	// declared over those rows (NULLs, as unknownFills leaves them): the
	// copy replaces them, so the target may drop them first.
	for _, k := range t.KeyIndexes() {
		replace = replace || t.Fills[t.Columns[k].Name].Unknown != ""
	}
	e.unknownFills(t)
	// The first chunk replaces every row: the target need not convert
	// them as the source's USING did (SQLite cannot convert some at all).
	t.Replacing = t.Replacing || replace
	return nil
}

// retyped says why t must be copied again now ("" when not): a column
// changed type (or typmod) and the source rewrote the table, so older rows
// hold what its USING made of them, which the stream does not carry.
// The publication poll would copy the table again too (checkStorage), but
// only at the next caught-up moment, after the changes that follow this
// description were applied to rows converted the target's way.
func (e *engine) retyped(ctx context.Context, t *schema.Table) (string, error) {
	sr, ok := e.copier.(storageReader)
	if !ok || len(t.Nums) != len(t.Columns) {
		return "", nil
	}
	prev := e.storage[t.ID]
	var was []schema.StoredColumn
	if old := e.tables[t.ID]; old != nil && len(old.Nums) == len(old.Columns) {
		was = schema.StoredOf(old, old.Nums).Columns
		if prev == "" {
			prev = old.Storage
		}
	}
	if was == nil || prev == "" {
		stored, found, err := e.storedShape(ctx, t.ID)
		if err != nil || !found {
			return "", err
		}
		if was == nil {
			was = stored.Columns
		}
		if prev == "" {
			prev = stored.Storage
		}
	}
	// Columns are matched by attnum, or by name where either attnum is not
	// known (the catalog, read later than the stream's position, may
	// already hold another type).
	changed := ""
	for _, c := range was {
		for i, n := range t.Nums {
			same := c.Num != 0 && n == c.Num || (c.Num == 0 || n == 0) && c.Name == t.Columns[i].Name
			if same && (t.Columns[i].TypeID != c.TypeID || t.Columns[i].Typmod != c.Typmod) {
				changed = t.Columns[i].Name
			}
		}
	}
	if changed == "" || prev == "" {
		return "", nil
	}
	sig, err := sr.Storage(ctx, t.ID)
	if err != nil {
		return "", fmt.Errorf("look up %s in the source catalog: %w", t.QualifiedName(), err)
	}
	if sig == "" || dataFiles(sig) == dataFiles(prev) {
		return "", nil
	}
	return fmt.Sprintf("the source rewrote it changing the type of column %q: older rows hold what the conversion (its USING, or the type's own cast) made of them, which the stream does not carry", changed), nil
}

// retypeChecker is a sink that cannot convert every column type change
// in place exactly: for one it cannot, the engine copies the table again
// online, its rows replaced (Table.Replacing) rather than converted.
type retypeChecker interface {
	CanRetype(t *schema.Table, from, to schema.Column) bool
}

// inconvertible says why t must be copied again now ("" when not): a
// column changed type in a way the sink cannot convert its stored values
// exactly (SQLite: varchar to an enum, an int to text).
func (e *engine) inconvertible(ctx context.Context, t *schema.Table) (string, error) {
	rc, ok := e.sink.(retypeChecker)
	if !ok {
		return "", nil
	}
	var was []schema.StoredColumn
	if old := e.tables[t.ID]; old != nil && len(old.Nums) == len(old.Columns) {
		was = schema.StoredOf(old, old.Nums).Columns
	} else {
		stored, found, err := e.storedShape(ctx, t.ID)
		if err != nil || !found {
			return "", err
		}
		was = stored.Columns
	}
	for i, c := range t.Columns {
		n := int16(0)
		if i < len(t.Nums) {
			n = t.Nums[i]
		}
		for _, w := range was {
			if !(w.Num != 0 && n == w.Num || (w.Num == 0 || n == 0) && w.Name == c.Name) {
				continue
			}
			if w.TypeID != c.TypeID || w.Typmod != c.Typmod {
				from := schema.Column{Name: w.Name, TypeID: w.TypeID, Typmod: w.Typmod}
				if !rc.CanRetype(t, from, c) {
					return fmt.Sprintf("column %q changed type in a way the target cannot convert its values exactly", c.Name), nil
				}
			}
		}
	}
	return "", nil
}

// unfollowable says why t's columns cannot be matched with the copy's
// ("" when they can): names swapped or chained between columns in one step
// (RENAME a TO tmp, b TO a, tmp TO b), or a column dropped and added again
// under its name while walmirror was behind, where the message's column
// order does not tell which one this point of the stream has. Every run
// stopped there; copying the table again online needs no matching (its
// rows are replaced).
func (e *engine) unfollowable(ctx context.Context, t *schema.Table) (string, error) {
	if e.copier == nil {
		return "", nil // the sink says what is wrong when it applies the shape
	}
	// The stored shape, as ensureShape compares it: the one the engine
	// holds may carry attnums of a catalog ahead of its message.
	old, found, err := e.storedShape(ctx, t.ID)
	if err != nil || !found {
		return "", err // a table new to the target is copied whole anyway
	}
	if _, _, err := schema.Diff(old, t); err != nil {
		return fmt.Sprintf("its columns changed in a way the stream cannot follow column by column (%v): the copy replaces its rows", err), nil
	}
	return "", nil
}

// rewritten says why the target's rows of t may differ from the source's
// without the stream showing it ("" when they cannot): the target must gain
// a column (new, or dropped and added again) whose value in older rows
// cannot be known from the stream. (Rewrites are found by checkStorage.)
func (e *engine) rewritten(ctx context.Context, t *schema.Table) (string, error) {
	need := false
	for _, f := range t.Fills {
		need = need || f.Unknown != "" || f.Value.State == schema.Null
	}
	if !need {
		return "", nil
	}
	old, found, err := e.storedShape(ctx, t.ID)
	if err != nil || !found {
		return "", err // a table new to the target is copied whole anyway
	}
	change, nums, err := schema.Diff(old, t)
	if err != nil {
		return "", nil // the sink says what is wrong when it applies the shape
	}
	for _, name := range change.Replaced() {
		if t.Fills[name].Unknown != "" {
			return fmt.Sprintf("what older rows hold in column %q is not in the stream: %s", name, t.Fills[name].Unknown), nil
		}
	}
	for _, name := range change.Added {
		i := slices.IndexFunc(t.Columns, func(c schema.Column) bool { return c.Name == name })
		if i >= 0 && nums[i] != 0 && nums[i] <= old.MaxNum && t.Fills[name].Value.State == schema.Null {
			return fmt.Sprintf("column %q existed before without being published (a generated column whose expression was dropped?): what older rows hold in it is not in the stream", name), nil
		}
	}
	return "", nil
}

// errUndescribed ends a session whose server sent a change to a table it
// had not described, to start the next one before that change's
// transaction.
var errUndescribed = errors.New("the source sent a change to a table it had not described in this session: reconnecting")

// undescribed handles a change to relation relID before any Relation
// message for it. PostgreSQL 14's pgoutput does so after a publication's
// publish_via_partition_root changed: a partition whose own shape it sent
// before keeps that mark when its changes go out as its root's (fixed in
// 15), so the root is never described in that session, and every run
// replaying the same stretch stopped there (helper-93). A new session
// describes every table afresh: when this change is its transaction's
// first, what came before is stored and the session ends, to start again
// just before the transaction (once per transaction: again is an error).
func (e *engine) undescribed(ctx context.Context, relID uint32) error {
	err := fmt.Errorf("change for relation %d before its Relation message (protocol violation)", relID)
	if !e.inTx || e.changesSeen() != e.txChanges || e.inflight != nil || e.txEnd == e.undescribedAt {
		return err
	}
	e.log.Warn("the source sent a change to a table it had not described in this session (PostgreSQL 14 does after publish_via_partition_root changes); reconnecting before its transaction",
		"relation", relID, "transaction_end", e.txEnd)
	if err := e.storeBeforeReconnect(ctx); err != nil {
		return err
	}
	e.undescribedAt = e.txEnd
	return errUndescribed
}

// storeBeforeReconnect commits the open target transaction, or one that
// stores the position alone (lastEnd), and waits for it: the next session
// starts from there.
func (e *engine) storeBeforeReconnect(ctx context.Context) error {
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	if err := e.commit(ctx); err != nil {
		return err
	}
	return e.sync(ctx, func(context.Context) error { return nil })
}

// unknownFills lets a table being copied again take a new shape: its rows
// are replaced by the copy's, so what older rows hold meanwhile is moot.
func (e *engine) unknownFills(t *schema.Table) {
	for name, f := range t.Fills {
		if f.Unknown != "" {
			t.Fills[name] = schema.Fill{Value: schema.Datum{State: schema.Null}}
		}
	}
}

func (e *engine) change(ctx context.Context, relID uint32, c schema.RowChange) error {
	if e.skipping {
		return nil
	}
	t, ok := e.tables[relID]
	if !ok {
		return e.undescribed(ctx, relID)
	}
	if x, ok := e.truncXids[relID]; ok && x.top == e.xid {
		// A row change after the TRUNCATE in its transaction: a rewrite
		// later in that transaction (ALTER ... USING) would change such
		// rows without WAL, and its data files would look like the
		// TRUNCATE's. The poll copies the table again instead.
		delete(e.truncXids, relID)
		t.TruncXid = schema.NoTruncXid
		delete(e.ensured, t)
	}
	for _, tup := range [2]schema.Tuple{c.Old, c.New} {
		if tup != nil && len(tup) != len(t.Columns) {
			return fmt.Errorf("%s on %s carries %d columns, its Relation message %d (protocol violation)",
				c.Op, t.QualifiedName(), len(tup), len(t.Columns))
		}
	}
	if err := e.trackWrite(ctx, t, c); err != nil {
		return err
	}
	if c.Op == schema.Insert && c.New.HasUnchanged() {
		if err := e.unsentInsert(ctx, t, c); err != nil {
			return err
		}
	}
	if v, ok := e.copiedCache[relID]; (!ok || !v) && e.copier != nil {
		held, err := e.routeFill(ctx, t, c)
		if held {
			e.heldRows++
		}
		if err != nil || held {
			return err
		}
	}
	return e.buffer(ctx, relID, t, c)
}

// changesSeen counts the row changes and TRUNCATEs the engine has taken,
// applied or left to an online copy: a transaction with none is empty
// (PostgreSQL 14 sends those) and not counted.
func (e *engine) changesSeen() int64 { return e.stats.Rows + e.stats.Truncates + e.heldRows }

// unsentInsert handles an INSERT that left TOASTed values unsent: pgoutput
// sends one for an UPDATE that moves a row into the publication's row filter
// (PostgreSQL 15+), whose unchanged out-of-line values it cannot send
// without an old row (REPLICA IDENTITY FULL). The copy has no row to take
// them from: the row is copied again online from the source (its key's
// row, or the whole table when the key itself went unsent), and the change
// waits for that copy like any change to rows being copied.
func (e *engine) unsentInsert(ctx context.Context, t *schema.Table, c schema.RowChange) error {
	name := schema.DisplayName(t.Schema, t.Name)
	why := "an UPDATE moved a row into the publication's row filter, and PostgreSQL sent it without its unchanged TOASTed values"
	if e.copier == nil {
		return fmt.Errorf("%s: %s; copy the table again (walmirror resync --table %s)", t.QualifiedName(), why, name)
	}
	f := e.fills[t.ID]
	if f == nil {
		have, err := e.copied(ctx, t.ID)
		if err != nil || !have {
			return err // not held yet: routeFill copies the whole table
		}
	}
	var key []string
	for _, k := range t.KeyIndexes() {
		if d := c.New[k]; d.State == schema.Text {
			key = append(key, string(d.Data))
		} else {
			key = nil
			break
		}
	}
	if f != nil && f.copy.Keys == nil {
		inflight := e.inflight != nil && e.inflight.relid == t.ID
		if f.copy.After == nil && !inflight {
			return nil // no chunk read yet: the first one reads the row
		}
		if f.copy.After != nil && !inflight {
			if !f.ordered {
				f.order, f.ordered = orderOf(t, f.copy.TextBytes), true
			}
			if key != nil && f.order.ok && f.order.beyond(c.New, f.copy.After) {
				return nil // a row the copy has not reached: a chunk reads it
			}
		}
		// Rows up to After are copied and take changes, and a chunk in
		// flight whose snapshot predates this change would hold it: this
		// row may be among either. Start the copy over (it holds the
		// change; a chunk reads the row), dropping the chunk in flight.
		e.startFill(t.ID, name, f.copy.Estimate, why)
		return nil
	}
	if key == nil || f != nil && len(f.copy.Keys) >= maxUnsentKeys {
		// Many rows moved at once (UPDATE docs SET published = true):
		// each key added restarts the keyed copy, so past a few the
		// whole table is cheaper.
		e.startFill(t.ID, name, -1, why)
		return nil
	}
	e.startKeysFill(t.ID, name, [][]string{key}, why)
	return nil
}

// maxUnsentKeys is how many rows moved into a row filter with unsent
// values are copied again by key before the whole table is copied instead.
const maxUnsentKeys = 1000

// routeFill decides about a change to a table the target does not hold
// completely: true when it is held for an online copy.
func (e *engine) routeFill(ctx context.Context, t *schema.Table, c schema.RowChange) (bool, error) {
	f := e.fills[t.ID]
	if f == nil {
		have, err := e.copied(ctx, t.ID)
		if err != nil || have {
			return false, err
		}
		e.startFill(t.ID, schema.DisplayName(t.Schema, t.Name), -1, "first change to a table the copy does not hold")
		f = e.fills[t.ID]
	}
	return e.route(ctx, f, t, c)
}

// buffer adds a change to the open target transaction's buffers.
func (e *engine) buffer(ctx context.Context, relID uint32, t *schema.Table, c schema.RowChange) error {
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	buf := e.buffers[relID]
	if buf == nil {
		buf = newTableBuffer(t)
		e.buffers[relID] = buf
	}
	if buf.n == 0 {
		e.order = append(e.order, relID)
	}
	buf.add(c)
	if e.track {
		e.changes.add(t, c)
	}
	e.stats.Rows++
	switch c.Op {
	case schema.Insert:
		e.stats.Inserts++
	case schema.Update:
		e.stats.Updates++
	case schema.Delete:
		e.stats.Deletes++
	}
	e.pendingN++
	e.chunkN++
	size := c.Old.Size() + c.New.Size()
	e.chunkSize += size
	e.pendingSize += size
	if e.chunkN >= e.limits.ChunkRows || e.chunkSize >= e.limits.ChunkBytes {
		if err := e.flush(ctx); err != nil {
			return err
		}
		faultpoint.Hit("apply.chunk-written")
	}
	return nil
}

// truncXid is a streamed TRUNCATE's transaction: top for telling later
// changes of the same transaction, row for the xmin of the pg_class row it
// wrote (checkStorage). In a subtransaction those differ; the stream names
// the subtransaction only for a transaction it sent in progress (m.Xid),
// otherwise a TRUNCATE under a savepoint looks like a rewrite and the table
// is copied again.
type truncXid struct{ top, row uint32 }

func (e *engine) truncate(ctx context.Context, m *pgoutput.Truncate) error {
	if e.skipping {
		return nil
	}
	x := truncXid{top: e.xid, row: e.xid}
	if m.Xid != 0 {
		x.row = m.Xid
	}
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	if err := e.flush(ctx); err != nil {
		return err
	}
	tables := make([]*schema.Table, 0, len(m.RelationIDs))
	for _, id := range m.RelationIDs {
		t, ok := e.tables[id]
		if !ok {
			return fmt.Errorf("truncate of relation %d before its Relation message (protocol violation)", id)
		}
		if v, ok := e.copiedCache[id]; (!ok || !v) && e.copier != nil {
			f := e.fills[id]
			started := false
			if f == nil {
				have, err := e.copied(ctx, id)
				if err != nil {
					return err
				}
				if !have {
					e.startFill(id, schema.DisplayName(t.Schema, t.Name), -1, "first change to a table the copy does not hold")
					f, started = e.fills[id], true
				}
			}
			if f != nil {
				// The copy starts again from the empty table; its first
				// chunk must see this TRUNCATE. (One just started for
				// it is that copy: started twice, it was logged twice.)
				if !started {
					e.startFill(id, f.copy.Table, f.copy.Estimate, f.copy.Reason)
				}
				e.fills[id].truncXid = e.xid
				e.fillsChanged = true // stored with the copy (MustSee)
				continue
			}
		}
		if t.TruncXid != x.row {
			// Stored with the shape in this transaction: a later poll,
			// in this run or another, tells the table's new data files
			// from a rewrite by it (checkStorage).
			t.TruncXid = x.row
			delete(e.ensured, t)
		}
		if err := e.ensure(ctx, t); err != nil {
			return err
		}
		tables = append(tables, t)
	}
	e.stats.Truncates++
	for _, t := range tables {
		e.truncXids[t.ID] = x
		if e.track {
			e.changes.all(t)
		}
	}
	if len(tables) == 0 {
		return nil
	}
	e.pendingN++
	return e.call(ctx, func(ctx context.Context) error { return e.sink.Truncate(ctx, tables) })
}

func (e *engine) ensureOpen(ctx context.Context) error {
	if e.open {
		return nil
	}
	err := e.call(ctx, func(ctx context.Context) error {
		if err := e.sink.Begin(ctx); err != nil {
			return fmt.Errorf("begin target transaction: %w", err)
		}
		e.sinkOpen = true
		return nil
	})
	if err != nil {
		return err
	}
	e.open, e.openedAt = true, time.Now()
	return nil
}

func (e *engine) ensure(ctx context.Context, t *schema.Table) error {
	if e.ensured[t] {
		return nil
	}
	if err := e.makeRoom(ctx, t); err != nil {
		return fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
	}
	err := e.shapeCall(ctx, t, func(ctx context.Context) error {
		if err := ensureShape(ctx, e.sink, t); err != nil {
			return fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.ensured[t] = true
	return nil
}

// shapeCall runs fn, which brings t's target table in line with its shape
// (ensureShape sets t.Change), as call does. When commits report their
// changes, it runs at once (after the calls queued before it), and a
// change that rewrote the copy's rows (a column added, renamed, retyped or
// re-added, the table renamed) reports every row of t as changed: a cache
// that went by the rows' keys alone kept stale rows (helper-82: ADD COLUMN
// ... DEFAULT reported one key while every row gained the column).
func (e *engine) shapeCall(ctx context.Context, t *schema.Table, fn func(context.Context) error) error {
	if !e.track {
		return e.call(ctx, fn)
	}
	if err := e.sync(ctx, fn); err != nil {
		return err
	}
	if !t.Change.Empty() {
		e.changes.all(t)
	}
	return nil
}

// tableMover is a sink that renames one of its tables, keeping it
// walmirror's.
type tableMover interface {
	// MoveTable renames the target table source table schemaName.from maps
	// to, so that schemaName.to maps to it.
	MoveTable(ctx context.Context, schemaName, from, to string) error
}

// makeRoom moves aside the copy of another table that holds the name t was
// renamed to, when the copy still knows that table under it: two tables
// that swapped names (ALTER TABLE items RENAME TO items_old; ALTER TABLE
// items_new RENAME TO items, the way online schema change tools swap in a
// rebuilt table), of which t's rename is seen first. The other table's copy
// moves to a name of its own, which its stored shape then names, and
// follows its own rename when the stream or the publication poll shows it.
// Before, every run stopped: "relation items already exists".
func (e *engine) makeRoom(ctx context.Context, t *schema.Table) error {
	ss, ok := e.sink.(shapeStore)
	sl, ok2 := e.sink.(shapeLister)
	if !ok || !ok2 {
		return nil
	}
	mv, canMove := e.sink.(tableMover)
	for {
		holder, held, fresh, err := e.nameHolder(ctx, ss, sl, t)
		if err != nil || holder == 0 {
			return err
		}
		if fresh {
			// t is new to the copy and takes a name another table's copy
			// still has: that table was dropped (t's copy takes its place,
			// as the source's did) or renamed away in a commit the stream
			// has not shown yet (a swap: CREATE TABLE a_new ...; ALTER
			// TABLE a RENAME TO a_old; ALTER TABLE a_new RENAME TO a, with
			// no row of a changed since). The catalog tells. Before, the
			// new table's copy took over the old one's target table, its
			// rows replaced, and the old table's rename then made an
			// empty one: its rows were lost, exit 0 (helper-120).
			moved, err := e.renamedAway(ctx, holder, held)
			if err != nil || !moved {
				return err
			}
		}
		if buf := e.buffers[holder]; buf != nil && buf.n > 0 {
			// The holder's buffered changes were decoded under its old
			// name: they go to its table first. Writing them may rename
			// tables (its own rename, its own holder's move): look again.
			if err := e.flushTable(ctx, holder); err != nil {
				return err
			}
			continue
		}
		if !canMove {
			// Writing on would mix the two tables' rows in one copy
			// (helper-82: a sink of one's own merged them silently).
			return fmt.Errorf("source table %s took the name of another published table whose copy still has it (two tables swapped names?), and sink %T cannot move that copy aside: "+
				"give the sink a MoveTable(ctx, schema, from, to string) error method (see apply.Sink), or copy afresh (Config.Resync, walmirror run --resync)",
				t.QualifiedName(), e.sink)
		}
		return e.moveAside(ctx, ss, mv, t, holder, held)
	}
}

// nameHolder returns the table, other than t, whose stored shape has the
// name t was renamed to, or that t, new to the copy (fresh), has (0 when t
// was not renamed or none has it).
func (e *engine) nameHolder(ctx context.Context, ss shapeStore, sl shapeLister, t *schema.Table) (holder uint32, held schema.Stored, fresh bool, err error) {
	err = e.sync(ctx, func(ctx context.Context) error {
		text, found, err := ss.Shape(ctx, t.ID)
		if err != nil {
			return err
		}
		fresh = !found
		if found {
			own, err := schema.DecodeStored(text)
			if err != nil {
				return err
			}
			if strings.EqualFold(own.Schema, t.Schema) && strings.EqualFold(own.Name, t.Name) {
				return nil // not renamed (or in letter case only)
			}
		}
		ids, err := sl.ShapeIDs(ctx)
		if err != nil {
			return err
		}
		// A table new to the copy looks for its own name, letter case
		// and all: it is looked for at each table's first description,
		// so shapes that do not hold the name are passed over undecoded.
		var exact string
		if fresh {
			b, _ := json.Marshal(t.Name) // a string: cannot fail
			exact = string(b)
		}
		for _, id := range ids {
			if id == t.ID {
				continue
			}
			text, found, err := ss.Shape(ctx, id)
			if err != nil || !found {
				return err
			}
			if fresh && !strings.Contains(text, exact) {
				continue
			}
			other, err := schema.DecodeStored(text)
			if err != nil {
				return err
			}
			if strings.EqualFold(other.Schema, t.Schema) && strings.EqualFold(other.Name, t.Name) {
				holder, held = id, other
				return nil
			}
		}
		return nil
	})
	return holder, held, fresh, err
}

// renamedAway says whether holder, whose copy has the name held, still
// exists on the source under another name (its rename not yet streamed).
func (e *engine) renamedAway(ctx context.Context, holder uint32, held schema.Stored) (bool, error) {
	n, ok := e.catalog.(relNamer)
	if !ok {
		return false, nil
	}
	nsp, name, _, err := n.RelName(ctx, holder)
	if err != nil {
		return false, fmt.Errorf("look up the table whose copy has the name %s in the source catalog: %w", schema.DisplayName(held.Schema, held.Name), err)
	}
	return nsp != "" && !(strings.EqualFold(nsp, held.Schema) && strings.EqualFold(name, held.Name)), nil
}

// moveAside moves holder's copy, which has the name t was renamed to, to a
// name of its own, and stores its shape under that name.
func (e *engine) moveAside(ctx context.Context, ss shapeStore, mv tableMover, t *schema.Table, holder uint32, held schema.Stored) error {
	suffix := fmt.Sprintf("_walmirror_%d", holder)
	base := held.Name
	for len(base)+len(suffix) > 63 { // PostgreSQL's identifier length
		_, size := utf8.DecodeLastRuneInString(base)
		base = base[:len(base)-size]
	}
	from, to := held.Name, base+suffix
	held.Name = to
	err := e.call(ctx, func(ctx context.Context) error {
		if err := mv.MoveTable(ctx, held.Schema, from, to); err != nil {
			return fmt.Errorf("move the copy of the table that had the name %s before it aside: %w", schema.DisplayName(held.Schema, from), err)
		}
		return ss.SetShape(ctx, &schema.Table{ID: holder, Schema: held.Schema, Name: to}, held.Encode())
	})
	if err != nil {
		return err
	}
	if ht := e.tables[holder]; ht != nil {
		delete(e.ensured, ht)
	}
	e.log.Info("a renamed table takes the name another table's copy had: that copy moves aside until its own rename is seen",
		"table", schema.DisplayName(t.Schema, t.Name), "moved", schema.DisplayName(held.Schema, from), "to", schema.DisplayName(held.Schema, to))
	return nil
}

// flush writes every buffered change to the open target transaction.
func (e *engine) flush(ctx context.Context) error {
	for _, id := range e.order {
		if err := e.flushTable(ctx, id); err != nil {
			return err
		}
	}
	e.order = e.order[:0]
	e.chunkN, e.chunkSize = 0, 0
	return nil
}

func (e *engine) flushTable(ctx context.Context, relID uint32) error {
	buf := e.buffers[relID]
	if buf == nil || buf.n == 0 {
		return nil
	}
	for _, b := range buf.take() {
		if err := e.ensure(ctx, b.Table); err != nil {
			return err
		}
		err := e.call(ctx, func(ctx context.Context) error {
			if err := e.sink.Write(ctx, b); err != nil {
				return fmt.Errorf("write %d changes to %s: %w", b.Len(), b.Table.QualifiedName(), err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// commit writes what is buffered and commits it with the position it reaches.
func (e *engine) commit(ctx context.Context) error {
	if err := e.flush(ctx); err != nil {
		return err
	}
	for i, id := range e.reshaped {
		if slices.Contains(e.reshaped[:i], id) {
			continue // one Relation message after another for the same table
		}
		if t := e.tables[id]; !e.ensured[t] {
			// Its name may have been given to another table's copy since
			// its Relation message (a table changed, dropped, and another
			// renamed to its name, in one transaction): the copies take
			// their names in the order the stream named them, so the last
			// one ends with it, as in the source.
			if err := e.makeRoom(ctx, t); err != nil {
				return fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
			}
			if err := e.shapeCall(ctx, t, func(ctx context.Context) error { return reshape(ctx, e.sink, t) }); err != nil {
				return fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
			}
		}
	}
	e.reshaped = e.reshaped[:0]
	st := e.state
	st.LSN = e.lastEnd
	st.Phase = schema.PhaseStreaming
	st.SlotGuard = st.SlotGuard || st.LSN >= e.guardFrom
	positionOnly := e.positionOnly
	e.positionOnly = false
	ready := false
	if e.fillsChanged {
		ready = len(st.Copies) > 0
		st.Copies = e.fillsState()
		ready = ready && len(st.Copies) == 0
		e.fillsChanged = false
	}
	if e.readyOwed && len(st.Copies) == 0 {
		ready, e.readyOwed = true, false
	}
	var changes []TableChange
	if e.track {
		changes = e.changes.take()
	}
	e.open = false
	e.state = st
	e.passedAt = time.Now()
	e.pendingN, e.pendingSize = 0, 0
	if !positionOnly {
		e.stats.Commits++
	}
	stats := e.stats
	onCommit := e.onCommit
	if positionOnly {
		onCommit = nil
	}
	var srcCommits []time.Time
	if onCommit != nil {
		srcCommits = append(srcCommits, e.srcCommits...) // the engine reuses its slice meanwhile
		e.srcCommits = e.srcCommits[:0]
	}
	return e.call(ctx, func(ctx context.Context) error {
		faultpoint.Hit("apply.before-commit")
		began := time.Now()
		var err error
		if pc, ok := e.sink.(positionCommitter); ok && positionOnly {
			err = pc.CommitPosition(ctx, st)
		} else {
			err = e.sink.Commit(ctx, st)
		}
		e.sinkOpen = false // a failed commit leaves nothing open either
		if err != nil {
			return fmt.Errorf("commit target transaction: %w", err)
		}
		faultpoint.Hit("apply.after-commit")
		e.committed = true
		if onCommit != nil {
			at := time.Now()
			onCommit(CommitInfo{State: st, Stats: stats, At: at, SourceCommits: srcCommits, Duration: at.Sub(began), Changes: changes})
		}
		if e.onStored != nil {
			e.onStored(st)
		}
		if ready && e.onReady != nil {
			e.onReady(st)
		}
		e.log.Debug("committed", "lsn", st.LSN)
		// Only now, after the commit returned, may the source hear of it.
		e.conf.Confirm(st.LSN)
		return nil
	})
}

// A commit of a position alone (passed) comes passedEvery after the commit
// before at the earliest, and stores passedBytes of WAL or more: an idle
// publication's slot trails the source's WAL by about that much. A
// PostgreSQL target in the source's own cluster makes WAL with each such
// commit, which the next keepalive passes: a small commit a second while
// idle (helper-80). passedBytes is 0: above it, an idle copy never
// confirmed the source's WAL end, which monitoring and tests wait for.
const (
	passedEvery = time.Second
	passedBytes = 0
)

// passed lets the slot move on to l, a position the stream passed with
// nothing in flight and everything received applied (a keepalive, a
// transaction with nothing for the copy), so an idle publication pins no
// WAL. The copy confirms only positions it stored (schema.State.SlotGuard:
// a slot confirmed further is someone else's), so l is stored first by a
// commit of the state alone, at once with now, else with passedEvery and
// passedBytes behind it (idleWork stores what is owed). A bounded run
// stores no position past its stop (the commit of a transaction with
// nothing for the copy: its end), none past the start of a transaction
// streaming now (floorer), and none while a chunk waits for its watermark
// or a verify holds the copy at a position.
func (e *engine) passed(ctx context.Context, l lsn.LSN, now bool) error {
	if e.stopAt != 0 && l > e.stopAt {
		l = e.stopAt
	}
	floored := false
	if f, ok := e.conf.(floorer); ok {
		if floor := f.Floor(); floor != 0 && l > floor {
			l, floored = floor, true // stored past, a restart would make the source spill that transaction
		}
	}
	if l <= e.state.LSN {
		return e.confirm(ctx, l)
	}
	e.owed = l
	if !now && (time.Since(e.passedAt) < e.passedEvery || l-e.state.LSN < e.passedBytes) || e.inflight != nil || e.pause != nil && e.pause.active() != nil {
		return nil
	}
	e.owed = 0
	seen := e.lastEnd
	if floored {
		// The commit stores l, not the end of the transaction just seen
		// (one with nothing for the copy, which a restart receives again):
		// nothing past l is in flight or committed (l > state.LSN).
		e.lastEnd = l
		defer func() { e.lastEnd = max(e.lastEnd, seen) }()
	} else {
		e.lastEnd = max(e.lastEnd, l)
	}
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	e.positionOnly = len(e.reshaped) == 0 && !e.fillsChanged
	return e.commit(ctx) // and confirms l once committed
}

// position tells the onPosition hook about a keepalive that confirmed
// nothing.
func (e *engine) position(p Position) {
	if e.onPosition != nil {
		e.onPosition(p)
	}
}

// call runs fn against the sink: at once, or after every call queued before
// it when pipelining.
func (e *engine) call(ctx context.Context, fn func(context.Context) error) error {
	if e.pipe == nil {
		return fn(ctx)
	}
	return e.pipe.submit(ctx, fn)
}

// sync runs fn against the sink on the engine's goroutine, after every
// call queued before it: for reads whose answer the engine needs now.
func (e *engine) sync(ctx context.Context, fn func(context.Context) error) error {
	if e.pipe != nil {
		if err := e.pipe.barrier(ctx); err != nil {
			return err
		}
	}
	return fn(ctx)
}

// confirm reports l as applied, behind any commit still queued.
func (e *engine) confirm(ctx context.Context, l lsn.LSN) error {
	if e.pipe == nil {
		e.conf.Confirm(l)
		return nil
	}
	return e.pipe.submit(ctx, func(context.Context) error { e.conf.Confirm(l); return nil })
}

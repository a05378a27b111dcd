// Package duckdb is the DuckDB target: one database file holding a copy of
// the source tables with native DuckDB column types, so analytics need no
// casts, written through a single connection.
//
// # Layout
//
// The file is attached under the catalog name [Catalog] ("walmirror").
// Source schemas and table names are kept (public.t is walmirror.public.t);
// walmirror's own tables are walmirror.main._walmirror_state (one row: slot,
// source system id, phase, position) and walmirror.main._walmirror_migrations.
// DuckDB names ignore letter case: a source schema, table or column that
// differs from an existing one only in case is refused with an error.
//
// Tables have no PRIMARY KEY constraint: DuckDB's ART index makes bulk
// appends several times slower and must be held in memory. The key columns
// are named in the table's comment (SELECT comment FROM duckdb_tables()).
// The sink keeps keys unique itself: rows it is told are new are checked
// against the table (for a table emptied or created in the same
// transaction, such as the initial copy, once per table at commit). A big
// keyed table that gets updates or deletes is given a plain (not unique)
// index on its key, _walmirror_key_<table>, so they stop scanning it (see
// [Sink.KeyIndexRows]).
//
// # Types
//
// Values arrive in PostgreSQL's text form and are parsed in Go; see planFor
// for the mapping. In short: int2/int4/int8 as SMALLINT/INTEGER/BIGINT, oid
// as BIGINT, float4/float8 as FLOAT/DOUBLE (NaN and ±Infinity kept),
// numeric(p,s) as DECIMAL(p,s) up to 38 digits and otherwise (unconstrained,
// wider) as VARCHAR with every digit, text types as VARCHAR (bpchar keeps its
// padding), bool as BOOLEAN, date/time/timetz/timestamp/timestamptz/interval
// as DATE/TIME/TIMETZ/TIMESTAMP/TIMESTAMPTZ/INTERVAL (infinite and BC dates
// and timestamps kept; an interval keeps its months, days and microseconds),
// uuid as UUID, bytea as BLOB, json/jsonb as JSON (the text exactly as the
// source printed it), one-dimensional arrays of these as LISTs, and enums,
// domains and every other type as VARCHAR in PostgreSQL's text form.
//
// A few values have no place in their native column: NaN in a numeric(p,s)
// (DECIMAL has no NaN), arrays with more than one dimension or explicit
// bounds in a LIST column (the column type is chosen from the type OID,
// which does not say how many dimensions values have), timestamps after
// 294247 AD, and JSON text DuckDB's parser refuses. Rather than lose
// them silently, the write fails with an error naming the column; changing
// that target column to VARCHAR (ALTER TABLE ... ALTER COLUMN ... TYPE
// VARCHAR, while walmirror is stopped) makes walmirror store that column's
// values as PostgreSQL text from then on.
//
// # Durability
//
// Each Commit stores the replication position in _walmirror_state and
// commits in one DuckDB transaction. DuckDB writes a committed transaction to
// its write-ahead log (file.wal) and fsyncs it before COMMIT returns (large
// transactions are checkpointed into the file instead, also fsynced): there
// is no setting to enable.
//
// # Memory
//
// Rows are handed to DuckDB in chunks (query appenders, see write.go), so
// the Go side holds one chunk at a time. A transaction that inserts many
// rows into a table has DuckDB write their full row groups straight to the
// file (their keys are checked at commit, see insert), so it does not hold
// them in memory until it commits. DuckDB itself caches table data up
// to its memory_limit (80% of RAM by default), which a long transaction over
// a big table fills; lower it for the whole instance with
// s.DB().Exec("SET memory_limit = '1GB'") (DuckDB then evicts and spills
// beside the file, in path + ".tmp").
//
// # Reading the copy
//
// DuckDB lets one process open a database file for writing, and no other
// process may open it meanwhile, not even to read. Two ways to query a live
// copy:
//
//   - Embed walmirror in the reading program (apply.Run with this sink) and
//     query through [Sink.DB]: its connections see every committed
//     transaction (MVCC; the current schema is the copy's catalog).
//   - Call [Sink.PublishCopy] (for example every few minutes, from the
//     program embedding walmirror) and let other processes open the
//     published file read-only.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/internal/fileperm"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/migrations"
	"github.com/walmirror/walmirror/schema"
)

// openFiles holds the files open in this process: DuckDB's file lock keeps
// other processes out, not a second instance in the same process.
var openFiles sync.Map // absolute path → struct{}

// Sink writes to one DuckDB file.
type Sink struct {
	// Adopt lets EnsureTable take over an existing, empty table walmirror
	// did not create (--adopt-tables); otherwise such a table stops the run.
	Adopt bool
	// DropColumns drops a target column once the source no longer has it
	// (--drop-columns); by default it is kept with its data.
	DropColumns bool
	// SerialSmallWrites runs each write that touches few rows (a statement
	// over a table of at most two row groups, about 250,000 rows) on one
	// DuckDB thread, and others on the threads the instance had when it was
	// opened. There is nothing to split in such a statement, and handing
	// its pipelines between threads costs latency, most when other
	// processes (the source, on a shared machine) keep the cores busy.
	// DuckDB's threads setting is instance-wide, so queries through DB
	// meanwhile get one thread too: the walmirror command sets this (no
	// one else uses its instance); a program that queries the copy in the
	// same process should leave it false.
	SerialSmallWrites bool
	// KeyIndexRows: a keyed table gets an index on its key columns once it
	// holds this many rows and a transaction looked rows of it up by key,
	// so updates and deletes stop scanning it (keyindex.go; --duckdb-index-rows).
	// 0 is DefaultKeyIndexRows; negative, never.
	KeyIndexRows int64

	path string
	abs  string // key in openFiles
	// closed: Close was called; later calls say so, not "connection is
	// already closed" (helper-99).
	closed bool
	db     *sql.DB
	conn   *sql.Conn // every statement and appender runs here
	log    *slog.Logger

	tables map[*schema.Table]*tableInfo
	inTx   bool
	// fresh holds tables created or emptied in the open transaction: rows
	// inserted into them are checked for duplicate keys once, at commit.
	fresh map[string]bool
	// created holds the tables the open transaction created: a value
	// their columns cannot hold has no table to change until it commits.
	created map[string]bool
	// altered holds tables whose committed rows the open transaction
	// updated, deleted or truncated: DuckDB refuses to commit an ALTER TABLE
	// after that, so their shape changes rebuild them instead (rebuild).
	altered map[string]bool
	// verify holds the key checks put off until commit (fresh tables, and
	// tables in a bulk load); written counts the rows inserted and updated
	// per table in the open transaction (bulkRows).
	verify  map[string]*keyCheck
	written map[string]int64
	// keyIndex is what the sink knows of each table's key index;
	// indexWanted the tables the open transaction looked rows up in by
	// key that may need one (keyindex.go).
	keyIndex    map[string]keyIndexState
	indexWanted map[string]*tableInfo

	// stateRow: the state row exists (a commit stored it), so the next
	// commit updates it in place, with stateUpdate (prepared once, not
	// parsed and planned again at every commit).
	stateRow    bool
	stateUpdate *sql.Stmt

	// cat caches the file's tables (catalog.go); shapes the stored
	// shapes by relid, once read (Shape).
	cat    catalog
	shapes map[uint32]string

	cv   converter
	vals []driver.Value // reused appender row

	threads    int64 // the instance's threads setting at Open
	curThreads int64 // as last set (SerialSmallWrites)
	// parallelAt is when a statement last needed the instance's threads;
	// serialSettle unless a test changes it (SerialSmallWrites).
	parallelAt   time.Time
	serialSettle time.Duration

	publishMu sync.Mutex // one PublishCopy at a time
	publishN  int
	published map[string]publication // by path (publishMu)

	// What each publication must copy again (publish.go). commitMu is
	// held across COMMIT and the bookkeeping after it, so a publication
	// that takes it while it starts reading sees exactly the commits seq
	// counts.
	commitMu sync.Mutex
	seq      uint64 // commits so far (commitMu)
	// positionOnly: the commit being made only moves the state (CommitPosition).
	positionOnly bool
	lastWrite    map[tableRef]uint64   // seq of the last commit that wrote each table (commitMu)
	touched      map[tableRef]struct{} // tables the open transaction writes
}

// lockHeld matches DuckDB's error for a file another process holds:
// `Could not set lock on file "f": Conflicting lock is held in /usr/bin/x (PID 42)`.
var lockHeld = regexp.MustCompile(`Conflicting lock is held in (.*) \(PID (\d+)\)`)

// LockHolder reports whether err is DuckDB refusing a file another process
// has open, and names that process ("/usr/local/bin/walmirror, PID 42";
// "another process" when DuckDB does not say).
func LockHolder(err error) (string, bool) {
	if err == nil || !strings.Contains(err.Error(), "Could not set lock on file") {
		return "", false
	}
	if m := lockHeld.FindStringSubmatch(err.Error()); m != nil {
		return m[1] + ", PID " + m[2], true
	}
	return "another process", true
}

// Open opens (creating if needed) the DuckDB file at path and brings
// walmirror's metadata tables up to date.
func Open(ctx context.Context, path string, log *slog.Logger) (*Sink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("open DuckDB target: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open DuckDB target %q: %w", path, err)
	}
	if _, busy := openFiles.LoadOrStore(abs, struct{}{}); busy {
		return nil, fmt.Errorf("open DuckDB target %q: already open in this process (DuckDB allows one writer per file)", path)
	}
	opened := false
	defer func() {
		if !opened {
			openFiles.Delete(abs)
		}
	}()
	// An in-memory instance with the file attached: any path can be
	// spelled as a string literal (a DSN cannot hold '?'), and the copy's
	// catalog has a fixed name. This runs for every new connection (also
	// those DB hands out later, hence no ctx).
	init := func(ex driver.ExecerContext) error {
		for _, q := range []string{
			"ATTACH IF NOT EXISTS " + literal(path) + " AS " + quote(Catalog) + " (TYPE DUCKDB)",
			"USE " + quote(Catalog),
			"SET TimeZone = 'UTC'",
		} {
			if _, err := ex.ExecContext(context.Background(), q, nil); err != nil {
				return err
			}
		}
		return nil
	}
	connector, err := duckdb.NewConnector("", init)
	if err != nil {
		return nil, fmt.Errorf("open DuckDB target %q: %w", path, err)
	}
	db := sql.OpenDB(connector)
	fail := func(err error) (*Sink, error) {
		db.Close()
		if strings.Contains(err.Error(), "replaying WAL") {
			// Not a permission or lock problem: the directory and file
			// are fine, DuckDB's own log is not.
			return nil, fmt.Errorf("open DuckDB target %q: %w (DuckDB could not replay the file's write-ahead log %s after an unclean stop; "+
				"keep both files for a DuckDB bug report; the copy cannot be trusted: move both aside, drop the slot it followed "+
				"(walmirror drop --source ... --slot NAME) and run walmirror again into a new file, which copies every table again)", path, err, path+".wal")
		}
		if holder, ok := LockHolder(err); ok {
			return nil, fmt.Errorf("open DuckDB target %q: the file is open in another process (%s), and DuckDB lets no other process open a file while one has it open: stop that process first (%w)", path, holder, err)
		}
		if hint := fileperm.Hint(path); hint != "" {
			return nil, fmt.Errorf("open DuckDB target %q: %w (%s)", path, err, hint)
		}
		return nil, fmt.Errorf("open DuckDB target %q: %w (check that the directory exists and is writable, and that no other process has the file open: DuckDB allows one process to write a file and no other to open it meanwhile)", path, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(err)
	}
	s := &Sink{path: path, abs: abs, db: db, conn: conn, log: log,
		tables: map[*schema.Table]*tableInfo{}, fresh: map[string]bool{}, created: map[string]bool{}, altered: map[string]bool{}, verify: map[string]*keyCheck{}, written: map[string]int64{},
		keyIndex: map[string]keyIndexState{}, indexWanted: map[string]*tableInfo{},
		published: map[string]publication{}, lastWrite: map[tableRef]uint64{}, touched: map[tableRef]struct{}{}}
	// Spill files go beside the database, as for a file opened directly.
	if _, err := conn.ExecContext(ctx, "SET temp_directory = "+literal(path+".tmp")); err != nil {
		conn.Close()
		return fail(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT CAST(current_setting('threads') AS BIGINT)").Scan(&s.threads); err != nil {
		conn.Close()
		return fail(err)
	}
	s.curThreads, s.serialSettle = s.threads, serialSettle
	drv, err := newMigrator(ctx, conn)
	if err == nil {
		err = migrations.Up(migrations.DuckDB, "duckdb", drv)
	}
	if err != nil {
		conn.Close()
		return fail(err)
	}
	opened = true
	return s, nil
}

// DB is the database/sql handle of the sink's DuckDB instance, for reading
// the copy in the same process. Its connections have the copy's catalog as
// the current one (SELECT * FROM public.t) and TimeZone UTC; they see
// committed transactions only. Do not write through it, and do not close it
// (Close does).
func (s *Sink) DB() *sql.DB { return s.db }

// Close releases the file (DuckDB checkpoints it).
func (s *Sink) Close() error {
	s.closed = true
	if s.inTx {
		_ = s.Rollback(context.Background())
	}
	var err error
	if s.stateUpdate != nil {
		err = s.stateUpdate.Close()
	}
	err = errors.Join(err, s.conn.Close(), s.db.Close())
	openFiles.Delete(s.abs)
	return err
}

// ReadState returns the stored replication state.
func (s *Sink) ReadState(ctx context.Context) (schema.State, bool, error) {
	var st schema.State
	if s.closed {
		return st, false, errors.New("duckdb sink: closed")
	}
	var l uint64
	var copies sql.NullString
	var timeline sql.NullInt64
	var publication sql.NullString
	var guard sql.NullBool
	err := s.conn.QueryRowContext(ctx, `SELECT slot, system_id, phase, lsn, copies, timeline, publication, slot_guard FROM `+stateTable+` WHERE id = 1`).
		Scan(&st.Slot, &st.SystemID, &st.Phase, &l, &copies, &timeline, &publication, &guard)
	if errors.Is(err, sql.ErrNoRows) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read _walmirror_state: %w", err)
	}
	if st.Copies, err = schema.DecodeCopies(copies.String); err != nil {
		return st, false, fmt.Errorf("read _walmirror_state: %w", err)
	}
	st.LSN, st.Timeline, st.Publication, st.SlotGuard = lsn.LSN(l), uint32(timeline.Int64), publication.String, guard.Bool
	return st, true, nil
}

var stateTable = quote(Catalog) + ".main._walmirror_state"

// Begin opens the write transaction.
func (s *Sink) Begin(ctx context.Context) error {
	if s.inTx {
		return errors.New("duckdb sink: transaction already open")
	}
	if _, err := s.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	s.inTx = true
	clear(s.touched)
	clear(s.fresh)
	clear(s.created)
	clear(s.altered)
	clear(s.verify)
	clear(s.written)
	return nil
}

// CommitPosition commits a transaction in which only the state changed (a
// position the stream passed): the published copy (--publish-copy) is not
// made again for it.
func (s *Sink) CommitPosition(ctx context.Context, st schema.State) error {
	s.positionOnly = true
	defer func() { s.positionOnly = false }()
	return s.Commit(ctx, st)
}

// overLimit adds walmirror's remedy to DuckDB failing for want of memory
// under its memory_limit (helper-119: a 200 MB source transaction of 100 kB
// values under --duckdb-memory-limit 256MB failed every run at its COMMIT,
// "failed to pin block", with DuckDB's own advice: SET memory_limit, which
// a walmirror user sets through the flag).
func overLimit(err error) error {
	if err == nil {
		return nil
	}
	if m := err.Error(); !strings.Contains(m, "failed to pin block") && !strings.Contains(m, "Out of Memory Error") {
		return err
	}
	return fmt.Errorf("%w\n(walmirror: DuckDB could not fit this target transaction in its memory limit: raise --duckdb-memory-limit, or leave it unset for DuckDB's default of 80%% of RAM; from Go, SET memory_limit through the sink's DB(). Nothing of the transaction was stored: the next run applies it again)", err)
}

// Commit checks the keys of tables filled in this transaction, stores the
// state row and commits.
func (s *Sink) Commit(ctx context.Context, st schema.State) error {
	if !s.inTx {
		return errors.New("duckdb sink: commit without a transaction")
	}
	abort := func(err error) error {
		return errors.Join(err, s.Rollback(context.WithoutCancel(ctx)))
	}
	for _, c := range s.verify {
		if err := s.checkUnique(ctx, c); err != nil {
			return abort(err)
		}
	}
	if err := s.storeState(ctx, st); err != nil {
		return abort(fmt.Errorf("store state: %w", err))
	}
	s.commitMu.Lock()
	_, err := s.conn.ExecContext(ctx, "COMMIT")
	if err == nil && !s.positionOnly {
		s.seq++
		for t := range s.touched {
			s.lastWrite[t] = s.seq
		}
	}
	s.commitMu.Unlock()
	if err != nil {
		// A COMMIT DuckDB could not write has already rolled back: a
		// ROLLBACK now would only add "no transaction is active".
		s.forget()
		return overLimit(fmt.Errorf("commit: %w", err))
	}
	clear(s.touched)
	s.inTx = false
	s.stateRow = true
	clear(s.fresh)
	clear(s.created)
	clear(s.altered)
	clear(s.verify)
	clear(s.written)
	s.indexKeys(ctx)
	return nil
}

// storeState writes the state row in the open transaction. Once the row
// is known to exist (stateRow) a plain UPDATE of it does: an upsert costs
// DuckDB a conflict check on the key index each commit, which is most of
// what a small streaming commit pays besides the data.
func (s *Sink) storeState(ctx context.Context, st schema.State) error {
	args := []any{st.Slot, st.SystemID, st.Phase, new(big.Int).SetUint64(uint64(st.LSN)), st.LSN.String(), time.Now().UTC(), schema.EncodeCopies(st.Copies), int64(st.Timeline), st.Publication, st.SlotGuard}
	if s.stateRow {
		if s.stateUpdate == nil {
			stmt, err := s.conn.PrepareContext(ctx, `UPDATE `+stateTable+` SET slot = ?, system_id = ?, phase = ?, lsn = ?, lsn_text = ?,
				updated_at = ?, copies = nullif(?, ''), timeline = nullif(?, 0), publication = nullif(?, ''), slot_guard = ? WHERE id = 1`)
			if err != nil {
				return err
			}
			s.stateUpdate = stmt
		}
		res, err := s.stateUpdate.ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return nil
		}
		s.stateRow = false // gone (deleted by hand?): insert it again
	}
	_, err := s.conn.ExecContext(ctx, `INSERT INTO `+stateTable+` (id, slot, system_id, phase, lsn, lsn_text, updated_at, copies, timeline, publication, slot_guard)
		VALUES (1, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, 0), nullif(?, ''), ?)
		ON CONFLICT (id) DO UPDATE SET slot = excluded.slot, system_id = excluded.system_id, phase = excluded.phase,
			lsn = excluded.lsn, lsn_text = excluded.lsn_text, updated_at = excluded.updated_at, copies = excluded.copies, timeline = excluded.timeline,
			publication = excluded.publication, slot_guard = excluded.slot_guard`, args...)
	return err
}

// Rollback abandons the open transaction, with any tables and columns it
// created: what the sink derived from them is forgotten too.
func (s *Sink) Rollback(ctx context.Context) error {
	if !s.inTx {
		return nil
	}
	s.forget()
	if _, err := s.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// forget drops what the sink derived from the transaction that just ended
// without a commit.
func (s *Sink) forget() {
	s.inTx = false
	clear(s.tables)
	s.dropCatalog()
	s.shapes = nil
	clear(s.touched)
	clear(s.fresh)
	clear(s.created)
	clear(s.altered)
	clear(s.verify)
	clear(s.written)
	clear(s.indexWanted)
}

// DiskFull says whether err is DuckDB failing to write for want of space
// (it reports that only as text): apply.Run marks it with
// apply.ErrTargetFull.
func (s *Sink) DiskFull(err error) bool {
	return err != nil && strings.Contains(err.Error(), "No space left on device")
}

func samePath(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	if aa == bb {
		return true, nil
	}
	ai, err1 := os.Stat(aa)
	bi, err2 := os.Stat(bb)
	return err1 == nil && err2 == nil && os.SameFile(ai, bi), nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// Package sqlite is the SQLite target: one database file, written through a
// single connection in WAL mode with synchronous=FULL, so a committed
// transaction (and the position stored with it) survives a crash of the
// process or the machine.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4/database/sqlite3"
	sqlite "github.com/mattn/go-sqlite3" // also registers the "sqlite3" database/sql driver

	"github.com/walmirror/walmirror/internal/fileperm"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/migrations"
	"github.com/walmirror/walmirror/schema"
)

// Sink writes to one SQLite file.
type Sink struct {
	// Adopt lets EnsureTable take over an existing, empty table walmirror
	// did not create (--adopt-tables); otherwise such a table stops the run.
	Adopt bool
	// DropColumns drops a target column once the source no longer has it
	// (--drop-columns); by default it is kept with its data.
	DropColumns bool

	path    string
	closed  bool // Close was called: later calls say so, not "connection is already closed"
	db      *sql.DB
	conn    *sql.Conn // every statement runs here, so prepared statements and BEGIN share it
	log     *slog.Logger
	tables  map[*schema.Table]*tableInfo
	stmts   map[stmtKey]*sql.Stmt
	inserts map[stmtKey]driver.Stmt // multi-row INSERTs, prepared on the driver's connection (insert)
	inTx    bool
	args    []any               // reused argument buffer
	nargs   []driver.NamedValue // the same for driver statements
}

// closeStmts closes and forgets every prepared statement.
func (s *Sink) closeStmts() {
	for k, st := range s.stmts {
		st.Close()
		delete(s.stmts, k)
	}
	for k, st := range s.inserts {
		st.Close()
		delete(s.inserts, k)
	}
}

// Open opens (creating if needed) the SQLite file at path and brings
// walmirror's metadata tables up to date.
func Open(ctx context.Context, path string, log *slog.Logger) (*Sink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(),
		RawQuery: "_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_foreign_keys=0"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("open SQLite target %q: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	fail := func(err error) (*Sink, error) {
		db.Close()
		if busy(err) {
			// Not a permissions problem (helper-78): a writer holds it.
			return nil, fmt.Errorf("open SQLite target %q: %w (another process is writing to the file, a running walmirror perhaps: one walmirror writes to a target at a time)", path, err)
		}
		if hint := fileperm.Hint(path); hint != "" {
			return nil, fmt.Errorf("open SQLite target %q: %w (%s)", path, err, hint)
		}
		return nil, fmt.Errorf("open SQLite target %q: %w (check that the directory exists and is writable)", path, err)
	}
	// A write proves the file and its directory (for the WAL) are writable.
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS _walmirror_probe (x); DROP TABLE _walmirror_probe"); err != nil {
		return fail(err)
	}
	drv, err := sqlite3.WithInstance(db, &sqlite3.Config{MigrationsTable: "_walmirror_migrations"})
	if err != nil {
		return fail(err)
	}
	if err := migrations.Up(migrations.SQLite, "sqlite3", drv); err != nil {
		return fail(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(err)
	}
	return &Sink{path: path, db: db, conn: conn, log: log,
		tables: map[*schema.Table]*tableInfo{}, stmts: map[stmtKey]*sql.Stmt{}, inserts: map[stmtKey]driver.Stmt{}}, nil
}

// Close releases the file.
func (s *Sink) Close() error {
	s.closed = true
	s.closeStmts()
	return errors.Join(s.conn.Close(), s.db.Close())
}

// ReadState returns the stored replication state.
func (s *Sink) ReadState(ctx context.Context) (schema.State, bool, error) {
	var st schema.State
	if s.closed {
		return st, false, errors.New("sqlite sink: closed")
	}
	var l int64
	var copies sql.NullString
	var timeline sql.NullInt64
	var publication sql.NullString
	var guard sql.NullBool
	err := s.conn.QueryRowContext(ctx, `SELECT slot, system_id, phase, lsn, copies, timeline, publication, slot_guard FROM _walmirror_state WHERE id = 1`).
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

// Begin opens the write transaction (IMMEDIATE: take the write lock now).
func (s *Sink) Begin(ctx context.Context) error {
	if s.inTx {
		return errors.New("sqlite sink: transaction already open")
	}
	if _, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		if busy(err) {
			return &busyError{path: s.path, err: err}
		}
		return fmt.Errorf("begin: %w", err)
	}
	s.inTx = true
	return nil
}

// busy says err is SQLite's refusal while another connection holds the
// file's lock.
func busy(err error) bool {
	var se sqlite.Error
	return errors.As(err, &se) && (se.Code == sqlite.ErrBusy || se.Code == sqlite.ErrLocked)
}

// busyError is a target transaction SQLite refused because another
// connection held the file's write lock past the busy timeout (10 s). It
// is Temporary: a run retries it with backoff, as it does a lost
// connection, where it ended the run (helper-110: a sqlite3 session's
// BEGIN IMMEDIATE held for 15 s, exit 1). Nothing was written.
type busyError struct {
	path string
	err  error
}

func (e *busyError) Error() string {
	return fmt.Sprintf("begin: another process holds the write lock of %s (a write transaction left open in it: an import, a sqlite3 session's BEGIN IMMEDIATE): %v", e.path, e.err)
}
func (e *busyError) Unwrap() error   { return e.err }
func (e *busyError) Temporary() bool { return true }

// Commit stores the state row and commits.
func (s *Sink) Commit(ctx context.Context, st schema.State) error {
	if !s.inTx {
		return errors.New("sqlite sink: commit without a transaction")
	}
	_, err := s.conn.ExecContext(ctx, `INSERT INTO _walmirror_state (id, slot, system_id, phase, lsn, lsn_text, updated_at, copies, timeline, publication, slot_guard)
		VALUES (1, ?, ?, ?, ?, ?, ?, nullif(?, ''), nullif(?, 0), nullif(?, ''), ?)
		ON CONFLICT (id) DO UPDATE SET slot = excluded.slot, system_id = excluded.system_id, phase = excluded.phase,
			lsn = excluded.lsn, lsn_text = excluded.lsn_text, updated_at = excluded.updated_at, copies = excluded.copies, timeline = excluded.timeline,
			publication = excluded.publication, slot_guard = excluded.slot_guard`,
		st.Slot, st.SystemID, st.Phase, int64(st.LSN), st.LSN.String(), time.Now().UTC().Format(time.RFC3339Nano), schema.EncodeCopies(st.Copies), int64(st.Timeline), st.Publication, st.SlotGuard)
	if err != nil {
		return errors.Join(fmt.Errorf("store state: %w", err), s.Rollback(context.WithoutCancel(ctx)))
	}
	s.inTx = false
	if _, err := s.conn.ExecContext(ctx, "COMMIT"); err != nil {
		// SQLite leaves the transaction open after some COMMIT failures (SQLITE_BUSY).
		_, _ = s.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback abandons the open transaction.
func (s *Sink) Rollback(ctx context.Context) error {
	if !s.inTx {
		return nil
	}
	s.inTx = false
	// Statements may name tables whose creation was just undone.
	s.closeStmts()
	clear(s.tables)
	if _, err := s.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		// SQLite already rolled back after some errors (a full disk).
		if strings.Contains(err.Error(), "no transaction is active") {
			return nil
		}
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

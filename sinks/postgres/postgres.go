// Package postgres is the PostgreSQL target: the source's tables are kept, in
// their own schemas and under their own names, in another PostgreSQL
// database, written through one connection (and a second one that only
// stages input for it, see loader.go).
//
// # Types
//
// Columns get the source's exact types. Built-in types (pg_type OIDs below
// 10000, identical in every cluster) are spelled by the target's own
// format_type(oid, typmod), so typmods, arrays, numeric precision, time zones,
// json/jsonb and uuid are kept. Values arrive in the source's text output form
// and are parsed by the same input functions: the session uses the settings
// walmirror's source connection uses (DateStyle ISO, TimeZone UTC,
// IntervalStyle postgres, extra_float_digits 3, bytea_output hex), so every
// value reads back as the source printed it. Built-ins whose text form names
// objects of the source cluster (regclass and the other reg* types, aclitem)
// or that cannot be read back (pg_node_tree and similar catalog types) are
// stored as text. Non-built-in types (enums, domains, composites, extension
// types) are stored as text holding their text form (enum labels, the
// domain's base value, the composite literal) — unless the target already has
// a type of the same schema-qualified name (an administrator ran the same
// CREATE TYPE or CREATE EXTENSION there), which is then used; it must accept
// every value the source sends. walmirror never creates types. A money value
// reads back only if both clusters share lc_monetary.
//
// # Tables
//
// A table is created on first sight with a primary key on the replica
// identity's key columns (none for REPLICA IDENTITY FULL tables). An existing
// table is used as it is; columns the source gained are added (ALTER TABLE
// ADD COLUMN); columns the source dropped are kept with their data (new rows
// get NULL there) and logged; a changed type is logged, not altered. A source
// schema named _walmirror is refused: walmirror's own tables live there
// (_walmirror.state, the position, and _walmirror.schema_migrations).
//
// # Writing
//
// Inserts are COPY ... FROM STDIN, fed straight from the values: in binary
// format when every column's type has an exact binary encoding of its text
// output form (integers, bool, numeric, date, timestamp[tz], uuid, jsonb,
// text-like; binary.go), which spares the server its text input functions,
// else in text format; a value the encoders do not take sends the rest of
// the batch in text. Deletes, updates and patches (updates of only the columns
// sent) go through a temporary staging table per table shape: one COPY of all
// of them, then one DELETE ... USING, one UPDATE ... FROM for the updates
// (whose row count proves every row was there) and one UPDATE ... FROM per
// distinct set of sent columns for the patches; large batches are staged by
// the loader session instead (loader.go). Ordered row changes are prepared
// statements sent pipelined (one round trip for a run); on tables without a
// key each one changes exactly one row equal to the old row (NULL-safe,
// compared on the values' exact text forms).
//
// The state row (_walmirror.state) is written in the same transaction as the
// data. By default the session sets session_replication_role = replica, like
// PostgreSQL's own subscriber: triggers (other than ENABLE REPLICA/ALWAYS
// ones) and foreign-key checks do not fire for walmirror's writes, so a copy
// can be applied in any order and nobody's trigger runs twice. That needs a
// superuser or, on PostgreSQL 15 and later, GRANT SET ON PARAMETER
// session_replication_role; Options.ReplicaRole = false turns it off.
// TRUNCATE of a table another table references by foreign key fails, as it
// does for PostgreSQL's subscriber, unless both are truncated together. A
// server running with synchronous_commit = off gets synchronous_commit =
// local for this session: the stored position is confirmed to the source
// only once it is durable here.
//
// Rollback drops the session's staging tables and prepared statements
// (DISCARD TEMP, DEALLOCATE ALL), since some may name tables the rollback
// removed. A connection lost between transactions is re-established by the
// next Begin or ReadState; one lost inside a transaction fails it (the server
// has rolled it back).
//
// # Loop safety
//
// With Options.Origin set, the session is bound to that replication origin
// (created when missing), as PostgreSQL's subscriber does: every commit is
// marked with it and records the source position reached (see
// pg_replication_origin_status). A target that itself publishes, to a
// subscription with origin = none (PostgreSQL 16+) or to any decoder that
// filters on origin, then does not send walmirror's writes back. This needs a
// superuser, or EXECUTE on the pg_replication_origin_* functions. An origin is
// active in one session at a time, so it also keeps two walmirror processes
// from writing the same target. (golang-migrate's one-time setup of
// _walmirror.schema_migrations runs on a connection of its own and is not
// marked: leave schema _walmirror out of the target's publications.)
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/migrations"
	"github.com/walmirror/walmirror/schema"
)

// Options tunes a PostgreSQL sink.
type Options struct {
	// ReplicaRole applies with session_replication_role = replica: ordinary
	// triggers and foreign-key checks do not fire (see the package doc).
	ReplicaRole bool
	// Origin names a replication origin the session is bound to, so that
	// walmirror's writes carry it and origin-filtering publishers do not
	// echo them; "" binds none.
	Origin string
	// LoaderRows is the smallest batch of staged changes (updates, deletes,
	// patches) that goes through a second session, the loader, in parallel
	// with the first (loader.go); 0 uses none.
	LoaderRows int
}

// DefaultOptions returns the options walmirror uses: replica role, no
// origin, a loader session for batches of 4000 changes and more.
func DefaultOptions() Options { return Options{ReplicaRole: true, LoaderRows: 4000} }

// sessionParams are the settings the source's text forms are written under;
// the target reads them back under the same ones.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
	// money's input follows lc_monetary; the source writes it under C.
	"lc_monetary": "C",
	// An XML content fragment ('<a/><b/>') is not a document: pg_dump sets
	// this too.
	"xmloption": "content",
	// The sink's statements each touch a batch of rows, planned anew with
	// its values: compiling one (which the planner's estimates for a table
	// without statistics, just copied, ask for) took longer than running it.
	"jit": "off",
	// Literals the sink writes (quoteLiteral) mean what they say.
	"standard_conforming_strings": "on",
}

// Sink writes to one PostgreSQL database through one connection (plus the
// loader's, which only stages input for it).
type Sink struct {
	// Adopt lets EnsureTable take over an existing, empty table walmirror
	// did not create (--adopt-tables); otherwise such a table stops the run.
	Adopt bool
	// DropColumns drops a target column once the source no longer has it
	// (--drop-columns); by default it is kept with its data.
	DropColumns bool

	cfg    *pgx.ConnConfig
	dsn    string // for redacting messages only
	conn   *pgx.Conn
	log    *slog.Logger
	opts   Options
	where  string // user@host:port/db, for messages
	inTx   bool
	closed bool
	// stateChecked: stateSettled waited for the state row (once).
	stateChecked bool

	// types caches the column type for a source (oid, typmod): it depends
	// only on the target's catalog of types, so it survives rollbacks.
	types map[typeKey]string
	// tables, stmts and stages are valid for the committed catalog only:
	// a rollback clears them.
	tables map[*schema.Table]*tableInfo
	stmts  map[stmtKey]string
	// created are the tables (qualified names) created in the open
	// transaction.
	created map[string]bool
	nstmt   int
	nstage  int
	// deadStages: staging tables of forgotten shapes, dropped by the commit.
	deadStages []string

	cr     *copyReader // reused COPY encoder
	params [][]byte

	ld       *loader        // the loader session, nil until needed (loader.go)
	pending  *pendingResult // a statement whose result is still to be read
	noLoader bool           // the loader session could not be opened

	watch lockWatch // lockwait.go
}

// Open connects to the target database named by dsn (a libpq URL or keyword
// string), brings walmirror's metadata tables up to date and prepares the
// session. Errors never contain the password.
func Open(ctx context.Context, dsn string, log *slog.Logger, opts Options) (*Sink, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL target: invalid connection string: %s", redact(parseErrorText(err), dsn, ""))
	}
	s := &Sink{cfg: cfg, dsn: dsn, log: log, opts: opts, where: describe(cfg),
		types: map[typeKey]string{}, tables: map[*schema.Table]*tableInfo{}, stmts: map[stmtKey]string{}, created: map[string]bool{}}
	fail := func(what string, err error) (*Sink, error) {
		if s.conn != nil {
			s.conn.Close(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("PostgreSQL target %s: %s: %s", s.where, what, redact(err.Error(), dsn, cfg.Password))
	}
	if err := s.connect(ctx); err != nil {
		return fail("connect", connectError(err))
	}
	if err := s.migrate(ctx); err != nil {
		return fail("create walmirror's metadata tables", err)
	}
	if err := s.dropStaleLoaderTables(ctx); err != nil {
		return fail("drop loader tables of earlier sessions", err)
	}
	s.startWatch()
	return s, nil
}

// describe names a target without its password.
func describe(cfg *pgx.ConnConfig) string {
	return cfg.User + "@" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database
}

// parseErrorText is pgx's parse error without the connection string it quotes.
func parseErrorText(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "`: "); ok && strings.HasPrefix(msg, "cannot parse `") {
		return rest
	}
	return msg
}

var kvPassword = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redact removes the password, and anything that looks like the DSN's
// password, from msg.
// redactedError shows a redacted text and unwraps to its cause, so that
// errors.As still finds what went wrong.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(msg, dsn, password string) string {
	secrets := []string{password}
	if u, err := url.Parse(dsn); err == nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
		for _, k := range []string{"password", "sslpassword"} {
			if p := u.Query().Get(k); p != "" {
				secrets = append(secrets, p, url.QueryEscape(p))
			}
		}
	}
	// A URL that does not parse: the user info between "://" and the last "@".
	if _, rest, ok := strings.Cut(dsn, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if _, p, ok := strings.Cut(rest[:at], ":"); ok {
				secrets = append(secrets, p)
			}
		}
	}
	for _, m := range kvPassword.FindAllStringSubmatch(dsn, -1) {
		secrets = append(secrets, m[1], strings.Trim(m[1], "'"))
	}
	for _, p := range secrets {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// connect opens the connection and sets the session up.
func (s *Sink) connect(ctx context.Context) error {
	cfg := s.cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "walmirror"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	s.conn = conn
	pg := conn.PgConn()
	// Durability of the target's commits is what makes the position stored
	// with them safe to confirm to the source.
	res := pg.ExecParams(ctx, "SELECT pg_catalog.current_setting('synchronous_commit')", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if string(res.Rows[0][0]) == "off" {
		if _, err := pg.Exec(ctx, "SET synchronous_commit = local").ReadAll(); err != nil {
			return err
		}
	}
	if s.opts.ReplicaRole {
		if _, err := pg.Exec(ctx, "SET session_replication_role = replica").ReadAll(); err != nil {
			return fmt.Errorf("set session_replication_role = replica (needs a superuser, or on PostgreSQL 15+ GRANT SET ON PARAMETER session_replication_role TO the role; or turn it off: walmirror run --pg-replica-role=false, Options.ReplicaRole in Go): %w", err)
		}
	}
	if s.opts.Origin != "" {
		if err := s.setupOrigin(ctx); err != nil {
			return fmt.Errorf("replication origin %q (needs a superuser or EXECUTE on the pg_replication_origin_* functions; an origin is usable by one session at a time): %w", s.opts.Origin, err)
		}
	}
	return nil
}

func (s *Sink) setupOrigin(ctx context.Context) error {
	pg := s.conn.PgConn()
	name := []byte(s.opts.Origin)
	_, err := pg.ExecParams(ctx, `SELECT pg_catalog.pg_replication_origin_create($1)
		WHERE pg_catalog.pg_replication_origin_oid($1) IS NULL`, [][]byte{name}, []uint32{25}, nil, nil).Close()
	if err != nil {
		return err
	}
	_, err = pg.ExecParams(ctx, `SELECT pg_catalog.pg_replication_origin_session_setup($1)`,
		[][]byte{name}, []uint32{25}, nil, nil).Close()
	return err
}

// migrate creates or updates walmirror's metadata tables (in schema
// _walmirror) with golang-migrate, on a connection of its own.
func (s *Sink) migrate(ctx context.Context) error {
	// golang-migrate creates its version table before running the first
	// migration, so the schema must exist first.
	res := s.conn.PgConn().ExecParams(ctx, `SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = '_walmirror'`, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	if len(res.Rows) == 0 {
		if _, err := s.conn.PgConn().Exec(ctx, `CREATE SCHEMA IF NOT EXISTS _walmirror`).ReadAll(); err != nil {
			return err
		}
	}
	db := stdlib.OpenDB(*s.cfg.Copy())
	defer db.Close()
	drv, err := migratepgx.WithInstance(db, &migratepgx.Config{
		SchemaName:            "_walmirror", // else it asks current_schema(), NULL under a search_path of missing schemas
		MigrationsTable:       `"_walmirror"."schema_migrations"`,
		MigrationsTableQuoted: true,
	})
	if err != nil {
		return err
	}
	defer drv.Close()
	return migrations.Up(migrations.Postgres, "pgx5", drv)
}

// Close ends the session; an open transaction is rolled back by the server.
func (s *Sink) Close() error {
	if s.conn == nil {
		return nil
	}
	s.stopWatch()
	_ = s.settle() // the transaction is abandoned either way
	s.ld.close(context.Background())
	s.closed, s.inTx = true, false
	err := s.conn.Close(context.Background())
	s.conn = nil
	return err
}

// ReadState returns the stored replication state.
func (s *Sink) ReadState(ctx context.Context) (schema.State, bool, error) {
	var st schema.State
	var res *pgconn.Result
	if err := s.settle(); err != nil {
		return st, false, err
	}
	if err := s.stateSettled(ctx); err != nil {
		return st, false, err
	}
	err := s.idle(ctx, func() error {
		res = s.conn.PgConn().ExecParams(ctx, `SELECT slot, system_id, phase, lsn::text, coalesce(copies, ''), coalesce(timeline, 0)::text, coalesce(publication, ''), coalesce(slot_guard, false)::text FROM _walmirror.state WHERE id = 1`,
			nil, nil, nil, nil).Read()
		return res.Err
	})
	if err != nil {
		return st, false, fmt.Errorf("read _walmirror.state: %w", err)
	}
	if len(res.Rows) == 0 {
		return st, false, nil
	}
	r := res.Rows[0]
	l, err := lsn.Parse(string(r[3]))
	if err != nil {
		return st, false, fmt.Errorf("read _walmirror.state: %w", err)
	}
	st.Slot, st.SystemID, st.Phase, st.LSN = string(r[0]), string(r[1]), string(r[2]), l
	if st.Copies, err = schema.DecodeCopies(string(r[4])); err != nil {
		return st, false, fmt.Errorf("read _walmirror.state: %w", err)
	}
	tl, err := strconv.ParseUint(string(r[5]), 10, 32)
	if err != nil {
		return st, false, fmt.Errorf("read _walmirror.state: timeline: %w", err)
	}
	st.Timeline, st.Publication, st.SlotGuard = uint32(tl), string(r[6]), string(r[7]) == "true"
	return st, true, nil
}

// stateSettled waits, once per sink, until no other transaction holds the
// state row: a commit of an earlier walmirror that waits for a synchronous
// standby of the target is durable but not yet visible, so a plain read
// gave the older position, the transactions after it were applied again,
// and both commits stood (pgbench_history rows twice, helper-120). Locking
// the row waits for that commit to end; a run's own writes hold it only
// while its transaction is open.
func (s *Sink) stateSettled(ctx context.Context) error {
	if s.stateChecked || s.inTx {
		return nil
	}
	const q = `SELECT FROM _walmirror.state WHERE id = 1 FOR SHARE`
	err := s.idle(ctx, func() error { return s.conn.PgConn().ExecParams(ctx, q+` NOWAIT`, nil, nil, nil, nil).Read().Err })
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42501" || pgErr.Code == "25006"):
		// No state yet; or a role that may only read it (verify with a
		// reader's DSN), or a read-only server: such a sink cannot lock
		// the row, and writes nothing that could be doubled.
		err = nil
	case errors.As(err, &pgErr) && pgErr.Code == "55P03":
		s.log.Warn("another session holds walmirror's state row in the target: waiting for it to end (a commit of an earlier run waiting for a synchronous standby of the target? see synchronous_standby_names there)",
			"target", s.where)
		err = s.idle(ctx, func() error { return s.conn.PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read().Err })
	}
	if err != nil {
		return fmt.Errorf("wait for walmirror's state row in the target: %w", err)
	}
	s.stateChecked = true
	return nil
}

// alive reconnects when the connection was lost outside a transaction.
func (s *Sink) alive(ctx context.Context) error {
	if s.closed {
		return errors.New("postgres sink: closed")
	}
	if s.conn != nil && !s.conn.IsClosed() {
		return nil
	}
	if s.inTx {
		return errors.New("postgres sink: the connection was lost in the open transaction")
	}
	s.reset()
	s.log.Info("reconnecting to the PostgreSQL target", "target", s.where)
	if s.conn != nil {
		s.conn.Close(context.WithoutCancel(ctx))
		s.conn = nil
	}
	if err := s.connect(ctx); err != nil {
		err = connectError(err) // a database dropped meanwhile: say so (helper-110)
		if s.conn != nil {
			s.conn.Close(context.WithoutCancel(ctx))
			s.conn = nil
		}
		// The cause stays in the chain (a target restarting is worth a
		// retry: "the database system is shutting down"), its text without
		// the password.
		return &redactedError{msg: fmt.Sprintf("PostgreSQL target %s: reconnect: %s", s.where, redact(err.Error(), s.dsn, s.cfg.Password)), err: err}
	}
	return nil
}

// idle runs fn outside a transaction; a connection lost while idle shows
// only when used, so fn is retried once on a new connection.
func (s *Sink) idle(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		if err := s.alive(ctx); err != nil {
			return err
		}
		err := fn()
		if err == nil || attempt > 0 || s.inTx || !s.conn.IsClosed() || ctx.Err() != nil {
			return err
		}
	}
}

// Begin opens the target transaction.
func (s *Sink) Begin(ctx context.Context) error {
	if s.inTx {
		return errors.New("postgres sink: transaction already open")
	}
	if err := s.settle(); err != nil {
		return err
	}
	// READ COMMITTED whatever the database's default: each statement must
	// see what the loader session committed before it was sent.
	err := s.idle(ctx, func() error {
		_, err := s.conn.PgConn().Exec(ctx, "BEGIN ISOLATION LEVEL READ COMMITTED").ReadAll()
		return err
	})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	s.inTx = true
	return nil
}

// Commit stores the state row (and, with an origin, the origin's progress) and
// commits, in one round trip.
func (s *Sink) Commit(ctx context.Context, st schema.State) error {
	defer s.busy()()
	if !s.inTx {
		return errors.New("postgres sink: commit without a transaction")
	}
	defer s.ld.endTx()
	pg := s.conn.PgConn()
	if err := s.settle(); err != nil {
		s.abandon(ctx)
		return fmt.Errorf("commit: %w", err)
	}
	pos := []byte(st.LSN.String())
	b := &pgconn.Batch{}
	if s.opts.Origin != "" {
		b.ExecParams(`SELECT pg_catalog.pg_replication_origin_xact_setup($1::pg_lsn, pg_catalog.clock_timestamp())`,
			[][]byte{pos}, nil, nil, nil)
	}
	b.ExecParams(`INSERT INTO _walmirror.state (id, slot, system_id, phase, lsn, updated_at, copies, timeline, publication, slot_guard)
		VALUES (1, $1, $2, $3, $4::pg_lsn, pg_catalog.clock_timestamp(), nullif($5, ''), nullif($6::bigint, 0), nullif($7, ''), $8::boolean)
		ON CONFLICT (id) DO UPDATE SET slot = EXCLUDED.slot, system_id = EXCLUDED.system_id,
			phase = EXCLUDED.phase, lsn = EXCLUDED.lsn, updated_at = EXCLUDED.updated_at, copies = EXCLUDED.copies, timeline = EXCLUDED.timeline,
			publication = EXCLUDED.publication, slot_guard = EXCLUDED.slot_guard`,
		[][]byte{[]byte(st.Slot), []byte(st.SystemID), []byte(st.Phase), pos, []byte(schema.EncodeCopies(st.Copies)),
			strconv.AppendUint(nil, uint64(st.Timeline), 10), []byte(st.Publication), strconv.AppendBool(nil, st.SlotGuard)}, nil, nil, nil)
	if len(s.deadStages) > 0 {
		b.ExecParams("DROP TABLE IF EXISTS "+strings.Join(s.deadStages, ", "), nil, nil, nil, nil)
	}
	b.ExecParams("COMMIT", nil, nil, nil, nil)
	res, err := pg.ExecBatch(ctx, b).ReadAll()
	if err == nil && (len(res) == 0 || res[len(res)-1].CommandTag.String() != "COMMIT") {
		err = errors.New("the server rolled the transaction back")
	}
	if err != nil {
		s.abandon(ctx)
		return fmt.Errorf("commit: %w", err)
	}
	s.inTx = false
	clear(s.created)
	s.deadStages = s.deadStages[:0]
	return nil
}

// abandon ends a transaction that failed to commit (it is gone or aborted)
// and forgets what it created.
func (s *Sink) abandon(ctx context.Context) {
	pg := s.conn.PgConn()
	if pg.TxStatus() != 'I' && !pg.IsClosed() {
		_, _ = pg.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll()
	}
	s.inTx = false
	s.afterRollback(context.WithoutCancel(ctx))
}

// Rollback abandons the open transaction and everything cached about what it
// created (tables, columns, staging tables, prepared statements).
func (s *Sink) Rollback(ctx context.Context) error {
	if !s.inTx {
		return nil
	}
	s.inTx = false
	defer s.ld.endTx()
	_ = s.settle() // its failure is why we are here, or is moot now
	if s.conn == nil || s.conn.IsClosed() {
		s.reset() // the server ended the transaction with the session
		return nil
	}
	_, err := s.conn.PgConn().Exec(ctx, "ROLLBACK").ReadAll()
	if err != nil {
		s.reset()
		if s.conn.IsClosed() {
			return nil
		}
		return fmt.Errorf("rollback: %w", err)
	}
	s.afterRollback(ctx)
	return nil
}

// afterRollback drops the session's staging tables and prepared statements
// (some may name tables the rollback removed) and forgets them.
func (s *Sink) afterRollback(ctx context.Context) {
	s.reset()
	if s.conn == nil || s.conn.IsClosed() {
		return
	}
	err := s.conn.DeallocateAll(ctx)
	if err == nil {
		_, err = s.conn.PgConn().Exec(ctx, "DISCARD TEMP").ReadAll()
	}
	if err != nil {
		s.log.Warn("could not drop staging tables and statements after a rollback", "err", err)
	}
}

// reset forgets everything that describes the target's tables.
func (s *Sink) reset() {
	s.deadStages = s.deadStages[:0] // DISCARD TEMP, or a new session
	clear(s.tables)
	clear(s.stmts)
	clear(s.created)
}

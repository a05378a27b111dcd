package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Large staged batches go through a second session, the loader. Parsing the
// staged rows (COPY) is a fifth of what the target's backend does per
// updated row; the loader does it in a backend of its own, into an unlogged
// table in _walmirror that it commits by itself, while the main session is
// still applying the previous batch. The main session's statement for a
// batch is sent without waiting for its result: the result is read (and
// checked) before the main session is used again, and at the latest by
// Commit, so a failure still fails the transaction it belongs to.
//
// Exactly-once does not change: every write to a mirrored table and the
// state row are still in the main session's one transaction. A loader table
// only holds input: rows the main transaction has not used yet are never
// applied, and the main session always runs at READ COMMITTED, so each of
// its statements sees what the loader committed before it was sent.
//
// The loader only ever locks its own tables, so it cannot wait on the main
// session. Emptying one for reuse (TRUNCATE) waits for no one either: it is
// tried with a short lock timeout (a reader of the target, pg_dump say, may
// hold a lock on it) and falls back to a new table.

// useLoader reports whether a batch staging n rows goes through the loader.
func (s *Sink) useLoader(n int) bool {
	return s.opts.LoaderRows > 0 && n >= s.opts.LoaderRows && !s.noLoader
}

// loaderTableRows bounds the rows one loader table collects in one
// transaction: each statement that reads it scans all of them.
const loaderTableRows = 100_000

type loader struct {
	conn   *pgconn.PgConn
	prefix string // names of this session's tables: prefix + number
	n      int
	free   map[string][]*loadTable // by column definitions
	used   []*loadTable            // written in the open transaction
	seq    int                     // group numbers used in the open transaction
	drop   []string                // tables no longer wanted
}

// loaderKeep is how many free tables of one shape are kept for reuse.
const loaderKeep = 4

// loadTable is one unlogged table of the loader.
type loadTable struct {
	name  string // qualified, quoted
	defs  string
	rows  int  // rows written in the open transaction
	dirty bool // holds rows of an ended transaction
}

// pendingResult is a statement of the main session whose result is read later.
type pendingResult struct {
	rr    *pgconn.MultiResultReader
	what  string
	check func([]*pgconn.Result) error
}

// settle reads the main session's outstanding result, if any.
func (s *Sink) settle() error {
	p := s.pending
	if p == nil {
		return nil
	}
	s.pending = nil
	res, err := p.rr.ReadAll()
	if err != nil {
		return fmt.Errorf("%s: %w", p.what, detail(err))
	}
	if p.check != nil {
		return p.check(res)
	}
	return nil
}

// loaderTable picks the loader table for a batch of n rows in groups
// groups. lt is nil when the loader session cannot be opened: the sink then
// stages through its main session, as with LoaderRows 0, until reopened.
func (s *Sink) loaderTable(ctx context.Context, ti *tableInfo, n, groups int) (lt *loadTable, st stageRef, err error) {
	if ti.loadDefs == "" {
		if err := s.settle(); err != nil {
			return nil, st, err
		}
	}
	defs, err := s.loaderDefs(ctx, ti)
	if err != nil {
		return nil, st, err
	}
	ld, err := s.loaderConn(ctx)
	if err != nil {
		s.noLoader = true
		s.log.Warn("staging through the main connection only: cannot open a second one (set --pg-loader-rows 0 to stop trying)", "err", err)
		return nil, st, nil
	}
	if lt, err = ld.table(ctx, defs, n); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
			s.noLoader = true
			s.log.Warn("staging through the main connection only: the role may not create tables in schema _walmirror", "err", err)
			s.ld.close(ctx)
			s.ld = nil
			return nil, st, nil
		}
		return nil, st, err
	}
	lt.rows += n
	st = stageRef{name: lt.name, gcol: "g", cols: make([]string, len(ti.cols)), base: ld.seq}
	for i := range st.cols {
		st.cols[i] = "c" + strconv.Itoa(i+1)
	}
	ld.seq += groups
	return lt, st, nil
}

// loaderConn returns the loader's session, connecting it on first use.
func (s *Sink) loaderConn(ctx context.Context) (*loader, error) {
	if s.ld != nil && s.ld.conn != nil && !s.ld.conn.IsClosed() {
		return s.ld, nil
	}
	s.ld.close(ctx) // a lost session: its tables go with a new one's prefix
	cfg := s.cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = "walmirror loader"
	// Its commits hold only disposable input.
	cfg.RuntimeParams["synchronous_commit"] = "off"
	cfg.RuntimeParams["lock_timeout"] = "200ms"
	conn, err := pgconn.ConnectConfig(ctx, &cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL target %s: connect the loader session: %s", s.where, redact(err.Error(), s.dsn, s.cfg.Password))
	}
	// Tables are named after the loader's backend: the next session to open
	// the target drops those of backends that are gone.
	s.ld = &loader{conn: conn, prefix: loaderPrefix + strconv.Itoa(int(conn.PID())) + "_", free: map[string][]*loadTable{}}
	return s.ld, nil
}

// loaderPrefix starts the names of loader tables, then the backend's PID.
const loaderPrefix = "load_"

// dropStaleLoaderTables drops loader tables whose session is gone (a crash,
// a lost connection).
func (s *Sink) dropStaleLoaderTables(ctx context.Context) error {
	res := s.conn.PgConn().ExecParams(ctx, `SELECT pg_catalog.quote_ident(c.relname) FROM pg_catalog.pg_class c
		WHERE c.relnamespace = '_walmirror'::regnamespace AND c.relkind = 'r' AND c.relname ~ '^load_[0-9]+_[0-9]+$'
			AND pg_catalog.split_part(c.relname, '_', 2)::int NOT IN (SELECT pid FROM pg_catalog.pg_stat_activity WHERE pid IS NOT NULL)`,
		nil, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	for _, r := range res.Rows {
		if _, err := s.conn.PgConn().Exec(ctx, "SET lock_timeout = '200ms'; DROP TABLE IF EXISTS _walmirror."+string(r[0])+"; RESET lock_timeout").ReadAll(); err != nil {
			s.log.Warn("could not drop a loader table left by an earlier session", "table", string(r[0]), "err", err)
			_, _ = s.conn.PgConn().Exec(ctx, "RESET lock_timeout").ReadAll()
		}
	}
	return nil
}

// loaderDefs returns the column definitions of ti's loader tables (g, then
// c1, c2, ... with the target columns' types), read once per shape. Key
// comparisons take the target column's collation: a loader column has its
// type's default one, which never conflicts.
func (s *Sink) loaderDefs(ctx context.Context, ti *tableInfo) (string, error) {
	if ti.loadDefs != "" {
		return ti.loadDefs, nil
	}
	nums := make([]string, len(ti.attnums))
	for i, n := range ti.attnums {
		nums[i] = strconv.Itoa(int(n))
	}
	res := s.conn.PgConn().ExecParams(ctx, `SELECT pg_catalog.string_agg(pg_catalog.format('c%s %s', u.n,
			pg_catalog.format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY u.n), pg_catalog.count(*)
		FROM pg_catalog.unnest($2::int2[]) WITH ORDINALITY AS u(num, n)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = $1::oid AND a.attnum = u.num`,
		[][]byte{[]byte(strconv.FormatUint(uint64(ti.oid), 10)), []byte("{" + strings.Join(nums, ",") + "}")}, nil, nil, nil).Read()
	if res.Err != nil {
		return "", fmt.Errorf("read column types of %s: %w", ti.name, res.Err)
	}
	if len(res.Rows) != 1 || string(res.Rows[0][1]) != strconv.Itoa(len(nums)) {
		return "", fmt.Errorf("read column types of %s: columns not found", ti.name)
	}
	ti.loadDefs = "g int4, " + string(res.Rows[0][0])
	return ti.loadDefs, nil
}

// table returns a loader table of shape defs with room for rows more rows,
// holding nothing but this transaction's rows.
func (l *loader) table(ctx context.Context, defs string, rows int) (*loadTable, error) {
	if len(l.drop) > 0 {
		// Best effort: one still locked is left for the next Open.
		_, _ = l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(l.drop, ", ")).ReadAll()
		l.drop = l.drop[:0]
	}
	for _, t := range l.used {
		if t.defs == defs && t.rows+rows <= loaderTableRows {
			return t, nil
		}
	}
	free := l.free[defs]
	for len(free) > 0 {
		t := free[len(free)-1]
		free = free[:len(free)-1]
		l.free[defs] = free
		if t.dirty {
			if _, err := l.conn.Exec(ctx, "TRUNCATE "+t.name).ReadAll(); err != nil {
				if l.conn.IsClosed() {
					return nil, fmt.Errorf("empty loader table %s: %w", t.name, err)
				}
				l.orphan(ctx, t) // locked by someone else: use another one
				continue
			}
			t.dirty = false
		}
		l.used = append(l.used, t)
		return t, nil
	}
	l.n++
	t := &loadTable{name: metaSchema + "." + quoteIdent(l.prefix+strconv.Itoa(l.n)), defs: defs}
	// Never analyzed, so the planner keeps estimating few rows per group and
	// joins by index lookups into the mirrored table.
	sql := "CREATE UNLOGGED TABLE " + t.name + " (" + defs + ") WITH (autovacuum_enabled = false)"
	if _, err := l.conn.Exec(ctx, sql).ReadAll(); err != nil {
		return nil, fmt.Errorf("create loader table %s: %w", t.name, err)
	}
	l.used = append(l.used, t)
	return t, nil
}

// orphan gives up a table it could not empty; if it cannot be dropped now
// either, the next session to open the target drops it.
func (l *loader) orphan(ctx context.Context, t *loadTable) {
	_, _ = l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+t.name).ReadAll()
}

// endTx returns the transaction's tables for reuse: their rows are stale now.
func (l *loader) endTx() {
	if l == nil {
		return
	}
	for _, t := range l.used {
		t.rows, t.dirty = 0, true
		if len(l.free[t.defs]) >= loaderKeep {
			l.drop = append(l.drop, t.name) // a big transaction needed many
			continue
		}
		l.free[t.defs] = append(l.free[t.defs], t)
	}
	l.used, l.seq = l.used[:0], 0
}

// close drops the loader's tables and ends its session.
func (l *loader) close(ctx context.Context) {
	if l == nil || l.conn == nil {
		return
	}
	if !l.conn.IsClosed() {
		var names []string
		for _, ts := range l.free {
			for _, t := range ts {
				names = append(names, t.name)
			}
		}
		for _, t := range l.used {
			names = append(names, t.name)
		}
		names = append(names, l.drop...)
		if len(names) > 0 {
			_, _ = l.conn.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(names, ", ")).ReadAll()
		}
	}
	_ = l.conn.Close(ctx)
	l.conn = nil
}

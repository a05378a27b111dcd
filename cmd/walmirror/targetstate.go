package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// targetState is what check and status read from a target without opening
// it as a sink: a sink's Open creates walmirror's tables (and the file),
// these read-only looks create nothing.
type targetState struct {
	Kind      string // duckdb, sqlite or postgres
	Path      string // file targets
	Exists    bool   // the file exists (always true for PostgreSQL once reached)
	Found     bool   // walmirror state is stored in it
	State     schema.State
	UpdatedAt time.Time // when the target last committed
	// CanCreate: a PostgreSQL target's role may create schemas there
	// (walmirror's own and the copied ones).
	CanCreate bool
}

// parseTarget splits a TARGET into its kind and path (or URL).
func parseTarget(target string) (kind, path string, err error) {
	switch k, p, ok := strings.Cut(target, ":"); {
	case target == "":
		return "", "", errors.New("--target is required: duckdb:PATH, sqlite:PATH or postgres://...")
	case strings.HasPrefix(target, "postgres://"), strings.HasPrefix(target, "postgresql://"):
		return "postgres", target, nil
	case ok && (k == "sqlite" || k == "duckdb"):
		if p == "" {
			return "", "", fmt.Errorf("--target %q: give a file path after %s:", target, k)
		}
		if strings.HasPrefix(p, ":memory:") || strings.HasPrefix(p, "file::memory:") {
			// The copy and its position would go with the process, and the
			// slot made for it would hold WAL on the source (helper-139).
			return "", "", fmt.Errorf("--target %q: an in-memory database forgets the copy and its position when walmirror exits, while the replication slot made for it keeps WAL on the source: give a file path (a Go program embedding walmirror can keep a copy in memory: see \"Using walmirror from Go\")", target)
		}
		if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
			// URL-style: what follows // is a host, and the path would be
			// taken from the file system's root (helper-71).
			return "", "", fmt.Errorf("--target %q: write %s:PATH (relative, or %s:/absolute/path; %s:///absolute/path also works)", target, k, k, k)
		}
		return k, p, nil
	}
	return "", "", fmt.Errorf("--target %q: want duckdb:PATH, sqlite:PATH or postgres://...", redactTarget(target))
}

// duckdbBusy is err, DuckDB refusing a file another process has open, said
// with what to do (status and check while walmirror run writes the file:
// helper-98 got DuckDB's raw lock error); nil for any other error.
func duckdbBusy(path string, err error) error {
	holder, ok := duckdb.LockHolder(err)
	if !ok {
		return nil
	}
	return fmt.Errorf("DuckDB target %q is open in another process (%s), and DuckDB lets no other process open a file while one has it open: "+
		"if that is walmirror run, ask it instead (its --metrics-addr serves /metrics with the applied position and the lag, and walmirror verify --sidecar verifies through it), or stop it first (%w)%w", path, holder, err, errDuckDBBusy)
}

// errDuckDBBusy is in the errors duckdbBusy returns.
var errDuckDBBusy = errors.New("")

// readTargetState looks at a target read-only. A missing file is not an
// error (Exists false).
func readTargetState(ctx context.Context, target string) (targetState, error) {
	kind, path, err := parseTarget(target)
	ts := targetState{Kind: kind, Path: path}
	if err != nil {
		return ts, err
	}
	if kind == "postgres" {
		return ts, readPostgresState(ctx, target, &ts)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return ts, nil
	} else if err != nil {
		return ts, fmt.Errorf("--target %q: %w", target, err)
	}
	ts.Exists = true
	if err := fileKindMismatch(kind, path); err != nil {
		return ts, err
	}
	var db *sql.DB
	var has, q string
	if kind == "sqlite" {
		u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_busy_timeout=5000"}
		db, err = sql.Open("sqlite3", u.String())
		has = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_walmirror_state'`
		q = `SELECT slot, system_id, phase, lsn_text, updated_at FROM _walmirror_state WHERE id = 1`
	} else {
		db, err = openDuckDBReadOnly(ctx, path)
		has = `SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'walmirror_look' AND table_schema = 'main' AND table_name = '_walmirror_state'`
		q = `SELECT slot, system_id, phase, lsn_text, strftime(updated_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') FROM walmirror_look.main._walmirror_state WHERE id = 1`
	}
	if err != nil {
		if busy := duckdbBusy(path, err); busy != nil {
			return ts, busy
		}
		return ts, fmt.Errorf("open %s target %q: %w", kind, path, err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, has).Scan(&n); err != nil {
		if busy := duckdbBusy(path, err); busy != nil {
			return ts, busy
		}
		return ts, fmt.Errorf("read %s target %q: %w", kind, path, err)
	}
	if n == 0 {
		return ts, nil
	}
	// A target last written before its state had a timeline (migration 5),
	// a publication (6) or a slot guard (7) is read as it is: status and check do not
	// migrate it.
	for _, c := range []struct{ name, value, missing string }{
		{"timeline", "coalesce(timeline, 0)", "0"}, {"publication", "coalesce(publication, '')", "''"}, {"copies", "coalesce(copies, '')", "''"},
		{"slot_guard", "coalesce(slot_guard, false)", "false"},
	} {
		has := `SELECT count(*) FROM pragma_table_info('_walmirror_state') WHERE name = '` + c.name + `'`
		if kind == "duckdb" {
			has = `SELECT count(*) FROM information_schema.columns WHERE table_catalog = 'walmirror_look' AND table_schema = 'main' AND table_name = '_walmirror_state' AND column_name = '` + c.name + `'`
		}
		if err := db.QueryRowContext(ctx, has).Scan(&n); err != nil {
			return ts, fmt.Errorf("read %s target %q: %w", kind, path, err)
		}
		value := c.missing
		if n > 0 {
			value = c.value
		}
		q = strings.Replace(q, " FROM ", ", "+value+" FROM ", 1)
	}
	var lsnText, updated, copies string
	err = db.QueryRowContext(ctx, q).Scan(&ts.State.Slot, &ts.State.SystemID, &ts.State.Phase, &lsnText, &updated, &ts.State.Timeline, &ts.State.Publication, &copies, &ts.State.SlotGuard)
	if errors.Is(err, sql.ErrNoRows) {
		return ts, nil
	}
	if err != nil {
		return ts, fmt.Errorf("read walmirror state from %q: %w", path, err)
	}
	ts.Found = true
	ts.State.LSN, _ = lsn.Parse(lsnText)
	ts.UpdatedAt, _ = time.Parse(time.RFC3339Nano, updated)
	if ts.State.Copies, err = schema.DecodeCopies(copies); err != nil {
		return ts, fmt.Errorf("read walmirror state from %q: %w", path, err)
	}
	return ts, nil
}

func readPostgresState(ctx context.Context, target string, ts *targetState) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return fmt.Errorf("connect to target %s: %w", redactTarget(target), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ts.Exists = true
	var has bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('_walmirror.state') IS NOT NULL, has_database_privilege(current_database(), 'CREATE')`).Scan(&has, &ts.CanCreate); err != nil || !has {
		return err
	}
	var lsnText string
	// to_jsonb reads a state from before the timeline column (migration 5).
	var copies string
	err = conn.QueryRow(ctx, `SELECT slot, system_id, phase, lsn::text, updated_at, coalesce((to_jsonb(s) ->> 'timeline')::bigint, 0), coalesce(to_jsonb(s) ->> 'publication', ''),
			coalesce(to_jsonb(s) ->> 'copies', ''), coalesce((to_jsonb(s) ->> 'slot_guard')::boolean, false) FROM _walmirror.state s WHERE id = 1`).
		Scan(&ts.State.Slot, &ts.State.SystemID, &ts.State.Phase, &lsnText, &ts.UpdatedAt, &ts.State.Timeline, &ts.State.Publication, &copies, &ts.State.SlotGuard)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read walmirror state from target %s: %w", redactTarget(target), err)
	}
	ts.Found = true
	ts.State.LSN, _ = lsn.Parse(lsnText)
	if ts.State.Copies, err = schema.DecodeCopies(copies); err != nil {
		return fmt.Errorf("read walmirror state from target %s: %w", redactTarget(target), err)
	}
	return nil
}

// formatTime prints a stored time for people (UTC), or "unknown".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

// copyPublication sets *pub to the publication target's copy is made from
// when the command line did not name one (given false), and refuses
// another: a verify or resync through another publication's tables would
// take in tables the copy was never made of (helper-71). A target it
// cannot read, or one stored before the publication was, leaves *pub as it
// is (the command reads the target itself and says what is wrong).
func copyPublication(ctx context.Context, target string, pub *string, given bool) error {
	ts, err := readTargetStateOrRun(ctx, target)
	if err != nil || !ts.Found {
		return nil
	}
	_, err = followPublication(ts.State, pub, given)
	return err
}

// followPublication sets *pub to the publication of the complete copy st
// when it is another and was not given (adopted), and refuses it when it
// was (apply.CheckPublication).
func followPublication(st schema.State, pub *string, given bool) (adopted bool, err error) {
	if err := apply.CheckPublication(st, *pub); err != nil {
		if given {
			return false, err
		}
		*pub = st.Publication
		return true, nil
	}
	return false, nil
}

// existingTables returns which of tables the target already holds under
// the name a copy gives them (SQLite's and DuckDB's names ignore case), as
// "schema.table", read without changing the target.
func existingTables(ctx context.Context, target string, tables []source.TableName) ([]string, error) {
	return targetTables(ctx, target, tables, false)
}

// targetTables is existingTables, or with withRows those of them that
// hold rows (which run --adopt-tables refuses to take over: helper-139,
// check said ok).
func targetTables(ctx context.Context, target string, tables []source.TableName, withRows bool) ([]string, error) {
	kind, path, err := parseTarget(target)
	if err != nil || len(tables) == 0 {
		return nil, err
	}
	if kind == "postgres" {
		conn, err := pgx.Connect(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("connect to target %s: %w", redactTarget(target), err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var nsp, rel []string
		for _, t := range tables {
			nsp, rel = append(nsp, t.Schema), append(rel, t.Name)
		}
		rows, err := conn.Query(ctx, `SELECT s, n FROM unnest($1::text[], $2::text[]) u(s, n) WHERE to_regclass(format('%I.%I', s, n)) IS NOT NULL`, nsp, rel)
		if err != nil {
			return nil, err
		}
		have, err := pgx.CollectRows(rows, pgx.RowToStructByPos[source.TableName])
		if err != nil {
			return nil, err
		}
		var found []string
		for _, t := range have {
			if withRows {
				var any bool
				if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pgx.Identifier{t.Schema, t.Name}.Sanitize()+")").Scan(&any); err != nil {
					return nil, fmt.Errorf("read target table %s: %w", t, err)
				}
				if !any {
					continue
				}
			}
			found = append(found, t.Schema+"."+t.Name)
		}
		return found, nil
	}
	var db *sql.DB
	q := `SELECT lower(name) FROM sqlite_master WHERE type = 'table'`
	if kind == "sqlite" {
		u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_busy_timeout=5000"}
		db, err = sql.Open("sqlite3", u.String())
	} else {
		db, err = openDuckDBReadOnly(ctx, path)
		q = `SELECT lower(schema_name || '.' || table_name) FROM duckdb_tables() WHERE database_name = 'walmirror_look'`
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read %s target %q: %w", kind, path, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var found []string
	for _, t := range tables {
		name := strings.ToLower(t.Schema + "." + t.Name)
		if kind == "sqlite" {
			name = strings.ToLower(sqlite.TableName(t.Schema, t.Name))
		}
		if !have[name] {
			continue
		}
		if withRows {
			quoted := quoteIdent(sqlite.TableName(t.Schema, t.Name))
			if kind == "duckdb" {
				quoted = quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
			}
			var any bool
			if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+quoted+")").Scan(&any); err != nil {
				return nil, fmt.Errorf("read %s target %q: %w", kind, path, err)
			}
			if !any {
				continue
			}
		}
		found = append(found, t.Schema+"."+t.Name)
	}
	return found, nil
}

// replicaRoleRefused tries, on a session of its own, what the PostgreSQL
// sink does at connect: SET session_replication_role = replica. It returns
// the target's refusal (insufficient privilege), nil otherwise (a target
// that cannot be reached is readTargetState's to report).
func replicaRoleRefused(ctx context.Context, target string) error {
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return nil
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "SET session_replication_role = replica")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return pgErr
	}
	return nil
}

// foreignTablesText says that target already holds tables, named in have,
// of the copy's names that walmirror did not create.
func foreignTablesText(target string, have []string) string {
	return fmt.Sprintf("%s already holds %s, which walmirror did not create, and run writes only into tables it created: "+
		"drop or rename them in the target, leave them out of the publication, or pass --adopt-tables to take them over while they are empty",
		redactTarget(target), strings.Join(have, ", "))
}

// adoptRowsText says that target holds tables, named in have, walmirror
// did not create, which --adopt-tables does not take over: they hold rows.
func adoptRowsText(target string, have []string) string {
	return fmt.Sprintf("%s already holds %s, which walmirror did not create: --adopt-tables takes over only empty tables, and each of these holds rows (a copy's rows come from the source): empty or drop them, or choose another target",
		redactTarget(target), strings.Join(have, ", "))
}

// refuseForeignTables refuses a first run into a target that already holds
// tables of the copy's names walmirror did not create, before the source
// gets a publication and a slot and the target walmirror's metadata
// tables (helper-86: run made all three, then refused, leaving the
// publication and the metadata behind). It looks as check does; what it
// cannot look at (the source unreachable, ...) the run itself reports.
//
// With adopt it refuses only tables that hold rows, which --adopt-tables
// does not take over (helper-139: the refusal came after the publication
// and walmirror's state were made).
func refuseForeignTables(ctx context.Context, cfg source.Config, target string, ts targetState, adopt bool) error {
	kind, _, err := parseTarget(target)
	if err != nil || ts.Found || kind != "postgres" && !ts.Exists {
		return nil
	}
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		return nil
	}
	defer adm.Close(context.WithoutCancel(ctx))
	pub, err := adm.Publication(ctx, cfg.Publication)
	if err != nil {
		return nil
	}
	var tables []source.TableInfo
	if pub.Exists {
		tables, err = adm.PublishedTables(ctx, cfg.Publication)
	} else {
		tables, err = adm.CandidateTables(ctx, cfg.Tables)
	}
	if err != nil {
		return nil
	}
	names := make([]source.TableName, len(tables))
	for i, t := range tables {
		names[i] = t.Name
	}
	have, err := targetTables(ctx, target, names, adopt)
	switch {
	case err != nil || len(have) == 0:
		return nil
	case adopt:
		return errors.New(adoptRowsText(target, have))
	}
	return errors.New(foreignTablesText(target, have))
}

// sameDatabase reports whether the PostgreSQL target is the source's own
// database: the same server (its start time and port) and database name.
// Its tables are the source's: walmirror would write into what it reads
// (helper-87: run said to drop them in the target, and with
// --adopt-tables waited on its own lock). False when either cannot be
// asked; run and check report that themselves.
func sameDatabase(ctx context.Context, sourceDSN, target string) bool {
	const q = `SELECT pg_catalog.pg_postmaster_start_time()::text || ' ' || pg_catalog.current_setting('port') || ' ' || pg_catalog.current_database()`
	var ids [2]string
	var wg sync.WaitGroup
	for i, dsn := range []string{sourceDSN, target} {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if err := conn.QueryRow(ctx, q).Scan(&ids[i]); err != nil {
				ids[i] = ""
			}
		})
	}
	wg.Wait()
	return ids[0] != "" && ids[0] == ids[1]
}

// sameDatabaseText says that target is the source's own database.
func sameDatabaseText(target string) string {
	return fmt.Sprintf("%s is the source's own database (the same server and database as --source): a copy's tables would be the tables it copies; point --target at another database", redactTarget(target))
}

// openDuckDBReadOnly opens a DuckDB file to look at it: read-only, and
// with no extension installed or loaded for it (an SQLite file given as a
// DuckDB target made DuckDB download its SQLite extension, helper-122).
// The file is attached, not named in the DSN, which a "?" in its path cut
// short (helper-139).
func openDuckDBReadOnly(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // USE holds for the one connection
	for _, q := range []string{"ATTACH '" + strings.ReplaceAll(path, "'", "''") + "' AS walmirror_look (READ_ONLY)", "USE walmirror_look"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// closedSchemas returns the schemas of tables that exist in a PostgreSQL
// target and in which its role may not create tables, quoted.
func closedSchemas(ctx context.Context, target string, tables []source.TableName) ([]string, error) {
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("connect to target %s: %w", redactTarget(target), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schemas []string
	for _, t := range tables {
		if !slices.Contains(schemas, t.Schema) {
			schemas = append(schemas, t.Schema)
		}
	}
	rows, err := conn.Query(ctx, `SELECT format('%I', s) FROM unnest($1::text[]) s
		WHERE to_regnamespace(format('%I', s)) IS NOT NULL AND NOT has_schema_privilege(to_regnamespace(format('%I', s)), 'CREATE') ORDER BY 1`, schemas)
	if err != nil {
		return nil, fmt.Errorf("read target %s: %w", redactTarget(target), err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

package verify

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/sqlite"
)

// SQLReader reads a SQLite or DuckDB copy through database/sql, in one
// read transaction: every table as of one moment.
type SQLReader struct {
	db     *sql.DB // closed by Close when the reader opened it
	conn   *sql.Conn
	duckdb bool
	// catalog is the DuckDB copy's catalog, quoted: table names are
	// qualified with it, since a two-part name whose schema is also a
	// catalog's name ("temp", "system", "memory", "walmirror") is ambiguous.
	catalog string
	// hashFuncs are the hash functions registered on conn, by their hash
	// codes (DuckDB: sqlsum.go).
	hashFuncs map[string]bool
	// twinConn is a second connection of a SQLite copy in a read
	// transaction seeing what conn's sees (twin), once tried.
	twinConn  *sql.Conn
	twinTried bool
}

// twin returns a second connection to a SQLite copy that this reader
// opened, in a read transaction that sees exactly what the reader's own
// does, or nil. Both read the copy's state table (walmirror's position,
// and the copies in progress): every commit into the copy changes it, so
// equal states are one state of the copy (a copy that moved on between
// the two, as one walmirror run writes to, gets no twin).
func (r *SQLReader) twin(ctx context.Context) *sql.Conn {
	if r.duckdb || r.db == nil || r.twinTried {
		return r.twinConn
	}
	r.twinTried = true
	state := func(c *sql.Conn) (string, error) {
		rows, err := c.QueryContext(ctx, `SELECT * FROM _walmirror_state`)
		if err != nil {
			return "", err
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%#v\n", vals)
		}
		return b.String(), rows.Err()
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		conn.Close()
		return nil
	}
	mine, err1 := state(r.conn)
	theirs, err2 := state(conn)
	if err1 != nil || err2 != nil || mine != theirs || mine == "" {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		conn.Close()
		return nil
	}
	r.twinConn = conn
	return conn
}

// OpenSQLite opens a SQLite copy read-only and starts the read transaction.
func OpenSQLite(ctx context.Context, path string) (*SQLReader, error) {
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro&_busy_timeout=10000"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("open SQLite target %q: %w", path, err)
	}
	r, err := begin(ctx, db, "BEGIN", false)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite target %q: %w", path, err)
	}
	r.db = db
	return r, nil
}

// DuckDB reads through a DuckDB instance that has the copy's catalog as its
// current one (duckdb.Sink's DB). It does not close db.
func DuckDB(ctx context.Context, db *sql.DB) (*SQLReader, error) {
	r, err := begin(ctx, db, "BEGIN TRANSACTION", true)
	if err != nil {
		return nil, fmt.Errorf("read DuckDB target: %w", err)
	}
	var catalog string
	if err := r.conn.QueryRowContext(ctx, "SELECT current_database()").Scan(&catalog); err != nil {
		r.Close()
		return nil, fmt.Errorf("read DuckDB target: %w", err)
	}
	r.catalog = quoteIdent(catalog)
	return r, nil
}

func begin(ctx context.Context, db *sql.DB, stmt string, duck bool) (*SQLReader, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		conn.Close()
		return nil, err
	}
	return &SQLReader{conn: conn, duckdb: duck}, nil
}

// Close ends the read transaction.
func (r *SQLReader) Close() error {
	if r.twinConn != nil {
		_, _ = r.twinConn.ExecContext(context.Background(), "ROLLBACK")
		r.twinConn.Close()
	}
	_, _ = r.conn.ExecContext(context.Background(), "ROLLBACK")
	err := r.conn.Close()
	if r.db != nil {
		if cerr := r.db.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Scan reads the copy of t: in SQLite the table sqlite.TableName names, in
// DuckDB the table of the same schema and name.
func (r *SQLReader) Scan(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error {
	return r.scan(ctx, t, sorted, "", fn)
}

// name is the copy's table for t, quoted.
func (r *SQLReader) name(t *Table) string {
	if r.duckdb {
		return r.catalog + "." + quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
	}
	return quoteIdent(sqlite.TableName(t.Schema, t.Name))
}

// columnTypes returns the copy's columns of t by lower-case name, with
// their DuckDB types ("" in SQLite).
func (r *SQLReader) columnTypes(ctx context.Context, t *Table) (map[string]string, error) {
	if r.duckdb {
		return r.duckTypes(ctx, t)
	}
	return r.sqliteColumns(ctx, sqlite.TableName(t.Schema, t.Name))
}

func (r *SQLReader) scan(ctx context.Context, t *Table, sorted bool, where string, fn func(Row) error) error {
	return r.scanFiltered(ctx, t, sorted, where, nil, fn)
}

// scanFiltered is scan of the rows keep (nil: every row) takes, given the
// values the driver read.
func (r *SQLReader) scanFiltered(ctx context.Context, t *Table, sorted bool, where string, keep func([]any) bool, fn func(Row) error) error {
	name := r.name(t)
	var types map[string]string // DuckDB: column → type
	var err error
	if r.duckdb {
		types, err = r.duckTypes(ctx, t)
	} else {
		types, err = r.sqliteColumns(ctx, sqlite.TableName(t.Schema, t.Name))
	}
	if err != nil {
		return err
	}
	if len(types) == 0 {
		return fmt.Errorf("%s: %w", name, ErrNoTable)
	}
	exprs := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		typ, ok := types[strings.ToLower(c.Name)]
		if !ok {
			return fmt.Errorf("the copy's table %s has no column %q", name, c.Name)
		}
		exprs[i] = duckExpr(quoteIdent(c.Name), typ)
	}
	q := "SELECT " + strings.Join(exprs, ", ") + " FROM " + name
	if where != "" {
		q += " WHERE " + where
	}
	if sorted {
		keys := make([]string, len(t.keys))
		for i, k := range t.keys {
			keys[i] = quoteIdent(t.Columns[k].Name) // both sort text byte-wise by default
		}
		q += " ORDER BY " + strings.Join(keys, ", ")
	}
	rows, err := r.conn.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer rows.Close()
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var b rowBuilder
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if keep != nil && !keep(vals) {
			continue
		}
		b.reset()
		for i, v := range vals {
			b.value(t.cols[i], v)
		}
		if err := fn(b.row()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// duckTypes returns the DuckDB table's column types by lower-case name.
func (r *SQLReader) duckTypes(ctx context.Context, t *Table) (map[string]string, error) {
	rows, err := r.conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = ? AND table_name = ?`, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", t.QualifiedName(), err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		types[strings.ToLower(name)] = typ
	}
	return types, rows.Err()
}

// sqliteColumns returns the SQLite table's columns by lower-case name.
func (r *SQLReader) sqliteColumns(ctx context.Context, table string) (map[string]string, error) {
	rows, err := r.conn.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		cols[strings.ToLower(name)] = ""
	}
	return cols, rows.Err()
}

// duckExpr reads a DuckDB column so that nothing is lost on the way to Go:
// the driver returns TIME without 24:00:00, TIMETZ without its offset and
// JSON decoded, so those are read as their text.
func duckExpr(col, typ string) string {
	switch typ {
	case "TIME WITH TIME ZONE":
		return duckTimeTZText(col)
	case "TIME WITH TIME ZONE[]":
		return "list_transform(" + col + ", lambda x: " + duckTimeTZText("x") + ")"
	case "JSON", "TIME":
		return "CAST(" + col + " AS VARCHAR)"
	case "JSON[]", "TIME[]":
		return "CAST(" + col + " AS VARCHAR[])"
	}
	return col
}

// duckTimeTZText is DuckDB TIMETZ x as text PostgreSQL reads back exactly:
// its time, then its offset as ±HH:MM:SS. DuckDB keeps the offset to the
// second, but its VARCHAR cast prints an offset of whole hours plus
// seconds wrongly ('00:00:00-00:00:01' as '00:00:00-00:01'), so a copy
// holding it verified different.
func duckTimeTZText(x string) string {
	tz := "date_part('timezone', " + x + ")"
	part := func(e string) string { return "lpad(CAST(" + e + " AS VARCHAR), 2, '0')" }
	return "(CAST(CAST(" + x + " AS TIME) AS VARCHAR) || CASE WHEN " + tz + " < 0 THEN '-' ELSE '+' END || " +
		part("abs("+tz+") // 3600") + " || ':' || " + part("abs("+tz+") % 3600 // 60") + " || ':' || " + part("abs("+tz+") % 60") + ")"
}

var _ Reader = (*SQLReader)(nil)

// Position reads the copy's stored position in the read transaction (the
// first read of a SQLite or DuckDB transaction fixes what it sees).
func (r *SQLReader) Position(ctx context.Context) (lsn.LSN, error) {
	q := `SELECT lsn FROM _walmirror_state WHERE id = 1`
	if r.duckdb {
		q = `SELECT CAST(lsn AS BIGINT) FROM main._walmirror_state WHERE id = 1`
	}
	var l int64
	if err := r.conn.QueryRowContext(ctx, q).Scan(&l); err != nil {
		return 0, err
	}
	return lsn.LSN(l), nil
}

var _ PositionReader = (*SQLReader)(nil)

// Kept lists walmirror's tables in the copy that no published table maps
// to (their stored source table forgotten: it left the publication, or was
// dropped, or its copy was moved aside), leaving out those a published
// table's copy is named as (an older walmirror stored no source table).
func (r *SQLReader) Kept(ctx context.Context, published []*schema.Table) ([]string, error) {
	q := `SELECT name FROM _walmirror_tables WHERE relid IS NULL ORDER BY 1`
	if r.duckdb {
		q = `SELECT schema_name || '.' || table_name FROM main._walmirror_tables WHERE relid IS NULL ORDER BY 1`
	}
	rows, err := r.conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	live := make(map[string]bool, len(published))
	for _, t := range published {
		if r.duckdb {
			live[t.Schema+"."+t.Name] = true
		} else {
			live[sqlite.TableName(t.Schema, t.Name)] = true
		}
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		if !live[n] {
			names = append(names, n)
		}
	}
	return names, rows.Err()
}

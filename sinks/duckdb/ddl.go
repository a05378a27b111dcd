package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/internal/sqlrows"
	"github.com/walmirror/walmirror/schema"
)

// Catalog is the name under which the sink attaches the target file. Its own
// tables live in Catalog's schema "main"; source tables keep their schema
// and table names: public.t is walmirror.public.t.
const Catalog = "walmirror"

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// literal quotes a SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TableName is the quoted, catalog-qualified DuckDB name of a source table.
func TableName(schemaName, table string) string {
	return quote(Catalog) + "." + quote(schemaName) + "." + quote(table)
}

// colPlan is how one source column is written: the plan of its source type,
// and the SQL giving the target column's value from the staged one.
type colPlan struct {
	*plan
	target   string              // the target column's actual type
	stage    duckdb.TypeInfo     // appender column type
	toTarget func(string) string // SQL: staged value → target column value
}

// tableInfo is what the sink derives once per table shape and transaction.
type tableInfo struct {
	t      *schema.Table
	name   string   // TableName
	label  string   // for messages
	cols   []string // quoted column names
	plans  []colPlan
	keyIdx []int
	sql    map[string]string // built statements, by purpose
	// rows estimates the table's size (DuckDB's estimate when the plan
	// was made plus rows inserted since): what a statement over it may
	// scan (SerialSmallWrites).
	rows int64
}

// columnInfo describes an existing target column.
type columnInfo struct {
	name, typ string
}

// findColumn finds a column by name: exactly, else ignoring case (DuckDB
// names are case-insensitive).
func findColumn(cols []columnInfo, name string) (columnInfo, bool) {
	for _, c := range cols {
		if c.name == name {
			return c, true
		}
	}
	for _, c := range cols {
		if strings.EqualFold(c.name, name) {
			return c, true
		}
	}
	return columnInfo{}, false
}

// info returns the write plan for a table shape, reading the target
// table's column types: a column whose type was changed to VARCHAR in the
// target (by hand, to keep values a native type cannot hold) gets the
// PostgreSQL text form; another differing type gets a cast.
func (s *Sink) info(ctx context.Context, t *schema.Table) (*tableInfo, error) {
	if ti, ok := s.tables[t]; ok {
		return ti, nil
	}
	ti := &tableInfo{t: t, name: TableName(t.Schema, t.Name), label: t.QualifiedName(),
		keyIdx: t.KeyIndexes(), sql: map[string]string{}}
	existing, err := s.columns(ctx, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ti.name, err)
	}
	if len(existing) == 0 {
		return nil, fmt.Errorf("target table %s for %s does not exist", ti.name, ti.label)
	}
	for _, c := range t.Columns {
		ec, ok := findColumn(existing, c.Name)
		if !ok {
			return nil, fmt.Errorf("target table %s has no column %q", ti.name, c.Name)
		}
		cp := colPlanFor(c, ec.typ)
		if cp.stage, err = cp.stageType(); err != nil {
			return nil, fmt.Errorf("column %q of %s: %w", c.Name, ti.label, err)
		}
		ti.cols = append(ti.cols, quote(c.Name))
		ti.plans = append(ti.plans, cp)
	}
	if ti.rows, err = s.tableSize(ctx, t.Schema, t.Name); err != nil {
		return nil, fmt.Errorf("inspect %s: size: %w", ti.name, err)
	}
	s.tables[t] = ti
	return ti, nil
}

func colPlanFor(c schema.Column, actual string) colPlan {
	p := planFor(c.TypeID, c.Typmod)
	cp := colPlan{plan: p, target: actual, toTarget: p.expr}
	switch {
	case actual == p.typ:
	case actual == "VARCHAR":
		cp.plan, cp.toTarget = textPlan, textPlan.expr
	default:
		cp.toTarget = func(ref string) string { return "CAST(" + p.expr(ref) + " AS " + actual + ")" }
	}
	return cp
}

// NameProblem says why source table t cannot be copied into DuckDB as it
// is named and shaped, or nil: the checks of the table alone that the sink
// makes before it changes anything (walmirror check makes them too).
// Tables and schemas that DuckDB cannot tell apart are told by Folded.
func NameProblem(t *schema.Table) error {
	if strings.EqualFold(t.Schema, "main") && strings.HasPrefix(strings.ToLower(t.Name), "_walmirror_") {
		return fmt.Errorf("source table %s maps to DuckDB table %s, which is reserved for walmirror's own tables: rename it in the source, or leave it out of the publication", t.QualifiedName(), TableName(t.Schema, t.Name))
	}
	seen := map[string]string{}
	for _, c := range t.Columns {
		l := strings.ToLower(c.Name)
		if other, dup := seen[l]; dup {
			return fmt.Errorf("source table %s has columns %q and %q, which DuckDB does not tell apart (DuckDB names ignore letter case): rename one of them in the source, or leave the table out of the publication", t.QualifiedName(), other, c.Name)
		}
		seen[l] = c.Name
		if !t.HasKey() && l == "rowid" && t.Identity == schema.IdentityFull {
			return fmt.Errorf("source table %s (REPLICA IDENTITY FULL) has a column named %q, which hides DuckDB's rowid that walmirror needs to change exactly one of several equal rows: rename that column in the source, or give the table a replica identity with a key (a primary key and REPLICA IDENTITY DEFAULT, or REPLICA IDENTITY USING INDEX)", t.QualifiedName(), c.Name)
		}
	}
	return nil
}

// Folded gives the names DuckDB takes for schemaName and for table in it,
// and for every name it does not tell from them (letter case, as the
// sink's checks compare names).
func Folded(schemaName, table string) (string, string) {
	f := fold(schemaName, table)
	return f.schema, f.table
}

// EnsureTable creates the schema and table on first sight, or adds columns
// the source gained. Columns the source dropped are kept with their data
// (new rows get NULL there). A changed source type converts the target
// column when every stored value converts; otherwise the column is kept and
// values are cast to it on write.
//
// Tables have no PRIMARY KEY constraint (DuckDB's ART index slows bulk
// appends several-fold); the key columns are named in the table's comment,
// and the sink itself refuses inserts of keys that are already there.
func (s *Sink) EnsureTable(ctx context.Context, t *schema.Table) error {
	name := TableName(t.Schema, t.Name)
	s.touch(t) // columns filled, tables rebuilt or renamed
	if err := NameProblem(t); err != nil {
		return err
	}
	// DuckDB names ignore letter case; PostgreSQL's do not. Refuse, rather
	// than share, a schema or table DuckDB cannot tell from another one.
	var other string
	err := s.conn.QueryRowContext(ctx, `SELECT schema_name FROM duckdb_schemas()
		WHERE database_name = ? AND lower(schema_name) = lower(?) AND schema_name <> ?`, Catalog, t.Schema, t.Schema).Scan(&other)
	if err == nil {
		return fmt.Errorf("source table %s needs DuckDB schema %s, which DuckDB does not tell apart from the existing schema %s (DuckDB names ignore letter case): rename one of the two schemas in the source, or leave the tables of one out of the publication", t.QualifiedName(), quote(t.Schema), quote(other))
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("inspect schemas: %w", err)
	}
	cat, err := s.catalog(ctx)
	if err != nil {
		return err
	}
	other, clash := cat.caseTwin(t.Schema, t.Name)
	if clash && t.Change != nil && t.Change.FromName == other && t.Change.FromSchema == t.Schema {
		clash = false // this very table, renamed in letter case only (change renames it)
	}
	if clash {
		return fmt.Errorf("source table %s maps to DuckDB table %s, which DuckDB does not tell apart from the existing table %s (DuckDB names ignore letter case): rename one of the two tables in the source so that their names differ in more than letter case, or leave one out of the publication; a change the WAL already holds under the clashing name fails again until that table is dropped in the source, or the copy is made again into a fresh target", t.QualifiedName(), name, TableName(t.Schema, other))
	}

	readded, err := s.change(ctx, t, name)
	if err != nil {
		return err
	}
	existing, err := s.columns(ctx, t.Schema, t.Name)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", name, err)
	}
	comment := tableComment(t)
	if len(existing) > 0 {
		adopted, err := s.claim(ctx, t, name)
		if err != nil {
			return err
		}
		if t.Replacing && t.Change != nil && t.Change.Unrecorded && !adopted {
			remade, err := s.remake(ctx, t, name, existing)
			if err != nil {
				return err
			}
			if remade {
				if existing, err = s.columns(ctx, t.Schema, t.Name); err != nil {
					return fmt.Errorf("inspect %s: %w", name, err)
				}
			}
		}
	}
	if len(existing) == 0 {
		for _, q := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + quote(Catalog) + "." + quote(t.Schema),
			createTable(t, name, -1),
			"COMMENT ON TABLE " + name + " IS " + literal(comment),
			// Recorded already when the table was dropped behind walmirror's
			// back (verify --repair creates it again).
			"INSERT OR IGNORE INTO " + ownedTable + " (schema_name, table_name) VALUES (" + literal(t.Schema) + ", " + literal(t.Name) + ")",
		} {
			if _, err := s.conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("create table %s: %w", name, err)
			}
		}
		s.fresh[name], s.created[name] = true, true
		if cat, err = s.catalog(ctx); err != nil {
			return err
		}
		cat.add(t.Schema, t.Name, comment, 0)
		s.log.Info("created target table", "table", name, "columns", len(t.Columns))
		return nil
	}

	changed := false
	filled := readded // added columns whose existing rows get the source's default
	if s.altered[name] {
		added, rebuilt, err := s.rebuild(ctx, t, name, existing)
		if err != nil {
			return err
		}
		if rebuilt {
			changed = true
			for _, i := range added {
				if t.Fills[t.Columns[i].Name].Value.State == schema.Text {
					filled = append(filled, i)
				}
			}
			if existing, err = s.columns(ctx, t.Schema, t.Name); err != nil {
				return fmt.Errorf("inspect %s: %w", name, err)
			}
		}
	}
	for i, c := range t.Columns {
		want := planFor(c.TypeID, c.Typmod).typ
		ec, ok := findColumn(existing, c.Name)
		switch {
		case !ok:
			if err := t.LostColumn(ctx, c.Name, s.Shape); err != nil {
				return err
			}
			fill := t.Fills[c.Name]
			if err := fill.Check(t, c.Name); err != nil {
				return err
			}
			if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+name+" ADD COLUMN "+quote(c.Name)+" "+want); err != nil {
				return fmt.Errorf("add column %q to %s: %w", c.Name, name, err)
			}
			if fill.Value.State == schema.Text {
				filled = append(filled, i)
			}
			changed = true
			s.log.Info("added target column", "table", name, "column", c.Name, "type", want, "existing_rows", fill)
		case ec.name != c.Name:
			return fmt.Errorf("source column %q of %s maps to the existing DuckDB column %q, a different name that DuckDB does not tell apart (DuckDB names ignore letter case)", c.Name, t.QualifiedName(), ec.name)
		case ec.typ == want:
		case ec.typ == "VARCHAR":
			// Kept as text: written as PostgreSQL's text form.
			s.log.Debug("target column is VARCHAR: values are stored as PostgreSQL text", "table", name, "column", c.Name, "source_type", want)
		default:
			if err := s.shedKeyIndex(ctx, t.Schema, t.Name); err != nil {
				return err
			}
			ok, err := s.retype(ctx, name, c.Name, want, convertFrom(t, c))
			if err != nil {
				return err
			}
			if ok {
				changed = true
				s.log.Info(t.RetypeCause(c.Name)+": target column converted", "table", name, "column", c.Name, "from", ec.typ, "to", want)
			} else {
				s.log.Warn(t.RetypeCause(c.Name)+" but stored values do not all convert: target column kept, new values are cast to it",
					"table", name, "column", c.Name, "target_type", ec.typ, "source_type", want)
			}
		}
	}
	for _, ec := range existing {
		switch {
		case hasColumnFold(t, ec.name):
		case !s.DropColumns:
			s.log.Log(ctx, keptLevel(t, ec.name), "target column no longer in the source (dropped, or left out by the publication's column list): kept, NULL in rows written from now on (in every row when the table is copied again; --drop-columns drops it)", "table", name, "column", ec.name)
		default:
			// (A table this transaction changed was rebuilt without it.)
			if err := s.shedKeyIndex(ctx, t.Schema, t.Name); err != nil {
				return err
			}
			if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+name+" DROP COLUMN "+quote(ec.name)); err != nil {
				return fmt.Errorf("drop column %q of %s, which the source dropped: %w", ec.name, name, err)
			}
			changed = true
			s.log.Info("dropped target column the source dropped", "table", name, "column", ec.name)
		}
	}
	if cat, err = s.catalog(ctx); err != nil {
		return err
	}
	ct := cat.table(t.Schema, t.Name)
	if ct == nil {
		return fmt.Errorf("inspect %s: not in the catalog", name)
	}
	if ct.comment != comment {
		// The comment names the key: an index on another key goes.
		if err := s.shedKeyIndex(ctx, t.Schema, t.Name); err != nil {
			return err
		}
		if _, err := s.conn.ExecContext(ctx, "COMMENT ON TABLE "+name+" IS "+literal(comment)); err != nil {
			return fmt.Errorf("comment on %s: %w", name, err)
		}
		ct.comment = comment
	}
	if changed {
		// Plans of other shapes of this table read column types: redo them.
		for shape, ti := range s.tables {
			if ti.name == name {
				delete(s.tables, shape)
			}
		}
	}
	return s.fillAdded(ctx, t, filled)
}

// rebuild gives table name (whose committed rows this transaction changed)
// the columns t adds and the types t changes by copying it into a new table
// that replaces it, all inside the open transaction: DuckDB cannot commit an
// ALTER TABLE of such a table. It reports the columns of t it added (NULL
// so far) and whether it rebuilt at all.
func (s *Sink) rebuild(ctx context.Context, t *schema.Table, name string, existing []columnInfo) (added []int, rebuilt bool, err error) {
	if err := s.useThreads(ctx, math.MaxInt64); err != nil { // it copies the whole table
		return nil, false, err
	}
	defs := make([]string, 0, len(existing)+len(t.Columns))
	sel := make([]string, 0, cap(defs))
	need := false
	for _, ec := range existing {
		if s.DropColumns && !hasColumnFold(t, ec.name) {
			need = true // dropped by the source: left out
			continue
		}
		typ, expr := ec.typ, quote(ec.name)
		for _, c := range t.Columns {
			if !strings.EqualFold(c.Name, ec.name) {
				continue
			}
			if want := planFor(c.TypeID, c.Typmod).typ; want != ec.typ && ec.typ != "VARCHAR" {
				var bad int64
				q := "SELECT count(*) FROM " + name + " WHERE " + expr + " IS NOT NULL AND TRY_CAST(" + expr + " AS " + want + ") IS NULL"
				if err := s.conn.QueryRowContext(ctx, q).Scan(&bad); err != nil {
					return nil, false, fmt.Errorf("check values of %s.%s: %w", name, expr, err)
				}
				if bad == 0 {
					typ, expr, need = want, "CAST("+expr+" AS "+want+")", true
				}
			}
		}
		defs = append(defs, quote(ec.name)+" "+typ)
		sel = append(sel, expr)
	}
	for i, c := range t.Columns {
		if _, ok := findColumn(existing, c.Name); !ok {
			if err := t.Fills[c.Name].Check(t, c.Name); err != nil {
				return nil, false, err
			}
			defs = append(defs, quote(c.Name)+" "+planFor(c.TypeID, c.Typmod).typ)
			sel = append(sel, "NULL")
			added, need = append(added, i), true
		}
	}
	if !need {
		return nil, false, nil
	}
	stmts, err := s.swapStmts(ctx, t.Schema, t.Name, defs, sel)
	if err != nil {
		return nil, false, err
	}
	for _, q := range stmts {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return nil, false, fmt.Errorf("rebuild %s with its new columns: %w", name, err)
		}
	}
	// Plans of any shape of this table name the old one.
	s.forgetTable(name)
	s.dropCatalog()
	s.log.Info("rebuilt target table with the source's new shape (its rows were changed earlier in this transaction)", "table", name)
	return added, true, nil
}

// swapStmts copy table schemaName.table into a new table of the columns
// defs, its rows as sel reads them, which then takes its place: how the
// sink changes what DuckDB will not alter in place. The comment (the key)
// does not go with it.
func (s *Sink) swapStmts(ctx context.Context, schemaName, table string, defs, sel []string) ([]string, error) {
	tmp, err := s.rebuildName(ctx, schemaName, table)
	if err != nil {
		return nil, err
	}
	name := TableName(schemaName, table)
	return []string{
		"CREATE TABLE " + TableName(schemaName, tmp) + " (" + strings.Join(defs, ", ") + ")",
		"INSERT INTO " + TableName(schemaName, tmp) + " SELECT " + strings.Join(sel, ", ") + " FROM " + name,
		"DROP TABLE " + name,
		"ALTER TABLE " + TableName(schemaName, tmp) + " RENAME TO " + quote(table),
	}, nil
}

// rebuildName is a name for table's stand-in while it is made again, free
// in schemaName: a published table may be named _walmirror_rebuild_<table>
// too (DuckDB names ignore case), and dropping that name first lost its
// copy (helper-141). The stand-in lives only inside the target
// transaction, so nothing is left to clear from a crash.
func (s *Sink) rebuildName(ctx context.Context, schemaName, table string) (string, error) {
	for i := 0; ; i++ {
		tmp := "_walmirror_rebuild_" + table
		if i > 0 {
			tmp += "_" + strconv.Itoa(i)
		}
		if taken, err := s.nameTaken(ctx, schemaName, tmp); err != nil || !taken {
			return tmp, err
		}
	}
}

// nameTaken says whether schemaName holds a table or view named name, in
// any letter case (DuckDB's names ignore it).
func (s *Sink) nameTaken(ctx context.Context, schemaName, name string) (bool, error) {
	var n int
	err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM (
			SELECT database_name, schema_name, table_name AS name FROM duckdb_tables()
			UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views())
		WHERE database_name = ? AND lower(schema_name) = lower(?) AND lower(name) = lower(?)`, Catalog, schemaName, name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for a free name in %s: %w", quote(schemaName), err)
	}
	return n > 0, nil
}

// comment reads the comment of table schemaName.table (the key the sink
// noted there): "" when it has none or does not exist.
func (s *Sink) comment(ctx context.Context, schemaName, table string) (string, error) {
	var c sql.NullString
	if err := s.conn.QueryRowContext(ctx, `SELECT comment FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?`,
		Catalog, schemaName, table).Scan(&c); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("read the comment of %s: %w", TableName(schemaName, table), err)
	}
	return c.String, nil
}

// fillAdded writes into every existing row the value rows that existed
// before the source added each column hold there (its missing value),
// converted as any row value is.
func (s *Sink) fillAdded(ctx context.Context, t *schema.Table, cols []int) error {
	if len(cols) == 0 {
		return nil
	}
	ti, err := s.info(ctx, t)
	if err != nil {
		return err
	}
	// Committed rows changed: a later ALTER TABLE in this transaction must
	// rebuild the table instead (DuckDB cannot commit it), as after Write.
	s.altered[TableName(t.Schema, t.Name)] = true
	row := make(schema.Tuple, len(t.Columns))
	for _, i := range cols {
		f := field{col: i, of: 'n'}
		row[i] = t.Fills[t.Columns[i].Name].Value
		q := "UPDATE " + ti.name + " SET " + quote(t.Columns[i].Name) + " = " + ti.ref(f) + " FROM s"
		err := s.run(ctx, ti, q, []field{f}, 1, func(a *duckdb.Appender) error {
			return s.appendTuples(a, ti, []field{f}, []schema.Tuple{row}, complete)
		})
		if err != nil {
			return fmt.Errorf("fill added column %q of %s: %w", t.Columns[i].Name, ti.name, err)
		}
	}
	return nil
}

func hasColumnFold(t *schema.Table, name string) bool {
	for _, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return true
		}
	}
	return false
}

// convertFrom is how column c's stored values read in its new type when
// PostgreSQL reinterprets them rather than casting: int4 and oid are binary
// coercible, so ALTER ... TYPE keeps the bits (no rewrite) and -1 reads as
// the oid 4294967295. "" when the type's cast says it.
func convertFrom(t *schema.Table, c schema.Column) string {
	if t.Change == nil {
		return ""
	}
	from, ok := t.Change.Retyped[c.Name]
	if !ok {
		return ""
	}
	col := quote(c.Name)
	switch {
	case from.TypeID == schema.OIDInt4 && c.TypeID == schema.OIDOid:
		return "CASE WHEN " + col + " < 0 THEN " + col + " + 4294967296 ELSE " + col + " END"
	case from.TypeID == schema.OIDOid && c.TypeID == schema.OIDInt4:
		return "CASE WHEN " + col + " > 2147483647 THEN " + col + " - 4294967296 ELSE " + col + " END"
	}
	return ""
}

// retype converts a column to a new type if every stored value converts
// (checked first: a failing ALTER would abort the transaction): with the
// expression from (convertFrom), else with the type's cast.
func (s *Sink) retype(ctx context.Context, table, column, typ, from string) (bool, error) {
	col := quote(column)
	expr, using := col, ""
	if from != "" {
		expr, using = "("+from+")", " USING ("+from+")"
	}
	var bad int64
	q := "SELECT count(*) FROM " + table + " WHERE " + col + " IS NOT NULL AND TRY_CAST(" + expr + " AS " + typ + ") IS NULL"
	if err := s.conn.QueryRowContext(ctx, q).Scan(&bad); err != nil {
		return false, fmt.Errorf("check values of %s.%s: %w", table, col, err)
	}
	if bad > 0 {
		return false, nil
	}
	if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+table+" ALTER COLUMN "+col+" SET DATA TYPE "+typ+using); err != nil {
		return false, fmt.Errorf("change type of %s.%s to %s: %w", table, col, typ, err)
	}
	return true, nil
}

// tableComment records where a table comes from and its key: the target has
// no PRIMARY KEY constraint to say so.
func tableComment(t *schema.Table) string {
	var sb strings.Builder
	sb.WriteString("walmirror copy of " + t.QualifiedName())
	if t.HasKey() {
		sb.WriteString("; key (")
		for i, k := range t.KeyIndexes() {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(quote(t.Columns[k].Name))
		}
		sb.WriteString(")")
	} else if t.Identity == schema.IdentityFull {
		sb.WriteString("; no key: rows matched on all columns (REPLICA IDENTITY FULL)")
	} else {
		sb.WriteString("; no key: inserts only")
	}
	return sb.String()
}

var ownedTable = quote(Catalog) + ".main._walmirror_tables"

// claim makes sure the existing table name is walmirror's: created by it,
// or, with Adopt, an empty table it now takes over (adopted).
func (s *Sink) claim(ctx context.Context, t *schema.Table, name string) (adopted bool, err error) {
	var n int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+ownedTable+" WHERE schema_name = ? AND table_name = ?", t.Schema, t.Name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up owner of %s: %w", name, err)
	}
	if n > 0 {
		return false, nil
	}
	if !s.Adopt {
		return false, schema.NotOwned(t, name)
	}
	var rows int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+name+" LIMIT 1)").Scan(&rows); err != nil {
		return false, fmt.Errorf("inspect %s: %w", name, err)
	}
	if rows > 0 {
		return false, schema.NotEmpty(t, name)
	}
	if _, err := s.conn.ExecContext(ctx, "INSERT INTO "+ownedTable+" (schema_name, table_name) VALUES (?, ?)", t.Schema, t.Name); err != nil {
		return false, fmt.Errorf("record %s as walmirror's: %w", name, err)
	}
	s.log.Info("adopted existing target table", "table", name)
	return true, nil
}

// remake gives a table walmirror made for another source table (one
// dropped since, whose name t's source table took; or this one before it
// left the publication) the types of t's columns, as a new empty table:
// its rows are about to be replaced by a copy, and a VARCHAR column kept
// from the old table would hold the new one's integers as text. Columns t
// does not have are kept, empty. It reports whether it made the table
// again. An adopted table keeps the types its creator chose.
func (s *Sink) remake(ctx context.Context, t *schema.Table, name string, existing []columnInfo) (bool, error) {
	defs := make([]string, len(existing))
	need := false
	for i, ec := range existing {
		typ := ec.typ
		for _, c := range t.Columns {
			if strings.EqualFold(c.Name, ec.name) {
				typ = planFor(c.TypeID, c.Typmod).typ
			}
		}
		need = need || typ != ec.typ
		defs[i] = quote(ec.name) + " " + typ
	}
	if !need {
		return false, nil
	}
	free, err := s.rebuildName(ctx, t.Schema, t.Name)
	if err != nil {
		return false, err
	}
	tmp := TableName(t.Schema, free)
	for _, q := range []string{
		"CREATE TABLE " + tmp + " (" + strings.Join(defs, ", ") + ")",
		"DROP TABLE " + name,
		"ALTER TABLE " + tmp + " RENAME TO " + quote(t.Name),
	} {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return false, fmt.Errorf("make %s again with the types of the source table copied into it: %w", name, err)
		}
	}
	s.forgetTable(name)
	s.dropCatalog()
	s.fresh[name] = true
	s.log.Info("target table made again, empty, with the types of the source table now copied into it (it was made for another table of that name, or before the table left the publication)", "table", name)
	return true, nil
}

// change does to the target table what happened to the source table since
// the shape the target stored: a rename or move to another schema, renamed
// columns, columns dropped and added again (emptied here; it returns those
// whose existing rows get the new column's default, for fillAdded). Type
// changes follow in EnsureTable.
func (s *Sink) change(ctx context.Context, t *schema.Table, name string) ([]int, error) {
	c := t.Change
	if c.Empty() {
		return nil, nil
	}
	if c.FromName != "" {
		if c.Vacate && !(strings.EqualFold(c.FromSchema, t.Schema) && strings.EqualFold(c.FromName, t.Name)) {
			if err := s.vacate(ctx, t.Schema, t.Name); err != nil {
				return nil, err
			}
		}
		if err := s.move(ctx, t, TableName(c.FromSchema, c.FromName), name, c.FromSchema, c.FromName); err != nil {
			return nil, err
		}
	}
	has := func(col string) bool {
		cols, err := s.columns(ctx, t.Schema, t.Name)
		_, found := findColumn(cols, col)
		return err == nil && found // on an error the ALTER below says what is wrong
	}
	if len(c.Renamed) > 0 {
		if err := s.shedKeyIndex(ctx, t.Schema, t.Name); err != nil {
			return nil, err
		}
	}
	for to, from := range c.Renamed {
		// DuckDB's names are case-insensitive: a rename that changes only
		// case finds the column itself under its new name.
		if !strings.EqualFold(to, from) && has(to) {
			// A column the source dropped, kept here, has the new name.
			aside := schema.AsideName(to, 0, has)
			if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+name+" RENAME COLUMN "+quote(to)+" TO "+quote(aside)); err != nil {
				return nil, fmt.Errorf("move kept column %q of %s aside to %q: %w", to, name, aside, err)
			}
			s.log.Warn("a renamed source column takes the name of a dropped one kept here: the kept one moves aside", "table", name, "column", to, "aside", aside)
		}
		if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+name+" RENAME COLUMN "+quote(from)+" TO "+quote(to)); err != nil {
			return nil, fmt.Errorf("rename column %q of %s to %q as the source did: %w", from, name, to, err)
		}
		s.forgetTable(name)
		s.log.Info("renamed target column as the source did", "table", name, "from", from, "to", to)
	}
	var filled []int
	for _, col := range c.Replaced() {
		if !has(col) {
			continue // an added column the target does not have yet
		}
		i := slices.IndexFunc(t.Columns, func(c schema.Column) bool { return c.Name == col })
		if i < 0 {
			continue
		}
		fill := t.Fills[col]
		if err := fill.Check(t, col); err != nil {
			return nil, err
		}
		if _, err := s.conn.ExecContext(ctx, "UPDATE "+name+" SET "+quote(col)+" = NULL"); err != nil {
			return nil, fmt.Errorf("reset re-added column %q of %s: %w", col, name, err)
		}
		// The new column may differ from the kept one in letter case only
		// (DROP COLUMN v, ADD COLUMN "V"): it takes the new spelling, or
		// every start stopped at "maps to the existing DuckDB column"
		// (helper-141).
		cols, err := s.columns(ctx, t.Schema, t.Name)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", name, err)
		}
		if ec, ok := findColumn(cols, col); ok && ec.name != col {
			if err := s.shedKeyIndex(ctx, t.Schema, t.Name); err != nil {
				return nil, err
			}
			if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+name+" RENAME COLUMN "+quote(ec.name)+" TO "+quote(col)); err != nil {
				return nil, fmt.Errorf("rename kept column %q of %s to the new column's %q: %w", ec.name, name, col, err)
			}
			s.forgetTable(name)
		}
		s.altered[name] = true
		if fill.Value.State == schema.Text {
			filled = append(filled, i)
		}
		s.log.Info(c.ReplacedReason(col), "table", name, "column", col, "existing_rows", fill)
	}
	return filled, nil
}

// vacate moves walmirror's table schemaName.table, which no source table's
// copy is any longer (see schema.Change.Vacate), aside for a renamed table
// to take the name. A table walmirror did not create stays, and the
// rename fails.
func (s *Sink) vacate(ctx context.Context, schemaName, table string) error {
	var held string
	err := s.conn.QueryRowContext(ctx, `SELECT t.table_name FROM duckdb_tables() t JOIN `+ownedTable+` w
		ON w.schema_name = t.schema_name AND w.table_name = t.table_name
		WHERE t.database_name = ? AND t.schema_name = ? AND lower(t.table_name) = lower(?)`, Catalog, schemaName, table).Scan(&held)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", TableName(schemaName, table), err)
	}
	var lookErr error
	aside := schema.AsideName(held, 0, func(n string) bool {
		taken, err := s.nameTaken(ctx, schemaName, n)
		lookErr = err // an error ends the search
		return taken && err == nil
	})
	if lookErr != nil {
		return lookErr
	}
	name := TableName(schemaName, held)
	stmts, err := s.renameStmts(ctx, schemaName, held, schemaName, aside)
	if err != nil {
		return err
	}
	stmts = append(stmts, "UPDATE "+ownedTable+" SET table_name = "+literal(aside)+" WHERE schema_name = "+literal(schemaName)+" AND table_name = "+literal(held))
	for _, q := range stmts {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("move %s, a copy no published table has, aside to %q: %w", name, aside, err)
		}
	}
	delete(s.fresh, name)
	s.forgetTable(name)
	s.dropCatalog()
	s.log.Warn("a renamed source table takes the name of a copy no published table has any more (its source table was dropped or left the publication): that copy moves aside", "table", name, "aside", aside)
	return nil
}

// MoveTable renames walmirror's table of source table schemaName.from to
// schemaName.to (for the engine: a table whose name another one took
// before its own rename was seen).
func (s *Sink) MoveTable(ctx context.Context, schemaName, from, to string) error {
	old := TableName(schemaName, from)
	var n int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+ownedTable+" WHERE schema_name = ? AND table_name = ?", schemaName, from).Scan(&n); err != nil {
		return fmt.Errorf("look up owner of %s: %w", old, err)
	}
	if n == 0 {
		return fmt.Errorf("%s is not walmirror's", old)
	}
	if c := s.verify[old]; c != nil {
		// Rows were loaded into it in this transaction: check their keys
		// under the name they were loaded with.
		if err := s.checkUnique(ctx, c); err != nil {
			return err
		}
		delete(s.verify, old)
	}
	name := TableName(schemaName, to)
	stmts, err := s.renameStmts(ctx, schemaName, from, schemaName, to)
	if err != nil {
		return err
	}
	stmts = append(stmts, "UPDATE "+ownedTable+" SET table_name = "+literal(to)+" WHERE schema_name = "+literal(schemaName)+" AND table_name = "+literal(from))
	for _, q := range stmts {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("rename %s to %q: %w", old, to, err)
		}
	}
	if s.altered[old] {
		s.altered[name] = true
	}
	if s.fresh[old] {
		s.fresh[name] = true
	}
	delete(s.fresh, old)
	s.forgetTable(old)
	s.dropCatalog()
	return nil
}

// move renames the target table old to name (another schema: copied there,
// as DuckDB cannot move a table between schemas), keeping it walmirror's.
func (s *Sink) move(ctx context.Context, t *schema.Table, old, name, fromSchema, fromName string) error {
	if c := s.verify[old]; c != nil {
		// Rows were loaded into it in this transaction: check their keys
		// under the name they were loaded with.
		if err := s.checkUnique(ctx, c); err != nil {
			return err
		}
		delete(s.verify, old)
	}
	stmts, err := s.renameStmts(ctx, fromSchema, fromName, t.Schema, t.Name)
	if err != nil {
		return err
	}
	stmts = append(stmts, "UPDATE "+ownedTable+" SET schema_name = "+literal(t.Schema)+", table_name = "+literal(t.Name)+
		" WHERE schema_name = "+literal(fromSchema)+" AND table_name = "+literal(fromName))
	for _, q := range stmts {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("rename table %s to %s as the source did: %w", old, name, err)
		}
	}
	if s.altered[old] {
		s.altered[name] = true
	}
	delete(s.fresh, old)
	s.forgetTable(old)
	s.dropCatalog()
	s.log.Info("renamed target table as the source did", "from", old, "to", name)
	return nil
}

// renameStmts returns the statements that rename table old to name
// (newSchema.newName). An ALTER TABLE ... RENAME TO of a table whose
// committed rows this transaction changed commits, but DuckDB cannot
// replay its WAL after a crash: the file cannot be opened ("Table with
// name ... does not exist"), or opens without the changes made before the
// rename (helper-58; TestRenameAfterChangesCrash). Such a table, like one
// moving to another schema (which DuckDB cannot do), is copied under the
// new name and dropped; its comment (the key) goes with it.
func (s *Sink) renameStmts(ctx context.Context, fromSchema, fromName, newSchema, newName string) ([]string, error) {
	old, name := TableName(fromSchema, fromName), TableName(newSchema, newName)
	// DuckDB renames no table an index depends on: such a table is copied
	// too, its index dropped with it (keyindex.go).
	indexed, err := s.hasKeyIndex(ctx, fromSchema, fromName)
	if err != nil {
		return nil, err
	}
	delete(s.keyIndex, old)
	if fromSchema == newSchema && !s.altered[old] && !indexed {
		return []string{"ALTER TABLE " + old + " RENAME TO " + quote(newName)}, nil
	}
	comment, err := s.comment(ctx, fromSchema, fromName)
	if err != nil {
		return nil, err
	}
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + quote(Catalog) + "." + quote(newSchema),
		"CREATE TABLE " + name + " AS SELECT * FROM " + old,
		"DROP TABLE " + old,
	}
	if comment != "" {
		stmts = append(stmts, "COMMENT ON TABLE "+name+" IS "+literal(comment))
	}
	return stmts, nil
}

// forgetTable drops the plans made for the table name, and what the sink
// knows of its key index.
func (s *Sink) forgetTable(name string) {
	delete(s.keyIndex, name)
	delete(s.indexWanted, name)
	for shape, ti := range s.tables {
		if ti.name == name {
			delete(s.tables, shape)
		}
	}
}

// Shape returns the source shape stored for the table mirroring relid.
// The stored shapes are read once and then kept with the sink's own
// changes to them (SetShape, ForgetShape; dropped on a rollback): DuckDB
// has no index on relid, and a run's first look at the publication asks
// for every table's (3,000 look-ups took 6 s).
func (s *Sink) Shape(ctx context.Context, relid uint32) (string, bool, error) {
	if s.shapes == nil {
		rows, err := s.conn.QueryContext(ctx, "SELECT relid, shape FROM "+ownedTable+" WHERE relid IS NOT NULL AND shape IS NOT NULL")
		if err != nil {
			return "", false, fmt.Errorf("read stored shapes: %w", err)
		}
		defer rows.Close()
		shapes := map[uint32]string{}
		for rows.Next() {
			var id int64
			var shape string
			if err := rows.Scan(&id, &shape); err != nil {
				return "", false, fmt.Errorf("read stored shapes: %w", err)
			}
			shapes[uint32(id)] = shape
		}
		if err := rows.Err(); err != nil {
			return "", false, fmt.Errorf("read stored shapes: %w", err)
		}
		s.shapes = shapes
	}
	shape, ok := s.shapes[relid]
	return shape, ok, nil
}

// ShapeIDs lists the source tables (relids) whose shape is stored.
func (s *Sink) ShapeIDs(ctx context.Context) ([]uint32, error) {
	ids, err := sqlrows.Uint32s(ctx, s.conn, "SELECT relid FROM "+ownedTable+" WHERE relid IS NOT NULL AND shape IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("list stored shapes: %w", err)
	}
	return ids, nil
}

// ForgetShape drops relid's stored shape (the table stays walmirror's): a
// table that left the publication is copied afresh if it joins again.
func (s *Sink) ForgetShape(ctx context.Context, relid uint32) error {
	if _, err := s.conn.ExecContext(ctx, "UPDATE "+ownedTable+" SET relid = NULL, shape = NULL WHERE relid = ?", int64(relid)); err != nil {
		return fmt.Errorf("forget stored shape: %w", err)
	}
	delete(s.shapes, relid)
	return nil
}

// SetShape stores t's source shape with its table, in the open transaction.
func (s *Sink) SetShape(ctx context.Context, t *schema.Table, shape string) error {
	if s.shapes != nil {
		// The table another source table's shape names becomes t's (a
		// table renamed away and a new one under its name): that shape
		// goes from the kept ones as from the file (helper-112: the kept
		// one then moved the new table's copy along with the rename).
		var prev sql.NullInt64
		err := s.conn.QueryRowContext(ctx, "SELECT relid FROM "+ownedTable+" WHERE schema_name = ? AND table_name = ?", t.Schema, t.Name).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store shape of %s: %w", TableName(t.Schema, t.Name), err)
		}
		if prev.Valid && uint32(prev.Int64) != t.ID {
			delete(s.shapes, uint32(prev.Int64))
		}
	}
	var stored int64
	for _, q := range []string{
		"UPDATE " + ownedTable + " SET relid = NULL, shape = NULL WHERE relid = ? AND NOT (schema_name = ? AND table_name = ?)",
		"UPDATE " + ownedTable + " SET relid = ?, shape = ? WHERE schema_name = ? AND table_name = ?",
	} {
		args := []any{int64(t.ID), t.Schema, t.Name}
		if strings.Contains(q, "shape = ?") {
			args = []any{int64(t.ID), shape, t.Schema, t.Name}
		}
		res, err := s.conn.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("store shape of %s: %w", TableName(t.Schema, t.Name), err)
		}
		stored, err = res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store shape of %s: %w", TableName(t.Schema, t.Name), err)
		}
	}
	if s.shapes != nil {
		if stored > 0 {
			s.shapes[t.ID] = shape
		} else {
			delete(s.shapes, t.ID) // no table of that name is walmirror's
		}
	}
	return nil
}

// keptLevel: a kept column is a warning when this shape drops it, and at
// debug level at every later shaping (each run's first), where it repeated.
func keptLevel(t *schema.Table, col string) slog.Level {
	if t.Dropping(col) {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// createTable is the statement that creates t's copy name, with column
// asText (-1: none) VARCHAR instead of its mapped type.
func createTable(t *schema.Table, name string, asText int) string {
	defs := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		typ := planFor(c.TypeID, c.Typmod).typ
		if i == asText {
			typ = "VARCHAR"
		}
		defs[i] = quote(c.Name) + " " + typ
	}
	return "CREATE TABLE " + name + " (" + strings.Join(defs, ", ") + ")"
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"

	"github.com/walmirror/walmirror/internal/sqlrows"
	"github.com/walmirror/walmirror/schema"
)

// TableName maps a source table to its SQLite name. SQLite has no schemas:
// public.t becomes t, and other schemas become "schema.table" with '%' and
// '.' percent-encoded inside each part, so no two source tables share a name
// and a name with a dot always came from a non-public schema. (SQLite ignores
// the case of ASCII letters in names: EnsureTable refuses a table whose name
// differs from an existing one only in case.)
func TableName(schemaName, table string) string {
	if schemaName == "public" {
		return escapePart(table)
	}
	return escapePart(schemaName) + "." + escapePart(table)
}

func escapePart(s string) string {
	if !strings.ContainsAny(s, "%.") {
		return s
	}
	return strings.NewReplacer("%", "%25", ".", "%2E").Replace(s)
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// columnType is the declared type, chosen for its affinity: TEXT keeps
// numerics' exact digits (NUMERIC affinity would turn them into floats).
func columnType(k schema.Kind) string {
	switch k {
	case schema.KindInt, schema.KindBool:
		return "INTEGER"
	case schema.KindFloat:
		return "REAL"
	case schema.KindBytea:
		return "BLOB"
	default:
		return "TEXT"
	}
}

// tableInfo is what the sink derives once per table shape.
type tableInfo struct {
	t      *schema.Table
	name   string // quoted
	kinds  []schema.Kind
	cols   []string // quoted column names
	keyIdx []int
	// rowid is a name of SQLite's rowid no column of the table hides
	// ("rowid", "_rowid_" or "oid"): keyless tables change one row by it.
	rowid string
	// lookup: 0 not known yet, 1 the table has the lookup index its shape
	// asks for (syncLookup), -1 it has none (hasLookup).
	lookup int8
}

func (s *Sink) info(t *schema.Table) *tableInfo {
	if ti, ok := s.tables[t]; ok {
		return ti
	}
	ti := &tableInfo{t: t, name: quote(TableName(t.Schema, t.Name)), keyIdx: t.KeyIndexes()}
	for _, c := range t.Columns {
		ti.kinds = append(ti.kinds, schema.KindOf(c.TypeID))
		ti.cols = append(ti.cols, quote(c.Name))
	}
	ti.rowid = rowidAlias(t, nil)
	s.tables[t] = ti
	return ti
}

// EnsureTable creates the table on first sight, or adds columns the source
// gained. Columns the source dropped are kept (with their data; new rows get
// NULL there) and reported, never dropped silently.
func (s *Sink) EnsureTable(ctx context.Context, t *schema.Table) error {
	if err := s.ensureTable(ctx, t); err != nil {
		return err
	}
	return s.syncLookup(ctx, t)
}

// lookupPrefix begins the names of the indexes walmirror makes on the
// copy of a table matched by whole rows (REPLICA IDENTITY FULL), on the
// columns of its source primary key (schema.Table.Lookup): without one,
// each set of updates or deletes reads the whole table.
const lookupPrefix = "_walmirror_lookup_"

// syncLookup gives table t's copy the lookup index t asks for, and no other.
func (s *Sink) syncLookup(ctx context.Context, t *schema.Table) error {
	ti := s.info(t)
	want, cols := lookupIndex(ti)
	have, err := s.lookups(ctx, ti.t)
	if err != nil {
		return err
	}
	found := false
	for _, ix := range have {
		if ix == want {
			found = true
			continue
		}
		if _, err := s.conn.ExecContext(ctx, "DROP INDEX "+quote(ix)); err != nil {
			return fmt.Errorf("drop index %q of %s: %w", ix, ti.name, err)
		}
	}
	ti.lookup = -1
	if want == "" {
		return nil
	}
	if !found {
		// A table moved aside (two tables that trade names) keeps the
		// index it had under this name: it makes one of its own when
		// next shaped.
		if _, err := s.conn.ExecContext(ctx, "DROP INDEX IF EXISTS "+quote(want)+"; CREATE INDEX "+quote(want)+" ON "+ti.name+" ("+strings.Join(cols, ", ")+")"); err != nil {
			return fmt.Errorf("index %s on the source's primary key columns, to find rows it updates and deletes: %w", ti.name, err)
		}
		s.log.Info("indexed target table on the source's primary key to find rows (REPLICA IDENTITY FULL: rows are still matched on every column)", "table", ti.name, "columns", cols)
	}
	ti.lookup = 1
	return nil
}

// lookupIndex names the lookup index ti's shape asks for and its columns
// (quoted); "" when it asks for none. SQLite's index names are one
// namespace: the table's name is part of it.
func lookupIndex(ti *tableInfo) (string, []string) {
	t := ti.t
	if len(ti.keyIdx) > 0 || t.Identity != schema.IdentityFull || len(t.Lookup) == 0 {
		return "", nil
	}
	var cols []string
	for _, i := range t.Lookup {
		cols = append(cols, ti.cols[i])
	}
	h := fnv.New64a()
	h.Write([]byte(ti.name + "\x00" + strings.Join(cols, "\x00")))
	return fmt.Sprintf("%s%016x", lookupPrefix, h.Sum64()), cols
}

// hasLookup reports whether ti's table has the lookup index its shape asks
// for: sets search it only then (without it, a search per change would read
// the table each time).
func (s *Sink) hasLookup(ctx context.Context, ti *tableInfo) (bool, error) {
	if ti.lookup == 0 {
		ti.lookup = -1
		if want, _ := lookupIndex(ti); want != "" {
			have, err := s.lookups(ctx, ti.t)
			if err != nil {
				return false, err
			}
			if slices.Contains(have, want) {
				ti.lookup = 1
			}
		}
	}
	return ti.lookup > 0, nil
}

// lookups lists the lookup indexes of t's copy.
func (s *Sink) lookups(ctx context.Context, t *schema.Table) ([]string, error) {
	name := TableName(t.Schema, t.Name)
	rows, err := s.conn.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND substr(name, 1, ?) = ?`, name, len(lookupPrefix), lookupPrefix)
	if err != nil {
		return nil, fmt.Errorf("list the indexes of %q: %w", name, err)
	}
	var out []string
	for rows.Next() {
		var ix string
		if err := rows.Scan(&ix); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, ix)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list the indexes of %q: %w", name, err)
	}
	return out, nil
}

// dropLookups drops the lookup indexes of t's copy before one of its
// columns is dropped (SQLite refuses to drop an indexed column); syncLookup makes
// the one still wanted again.
func (s *Sink) dropLookups(ctx context.Context, t *schema.Table) error {
	have, err := s.lookups(ctx, t)
	if err != nil {
		return err
	}
	for _, ix := range have {
		if _, err := s.conn.ExecContext(ctx, "DROP INDEX "+quote(ix)); err != nil {
			return fmt.Errorf("drop index %q of %s: %w", ix, quote(TableName(t.Schema, t.Name)), err)
		}
	}
	return nil
}

// NameProblem says why source table t cannot be copied into SQLite as it
// is named and shaped, or nil: the checks of the table alone that the sink
// makes before it changes anything (walmirror check makes them too).
// Tables that SQLite cannot tell apart are told by FoldedName.
func NameProblem(t *schema.Table) error {
	name := TableName(t.Schema, t.Name)
	// SQLite names ignore the case of ASCII letters; PostgreSQL's do not.
	if lower := strings.ToLower(name); strings.HasPrefix(lower, "_walmirror_") || strings.HasPrefix(lower, "sqlite_") {
		return fmt.Errorf("source table %s maps to SQLite name %q, which is reserved (walmirror's or SQLite's own): rename it in the source, or leave it out of the publication", t.QualifiedName(), name)
	}
	// Columns SQLite cannot tell apart ("a" and "A", also after a rename
	// such as "Val" to "VAL2" beside "val2"): refuse before changing
	// anything, rather than fail on CREATE or ADD COLUMN ("duplicate column
	// name") after moving a live column aside as if it were a kept one.
	seen := map[string]string{}
	for _, c := range t.Columns {
		l := asciiLower(c.Name)
		if other, dup := seen[l]; dup {
			return fmt.Errorf("source table %s has columns %q and %q, which SQLite does not tell apart (SQLite names ignore letter case): rename one of them in the source, or leave the table out of the publication", t.QualifiedName(), other, c.Name)
		}
		seen[l] = c.Name
	}
	if !t.HasKey() && rowidAlias(t, nil) == "" {
		return noRowid(t)
	}
	return nil
}

// FoldedName is the name SQLite takes for table schemaName.table's and
// every name it does not tell from it (letter case).
func FoldedName(schemaName, table string) string { return asciiLower(TableName(schemaName, table)) }

// noRowid is the error for a keyless table whose columns hide every name
// of SQLite's rowid.
func noRowid(t *schema.Table) error {
	fix := "give the table a primary key"
	if t.Identity == schema.IdentityFull {
		// It may have one: its changes carry none (helper-104).
		fix = "give it a replica identity with a key (a primary key and REPLICA IDENTITY DEFAULT, or REPLICA IDENTITY USING INDEX)"
	}
	return fmt.Errorf("source table %s has no key its changes carry, and its columns hide every name of SQLite's rowid (rowid, _rowid_, oid), by which walmirror changes exactly one of several equal rows: rename one of those columns in the source, or %s", t.QualifiedName(), fix)
}

func (s *Sink) ensureTable(ctx context.Context, t *schema.Table) error {
	name := TableName(t.Schema, t.Name)
	if err := NameProblem(t); err != nil {
		return err
	}
	// Refuse, rather than share, a table SQLite cannot tell from another
	// source table's ("Users" and "users").
	var other string
	err := s.conn.QueryRowContext(ctx, `SELECT name FROM sqlite_schema WHERE name = ? COLLATE NOCASE AND name <> ?`, name, name).Scan(&other)
	if err == nil && t.Change != nil && t.Change.FromName != "" && other == TableName(t.Change.FromSchema, t.Change.FromName) {
		err = sql.ErrNoRows // this very table, renamed in letter case only (change renames it)
	}
	if err == nil {
		return fmt.Errorf("source table %s maps to SQLite name %q, which SQLite does not tell apart from the existing table %q (SQLite names ignore letter case): rename one of the two tables in the source so that their names differ in more than letter case, or leave one out of the publication; a change the WAL already holds under the clashing name fails again until that table is dropped in the source, or the copy is made again into a fresh target", t.QualifiedName(), name, other)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	if err := s.change(ctx, t, name); err != nil {
		return err
	}
	ti := s.info(t)
	rows, err := s.conn.QueryContext(ctx, `SELECT name, pk, type FROM pragma_table_info(?)`, name)
	if err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	existing := map[string]bool{}
	declared := map[string]string{}
	pkAt := map[int]string{}
	for rows.Next() {
		var col, typ string
		var pk int
		if err := rows.Scan(&col, &pk, &typ); err != nil {
			rows.Close()
			return err
		}
		existing[col], declared[col] = true, typ
		if pk > 0 {
			pkAt[pk] = col
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	if !t.HasKey() {
		// A column named rowid (or one the target keeps from a dropped
		// source column) hides SQLite's rowid, which a keyless table's
		// updates and deletes pick one row by: use an alias no column
		// hides. Before, "rowid" matched the column, and an update of one
		// of several equal rows changed every row with that value.
		if ti.rowid = rowidAlias(t, existing); ti.rowid == "" {
			return noRowid(t) // a column kept from a dropped one hides the last
		}
	}
	adopted := false
	if len(existing) > 0 {
		if adopted, err = s.claim(ctx, t, name); err != nil {
			return err
		}
	}
	if len(existing) == 0 {
		defs := make([]string, len(t.Columns))
		for i := range t.Columns {
			defs[i] = ti.cols[i] + " " + columnType(ti.kinds[i])
		}
		if len(ti.keyIdx) > 0 {
			keys := make([]string, len(ti.keyIdx))
			for i, k := range ti.keyIdx {
				keys[i] = ti.cols[k]
			}
			defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
		}
		if _, err := s.conn.ExecContext(ctx, "CREATE TABLE "+ti.name+" ("+strings.Join(defs, ", ")+")"); err != nil {
			return fmt.Errorf("create table %q: %w", name, err)
		}
		// Recorded already when the table was dropped behind walmirror's
		// back (verify --repair creates it again).
		if _, err := s.conn.ExecContext(ctx, `INSERT OR IGNORE INTO _walmirror_tables (name) VALUES (?)`, name); err != nil {
			return fmt.Errorf("record table %q as walmirror's: %w", name, err)
		}
		s.log.Info("created target table", "table", name, "columns", len(t.Columns))
		return nil
	}
	for i, c := range t.Columns {
		if existing[c.Name] {
			delete(existing, c.Name)
			continue
		}
		if err := t.LostColumn(ctx, c.Name, s.Shape); err != nil {
			return err
		}
		fill := t.Fills[c.Name]
		if err := fill.Check(t, c.Name); err != nil {
			return err
		}
		if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+ti.name+" ADD COLUMN "+ti.cols[i]+" "+columnType(ti.kinds[i])); err != nil {
			return fmt.Errorf("add column %q to %q: %w", c.Name, name, err)
		}
		if fill.Value.State == schema.Text {
			// Rows already here existed before the source added the column:
			// they hold its default (PostgreSQL's missing value) there.
			v, err := value(ti.kinds[i], fill.Value)
			if err != nil {
				return fmt.Errorf("value of added column %q for existing rows of %q: %w", c.Name, name, err)
			}
			if _, err := s.conn.ExecContext(ctx, "UPDATE "+ti.name+" SET "+ti.cols[i]+" = ?", v); err != nil {
				return fmt.Errorf("fill added column %q of %q: %w", c.Name, name, err)
			}
		}
		s.log.Info("added target column", "table", name, "column", c.Name, "existing_rows", fill)
	}
	if t.Replacing && t.Change != nil && t.Change.Unrecorded && !adopted {
		if err := s.retypeUnrecorded(ctx, ti, name, declared); err != nil {
			return err
		}
	}
	have := make([]string, len(pkAt))
	for i := range have {
		have[i] = pkAt[i+1]
	}
	if err := s.rekey(ctx, ti, name, have); err != nil {
		return err
	}
	for col := range existing {
		if !s.DropColumns {
			s.log.Log(ctx, keptLevel(t, col), "target column no longer in the source (dropped, or left out by the publication's column list): kept, NULL in rows written from now on (in every row when the table is copied again; --drop-columns drops it)", "table", name, "column", col)
			continue
		}
		if err := s.dropLookups(ctx, t); err != nil {
			return err
		}
		if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+ti.name+" DROP COLUMN "+quote(col)); err != nil {
			return fmt.Errorf("drop column %q of %q, which the source dropped: %w", col, name, err)
		}
		s.forgetTable()
		s.log.Info("dropped target column the source dropped", "table", name, "column", col)
	}
	return nil
}

// rekey rebuilds the table with the source's key when the source's primary
// key or replica identity changed (SQLite cannot alter a PRIMARY KEY): the
// old one would refuse rows the source now allows.
func (s *Sink) rekey(ctx context.Context, ti *tableInfo, name string, have []string) error {
	want := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		want[i] = ti.t.Columns[k].Name
	}
	if slices.Equal(have, want) {
		return nil
	}
	rows, err := s.conn.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	var defs, cols []string
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			rows.Close()
			return err
		}
		defs, cols = append(defs, quote(col)+" "+typ), append(cols, quote(col))
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	if len(want) > 0 {
		k := make([]string, len(want))
		for i, c := range want {
			k[i] = quote(c)
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(k, ", ")+")")
	}
	tmp := quote("_walmirror_rekey")
	stmts := []string{"DROP TABLE IF EXISTS " + tmp, "CREATE TABLE " + tmp + " (" + strings.Join(defs, ", ") + ")"}
	if !ti.t.Replacing {
		// With Replacing a copy replaces the rows: older ones, of a time
		// the source had another key or none, may repeat the new key
		// (fuzzing: every start failed here).
		stmts = append(stmts, "INSERT INTO "+tmp+" SELECT "+strings.Join(cols, ", ")+" FROM "+quote(name))
	}
	for _, q := range append(stmts, "DROP TABLE "+quote(name), "ALTER TABLE "+tmp+" RENAME TO "+quote(name)) {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("change the primary key of %q from %v to %v as the source did: %w", name, have, want, err)
		}
	}
	s.forgetTable()
	s.log.Info("source key changed: target table rebuilt with the new primary key", "table", name, "from", have, "to", want)
	return nil
}

// claim makes sure the existing table name is walmirror's: created by it,
// or, with Adopt, an empty table it now takes over (adopted).
func (s *Sink) claim(ctx context.Context, t *schema.Table, name string) (adopted bool, err error) {
	var n int
	if err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM _walmirror_tables WHERE name = ?`, name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up owner of table %q: %w", name, err)
	}
	if n > 0 {
		return false, nil
	}
	if !s.Adopt {
		return false, schema.NotOwned(t, quote(name))
	}
	var rows int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+quote(name)+" LIMIT 1)").Scan(&rows); err != nil {
		return false, fmt.Errorf("inspect table %q: %w", name, err)
	}
	if rows > 0 {
		return false, schema.NotEmpty(t, quote(name))
	}
	if _, err := s.conn.ExecContext(ctx, `INSERT INTO _walmirror_tables (name) VALUES (?)`, name); err != nil {
		return false, fmt.Errorf("record table %q as walmirror's: %w", name, err)
	}
	s.log.Info("adopted existing target table", "table", name)
	return true, nil
}

// vacate moves walmirror's table name, which no source table's copy is any
// longer (see schema.Change.Vacate), aside for a renamed table to take the
// name. A table walmirror did not create stays, and the rename fails.
func (s *Sink) vacate(ctx context.Context, name string) error {
	var held string
	err := s.conn.QueryRowContext(ctx, `SELECT t.name FROM sqlite_schema t JOIN _walmirror_tables w ON w.name = t.name
		WHERE t.type = 'table' AND t.name = ? COLLATE NOCASE`, name).Scan(&held)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	aside := schema.AsideName(held, 0, func(n string) bool {
		var k int
		err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name = ? COLLATE NOCASE`, n).Scan(&k)
		return err != nil || k > 0
	})
	if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(held)+" RENAME TO "+quote(aside)); err != nil {
		return fmt.Errorf("move table %q, a copy no published table has, aside to %q: %w", held, aside, err)
	}
	if _, err := s.conn.ExecContext(ctx, `UPDATE _walmirror_tables SET name = ? WHERE name = ?`, aside, held); err != nil {
		return fmt.Errorf("record table %q moved aside: %w", aside, err)
	}
	s.forgetTable()
	s.log.Warn("a renamed source table takes the name of a copy no published table has any more (its source table was dropped or left the publication): that copy moves aside", "table", held, "aside", aside)
	return nil
}

// MoveTable renames walmirror's table of source table schemaName.from to
// the name schemaName.to maps to (for the engine: a table whose name
// another one took before its own rename was seen).
func (s *Sink) MoveTable(ctx context.Context, schemaName, from, to string) error {
	old, name := TableName(schemaName, from), TableName(schemaName, to)
	var n int
	if err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM _walmirror_tables WHERE name = ?`, old).Scan(&n); err != nil {
		return fmt.Errorf("look up owner of table %q: %w", old, err)
	}
	if n == 0 {
		return fmt.Errorf("table %q is not walmirror's", old)
	}
	if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(old)+" RENAME TO "+quote(name)); err != nil {
		return fmt.Errorf("rename table %q to %q: %w", old, name, err)
	}
	if _, err := s.conn.ExecContext(ctx, `UPDATE _walmirror_tables SET name = ? WHERE name = ?`, name, old); err != nil {
		return fmt.Errorf("record renamed table %q: %w", name, err)
	}
	s.forgetTable()
	return nil
}

// retypeUnrecorded gives the columns of a table walmirror made for another
// source table (one dropped since, whose name t's source table took; or
// this one before it left the publication) the affinity of t's types: its
// rows are about to be replaced by a copy, and a TEXT column kept from the
// old table would store the new one's integers as text ('1', not 1).
// An adopted table keeps the types its creator chose.
func (s *Sink) retypeUnrecorded(ctx context.Context, ti *tableInfo, name string, declared map[string]string) error {
	emptied := false
	for i, c := range ti.t.Columns {
		typ, ok := declared[c.Name]
		want := columnType(ti.kinds[i])
		if !ok || affinity(typ) == affinity(want) {
			continue
		}
		if !emptied {
			if _, err := s.conn.ExecContext(ctx, "DELETE FROM "+quote(name)); err != nil {
				return fmt.Errorf("empty %q for its copy: %w", name, err)
			}
			emptied = true
		}
		if err := s.redeclare(ctx, name, c.Name, want); err != nil {
			return err
		}
	}
	return nil
}

// affinity is SQLite's type affinity of a declared column type
// (https://sqlite.org/datatype3.html, 3.1).
func affinity(decl string) string {
	d := strings.ToUpper(decl)
	switch {
	case strings.Contains(d, "INT"):
		return "INTEGER"
	case strings.Contains(d, "CHAR"), strings.Contains(d, "CLOB"), strings.Contains(d, "TEXT"):
		return "TEXT"
	case d == "", strings.Contains(d, "BLOB"):
		return "BLOB"
	case strings.Contains(d, "REAL"), strings.Contains(d, "FLOA"), strings.Contains(d, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

// change does to the target table what happened to the source table since
// the shape the target stored: a rename, renamed columns, type changes SQLite
// can follow exactly, columns dropped and added again. What it cannot follow
// stops the run.
func (s *Sink) change(ctx context.Context, t *schema.Table, name string) error {
	c := t.Change
	if c.Empty() {
		return nil
	}
	if c.FromName != "" {
		if old := TableName(c.FromSchema, c.FromName); old != name {
			if c.Vacate && !strings.EqualFold(old, name) {
				if err := s.vacate(ctx, name); err != nil {
					return err
				}
			}
			from := old
			if strings.EqualFold(old, name) {
				// SQLite refuses a rename in letter case only ("there is
				// already another table ... with this name"): through a
				// name no source table maps to.
				from = "_walmirror_renaming_" + name
				if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(old)+" RENAME TO "+quote(from)); err != nil {
					return fmt.Errorf("rename table %q to %q as the source did: %w", old, name, err)
				}
			}
			if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(from)+" RENAME TO "+quote(name)); err != nil {
				return fmt.Errorf("rename table %q to %q as the source did: %w", old, name, err)
			}
			if _, err := s.conn.ExecContext(ctx, `UPDATE _walmirror_tables SET name = ? WHERE name = ?`, name, old); err != nil {
				return fmt.Errorf("record renamed table %q: %w", name, err)
			}
			s.forgetTable()
			s.log.Info("renamed target table as the source did", "from", old, "to", name)
		}
	}
	if t.Replacing {
		// The rows are about to be replaced by a copy: change an empty
		// table, which any conversion leaves exact.
		if _, err := s.conn.ExecContext(ctx, "DELETE FROM "+quote(name)); err != nil {
			return fmt.Errorf("empty %q for its copy: %w", name, err)
		}
	}
	has := func(col string) bool {
		var n int
		err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ? COLLATE NOCASE`, name, col).Scan(&n)
		return err == nil && n > 0 // on an error the ALTER below says what is wrong
	}
	for to, from := range c.Renamed {
		// SQLite's names are case-insensitive: a rename that changes only
		// case finds the column itself under its new name.
		if !strings.EqualFold(to, from) && has(to) {
			// A column the source dropped, kept here, has the new name.
			aside := schema.AsideName(to, 0, has)
			if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(name)+" RENAME COLUMN "+quote(to)+" TO "+quote(aside)); err != nil {
				return fmt.Errorf("move kept column %q of %q aside to %q: %w", to, name, aside, err)
			}
			s.log.Warn("a renamed source column takes the name of a dropped one kept here: the kept one moves aside", "table", name, "column", to, "aside", aside)
		}
		if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(name)+" RENAME COLUMN "+quote(from)+" TO "+quote(to)); err != nil {
			return fmt.Errorf("rename column %q of %q to %q as the source did: %w", from, name, to, err)
		}
		s.forgetTable()
		s.log.Info("renamed target column as the source did", "table", name, "from", from, "to", to)
	}
	for _, col := range t.Columns {
		prev, ok := c.Retyped[col.Name]
		if !ok || slices.Contains(c.Readded, col.Name) {
			continue
		}
		if err := s.retype(ctx, t, name, prev, col); err != nil {
			return err
		}
	}
	for _, col := range c.Replaced() {
		if !has(col) {
			continue // an added column the target does not have yet
		}
		// A new column, maybe of another type: the old one goes, and
		// EnsureTable adds the new one with what existing rows hold.
		if err := t.Fills[col].Check(t, col); err != nil {
			return err
		}
		if err := s.dropLookups(ctx, t); err != nil {
			return err
		}
		if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+quote(name)+" DROP COLUMN "+quote(col)); err != nil {
			return fmt.Errorf("replace re-added column %q of %q: %w", col, name, err)
		}
		s.forgetTable()
		s.log.Info(c.ReplacedReason(col), "table", name, "column", col)
	}
	return nil
}

// retype follows a source column type change that keeps every stored text
// form (integer widths, varchar lengths, a numeric of the same scale) or only
// adds zeros (a numeric's scale grown); any other change stops the run:
// SQLite cannot convert a value as PostgreSQL's cast did.
func (s *Sink) retype(ctx context.Context, t *schema.Table, name string, from, to schema.Column) error {
	fk, tk := schema.KindOf(from.TypeID), schema.KindOf(to.TypeID)
	if !t.Replacing && !retypeable(t, from, to) {
		return fmt.Errorf("column %q of source table %s changed type (OID %d, typmod %d to OID %d, typmod %d); SQLite cannot convert its stored values exactly as PostgreSQL did, so the copy would differ: "+
			"copy the table again (walmirror resync --table %s; it takes effect where it is requested, after this point: if every run stops here first, walmirror run --resync copies every table again)",
			to.Name, t.QualifiedName(), from.TypeID, from.Typmod, to.TypeID, to.Typmod, schema.DisplayName(t.Schema, t.Name))
	}
	switch {
	case t.Replacing && columnType(fk) == columnType(tk):
		return nil // emptied (see change): nothing to convert, same affinity
	case t.Replacing:
		// Emptied, but the column's affinity would convert the copy's
		// values (numeric text '1.00' read back as the integer 1).
		return s.redeclare(ctx, name, to.Name, columnType(tk))
	case fk == schema.KindInt && tk == schema.KindInt:
		// int4 and oid are binary coercible: ALTER ... TYPE keeps the
		// stored bits (no rewrite), which read as another number where
		// the sign bit is set (-1 as the oid 4294967295). Other integer
		// changes keep every value.
		var q string
		switch {
		case from.TypeID == schema.OIDInt4 && to.TypeID == schema.OIDOid:
			q = " + 4294967296 WHERE " + quote(to.Name) + " < 0"
		case from.TypeID == schema.OIDOid && to.TypeID == schema.OIDInt4:
			q = " - 4294967296 WHERE " + quote(to.Name) + " > 2147483647"
		default:
			return nil
		}
		if _, err := s.conn.ExecContext(ctx, "UPDATE "+quote(name)+" SET "+quote(to.Name)+" = "+quote(to.Name)+q); err != nil {
			return fmt.Errorf("convert column %q of %q between integer and oid: %w", to.Name, name, err)
		}
		s.log.Info("source column type changed: target values rewritten", "table", name, "column", to.Name)
		return nil
	case fk == schema.KindTimestamp && tk == schema.KindTimestampTZ, fk == schema.KindTimestampTZ && tk == schema.KindTimestamp:
		// PostgreSQL changes between timestamp and timestamptz without
		// rewriting the table when the session's time zone is UTC, reading
		// the values as UTC; in another zone it rewrites the table, which
		// the publication poll notices and copies again. Either way the
		// values become what they are as UTC: the forms isoTimestamp
		// writes for either type ('Z' for timestamptz, '+00 BC' for its BC
		// values; infinity alike).
		col := quote(to.Name)
		q := "UPDATE " + quote(name) + " SET " + col + " = CASE WHEN " + col + " IN ('infinity', '-infinity') THEN " + col
		if tk == schema.KindTimestampTZ {
			q += " WHEN " + col + " LIKE '% BC' THEN substr(" + col + ", 1, length(" + col + ") - 3) || '+00 BC' ELSE " + col + " || 'Z' END"
		} else {
			q += " WHEN " + col + " LIKE '%+00 BC' THEN substr(" + col + ", 1, length(" + col + ") - 6) || ' BC' WHEN " + col + " LIKE '%Z' THEN substr(" + col + ", 1, length(" + col + ") - 1) ELSE " + col + " END"
		}
		if _, err := s.conn.ExecContext(ctx, q+" WHERE "+col+" IS NOT NULL"); err != nil {
			return fmt.Errorf("convert column %q of %q between timestamp and timestamptz: %w", to.Name, name, err)
		}
		s.log.Info("source column type changed: target values rewritten", "table", name, "column", to.Name)
		return nil
	case textLike(from.TypeID) && textLike(to.TypeID):
		return nil
	case from.TypeID == schema.OIDNumeric && to.TypeID == schema.OIDNumeric:
		fs, fok := numericScale(from.Typmod)
		ts, tok := numericScale(to.Typmod)
		switch {
		case !tok:
			return nil // unconstrained: values keep the digits they have
		case fok && ts == fs:
			return nil
		case fok && ts > fs:
			zeros := strings.Repeat("0", ts-fs)
			col := quote(to.Name)
			q := "UPDATE " + quote(name) + " SET " + col + " = CASE WHEN instr(" + col + ", '.') > 0 THEN " + col + " || '" + zeros +
				"' ELSE " + col + " || '." + strings.Repeat("0", ts) + "' END WHERE " + col + " IS NOT NULL AND " + col + " <> 'NaN'"
			if _, err := s.conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("widen the scale of column %q of %q: %w", to.Name, name, err)
			}
			s.log.Info("source column type changed: target values rewritten", "table", name, "column", to.Name)
			return nil
		}
	}
	return nil // retypeable: the stored text forms stay what they are
}

// CanRetype says whether the sink converts a column's stored values in
// place exactly as PostgreSQL did when the source changes its type from
// from to to (see retype); for any other change the engine copies the
// table again online, its rows replaced rather than converted.
func (s *Sink) CanRetype(t *schema.Table, from, to schema.Column) bool {
	return retypeable(t, from, to)
}

// retypeable: the type changes retype converts exactly. A change that
// keeps every stored text form: between integer types (int4 and oid by
// arithmetic), timestamp and timestamptz (as UTC), between text and
// varchar (any length: a shorter one is a rewrite, whose copy replaces
// the rows), from those to citext or back (the same bytes, compared
// without case), a time or timestamp type given more fractional digits
// (values keep the ones they have), and a numeric given a larger scale
// (zeros appended) or none.
func retypeable(t *schema.Table, from, to schema.Column) bool {
	fk, tk := schema.KindOf(from.TypeID), schema.KindOf(to.TypeID)
	switch {
	case fk == schema.KindInt && tk == schema.KindInt:
		return true
	case fk == schema.KindTimestamp && tk == schema.KindTimestampTZ, fk == schema.KindTimestampTZ && tk == schema.KindTimestamp:
		return true
	case (textLike(from.TypeID) || isCitext(t, from.TypeID)) && (textLike(to.TypeID) || isCitext(t, to.TypeID)):
		return true
	case from.TypeID == to.TypeID && (fk == schema.KindTime || fk == schema.KindTimeTZ || fk == schema.KindTimestamp || fk == schema.KindTimestampTZ):
		return to.Typmod < 0 || from.Typmod >= 0 && to.Typmod >= from.Typmod
	case from.TypeID == schema.OIDNumeric && to.TypeID == schema.OIDNumeric:
		fs, fok := numericScale(from.Typmod)
		ts, tok := numericScale(to.Typmod)
		return !tok || fok && ts >= fs
	}
	return false
}

// isCitext: the citext extension's type, a case-insensitive text whose
// values are text's bytes.
func isCitext(t *schema.Table, oid uint32) bool {
	n := t.TypeNames[oid]
	return n == "citext" || strings.HasSuffix(n, ".citext")
}

// redeclare gives column col of the table name, emptied for a copy, the
// declared type typ: SQLite cannot change a column's type, so the table is
// made again with the same columns, the same key and no rows.
func (s *Sink) redeclare(ctx context.Context, name, col, typ string) error {
	rows, err := s.conn.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	var defs []string
	pkAt := map[int]string{}
	for rows.Next() {
		var c, ct string
		var pk int
		if err := rows.Scan(&c, &ct, &pk); err != nil {
			rows.Close()
			return err
		}
		if strings.EqualFold(c, col) {
			ct = typ
		}
		defs = append(defs, quote(c)+" "+ct)
		if pk > 0 {
			pkAt[pk] = quote(c)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	if len(pkAt) > 0 {
		keys := make([]string, len(pkAt))
		for i := range keys {
			keys[i] = pkAt[i+1]
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	}
	tmp := quote("_walmirror_retype")
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + tmp,
		"CREATE TABLE " + tmp + " (" + strings.Join(defs, ", ") + ")",
		"DROP TABLE " + quote(name),
		"ALTER TABLE " + tmp + " RENAME TO " + quote(name),
	} {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("change the type of column %q of %q (emptied for its copy) to %s: %w", col, name, typ, err)
		}
	}
	s.forgetTable()
	s.log.Info("source column type changed: target column made again for the copy", "table", name, "column", col, "type", typ)
	return nil
}

// textLike: types whose text form does not depend on the declared length.
func textLike(oid uint32) bool {
	return oid == schema.OIDText || oid == schema.OIDVarchar
}

// numericScale is the scale of a numeric typmod; ok is false when the
// numeric is unconstrained.
func numericScale(typmod int32) (int, bool) {
	if typmod < 4 {
		return 0, false
	}
	return int((typmod - 4) & 0xffff), true
}

// forgetTable drops cached statements and shapes after a rename.
func (s *Sink) forgetTable() {
	s.closeStmts()
	clear(s.tables)
}

// Shape returns the source shape stored for the table mirroring relid.
func (s *Sink) Shape(ctx context.Context, relid uint32) (string, bool, error) {
	var shape sql.NullString
	err := s.conn.QueryRowContext(ctx, `SELECT shape FROM _walmirror_tables WHERE relid = ?`, int64(relid)).Scan(&shape)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !shape.Valid {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read stored shape: %w", err)
	}
	return shape.String, true, nil
}

// ShapeIDs lists the source tables (relids) whose shape is stored.
func (s *Sink) ShapeIDs(ctx context.Context) ([]uint32, error) {
	ids, err := sqlrows.Uint32s(ctx, s.conn, `SELECT relid FROM _walmirror_tables WHERE relid IS NOT NULL AND shape IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("list stored shapes: %w", err)
	}
	return ids, nil
}

// ForgetShape drops relid's stored shape (the table stays walmirror's): a
// table that left the publication is copied afresh if it joins again.
func (s *Sink) ForgetShape(ctx context.Context, relid uint32) error {
	if _, err := s.conn.ExecContext(ctx, `UPDATE _walmirror_tables SET relid = NULL, shape = NULL WHERE relid = ?`, int64(relid)); err != nil {
		return fmt.Errorf("forget stored shape: %w", err)
	}
	return nil
}

// SetShape stores t's source shape with its table, in the open transaction.
func (s *Sink) SetShape(ctx context.Context, t *schema.Table, shape string) error {
	name := TableName(t.Schema, t.Name)
	if _, err := s.conn.ExecContext(ctx, `UPDATE _walmirror_tables SET relid = NULL, shape = NULL WHERE relid = ? AND name <> ?`, int64(t.ID), name); err != nil {
		return fmt.Errorf("store shape of %q: %w", name, err)
	}
	if _, err := s.conn.ExecContext(ctx, `UPDATE _walmirror_tables SET relid = ?, shape = ? WHERE name = ?`, int64(t.ID), shape, name); err != nil {
		return fmt.Errorf("store shape of %q: %w", name, err)
	}
	return nil
}

// asciiLower folds ASCII letters only, as SQLite compares names (NOCASE):
// "É" and "é" are different names to SQLite.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// rowidAlias is the first of SQLite's names for a table's rowid that
// neither a column of t nor a column the target table has (existing) uses,
// "" when they hide all three.
func rowidAlias(t *schema.Table, existing map[string]bool) string {
	used := map[string]bool{}
	for _, c := range t.Columns {
		used[asciiLower(c.Name)] = true
	}
	for c := range existing {
		used[asciiLower(c)] = true
	}
	for _, a := range []string{"rowid", "_rowid_", "oid"} {
		if !used[a] {
			return a
		}
	}
	return ""
}

// keptLevel: a kept column is a warning when this shape drops it, and at
// debug level at every later shaping (each run's first), where it repeated.
func keptLevel(t *schema.Table, col string) slog.Level {
	if t.Dropping(col) {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

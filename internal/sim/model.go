// Package sim is walmirror's deterministic simulation test: a seeded
// generator of random source transactions, applied both to an in-memory
// model of the expected table contents and (by the test) to a real source
// database, which walmirror then replicates into every kind of target. The
// model, the source and each target must agree; a seed fully determines the
// transactions, so a failing seed reproduces (make sim SEED=n).
//
// This file holds the schema and the model; gen.go the generator;
// normalize.go the canonical text form every side is compared in.
package sim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Kind says how a column's values are generated, written as SQL literals and
// normalised for comparison.
type Kind int

const (
	Int Kind = iota
	Text
	Numeric
	Float
	Bool
	TimestampTZ
	JSON
	Bytea
	UUID
)

// Column is one column of a simulated table.
type Column struct {
	Name string
	Type string // PostgreSQL type, also the cast used in literals
	Kind Kind
	// Orig is the name the column was created with: the generator's
	// handle on it (which column holds the TOASTed body, the group of the
	// keyless table) whatever it is called now.
	Orig string
	ID   int // unique per run, for the generator's bookkeeping
}

func col(name, typ string, kind Kind) Column {
	return Column{Name: name, Type: typ, Kind: kind, Orig: name}
}

// Table is one simulated table. The first Key columns form the primary key;
// Key == 0 means no key (REPLICA IDENTITY FULL, duplicate rows allowed).
// Schema changes (see the Model's DDL methods) change Name and Cols; the
// key columns stay first.
type Table struct {
	Name  string
	Orig  string // name at creation
	Cols  []Column
	Key   int
	Setup string // DDL run after CREATE TABLE
	// Partitioned: PARTITION BY RANGE on the key column PartCol, with
	// Parts partitions of PartWidth values each from 0 at creation.
	Partitioned bool
	PartCol     string
	Parts       int
}

// PartWidth is how many values of the partition key one partition holds.
const PartWidth = 100

// Tables are the simulated tables, one per shape the applier treats
// differently: integer key with many types, composite text key, no key, an
// out-of-line TOASTed column (STORAGE EXTERNAL, so any body over ~2 kB
// leaves the row and updates that do not touch it send it as unchanged), and
// a key with REPLICA IDENTITY FULL (old rows arrive whole), and a uuid key
// (online copies chunk by integer and uuid keys, and copy any other key,
// or none, in one chunk).
// The partitioned table (the sixth) is range-partitioned on the second
// key column: rows move between partitions when it changes, and the
// generator attaches new, empty partitions as it goes.
func Tables() []*Table {
	tables := []*Table{
		{Name: "accounts", Key: 1, Cols: []Column{
			col("id", "bigint", Int), col("name", "text", Text), col("balance", "numeric(12,2)", Numeric),
			col("score", "float8", Float), col("flag", "bool", Bool), col("created", "timestamptz", TimestampTZ),
			col("meta", "jsonb", JSON), col("blob", "bytea", Bytea),
		}},
		{Name: "items", Key: 2, Cols: []Column{
			col("region", "text", Text), col("code", "int", Int), col("qty", "int", Int),
			col("price", "numeric", Numeric), col("note", "text", Text),
		}},
		{Name: "events", Key: 0, Setup: "ALTER TABLE events REPLICA IDENTITY FULL", Cols: []Column{
			col("g", "int", Int), col("msg", "text", Text), col("amount", "numeric(10,3)", Numeric),
			col("at", "timestamptz", TimestampTZ), col("ok", "bool", Bool),
		}},
		{Name: "docs", Key: 1, Setup: "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL", Cols: []Column{
			col("id", "int", Int), col("title", "text", Text), col("rev", "int", Int), col("body", "text", Text),
		}},
		{Name: "ledger", Key: 1, Setup: "ALTER TABLE ledger REPLICA IDENTITY FULL", Cols: []Column{
			col("id", "bigint", Int), col("memo", "text", Text), col("amount", "numeric", Numeric), col("at", "timestamptz", TimestampTZ),
		}},
		{Name: "meas", Key: 2, Partitioned: true, PartCol: "p", Parts: 2, Cols: []Column{
			col("id", "bigint", Int), col("p", "int", Int), col("v", "varchar(24)", Text), col("n", "numeric(8,2)", Numeric),
		}},
		{Name: "tags", Key: 1, Cols: []Column{
			col("id", "uuid", UUID), col("label", "text", Text), col("n", "int", Int), col("seen", "timestamptz", TimestampTZ),
		}},
	}
	id := 0
	for _, t := range tables {
		t.Orig = t.Name
		for i := range t.Cols {
			id++
			t.Cols[i].ID = id
		}
	}
	return tables
}

// QuoteIdent quotes a PostgreSQL identifier.
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Q is the table's current name as a quoted identifier.
func (t *Table) Q() string { return QuoteIdent(t.Name) }

// PartitionName is the name of the table's partition i (partitions keep
// their names when the table is renamed).
func (t *Table) PartitionName(i int) string { return fmt.Sprintf("%s_p%d", t.Orig, i) }

// PartitionBounds is partition i's FOR VALUES clause.
func PartitionBounds(i int) string {
	return fmt.Sprintf("FOR VALUES FROM (%d) TO (%d)", i*PartWidth, (i+1)*PartWidth)
}

// Col returns the index of the column created as orig, or -1 when it was dropped.
func (t *Table) Col(orig string) int {
	return slices.IndexFunc(t.Cols, func(c Column) bool { return c.Orig == orig })
}

// Shape is a table's name and columns at one moment, for reading it back.
type Shape struct {
	Name string
	Cols []Column
}

// Shape is t's current shape.
func (t *Table) Shape() Shape { return Shape{Name: t.Name, Cols: slices.Clone(t.Cols)} }

// CreateSQL is the DDL for t.
func (t *Table) CreateSQL() string {
	var b strings.Builder
	b.WriteString("CREATE TABLE " + t.Q() + " (")
	for i, c := range t.Cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Quoted() + " " + c.Type)
	}
	if t.Key > 0 {
		b.WriteString(", PRIMARY KEY (" + t.keyList("") + ")")
	}
	b.WriteString(")")
	if t.Partitioned {
		b.WriteString(" PARTITION BY RANGE (" + QuoteIdent(t.PartCol) + ")")
	}
	b.WriteString(";")
	for i := range t.Parts {
		b.WriteString(" CREATE TABLE " + QuoteIdent(t.PartitionName(i)) + " PARTITION OF " + t.Q() + " " + PartitionBounds(i) + ";")
	}
	if t.Setup != "" {
		b.WriteString(" " + t.Setup + ";")
	}
	return b.String()
}

// ColList is the comma-separated column names, quoted (DuckDB reserves
// more words than PostgreSQL, "at" among them), for SELECTs.
func (sh Shape) ColList() string {
	names := make([]string, len(sh.Cols))
	for i, c := range sh.Cols {
		names[i] = c.Quoted()
	}
	return strings.Join(names, ", ")
}

// Quoted is the column name as a quoted identifier.
func (c Column) Quoted() string { return QuoteIdent(c.Name) }

func (t *Table) keyList(prefix string) string {
	names := make([]string, t.Key)
	for i := range t.Key {
		names[i] = prefix + t.Cols[i].Quoted()
	}
	return strings.Join(names, ", ")
}

// Val is one value in canonical text form (see Normalize).
type Val struct {
	S    string
	Null bool
}

// Row is one row, a value per column.
type Row []Val

// Encode renders a row as one comparable line; quoting keeps a separator
// inside a text value from making two rows look alike.
func (r Row) Encode() string {
	parts := make([]string, len(r))
	for i, v := range r {
		if v.Null {
			parts[i] = "NULL"
		} else {
			parts[i] = strconv.Quote(v.S)
		}
	}
	return strings.Join(parts, ",")
}

func (r Row) key(n int) string {
	parts := make([]string, n)
	for i := range n {
		parts[i] = r[i].S // key columns are never NULL
	}
	return strings.Join(parts, "\x00")
}

func (r Row) equal(o Row) bool { return slices.Equal(r, o) }

// tableState is the expected content of one table. Keyed tables keep an
// insertion-ordered key list beside the map so that picking "a random
// existing row" does not depend on Go's map order: the same seed must make
// the same choices.
type tableState struct {
	t    *Table
	rows map[string]Row
	keys []string
	pos  map[string]int
	bag  []Row // keyless tables: a multiset, in order of insertion
}

func newTableState(t *Table) *tableState {
	return &tableState{t: t, rows: map[string]Row{}, pos: map[string]int{}}
}

func (ts *tableState) size() int {
	if ts.t.Key == 0 {
		return len(ts.bag)
	}
	return len(ts.keys)
}

// Model is the expected content of every table. Changes are recorded in an
// undo log so a ROLLBACK (TO SAVEPOINT) restores the state exactly.
type Model struct {
	Tables []*Table
	// Published says which tables the publication lists (all of them for
	// FOR ALL TABLES): only those are in the copy.
	Published []bool
	state     []*tableState
	undo      []func()
}

// NewModel returns an empty model of tables.
func NewModel(tables []*Table) *Model {
	m := &Model{Tables: tables}
	for _, t := range tables {
		m.state = append(m.state, newTableState(t))
		m.Published = append(m.Published, true)
	}
	return m
}

// Mark is a position in the undo log, for RollbackTo.
func (m *Model) Mark() int { return len(m.undo) }

// RollbackTo undoes every change made since mark.
func (m *Model) RollbackTo(mark int) {
	for i := len(m.undo) - 1; i >= mark; i-- {
		m.undo[i]()
	}
	m.undo = m.undo[:mark]
}

// Commit makes the changes so far permanent.
func (m *Model) Commit() { m.undo = m.undo[:0] }

// Rows renders table ti's expected content, sorted, as Row.Encode lines.
func (m *Model) Rows(ti int) []string {
	ts := m.state[ti]
	var out []string
	if ts.t.Key == 0 {
		for _, r := range ts.bag {
			out = append(out, r.Encode())
		}
	} else {
		for _, k := range ts.keys {
			out = append(out, ts.rows[k].Encode())
		}
	}
	slices.Sort(out)
	return out
}

// Snapshot is every table's shape and content at one moment.
type Snapshot struct {
	Shapes    []Shape
	Rows      [][]string // see Rows
	Published []bool     // see Model.Published
}

// Equal reports whether two snapshots are the same.
func (s Snapshot) Equal(o Snapshot) bool {
	return slices.Equal(s.Published, o.Published) && slices.EqualFunc(s.Rows, o.Rows, slices.Equal) && slices.EqualFunc(s.Shapes, o.Shapes, func(a, b Shape) bool {
		return a.Name == b.Name && slices.Equal(a.Cols, b.Cols)
	})
}

// Snapshot renders every table (see Rows) with its current shape.
func (m *Model) Snapshot() Snapshot {
	out := Snapshot{Shapes: make([]Shape, len(m.Tables)), Rows: make([][]string, len(m.Tables)), Published: slices.Clone(m.Published)}
	for i, t := range m.Tables {
		out.Shapes[i] = t.Shape()
		out.Rows[i] = m.Rows(i)
	}
	return out
}

func (m *Model) has(ti int, key string) bool {
	_, ok := m.state[ti].rows[key]
	return ok
}

func (m *Model) get(ti int, key string) Row { return m.state[ti].rows[key] }

func (m *Model) insert(ti int, r Row) {
	ts := m.state[ti]
	if ts.t.Key == 0 {
		old := ts.bag
		ts.bag = append(slices.Clip(old), r)
		m.undo = append(m.undo, func() { ts.bag = old })
		return
	}
	k := r.key(ts.t.Key)
	if _, ok := ts.rows[k]; ok {
		panic("sim: model insert of an existing key " + strconv.Quote(k))
	}
	ts.add(k, r)
	m.undo = append(m.undo, func() { ts.remove(k) })
}

func (m *Model) remove(ti int, key string) {
	ts := m.state[ti]
	old, ok := ts.rows[key]
	if !ok {
		panic("sim: model delete of a missing key " + strconv.Quote(key))
	}
	ts.remove(key)
	m.undo = append(m.undo, func() { ts.add(key, old) })
}

// replace changes a row in place (same key).
func (m *Model) replace(ti int, r Row) {
	ts := m.state[ti]
	k := r.key(ts.t.Key)
	old, ok := ts.rows[k]
	if !ok {
		panic("sim: model update of a missing key " + strconv.Quote(k))
	}
	ts.rows[k] = r
	m.undo = append(m.undo, func() { ts.rows[k] = old })
}

// setBag replaces a keyless table's rows.
func (m *Model) setBag(ti int, rows []Row) {
	ts := m.state[ti]
	old := ts.bag
	ts.bag = rows
	m.undo = append(m.undo, func() { ts.bag = old })
}

func (m *Model) truncate(ti int) {
	ts := m.state[ti]
	rows, keys, pos, bag := ts.rows, ts.keys, ts.pos, ts.bag
	ts.rows, ts.keys, ts.pos, ts.bag = map[string]Row{}, nil, map[string]int{}, nil
	m.undo = append(m.undo, func() { ts.rows, ts.keys, ts.pos, ts.bag = rows, keys, pos, bag })
}

func (ts *tableState) add(k string, r Row) {
	ts.rows[k] = r
	ts.pos[k] = len(ts.keys)
	ts.keys = append(ts.keys, k)
}

func (ts *tableState) remove(k string) {
	i := ts.pos[k]
	last := ts.keys[len(ts.keys)-1]
	ts.keys[i] = last
	ts.pos[last] = i
	ts.keys = ts.keys[:len(ts.keys)-1]
	delete(ts.pos, k)
	delete(ts.rows, k)
}

// --- schema changes ---
//
// Each records in the undo log how to restore the table's shape and rows
// (a DDL statement rolls back with its transaction or savepoint).

// OnUndo registers f to run when the changes made so far are rolled back
// (the generator's own bookkeeping that must follow the source).
func (m *Model) OnUndo(f func()) { m.undo = append(m.undo, f) }

func (m *Model) saveTable(ti int) {
	t, ts := m.Tables[ti], m.state[ti]
	name, cols := t.Name, slices.Clone(t.Cols)
	// Copies: later changes modify the live key list and maps in place.
	rows, keys, pos, bag := maps.Clone(ts.rows), slices.Clone(ts.keys), maps.Clone(ts.pos), slices.Clone(ts.bag)
	m.undo = append(m.undo, func() {
		t.Name, t.Cols = name, cols
		ts.rows, ts.keys, ts.pos, ts.bag = rows, keys, pos, bag
	})
}

// mapRows replaces every row r of table ti by f(r), which must return a
// new slice (rows are shared with the undo log). Keys do not change.
func (m *Model) mapRows(ti int, f func(Row) Row) {
	ts := m.state[ti]
	if ts.t.Key == 0 {
		for i, r := range ts.bag {
			ts.bag[i] = f(r)
		}
		return
	}
	for k, r := range ts.rows {
		ts.rows[k] = f(r)
	}
}

// AddColumn appends c to table ti; existing rows hold fill in it.
func (m *Model) AddColumn(ti int, c Column, fill Val) {
	m.saveTable(ti)
	t := m.Tables[ti]
	t.Cols = append(slices.Clone(t.Cols), c)
	m.mapRows(ti, func(r Row) Row { return append(slices.Clone(r), fill) })
}

// DropColumn removes column ci of table ti (never a key column).
func (m *Model) DropColumn(ti, ci int) {
	m.saveTable(ti)
	t := m.Tables[ti]
	if ci < t.Key {
		panic("sim: dropping a key column")
	}
	t.Cols = slices.Delete(slices.Clone(t.Cols), ci, ci+1)
	m.mapRows(ti, func(r Row) Row { return slices.Delete(slices.Clone(r), ci, ci+1) })
}

// RenameColumn renames column ci of table ti.
func (m *Model) RenameColumn(ti, ci int, name string) {
	m.saveTable(ti)
	t := m.Tables[ti]
	t.Cols = slices.Clone(t.Cols)
	t.Cols[ci].Name = name
}

// Retype changes column ci's type; conv (nil: none) is what the stored
// values become, as PostgreSQL prints them in the new type.
func (m *Model) Retype(ti, ci int, typ string, conv func(Val) Val) {
	m.saveTable(ti)
	t := m.Tables[ti]
	t.Cols = slices.Clone(t.Cols)
	t.Cols[ci].Type = typ
	if conv != nil {
		m.mapRows(ti, func(r Row) Row {
			r = slices.Clone(r)
			r[ci] = conv(r[ci])
			return r
		})
	}
}

// RenameTable renames table ti.
func (m *Model) RenameTable(ti int, name string) {
	m.saveTable(ti)
	m.Tables[ti].Name = name
}

// Publish adds table ti to the publication.
func (m *Model) Publish(ti int) {
	m.Published[ti] = true
	m.undo = append(m.undo, func() { m.Published[ti] = false })
}

// AddPartition counts a new (empty) partition of table ti.
func (m *Model) AddPartition(ti int) {
	t := m.Tables[ti]
	t.Parts++
	m.undo = append(m.undo, func() { t.Parts-- })
}

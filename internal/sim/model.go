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
)

// Column is one column of a simulated table.
type Column struct {
	Name string
	Type string // PostgreSQL type, also the cast used in literals
	Kind Kind
}

// Table is one simulated table. The first Key columns form the primary key;
// Key == 0 means no key (REPLICA IDENTITY FULL, duplicate rows allowed).
type Table struct {
	Name  string
	Cols  []Column
	Key   int
	Setup string // DDL run after CREATE TABLE
}

// Tables are the simulated tables, one per shape the applier treats
// differently: integer key with many types, composite text key, no key, an
// out-of-line TOASTed column (STORAGE EXTERNAL, so any body over ~2 kB
// leaves the row and updates that do not touch it send it as unchanged), and
// a key with REPLICA IDENTITY FULL (old rows arrive whole).
func Tables() []*Table {
	return []*Table{
		{Name: "accounts", Key: 1, Cols: []Column{
			{"id", "bigint", Int}, {"name", "text", Text}, {"balance", "numeric(12,2)", Numeric},
			{"score", "float8", Float}, {"flag", "bool", Bool}, {"created", "timestamptz", TimestampTZ},
			{"meta", "jsonb", JSON}, {"blob", "bytea", Bytea},
		}},
		{Name: "items", Key: 2, Cols: []Column{
			{"region", "text", Text}, {"code", "int", Int}, {"qty", "int", Int},
			{"price", "numeric", Numeric}, {"note", "text", Text},
		}},
		{Name: "events", Key: 0, Setup: "ALTER TABLE events REPLICA IDENTITY FULL", Cols: []Column{
			{"g", "int", Int}, {"msg", "text", Text}, {"amount", "numeric(10,3)", Numeric},
			{"at", "timestamptz", TimestampTZ}, {"ok", "bool", Bool},
		}},
		{Name: "docs", Key: 1, Setup: "ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL", Cols: []Column{
			{"id", "int", Int}, {"title", "text", Text}, {"rev", "int", Int}, {"body", "text", Text},
		}},
		{Name: "ledger", Key: 1, Setup: "ALTER TABLE ledger REPLICA IDENTITY FULL", Cols: []Column{
			{"id", "bigint", Int}, {"memo", "text", Text}, {"amount", "numeric", Numeric}, {"at", "timestamptz", TimestampTZ},
		}},
	}
}

// CreateSQL is the DDL for t.
func (t *Table) CreateSQL() string {
	var b strings.Builder
	b.WriteString("CREATE TABLE " + t.Name + " (")
	for i, c := range t.Cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name + " " + c.Type)
	}
	if t.Key > 0 {
		b.WriteString(", PRIMARY KEY (" + t.keyList("") + ")")
	}
	b.WriteString(");")
	if t.Setup != "" {
		b.WriteString(" " + t.Setup + ";")
	}
	return b.String()
}

// ColList is the comma-separated column names, quoted (DuckDB reserves
// more words than PostgreSQL, "at" among them), for SELECTs.
func (t *Table) ColList() string {
	names := make([]string, len(t.Cols))
	for i, c := range t.Cols {
		names[i] = c.Quoted()
	}
	return strings.Join(names, ", ")
}

// Quoted is the column name as a quoted identifier.
func (c Column) Quoted() string { return `"` + c.Name + `"` }

func (t *Table) keyList(prefix string) string {
	names := make([]string, t.Key)
	for i := range t.Key {
		names[i] = prefix + t.Cols[i].Name
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
	state  []*tableState
	undo   []func()
}

// NewModel returns an empty model of tables.
func NewModel(tables []*Table) *Model {
	m := &Model{Tables: tables}
	for _, t := range tables {
		m.state = append(m.state, newTableState(t))
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

// Snapshot renders every table (see Rows).
func (m *Model) Snapshot() [][]string {
	out := make([][]string, len(m.Tables))
	for i := range m.Tables {
		out[i] = m.Rows(i)
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

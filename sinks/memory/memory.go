// Package memory is a walmirror target that keeps the copy in Go maps, for
// a service that wants the source's rows in its own process (a cache with
// no file and no SQL) and for tests. It implements apply.Sink and passes
// the same contract suite (sinks/sinktest) as the file and server sinks.
//
// A DB holds the committed copy: tables, walmirror's state and stored
// shapes. It outlives the sinks opened on it, so an apply.Run that ends
// (an error, a cancelled context) can be started again on db.Open() in the
// same process and resumes where the copy stands, exactly once. A new
// process starts with an empty DB: a DB has no walmirror state, so the
// slot it followed must be dropped first (walmirror drop, or
// pg_drop_replication_slot), or a slot per process used and dropped at
// exit; apply.Run then takes a new initial copy. apply.ErrSlotExists is
// what Run returns when a slot is left over.
//
// Values are kept in PostgreSQL's text form (as the source sent them);
// readers get copies of the committed rows, never a transaction in
// progress. Each target transaction copies the tables it changes, so the
// cost of a commit grows with the size of those tables: meant for tables
// that fit comfortably in memory.
package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/walmirror/walmirror/schema"
)

// Name is a target table's name: the source's schema and table name.
type Name struct{ Schema, Table string }

// Value is one column value in PostgreSQL's text form, or NULL.
type Value struct {
	Null bool
	Text string
}

// DB is an in-memory copy. The zero value is not usable: call New.
type DB struct {
	mu        sync.RWMutex
	committed *snap
	open      *Sink // the sink that may write, if any
}

// New returns an empty DB.
func New() *DB { return &DB{committed: newSnap()} }

// snap is one version of the whole copy. A committed snap is never
// changed: a transaction works on a new snap that shares the tables it
// has not touched.
type snap struct {
	state    schema.State
	hasState bool
	tables   map[Name]*table
	shapes   map[uint32]string // stored shapes by source relation id
	owned    map[Name]bool     // tables this (transaction's) snap copied
}

func newSnap() *snap {
	return &snap{tables: map[Name]*table{}, shapes: map[uint32]string{}}
}

// table is a target table. Its rows are never changed in place once a
// snap is committed: a write replaces the row slice.
type table struct {
	cols   []string
	colIdx map[string]int
	rows   map[int64][]Value
	nextID int64
	// index maps the key (of the columns indexCols) to a row id; rebuilt
	// when a write uses other key columns.
	indexCols string
	index     map[string]int64
}

func (t *table) clone() *table {
	c := *t
	c.cols = slices.Clone(t.cols)
	c.colIdx = maps.Clone(t.colIdx)
	c.rows = maps.Clone(t.rows)
	c.index = maps.Clone(t.index)
	return &c
}

// Open returns the sink that writes to db. Only one sink may be open at a
// time; Close it before opening the next.
func (db *DB) Open() (*Sink, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.open != nil {
		return nil, errors.New("memory: another sink is open on this DB")
	}
	s := &Sink{db: db}
	db.open = s
	return s, nil
}

// State returns walmirror's committed state; ok is false before the first
// commit.
func (db *DB) State() (st schema.State, ok bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.committed.state, db.committed.hasState
}

// Tables lists the committed tables, sorted.
func (db *DB) Tables() []Name {
	db.mu.RLock()
	defer db.mu.RUnlock()
	names := slices.Collect(maps.Keys(db.committed.tables))
	slices.SortFunc(names, func(a, b Name) int {
		return strings.Compare(a.Schema+"\x00"+a.Table, b.Schema+"\x00"+b.Table)
	})
	return names
}

// Rows returns the committed rows of a table, each with one value per
// column of columns (which holds the columns the source dropped, too,
// unless they were dropped here). ok is false when there is no such table.
// The rows are the caller's.
func (db *DB) Rows(schemaName, tableName string) (columns []string, rows [][]Value, ok bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	t := db.committed.tables[Name{schemaName, tableName}]
	if t == nil {
		return nil, nil, false
	}
	ids := slices.Sorted(maps.Keys(t.rows))
	rows = make([][]Value, len(ids))
	for i, id := range ids {
		rows[i] = slices.Clone(t.rows[id])
	}
	return slices.Clone(t.cols), rows, true
}

// Lookup returns the committed row of a table whose columns hold the
// values of key (column name to text value; NULL never matches), as a map
// by column name; ok is false when there is none. With several matching
// rows it returns one of them.
func (db *DB) Lookup(schemaName, tableName string, key map[string]string) (row map[string]Value, ok bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	t := db.committed.tables[Name{schemaName, tableName}]
	if t == nil {
		return nil, false
	}
	pos := map[int]string{}
	for c, v := range key {
		i, found := t.colIdx[c]
		if !found {
			return nil, false
		}
		pos[i] = v
	}
	r, found := t.find(pos)
	if !found {
		return nil, false
	}
	row = make(map[string]Value, len(t.cols))
	for i, c := range t.cols {
		row[c] = r[i]
	}
	return row, true
}

// find returns a row whose columns hold the values of pos (column position
// to text; NULL never matches): through the key index when pos names
// exactly the indexed columns (a scan took 100 ms a call at 100,000 rows,
// under the lock every write waits for: helper-114), by a scan otherwise.
func (t *table) find(pos map[int]string) ([]Value, bool) {
	if key, ok := t.indexKey(pos); ok {
		id, found := t.index[key]
		return t.rows[id], found
	}
	for _, r := range t.rows {
		match := true
		for i, v := range pos {
			if r[i].Null || r[i].Text != v {
				match = false
				break
			}
		}
		if match {
			return r, true
		}
	}
	return nil, false
}

// indexKey is pos (column position to text) as a key of the table's key
// index, when pos names exactly the indexed columns; ok is false otherwise.
func (t *table) indexKey(pos map[int]string) (key string, ok bool) {
	if t.index == nil || t.indexCols == "" {
		return "", false
	}
	cols := strings.Split(strings.TrimSuffix(t.indexCols, ","), ",")
	if len(cols) != len(pos) {
		return "", false
	}
	var sb strings.Builder
	for _, c := range cols {
		i, err := strconv.Atoi(c)
		if err != nil {
			return "", false
		}
		v, ok := pos[i]
		if !ok {
			return "", false
		}
		writeKeyPart(&sb, Value{Text: v})
	}
	return sb.String(), true
}

// Sink writes to a DB; it implements apply.Sink (and the optional shape
// store the engine uses to tell renamed columns).
type Sink struct {
	db     *DB
	tx     *snap // the open transaction
	closed bool
}

var errClosed = errors.New("memory: sink is closed")

// ReadState returns the state as the open transaction sees it.
func (s *Sink) ReadState(context.Context) (schema.State, bool, error) {
	if s.closed {
		return schema.State{}, false, errClosed
	}
	sn := s.view()
	return sn.state, sn.hasState, nil
}

// view is the open transaction, or the committed copy.
func (s *Sink) view() *snap {
	if s.tx != nil {
		return s.tx
	}
	s.db.mu.RLock()
	defer s.db.mu.RUnlock()
	return s.db.committed
}

// Begin opens a transaction.
func (s *Sink) Begin(context.Context) error {
	if s.closed {
		return errClosed
	}
	if s.tx != nil {
		return errors.New("memory: a transaction is already open")
	}
	s.db.mu.RLock()
	c := s.db.committed
	s.db.mu.RUnlock()
	s.tx = &snap{state: c.state, hasState: c.hasState, tables: maps.Clone(c.tables), shapes: maps.Clone(c.shapes), owned: map[Name]bool{}}
	return nil
}

// Commit stores st and makes the transaction visible to readers at once.
func (s *Sink) Commit(_ context.Context, st schema.State) error {
	if s.closed {
		return errClosed
	}
	if s.tx == nil {
		return errors.New("memory: commit without a transaction")
	}
	tx := s.tx
	s.tx = nil
	tx.state, tx.hasState, tx.owned = st, true, nil
	s.db.mu.Lock()
	s.db.committed = tx
	s.db.mu.Unlock()
	return nil
}

// Rollback abandons the open transaction, if any.
func (s *Sink) Rollback(context.Context) error {
	s.tx = nil
	return nil
}

// Close abandons an open transaction and lets another sink open the DB;
// what was committed stays in it.
func (s *Sink) Close() error {
	if s.closed {
		return nil
	}
	s.tx, s.closed = nil, true
	s.db.mu.Lock()
	if s.db.open == s {
		s.db.open = nil
	}
	s.db.mu.Unlock()
	return nil
}

// writable returns the transaction's own copy of a table (nil when absent).
func (s *Sink) writable(n Name) *table {
	t := s.tx.tables[n]
	if t == nil || s.tx.owned[n] {
		return t
	}
	t = t.clone()
	s.tx.tables[n], s.tx.owned[n] = t, true
	return t
}

func (s *Sink) needTx() error {
	if s.closed {
		return errClosed
	}
	if s.tx == nil {
		return errors.New("memory: no transaction open")
	}
	return nil
}

func nameOf(t *schema.Table) Name { return Name{t.Schema, t.Name} }

// EnsureTable creates the table, or does what t.Change says and adds the
// columns it lacks, filling existing rows as t.Fills says. Columns the
// source dropped are kept with their values.
func (s *Sink) EnsureTable(_ context.Context, t *schema.Table) error {
	if err := s.needTx(); err != nil {
		return err
	}
	n := nameOf(t)
	if c := t.Change; !c.Empty() && c.FromName != "" {
		from := Name{c.FromSchema, c.FromName}
		if old := s.tx.tables[from]; old != nil {
			if s.tx.tables[n] != nil && c.Vacate && from != n {
				// A copy no published table has any more (its table was
				// dropped, say in a swap by rename): moved aside, as the
				// other sinks do.
				aside := Name{n.Schema, schema.AsideName(n.Table, 0, func(x string) bool { return s.tx.tables[Name{n.Schema, x}] != nil })}
				s.tx.tables[aside], s.tx.owned[aside] = s.writable(n), true
				delete(s.tx.tables, n)
				delete(s.tx.owned, n)
			}
			if s.tx.tables[n] != nil {
				// Another table's copy has the name: the engine moves it
				// aside first (MoveTable); merging into it would mix
				// two tables' rows.
				return fmt.Errorf("memory: rename %s to %s: a table of that name exists", schema.DisplayName(from.Schema, from.Table), schema.DisplayName(n.Schema, n.Table))
			}
			s.tx.tables[n], s.tx.owned[n] = s.writable(from), true
			delete(s.tx.tables, from)
			delete(s.tx.owned, from)
		}
	}
	tb := s.writable(n)
	if tb == nil {
		tb = &table{colIdx: map[string]int{}, rows: map[int64][]Value{}}
		for _, c := range t.Columns {
			tb.colIdx[c.Name] = len(tb.cols)
			tb.cols = append(tb.cols, c.Name)
		}
		s.tx.tables[n], s.tx.owned[n] = tb, true
		return nil
	}
	if c := t.Change; !c.Empty() {
		for newName, oldName := range c.Renamed {
			i, ok := tb.colIdx[oldName]
			if _, taken := tb.colIdx[newName]; !ok || taken {
				continue
			}
			delete(tb.colIdx, oldName)
			tb.cols[i], tb.colIdx[newName] = newName, i
			tb.index, tb.indexCols = nil, ""
		}
		for _, name := range c.Replaced() {
			i, ok := tb.colIdx[name]
			if !ok {
				continue // added below
			}
			v, err := fill(t, name)
			if err != nil {
				return err
			}
			for id, r := range tb.rows {
				r = slices.Clone(r)
				r[i] = v
				tb.rows[id] = r
			}
			tb.index, tb.indexCols = nil, ""
		}
	}
	for _, c := range t.Columns {
		if _, ok := tb.colIdx[c.Name]; ok {
			continue
		}
		v, err := fill(t, c.Name)
		if err != nil {
			return err
		}
		tb.colIdx[c.Name] = len(tb.cols)
		tb.cols = append(tb.cols, c.Name)
		for id, r := range tb.rows {
			tb.rows[id] = append(slices.Clip(r), v)
		}
	}
	return nil
}

// MoveTable renames the table of source table schemaName.from to
// schemaName.to (for the engine: a table whose name another one took
// before its own rename was seen).
func (s *Sink) MoveTable(_ context.Context, schemaName, from, to string) error {
	if err := s.needTx(); err != nil {
		return err
	}
	src, dst := Name{schemaName, from}, Name{schemaName, to}
	if s.tx.tables[src] == nil {
		return fmt.Errorf("memory: no table %s.%s to move", schemaName, from)
	}
	if s.tx.tables[dst] != nil {
		return fmt.Errorf("memory: cannot move %s.%s to %s: that table exists", schemaName, from, to)
	}
	s.tx.tables[dst], s.tx.owned[dst] = s.writable(src), true
	delete(s.tx.tables, src)
	delete(s.tx.owned, src)
	return nil
}

// fill is what existing rows hold in a column t added.
func fill(t *schema.Table, column string) (Value, error) {
	f, ok := t.Fills[column]
	if !ok {
		return Value{Null: true}, nil
	}
	if err := f.Check(t, column); err != nil {
		return Value{}, err
	}
	return value(f.Value), nil
}

func value(d schema.Datum) Value {
	if d.State == schema.Text {
		return Value{Text: string(d.Data)} // a copy: the caller reuses Data
	}
	return Value{Null: true}
}

// Truncate empties the tables.
func (s *Sink) Truncate(_ context.Context, tables []*schema.Table) error {
	if err := s.needTx(); err != nil {
		return err
	}
	for _, t := range tables {
		if tb := s.writable(nameOf(t)); tb != nil {
			tb.rows, tb.index, tb.indexCols = map[int64][]Value{}, nil, ""
		}
	}
	return nil
}

// writer applies one batch to one table.
type writer struct {
	t    *schema.Table
	tb   *table
	pos  []int // target column of each of t's columns
	keys []int // positions in t of the key columns; nil: whole rows
}

// Write applies a batch: Deletes, Inserts, Updates and Patches, then Rows
// in order. An insert of a key the table holds, and an update of a row it
// lacks, are errors (the copy no longer mirrors the source).
func (s *Sink) Write(_ context.Context, b *schema.Batch) error {
	if err := s.needTx(); err != nil {
		return err
	}
	tb := s.writable(nameOf(b.Table))
	if tb == nil {
		return fmt.Errorf("memory: write to %s before EnsureTable", b.Table.QualifiedName())
	}
	w := &writer{t: b.Table, tb: tb, pos: make([]int, len(b.Table.Columns))}
	for i, c := range b.Table.Columns {
		p, ok := tb.colIdx[c.Name]
		if !ok {
			return fmt.Errorf("memory: %s has no column %q (EnsureTable not called for this shape)", b.Table.QualifiedName(), c.Name)
		}
		w.pos[i] = p
	}
	if b.Table.HasKey() {
		w.keys = b.Table.KeyIndexes()
		w.buildIndex()
	}
	for _, k := range b.Deletes {
		if id, ok := w.find(k); ok {
			w.remove(id)
		}
	}
	for _, r := range b.Inserts {
		if err := w.insert(r); err != nil {
			return err
		}
	}
	for _, r := range b.Updates {
		if err := w.update(r, r); err != nil {
			return err
		}
	}
	for _, r := range b.Patches {
		if err := w.update(r, r); err != nil {
			return err
		}
	}
	for _, c := range b.Rows {
		if c.Op != schema.Insert && w.keys == nil && (c.Old == nil || w.t.Identity != schema.IdentityFull) {
			return schema.Unidentified(w.t, c.Op, c.Old != nil)
		}
		var err error
		switch c.Op {
		case schema.Insert:
			err = w.insert(c.New)
		case schema.Update:
			old := c.Old
			if old == nil {
				old = c.New
			}
			err = w.update(old, c.New)
		case schema.Delete:
			if id, ok := w.find(c.Old); ok {
				w.remove(id)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keyOf encodes the key columns of a tuple in t's shape, or of a stored
// row when row is set.
func (w *writer) keyOf(tup schema.Tuple, row []Value) string {
	var sb strings.Builder
	for _, k := range w.keys {
		var v Value
		if row != nil {
			v = row[w.pos[k]]
		} else {
			v = value(tup[k])
		}
		writeKeyPart(&sb, v)
	}
	return sb.String()
}

// writeKeyPart appends one column's value to a key of the key index.
func writeKeyPart(sb *strings.Builder, v Value) {
	if v.Null {
		sb.WriteString("n;")
		return
	}
	sb.WriteString(strconv.Itoa(len(v.Text)))
	sb.WriteByte(':')
	sb.WriteString(v.Text)
}

func (w *writer) buildIndex() {
	var sb strings.Builder
	for _, k := range w.keys {
		sb.WriteString(strconv.Itoa(w.pos[k]))
		sb.WriteByte(',')
	}
	if id := sb.String(); w.tb.indexCols != id || w.tb.index == nil {
		w.tb.indexCols = id
		w.tb.index = make(map[string]int64, len(w.tb.rows))
		for rid, r := range w.tb.rows {
			w.tb.index[w.keyOf(nil, r)] = rid
		}
	}
}

// find returns the row a tuple identifies: by key, or the first row equal
// in every column of the shape (NULL equal to NULL).
func (w *writer) find(tup schema.Tuple) (int64, bool) {
	if w.keys != nil {
		id, ok := w.tb.index[w.keyOf(tup, nil)]
		return id, ok
	}
	best, found := int64(0), false
	for id, r := range w.tb.rows {
		if found && id > best {
			continue
		}
		match := true
		for i, d := range tup {
			if d.State == schema.Unchanged {
				continue
			}
			if value(d) != r[w.pos[i]] {
				match = false
				break
			}
		}
		if match {
			best, found = id, true
		}
	}
	return best, found
}

func (w *writer) remove(id int64) {
	if w.keys != nil {
		delete(w.tb.index, w.keyOf(nil, w.tb.rows[id]))
	}
	delete(w.tb.rows, id)
}

func (w *writer) put(id int64, r []Value) {
	w.tb.rows[id] = r
	if w.keys != nil {
		w.tb.index[w.keyOf(nil, r)] = id
	}
}

func (w *writer) insert(tup schema.Tuple) error {
	r := make([]Value, len(w.tb.cols))
	for i := range r {
		r[i] = Value{Null: true}
	}
	for i, d := range tup {
		r[w.pos[i]] = value(d)
	}
	if w.keys != nil {
		if _, dup := w.tb.index[w.keyOf(nil, r)]; dup {
			return schema.Diverged(w.t, fmt.Errorf("memory: insert into %s: a row with key %s exists already", w.t.QualifiedName(), w.describeKey(tup)))
		}
	}
	w.tb.nextID++
	w.put(w.tb.nextID, r)
	return nil
}

// update replaces the row old identifies with the sent columns of tup.
func (w *writer) update(old, tup schema.Tuple) error {
	id, ok := w.find(old)
	if !ok {
		return schema.Diverged(w.t, fmt.Errorf("memory: update of %s: the row %s is missing from the copy", w.t.QualifiedName(), w.describeKey(old)))
	}
	r := slices.Clone(w.tb.rows[id])
	w.remove(id)
	for i, d := range tup {
		if d.State != schema.Unchanged {
			r[w.pos[i]] = value(d)
		}
	}
	if w.keys != nil {
		if _, dup := w.tb.index[w.keyOf(nil, r)]; dup {
			return schema.Diverged(w.t, fmt.Errorf("memory: update of %s: the new key %s is taken", w.t.QualifiedName(), w.keyOf(nil, r)))
		}
	}
	w.put(id, r)
	return nil
}

func (w *writer) describeKey(tup schema.Tuple) string {
	var parts []string
	for i, c := range w.t.Columns {
		if w.keys != nil && !slices.Contains(w.keys, i) || i >= len(tup) {
			continue
		}
		v := value(tup[i])
		s := "NULL"
		if !v.Null {
			s = strconv.Quote(v.Text)
		}
		parts = append(parts, c.Name+"="+s)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Shape returns the shape stored for a source table (the engine's shape
// store: it tells renamed columns from dropped and added ones).
func (s *Sink) Shape(_ context.Context, relid uint32) (string, bool, error) {
	if s.closed {
		return "", false, errClosed
	}
	sh, ok := s.view().shapes[relid]
	return sh, ok, nil
}

// ShapeIDs lists the source tables (relids) whose shape is stored.
func (s *Sink) ShapeIDs(context.Context) ([]uint32, error) {
	if s.closed {
		return nil, errClosed
	}
	var ids []uint32
	for id := range s.view().shapes {
		ids = append(ids, id)
	}
	return ids, nil
}

// ForgetShape drops relid's stored shape in the open transaction.
func (s *Sink) ForgetShape(_ context.Context, relid uint32) error {
	if err := s.needTx(); err != nil {
		return err
	}
	delete(s.tx.shapes, relid)
	return nil
}

// SetShape stores t's shape in the open transaction.
func (s *Sink) SetShape(_ context.Context, t *schema.Table, shape string) error {
	if err := s.needTx(); err != nil {
		return err
	}
	s.tx.shapes[t.ID] = shape
	return nil
}

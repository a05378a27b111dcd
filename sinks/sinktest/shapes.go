package sinktest

import (
	"context"
	"slices"
	"strconv"

	"github.com/walmirror/walmirror/schema"
)

// ShapeStore has the methods of apply.ShapeStore, which apply.Run requires
// of a sink.
type ShapeStore interface {
	Shape(ctx context.Context, relid uint32) (shape string, found bool, err error)
	SetShape(ctx context.Context, t *schema.Table, shape string) error
	ShapeIDs(ctx context.Context) ([]uint32, error)
	ForgetShape(ctx context.Context, relid uint32) error
}

// tableMover is the optional sink method the engine uses when a renamed
// table takes the name another table's copy still has.
type tableMover interface {
	MoveTable(ctx context.Context, schemaName, from, to string) error
}

// testShapes: stored shapes are transactional like the data (a rollback
// drops what SetShape and ForgetShape did), survive a reopen, keep texts
// with quotes and non-ASCII exactly, and relids with the top bit set.
func testShapes(h *harness) {
	ss, ok := h.s.(ShapeStore)
	if !ok {
		h.t.Fatalf("%T does not implement ShapeStore: apply.Run refuses it", h.s)
	}
	store := func() ShapeStore { return h.s.(ShapeStore) }
	ids := func() []uint32 {
		h.t.Helper()
		got, err := store().ShapeIDs(h.ctx())
		h.check(err, "ShapeIDs")
		slices.Sort(got)
		return got
	}
	shape := func(id uint32) (string, bool) {
		h.t.Helper()
		s, found, err := store().Shape(h.ctx(), id)
		h.check(err, "Shape(%d)", id)
		return s, found
	}
	if got := ids(); len(got) != 0 {
		h.t.Fatalf("ShapeIDs on a fresh target = %v, want none", got)
	}
	a := keyed("public", "shape_a", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	b := schema.NewTable(4_000_000_001, "public", "shape_b", schema.IdentityDefault, []schema.Column{col("id", schema.OIDInt8, true)})
	const textA = `{"name":"it's \"q\" ✓","cols":[1,2]}`

	h.begin()
	h.ensure(a)
	h.check(ss.SetShape(h.ctx(), a, textA), "SetShape")
	h.rollback()
	if s, found := shape(a.ID); found {
		h.t.Fatalf("Shape after a rolled-back SetShape = %q, want none", s)
	}

	h.tx(func() {
		h.ensure(a, b)
		h.check(store().SetShape(h.ctx(), a, textA), "SetShape(a)")
		h.check(store().SetShape(h.ctx(), b, "b1"), "SetShape(b)")
		h.write(&schema.Batch{Table: a, Inserts: rows(row("1", "x"))})
	})
	h.reopen()
	if s, found := shape(a.ID); !found || s != textA {
		h.t.Fatalf("Shape(a) after reopen = %q, %v; want %q", s, found, textA)
	}
	if got, want := ids(), []uint32{a.ID, b.ID}; !slices.Equal(got, want) {
		h.t.Fatalf("ShapeIDs = %v, want %v", got, want)
	}

	h.tx(func() { h.check(store().SetShape(h.ctx(), b, "b2"), "SetShape(b) again") })
	if s, _ := shape(b.ID); s != "b2" {
		h.t.Fatalf("Shape(b) after a second SetShape = %q, want b2", s)
	}

	h.begin()
	h.check(store().ForgetShape(h.ctx(), a.ID), "ForgetShape")
	h.rollback()
	if _, found := shape(a.ID); !found {
		h.t.Fatal("a rolled-back ForgetShape dropped the shape")
	}
	h.tx(func() { h.check(store().ForgetShape(h.ctx(), a.ID), "ForgetShape") })
	if _, found := shape(a.ID); found {
		h.t.Fatal("Shape found after ForgetShape")
	}
	if got, want := ids(), []uint32{b.ID}; !slices.Equal(got, want) {
		h.t.Fatalf("ShapeIDs after ForgetShape = %v, want %v", got, want)
	}
	h.want(a, r("1", "x")) // the table stays
}

// testMoveTable: a sink that can move a table aside (MoveTable) keeps its
// rows and shape under the new name, frees the old name for another
// table, and undoes the move on rollback.
func testMoveTable(h *harness) {
	if _, ok := h.s.(tableMover); !ok {
		h.t.Skipf("%T has no MoveTable: a table swapped in by rename stops the run", h.s)
	}
	mv := func() tableMover { return h.s.(tableMover) }
	old := keyed("public", "swap_me", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	h.tx(func() {
		h.ensure(old)
		h.check(h.s.(ShapeStore).SetShape(h.ctx(), old, "old"), "SetShape")
		h.write(&schema.Batch{Table: old, Inserts: rows(row("1", "a"), row("2", "b"))})
	})
	aside := schema.NewTable(old.ID, "public", "swap_me_walmirror_1", old.Identity, old.Columns)

	h.begin()
	h.check(mv().MoveTable(h.ctx(), "public", "swap_me", aside.Name), "MoveTable")
	h.rollback()
	h.want(old, r("1", "a"), r("2", "b"))
	h.want(aside)

	h.tx(func() {
		h.check(mv().MoveTable(h.ctx(), "public", "swap_me", aside.Name), "MoveTable")
		h.check(h.s.(ShapeStore).SetShape(h.ctx(), aside, "aside"), "SetShape")
		// The name is free for the table renamed to it.
		newer := keyed("public", "swap_me", col("k", schema.OIDText, true))
		h.ensure(newer)
		h.write(&schema.Batch{Table: newer, Inserts: rows(row("n"))})
	})
	h.reopen()
	h.want(aside, r("1", "a"), r("2", "b"))
	h.want(keyed("public", "swap_me", col("k", schema.OIDText, true)), r("n"))
	// Writes reach the moved table under its new name.
	h.tx(func() {
		h.ensure(aside)
		h.write(&schema.Batch{Table: aside, Updates: rows(row("2", "B"))})
	})
	h.want(aside, r("1", "a"), r("2", "B"))
}

// testMoveLookupTable: keyless tables with a Lookup (which a sink may
// index, under a name of its choosing) moved aside and replaced under
// their name by another such table, as two tables that trade names: both
// still take sets of changes.
func testMoveLookupTable(h *harness) {
	if _, ok := h.s.(tableMover); !ok {
		h.t.Skipf("%T has no MoveTable", h.s)
	}
	mk := func(id uint32, name string) *schema.Table {
		t := schema.NewTable(id, "public", name, schema.IdentityFull, []schema.Column{col("id", schema.OIDInt4, true), col("v", schema.OIDText, true)})
		t.Lookup = []int{0}
		return t
	}
	a := keyless("public", "lk_a", col("id", schema.OIDInt4, false), col("v", schema.OIDText, false))
	a.Lookup = []int{0}
	b := mk(a.ID+1, "lk_b")
	sets := func(t *schema.Table, from, to string) {
		h.t.Helper()
		var cs []schema.RowChange
		for i := range 5 {
			cs = append(cs, upd(row(strconv.Itoa(i), from), row(strconv.Itoa(i), to)))
		}
		h.write(&schema.Batch{Table: t, Rows: cs})
	}
	h.tx(func() {
		for _, t := range []*schema.Table{a, b} {
			h.ensure(t)
			var cs []schema.RowChange
			for i := range 5 {
				cs = append(cs, ins(row(strconv.Itoa(i), t.Name)))
			}
			h.write(&schema.Batch{Table: t, Rows: cs})
		}
	})
	// a and b trade names: a aside, b to a's name, a to b's.
	aside, bAsA, aAsB := mk(a.ID, "lk_a_walmirror_1"), mk(b.ID, "lk_a"), mk(a.ID, "lk_b")
	bAsA.Change = &schema.Change{FromSchema: "public", FromName: "lk_b"}
	aAsB.Change = &schema.Change{FromSchema: "public", FromName: "lk_a_walmirror_1"}
	h.tx(func() {
		h.check(h.s.(tableMover).MoveTable(h.ctx(), "public", "lk_a", aside.Name), "MoveTable")
		h.ensure(bAsA)
		sets(bAsA, "lk_b", "b moved")
		h.ensure(aAsB)
		sets(aAsB, "lk_a", "a moved")
	})
	h.reopen()
	h.tx(func() {
		h.ensure(mk(b.ID, "lk_a"))
		sets(mk(b.ID, "lk_a"), "b moved", "b again")
	})
	var wa, wb [][]string
	for i := range 5 {
		wa = append(wa, r(strconv.Itoa(i), "b again"))
		wb = append(wb, r(strconv.Itoa(i), "a moved"))
	}
	h.want(mk(b.ID, "lk_a"), wa...)
	h.want(mk(a.ID, "lk_b"), wb...)
}

// testRenameOntoTaken: EnsureTable of a renamed table (Change.FromName)
// whose new name another table's copy still has fails and changes
// neither: the engine moves that copy aside first (MoveTable) or stops.
// Before, the memory sink kept writing into the other table's copy
// (helper-82: a swap of two tables' names with a sink of one's own).
func testRenameOntoTaken(h *harness) {
	a, b, renamed := renameOntoOther(h, "ren", false)
	h.begin()
	if err := h.s.EnsureTable(h.ctx(), renamed); err == nil {
		h.t.Fatal("EnsureTable renamed a table onto the name of another table's copy without an error")
	}
	h.rollback()
	h.want(a, r("1", "a"))
	h.want(b, r("2", "b"))
}

// testRenameOntoVacated: a rename onto the name of a copy no published
// table has any more (Change.Vacate: its table was dropped, say in a swap
// by rename) moves that copy aside, keeping its rows, and takes the name
// (helper-83: the memory sink refused it at every run).
func testRenameOntoVacated(h *harness) {
	_, b, renamed := renameOntoOther(h, "vac", true)
	h.tx(func() {
		h.check(h.s.EnsureTable(h.ctx(), renamed), "EnsureTable of a rename onto a vacated name")
		h.write(&schema.Batch{Table: renamed, Inserts: rows(row("3", "c"))})
	})
	h.want(renamed, r("1", "a"), r("3", "c"))
	h.want(schema.NewTable(b.ID, "public", "vac_b_dropped", b.Identity, b.Columns), r("2", "b"))
}

// testMoveOntoVacatedSchema: a table moved into another schema (ALTER
// TABLE ... SET SCHEMA) onto the name of a copy no published table has any
// more there moves that copy aside and takes the name, rows and key
// included, also where index names are per schema (helper-108: the
// PostgreSQL target stopped at every start, "relation "m_pkey" already
// exists in schema": the copy moved aside kept its key's index name).
func testMoveOntoVacatedSchema(h *harness) {
	a := keyed("mvs_one", "m", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	b := keyed("mvs_two", "m", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	h.tx(func() {
		h.ensure(a, b)
		h.write(&schema.Batch{Table: a, Inserts: rows(row("1", "a"))})
		h.write(&schema.Batch{Table: b, Inserts: rows(row("2", "b"))})
	})
	moved := schema.NewTable(a.ID, "mvs_two", "m", a.Identity, a.Columns)
	moved.Change = &schema.Change{FromSchema: "mvs_one", FromName: "m", Vacate: true}
	h.tx(func() {
		h.check(h.s.EnsureTable(h.ctx(), moved), "EnsureTable of a table moved onto a vacated name in another schema")
		h.write(&schema.Batch{Table: moved, Inserts: rows(row("3", "c"))})
	})
	h.want(moved, r("1", "a"), r("3", "c"))
	h.want(schema.NewTable(b.ID, "mvs_two", "m_dropped", b.Identity, b.Columns), r("2", "b"))
	// The moved table's key still refuses a second row of a key.
	h.begin()
	if err := h.s.Write(h.ctx(), &schema.Batch{Table: moved, Inserts: rows(row("3", "again"))}); err == nil {
		if err := h.s.Commit(h.ctx(), h.nextState()); err == nil {
			h.t.Fatal("a moved table took a second row of key 3")
		}
	}
	h.rollback()
}

// renameOntoOther makes tables <prefix>_a (row 1) and <prefix>_b (row 2),
// and returns them with a renamed onto b's name (Change.Vacate as given).
func renameOntoOther(h *harness, prefix string, vacate bool) (a, b, renamed *schema.Table) {
	a = keyed("public", prefix+"_a", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	b = keyed("public", prefix+"_b", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	h.tx(func() {
		h.ensure(a, b)
		h.write(&schema.Batch{Table: a, Inserts: rows(row("1", "a"))})
		h.write(&schema.Batch{Table: b, Inserts: rows(row("2", "b"))})
	})
	renamed = schema.NewTable(a.ID, "public", b.Name, a.Identity, a.Columns)
	renamed.Change = &schema.Change{FromSchema: "public", FromName: a.Name, Vacate: vacate}
	return a, b, renamed
}

// testRekeyReplacing: a table whose source key changed, shaped for a copy
// that replaces its rows (Table.Replacing: the copy follows in the same
// transaction), takes the new key even when the rows it held repeat the
// key or lack it (rows of a time the source had no key); the sink may
// empty it first. Without Replacing the rows are kept. (Fuzzing: SQLite's
// rebuild of the table under the new key failed at every start, each
// time an online copy made ready to replace it.)
func testRekeyReplacing(h *harness) {
	loose := keyless("public", "rekey_me", col("k", schema.OIDInt4, false), col("v", schema.OIDText, false))
	h.tx(func() {
		h.ensure(loose)
		h.write(&schema.Batch{Table: loose, Rows: []schema.RowChange{ins(row("1", "a")), ins(row("1", "a")), ins(row(nil, "b"))}})
	})
	rekeyed := schema.NewTable(loose.ID, "public", "rekey_me", schema.IdentityDefault,
		[]schema.Column{col("k", schema.OIDInt4, true), col("v", schema.OIDText, false)})
	rekeyed.Replacing = true
	h.tx(func() {
		h.ensure(rekeyed)
		h.truncate(rekeyed)
		h.write(&schema.Batch{Table: rekeyed, Inserts: rows(row("1", "a"), row("2", "c"))})
	})
	h.want(rekeyed, r("1", "a"), r("2", "c"))
	// Keyed on another column, not replaced: the rows stay.
	again := schema.NewTable(loose.ID, "public", "rekey_me", schema.IdentityDefault,
		[]schema.Column{col("k", schema.OIDInt4, false), col("v", schema.OIDText, true)})
	h.tx(func() {
		h.ensure(again)
		h.write(&schema.Batch{Table: again, Inserts: rows(row("3", "d"))})
	})
	h.want(again, r("1", "a"), r("2", "c"), r("3", "d"))
	// The old key column takes NULL now (a PostgreSQL target's dropped
	// primary key left it NOT NULL: every start failed at such a row).
	h.tx(func() {
		h.write(&schema.Batch{Table: again, Inserts: rows(row(nil, "e"))})
	})
	h.want(again, r("1", "a"), r("2", "c"), r("3", "d"), r("NULL", "e"))
}

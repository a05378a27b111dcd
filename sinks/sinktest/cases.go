package sinktest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// render is how Target.Rows renders a tuple of text values: NULL as "NULL".
// (No test value is the text "NULL".)
func render(t schema.Tuple) []string {
	out := make([]string, len(t))
	for i, d := range t {
		switch d.State {
		case schema.Null:
			out[i] = "NULL"
		case schema.Text:
			out[i] = string(d.Data)
		default:
			panic("sinktest: render of an unsent value")
		}
	}
	return out
}

// testState: the state row is absent on a fresh target, is exactly what the
// last Commit stored, and survives reopening.
func testState(h *harness) {
	if st, ok, err := h.s.ReadState(h.ctx()); err != nil || ok {
		h.t.Fatalf("ReadState on a fresh target = %+v, %v, %v; want ok = false, no error", st, ok, err)
	}
	h.rollback() // no transaction open: a no-op

	h.reopen()
	if st, ok, err := h.s.ReadState(h.ctx()); err != nil || ok {
		h.t.Fatalf("ReadState on a reopened, never-committed target = %+v, %v, %v; want ok = false", st, ok, err)
	}

	st1 := schema.State{LSN: 0x16B3748, Slot: "walmirror", SystemID: "7412345678901234567", Phase: schema.PhaseSnapshot}
	h.begin()
	h.check(h.s.Commit(h.ctx(), st1), "Commit")
	h.wantState(st1)

	// The largest LSNs have the top bit set: no signed truncation.
	st2 := schema.State{LSN: lsn.LSN(0xFFFFFFFE_00000010), Slot: "other_slot", SystemID: "18446744073709551615", Timeline: 1<<32 - 1, Publication: `we"ird pub`, SlotGuard: true, Phase: schema.PhaseStreaming}
	h.begin()
	h.check(h.s.Commit(h.ctx(), st2), "Commit")
	h.wantState(st2)

	// An abandoned transaction leaves the state alone.
	h.begin()
	h.rollback()
	h.wantState(st2)

	h.reopen()
	h.wantState(st2)

	st3 := schema.State{LSN: 1, Slot: "walmirror", SystemID: "1", Timeline: 2, Phase: schema.PhaseStreaming}
	h.begin()
	h.check(h.s.Commit(h.ctx(), st3), "Commit after reopen")
	h.reopen()
	h.wantState(st3)

	// A closed sink says so (helper-99: SQLite and DuckDB said "sql:
	// connection is already closed", which names no sink).
	h.check(h.s.Close(), "Close")
	closed := h.s
	h.s = nil
	if _, _, err := closed.ReadState(h.ctx()); err == nil || !strings.Contains(err.Error(), "sink") || !strings.Contains(err.Error(), "closed") {
		h.t.Fatalf("ReadState after Close = %v; want an error saying the sink is closed", err)
	}
}

// testRollback: Rollback discards data, tables, columns and state.
func testRollback(h *harness) {
	kv := keyed("public", "kv", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	st0 := h.tx(func() {
		h.ensure(kv)
		h.write(&schema.Batch{Table: kv, Inserts: rows(row("1", "a"))})
	})

	// Changes to an existing table.
	h.begin()
	h.ensure(kv)
	h.write(&schema.Batch{Table: kv, Inserts: rows(row("2", "b")), Updates: rows(row("1", "changed"))})
	h.write(&schema.Batch{Table: kv, Deletes: rows(row("1", nil))})
	h.truncate(kv)
	h.write(&schema.Batch{Table: kv, Rows: []schema.RowChange{ins(row("3", "c"))}})
	h.rollback()
	h.wantState(st0)
	h.want(kv, r("1", "a"))

	// A table created in the abandoned transaction.
	nt := keyed("public", "created_then_rolled_back", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	h.begin()
	h.ensure(nt)
	h.write(&schema.Batch{Table: nt, Inserts: rows(row("1", "x"))})
	h.rollback()
	h.wantState(st0)
	h.want(nt) // empty or absent

	// A column added in the abandoned transaction.
	kv2 := reshape(kv, append(kv.Columns, col("extra", schema.OIDText, false))...)
	h.begin()
	h.ensure(kv2)
	h.write(&schema.Batch{Table: kv2, Inserts: rows(row("9", "i", "e")), Updates: rows(row("1", "u", "e"))})
	h.rollback()
	h.wantState(st0)
	h.want(kv, r("1", "a"))

	// Everything can be done again, with the same table descriptions (a sink
	// must not trust caches filled in the abandoned transaction).
	h.tx(func() {
		h.ensure(nt, kv2)
		h.write(&schema.Batch{Table: nt, Inserts: rows(row("1", "x"))})
		h.write(&schema.Batch{Table: kv2, Inserts: rows(row("2", "b", "e"))})
		h.write(&schema.Batch{Table: kv, Inserts: rows(row("3", "c"))})
	})
	h.want(nt, r("1", "x"))
	h.want(kv2, r("1", "a", "NULL"), r("2", "b", "e"), r("3", "c", "NULL"))

	// A rollback after a commit on the same sink, then a later write without
	// EnsureTable (the engine ensures a table once per sink lifetime).
	h.begin()
	h.write(&schema.Batch{Table: kv2, Deletes: rows(row("1", nil, nil))})
	h.rollback()
	h.tx(func() {
		h.write(&schema.Batch{Table: kv2, Patches: rows(row("1", unsent, "p"))})
	})
	h.want(kv2, r("1", "a", "p"), r("2", "b", "e"), r("3", "c", "NULL"))

	h.reopen()
	h.want(nt, r("1", "x"))
	h.want(kv2, r("1", "a", "p"), r("2", "b", "e"), r("3", "c", "NULL"))
}

// testKeyedBatch: the set-wise parts of a batch on tables with a key.
func testKeyedBatch(h *harness) {
	kv := keyed("public", "kv", col("id", schema.OIDInt4, true), col("name", schema.OIDText, false), col("note", schema.OIDText, false))
	// Composite key, not in the leading columns.
	ck := keyed("public", "ck", col("v", schema.OIDText, false), col("b", schema.OIDText, true),
		col("a", schema.OIDInt8, true), col("w", schema.OIDText, false))

	h.tx(func() {
		h.ensure(kv, ck)
		h.write(&schema.Batch{Table: kv, Inserts: rows(row("1", "a", "x"), row("2", "b", "y"), row("3", "c", "z"))})
		h.write(&schema.Batch{Table: ck, Inserts: rows(
			row("v1", "a", "1", "w1"), row("v2", "b", "1", "w2"), row("v3", "a", "2", "w3"), row("v4", "b", "2", "w4"))})
	})
	h.want(kv, r("1", "a", "x"), r("2", "b", "y"), r("3", "c", "z"))

	// Deletes remove by key, Inserts add new rows, Updates replace by key,
	// Patches set only sent columns.
	h.tx(func() {
		h.write(&schema.Batch{Table: kv,
			// Deletes carry the key; other columns may hold anything.
			Deletes: rows(row("3", unsent, "junk"), row("99", nil, nil) /* absent: no-op */),
			Inserts: rows(row("4", nil, nil)),
			Updates: rows(row("2", "B", "Y")),
			Patches: rows(row("1", unsent, "x2")),
		})
	})
	h.want(kv, r("1", "a", "x2"), r("2", "B", "Y"), r("4", "NULL", "NULL"))

	// A patch may set NULL; unsent columns keep their values.
	h.tx(func() {
		h.write(&schema.Batch{Table: kv, Patches: rows(
			row("2", nil, unsent), // sets NULL, keeps note
			row("1", "A", unsent),
			row("4", "d", "n"), // every column sent
		)})
	})
	h.want(kv, r("1", "A", "x2"), r("2", "NULL", "Y"), r("4", "d", "n"))

	// Composite keys, in any column positions.
	h.tx(func() {
		h.write(&schema.Batch{Table: ck,
			Deletes: rows(row(nil, "a", "1", unsent)),
			Inserts: rows(row("v5", "c", "1", nil)),
			Updates: rows(row("v2'", "b", "1", "w2'")),
			Patches: rows(row("v3'", "a", "2", unsent), row(unsent, "b", "2", "w4'")),
		})
	})
	h.want(ck, r("v2'", "b", "1", "w2'"), r("v3'", "a", "2", "w3"), r("v4", "b", "2", "w4'"), r("v5", "c", "1", "NULL"))

	// Deletes by composite key remove exactly those rows; absent keys are no-ops.
	h.tx(func() {
		h.write(&schema.Batch{Table: ck, Deletes: rows(row(nil, "c", "1", nil), row(nil, "b", "2", nil), row(nil, "a", "1", nil) /* gone already */)})
	})
	h.want(ck, r("v2'", "b", "1", "w2'"), r("v3'", "a", "2", "w3"))

	// Rows come after Deletes, Inserts, Updates and Patches of the same batch.
	h.tx(func() {
		h.write(&schema.Batch{Table: kv,
			Deletes: rows(row("1", nil, nil)),
			Inserts: rows(row("5", "e", "new"), row("10", "x", "y")),
			Updates: rows(row("2", "b", "upd")),
			Patches: rows(row("4", unsent, "patched")),
			Rows: []schema.RowChange{
				ins(row("1", "again", "r")),                        // needs the delete first
				upd(row("5", nil, nil), row("6", unsent, "moved")), // needs the insert first
				upd(row("4", nil, nil), row("7", "seven", unsent)), // needs the patch first
				upd(row("2", nil, nil), row("8", unsent, unsent)),  // needs the update first
				del(row("10", nil, nil)),
			},
		})
	})
	h.want(kv, r("1", "again", "r"), r("6", "e", "moved"), r("7", "seven", "patched"), r("8", "b", "upd"))

	// Durable, and writable after reopening.
	h.reopen()
	h.want(kv, r("1", "again", "r"), r("6", "e", "moved"), r("7", "seven", "patched"), r("8", "b", "upd"))
	h.want(ck, r("v2'", "b", "1", "w2'"), r("v3'", "a", "2", "w3"))
	h.tx(func() {
		h.ensure(kv)
		h.write(&schema.Batch{Table: kv,
			Deletes: rows(row("8", nil, nil)),
			Inserts: rows(row("9", "nine", nil)),
			Updates: rows(row("1", "after", "reopen")),
			Patches: rows(row("6", "E", unsent)),
		})
	})
	h.want(kv, r("1", "after", "reopen"), r("6", "E", "moved"), r("7", "seven", "patched"), r("9", "nine", "NULL"))
}

// testKeyedRows: ordered row changes on tables with a key, as the snapshot
// (inserts) and unmergeable key changes produce them.
func testKeyedRows(h *harness) {
	kv := keyed("public", "kv", col("id", schema.OIDInt4, true), col("name", schema.OIDText, false), col("note", schema.OIDText, false))
	h.tx(func() {
		h.ensure(kv)
		h.write(&schema.Batch{Table: kv, Rows: []schema.RowChange{
			ins(row("1", "a", "x")), ins(row("2", "b", "y")), ins(row("3", "c", "z")),
			// The key moves; the unsent column keeps its value.
			upd(row("1", nil, nil), row("10", unsent, "x'")),
			del(row("2", nil, nil)),
			ins(row("2", "b2", "y2")),
			ins(row("5", "e", "f")),
			upd(row("5", nil, nil), row("6", "e6", unsent)),
			ins(row("5", "e5", "f5")), // the key 5 is free again
			upd(row("3", nil, nil), row("3", unsent, "z'")),
		}})
	})
	h.want(kv, r("10", "a", "x'"), r("2", "b2", "y2"), r("3", "c", "z'"), r("5", "e5", "f5"), r("6", "e6", "f"))

	// A composite key where one key column is itself unsent (an unchanged
	// TOASTed key value): it keeps the old row's value.
	ck := keyed("public", "ck", col("a", schema.OIDInt4, true), col("b", schema.OIDText, true), col("v", schema.OIDText, false), col("w", schema.OIDText, false))
	h.tx(func() {
		h.ensure(ck)
		h.write(&schema.Batch{Table: ck, Rows: []schema.RowChange{
			ins(row("1", "k", "v", "w")), ins(row("1", "l", "v", "w")),
		}})
		h.write(&schema.Batch{Table: ck, Rows: []schema.RowChange{
			upd(row("1", "k", nil, nil), row("2", unsent, "v2", unsent)),
			del(row("1", "l", nil, nil)),
		}})
	})
	h.want(ck, r("2", "k", "v2", "w"))
	h.reopen()
	h.want(kv, r("10", "a", "x'"), r("2", "b2", "y2"), r("3", "c", "z'"), r("5", "e5", "f5"), r("6", "e6", "f"))
	h.want(ck, r("2", "k", "v2", "w"))
}

// testKeyless: tables matched by whole rows (REPLICA IDENTITY FULL) keep
// duplicates exact, and match NULLs as equal.
func testKeyless(h *harness) {
	kl := keyless("public", "kl", col("a", schema.OIDInt4, false), col("b", schema.OIDText, false), col("c", schema.OIDText, false))
	if kl.HasKey() {
		h.t.Fatal("a REPLICA IDENTITY FULL table must not have a key")
	}
	h.tx(func() {
		h.ensure(kl)
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			ins(row("1", "x", nil)), ins(row("1", "x", nil)), ins(row("1", "x", nil)),
			ins(row("2", "y", "z")),
			ins(row("1", "", nil)), ins(row("1", nil, "")),
		}})
	})
	h.want(kl, r("1", "x", "NULL"), r("1", "x", "NULL"), r("1", "x", "NULL"), r("2", "y", "z"), r("1", "", "NULL"), r("1", "NULL", ""))

	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			del(row("1", "x", nil)), // exactly one of three
			del(row("1", nil, "")),  // NULL and '' are different values
		}})
	})
	h.want(kl, r("1", "x", "NULL"), r("1", "x", "NULL"), r("2", "y", "z"), r("1", "", "NULL"))

	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			upd(row("1", "x", nil), row("1", "x", "w")),     // exactly one of two
			upd(row("2", "y", "z"), row("3", unsent, "z2")), // unsent keeps its value
			upd(row("1", "", nil), row("1", "", "")),
		}})
	})
	h.want(kl, r("1", "x", "NULL"), r("1", "x", "w"), r("3", "y", "z2"), r("1", "", ""))

	// Order matters within Rows.
	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			ins(row("9", "q", nil)),
			upd(row("9", "q", nil), row("9", "q", "r")),
			ins(row("9", "q", nil)),
			del(row("9", "q", "r")),
			upd(row("9", "q", nil), row("9", "q", "s")),
			ins(row("9", "q", "s")),
		}})
	})
	h.want(kl, r("1", "x", "NULL"), r("1", "x", "w"), r("3", "y", "z2"), r("1", "", ""), r("9", "q", "s"), r("9", "q", "s"))

	h.reopen()
	h.tx(func() {
		h.ensure(kl)
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			del(row("9", "q", "s")), del(row("1", "x", "w")), upd(row("1", "x", nil), row(nil, nil, nil)),
		}})
	})
	h.want(kl, r("NULL", "NULL", "NULL"), r("3", "y", "z2"), r("1", "", ""), r("9", "q", "s"))

	// Tables without any identity only ever get inserts; duplicates stay.
	nothing := schema.NewTable(kl.ID+1000, "public", "append_only", schema.IdentityNothing,
		[]schema.Column{col("a", schema.OIDInt4, false), col("b", schema.OIDText, false)})
	nopk := schema.NewTable(kl.ID+1001, "public", "no_pk", schema.IdentityDefault,
		[]schema.Column{col("a", schema.OIDInt4, false), col("b", schema.OIDText, false)})
	h.tx(func() {
		h.ensure(nothing, nopk)
		for _, t := range []*schema.Table{nothing, nopk} {
			h.write(&schema.Batch{Table: t, Rows: []schema.RowChange{ins(row("1", "a")), ins(row("1", "a")), ins(row(nil, nil))}})
		}
	})
	h.want(nothing, r("1", "a"), r("1", "a"), r("NULL", "NULL"))
	h.want(nopk, r("1", "a"), r("1", "a"), r("NULL", "NULL"))
}

// testKeylessBigValues: whole-row matching on large text and bytea values
// (which a sink may compare by length and hash rather than whole): rows
// that differ only inside a big value, or only in its length, duplicates,
// NULLs, unsent values kept, single changes and runs of them.
func testKeylessBigValues(h *harness) {
	kb := keyless("public", "kl_big", col("n", schema.OIDInt4, false), col("t", schema.OIDText, false), col("b", schema.OIDBytea, false))
	t1, t2 := strings.Repeat("a", 70_000), strings.Repeat("a", 69_999)+"b"
	t3 := t1 + "x"
	b1 := `\x` + strings.Repeat("0f", 40_000)
	b2 := `\x` + strings.Repeat("0f", 39_999) + "10"
	h.tx(func() {
		h.ensure(kb)
		h.write(&schema.Batch{Table: kb, Rows: []schema.RowChange{
			ins(row("1", t1, b1)), ins(row("1", t1, b1)), ins(row("1", t2, b1)), ins(row("1", t1, b2)),
			ins(row("1", t3, nil)), ins(row("1", nil, b1)), ins(row("1", "small", b2)),
		}})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: kb, Rows: []schema.RowChange{
			upd(row("1", t1, b1), row("2", unsent, unsent)), // exactly one of two
			upd(row("1", t2, b1), row("3", unsent, b2)),
			del(row("1", t1, b2)),
			del(row("1", t3, nil)),
			upd(row("1", nil, b1), row("4", t1, unsent)),
		}})
	})
	h.want(kb, r("1", t1, b1), r("2", t1, b1), r("3", t2, b2), r("4", t1, b1), r("1", "small", b2))
	h.tx(func() {
		h.write(&schema.Batch{Table: kb, Rows: []schema.RowChange{
			del(row("2", t1, b1)), del(row("3", t2, b2)), del(row("1", "small", b2)),
		}})
	})
	h.want(kb, r("1", t1, b1), r("4", t1, b1))
	h.tx(func() {
		h.write(&schema.Batch{Table: kb, Rows: []schema.RowChange{
			upd(row("1", t1, b1), row("5", t3, unsent)), upd(row("4", t1, b1), row("6", unsent, b2)),
		}})
	})
	h.want(kb, r("5", t3, b1), r("6", t1, b2))
	// A run over duplicates and a row of the same length.
	h.tx(func() {
		h.write(&schema.Batch{Table: kb, Rows: []schema.RowChange{
			ins(row("7", t1, b1)), ins(row("7", t1, b1)), ins(row("7", t1, b1)), ins(row("7", t2, b1)),
		}})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: kb, Rows: []schema.RowChange{
			del(row("7", t1, b1)), del(row("7", t2, b1)), del(row("7", t1, b1)),
		}})
	})
	h.want(kb, r("5", t3, b1), r("6", t1, b2), r("7", t1, b1))
}

// testKeylessSets: long runs of updates or deletes to a keyless table, which
// a sink may apply as sets (schema.SetRun), change exactly one row each, as
// applied one by one would: duplicates, NULLs, unsent values, a change of a
// row an earlier one wrote, and runs longer than one statement binds.
//
// Then again with Lookup (the source's primary key, on which a sink may
// index the table to find rows: only an access path) on columns that
// repeat and hold NULLs, as they may once the key is dropped on the source.
func testKeylessSets(h *harness) {
	keylessSets(h, "kl_sets", nil)
	keylessSets(h, "kl_sets_lookup", []int{0, 2})
	// Tables named as a sink's statements name their parts (SQLite's
	// y0, y, x, z hid them: helper-141).
	keylessSets(h, "x", nil)
	keylessSets(h, "y0", nil)
	keylessSets(h, "y", []int{0, 2})
	keylessSets(h, "z", []int{0, 2})

	// Typed columns whose type name alone means a length of 1 (char(5),
	// bit(3)): a set must keep their values whole.
	kc := keyless("public", "kl_sets_char", schema.Column{Name: "c", TypeID: schema.OIDBpchar, Typmod: 4 + 5},
		schema.Column{Name: "b", TypeID: 1560, Typmod: 3}, col("n", schema.OIDInt4, false))
	h.tx(func() {
		h.ensure(kc)
		h.write(&schema.Batch{Table: kc, Rows: []schema.RowChange{
			ins(row("hello", "010", "1")), ins(row("world", "111", "1")), ins(row("hello", "010", "1")),
		}})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: kc, Rows: []schema.RowChange{
			upd(row("hello", "010", "1"), row("hello", "010", "2")), upd(row("world", "111", "1"), row("world", "101", "2")),
			upd(row("hello", "010", "1"), row("abcde", "010", "3")),
		}})
	})
	h.want(kc, r("hello", "010", "2"), r("world", "101", "2"), r("abcde", "010", "3"))
	h.tx(func() {
		h.write(&schema.Batch{Table: kc, Rows: []schema.RowChange{
			del(row("hello", "010", "2")), del(row("world", "101", "2")),
		}})
	})
	h.want(kc, r("abcde", "010", "3"))
}

func keylessSets(h *harness, name string, lookup []int) {
	kl := keyless("public", name, col("a", schema.OIDInt4, false), col("b", schema.OIDText, false), col("c", schema.OIDFloat8, false))
	kl.Lookup = lookup
	// model is the table as a multiset; apply changes it as the source did.
	model := map[string]int{}
	key := func(t schema.Tuple) string { return strings.Join(render(t), "\x00") }
	apply := func(cs ...schema.RowChange) {
		h.t.Helper()
		for _, c := range cs {
			if c.Op != schema.Insert {
				k := key(c.Old)
				if model[k] == 0 {
					h.t.Fatalf("test bug: %s of a row the table does not hold: %q", c.Op, k)
				}
				if model[k]--; model[k] == 0 {
					delete(model, k)
				}
			}
			if c.Op != schema.Delete {
				n := c.New
				if c.Old != nil {
					n = slices.Clone(n)
					for i, d := range n {
						if d.State == schema.Unchanged {
							n[i] = c.Old[i]
						}
					}
				}
				model[key(n)]++
			}
		}
	}
	want := func() {
		h.t.Helper()
		var rs [][]string
		for k, n := range model {
			for range n {
				rs = append(rs, strings.Split(k, "\x00"))
			}
		}
		h.want(kl, rs...)
	}
	// 300 distinct rows, 30 copies each; c is NULL in a third of them.
	orig := func(i int) schema.Tuple {
		var c any = strconv.Itoa(i%300) + ".5"
		if i%3 == 0 {
			c = nil
		}
		return row(strconv.Itoa(i%100), "v"+strconv.Itoa(i%300), c)
	}
	var cs []schema.RowChange
	for i := range 9000 {
		cs = append(cs, ins(orig(i)))
	}
	apply(cs...)
	h.tx(func() {
		h.ensure(kl)
		h.write(&schema.Batch{Table: kl, Rows: cs})
	})
	want()

	// One copy of each distinct row deleted, then every other row updated
	// with c unsent: more changes than one SQLite statement binds.
	cs = nil
	for i := range 300 {
		cs = append(cs, del(orig(i)))
	}
	for i := 300; i < 9000; i++ {
		o := orig(i)
		cs = append(cs, upd(o, row(strconv.Itoa(i%7), string(o[1].Data)+"'x", unsent)))
	}
	apply(cs...)
	h.tx(func() { h.write(&schema.Batch{Table: kl, Rows: cs}) })
	want()

	// Chains: a change of a row an earlier change of the batch wrote, and
	// updates that change nothing.
	cs = nil
	for i := range 50 {
		o := orig(300 + i)
		text := func(v string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(v)} }
		o1 := schema.Tuple{text(strconv.Itoa((300 + i) % 7)), text(string(o[1].Data) + "'x"), o[2]}
		o2 := schema.Tuple{text("-1"), text("chained"), o[2]}
		cs = append(cs, upd(o1, o2), upd(o1, o1), upd(o2, row("-2", "chained", nil)), upd(o1, o1), del(o1))
	}
	apply(cs...)
	h.tx(func() { h.write(&schema.Batch{Table: kl, Rows: cs}) })
	want()

	h.reopen()
	h.tx(func() {
		h.ensure(kl)
		// Everything deleted in one run, NULLs and duplicates included.
		cs = nil
		for k, n := range model {
			vals := strings.Split(k, "\x00")
			var c any = vals[2]
			if c == "NULL" {
				c = nil
			}
			for range n {
				cs = append(cs, del(row(vals[0], vals[1], c)))
			}
		}
		apply(cs...)
		h.write(&schema.Batch{Table: kl, Rows: cs})
	})
	want()
}

// testTruncate: Truncate empties exactly the named tables, in the transaction.
func testTruncate(h *harness) {
	a := keyed("public", "a", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	b := keyed("public", "b", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	c := keyless("public", "c", col("id", schema.OIDInt4, false), col("v", schema.OIDText, false))
	d := keyed("other", "a", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false))
	h.tx(func() {
		h.ensure(a, b, c, d)
		for _, t := range []*schema.Table{a, b, d} {
			h.write(&schema.Batch{Table: t, Inserts: rows(row("1", "one"), row("2", "two"))})
		}
		h.write(&schema.Batch{Table: c, Rows: []schema.RowChange{ins(row("1", "one")), ins(row("1", "one"))}})
	})
	h.tx(func() { h.truncate(a, c) })
	h.want(a)
	h.want(c)
	h.want(b, r("1", "one"), r("2", "two"))
	h.want(d, r("1", "one"), r("2", "two"))

	// Truncate then refill in one transaction, as the snapshot does.
	h.tx(func() {
		h.truncate(b)
		h.write(&schema.Batch{Table: b, Rows: []schema.RowChange{ins(row("1", "new")), ins(row("3", "three"))}})
	})
	h.want(b, r("1", "new"), r("3", "three"))

	// A rolled-back truncate leaves the rows.
	h.begin()
	h.truncate(b, d)
	h.rollback()
	h.want(b, r("1", "new"), r("3", "three"))
	h.want(d, r("1", "one"), r("2", "two"))

	// Truncating empty tables is fine; the tables stay usable.
	h.tx(func() {
		h.truncate(a, c)
		h.write(&schema.Batch{Table: a, Inserts: rows(row("5", "five"))})
	})
	h.reopen()
	h.want(a, r("5", "five"))
	h.want(c)
	h.want(b, r("1", "new"), r("3", "three"))
}

// testSchemaEvolution: EnsureTable is idempotent, adds columns, keeps dropped
// ones, and old shapes keep working.
func testSchemaEvolution(h *harness) {
	t1 := keyed("public", "evolving", col("id", schema.OIDInt4, true), col("a", schema.OIDText, false))
	h.tx(func() {
		h.ensure(t1, t1)
		h.write(&schema.Batch{Table: t1, Inserts: rows(row("1", "a"), row("2", "b"))})
	})
	h.tx(func() { h.ensure(t1) })
	// An equal description in a new *Table is the same table.
	h.tx(func() { h.ensure(reshape(t1, t1.Columns...)) })
	h.want(t1, r("1", "a"), r("2", "b"))

	// Added column: old rows read NULL there.
	t2 := reshape(t1, col("id", schema.OIDInt4, true), col("a", schema.OIDText, false), col("b", schema.OIDInt8, false))
	h.tx(func() { h.ensure(t2) })
	h.want(t2, r("1", "a", "NULL"), r("2", "b", "NULL"))
	h.tx(func() {
		h.ensure(t2)
		h.write(&schema.Batch{Table: t2, Inserts: rows(row("3", "c", "30")), Patches: rows(row("1", unsent, "10"))})
		// Rows decoded with the old shape keep pointing at it.
		h.write(&schema.Batch{Table: t1, Inserts: rows(row("4", "d")), Patches: rows(row("2", "b'"))})
	})
	h.want(t2, r("1", "a", "10"), r("2", "b'", "NULL"), r("3", "c", "30"), r("4", "d", "NULL"))

	h.reopen()
	h.tx(func() { h.ensure(t2) })
	h.want(t2, r("1", "a", "10"), r("2", "b'", "NULL"), r("3", "c", "30"), r("4", "d", "NULL"))

	// Dropped column "a": kept with its data; rows written without it get NULL.
	t3 := reshape(t1, col("id", schema.OIDInt4, true), col("b", schema.OIDInt8, false))
	h.tx(func() {
		h.ensure(t3)
		h.write(&schema.Batch{Table: t3,
			Inserts: rows(row("5", "50")),
			Updates: rows(row("1", "11")), // the dropped column keeps its value
			Patches: rows(row("3", "31")),
			Rows:    []schema.RowChange{ins(row("6", nil)), del(row("4", nil)), upd(row("2", nil), row("20", unsent))},
		})
	})
	h.want(t3, r("1", "11"), r("20", "NULL"), r("3", "31"), r("5", "50"), r("6", "NULL"))
	h.want(t2, r("1", "a", "11"), r("20", "b'", "NULL"), r("3", "c", "31"), r("5", "NULL", "50"), r("6", "NULL", "NULL"))

	// The column comes back (ALTER TABLE ADD COLUMN a): nothing fails.
	t4 := reshape(t1, col("id", schema.OIDInt4, true), col("b", schema.OIDInt8, false), col("a", schema.OIDText, false))
	h.reopen()
	h.tx(func() {
		h.ensure(t3, t4)
		h.write(&schema.Batch{Table: t4, Inserts: rows(row("7", "70", "g")), Updates: rows(row("5", "51", "e"))})
	})
	h.want(t4, r("1", "11", "a"), r("20", "NULL", "b'"), r("3", "31", "c"), r("5", "51", "e"), r("6", "NULL", "NULL"), r("7", "70", "g"))

	// Two columns added with defaults in one transaction, rows inserted
	// after each (two source transactions in one target commit): rows that
	// existed before each column read its default. DuckDB filled the first
	// one's default with an UPDATE and then added the second with an
	// ALTER TABLE it cannot commit after that ("another transaction has
	// altered this table"): every run stopped.
	f1 := keyed("public", "evolving_fills", col("id", schema.OIDInt4, true))
	h.tx(func() {
		h.ensure(f1)
		h.write(&schema.Batch{Table: f1, Inserts: rows(row("1"), row("2"))})
	})
	fill := func(v string) schema.Fill {
		return schema.Fill{Value: schema.Datum{State: schema.Text, Data: []byte(v)}}
	}
	f2 := reshape(f1, col("id", schema.OIDInt4, true), col("c1", schema.OIDInt4, false))
	f2.Fills = map[string]schema.Fill{"c1": fill("1")}
	f3 := reshape(f1, col("id", schema.OIDInt4, true), col("c1", schema.OIDInt4, false), col("c2", schema.OIDInt4, false))
	f3.Fills = map[string]schema.Fill{"c2": fill("2")}
	h.tx(func() {
		h.ensure(f2)
		h.write(&schema.Batch{Table: f2, Inserts: rows(row("3", "5"))})
		h.ensure(f3)
		h.write(&schema.Batch{Table: f3, Inserts: rows(row("4", "6", "7"))})
	})
	h.want(f3, r("1", "1", "2"), r("2", "1", "2"), r("3", "5", "2"), r("4", "6", "7"))

	// A keyless table gains a column: whole-row matching then includes it,
	// NULL-safely.
	k1 := keyless("public", "evolving_keyless", col("a", schema.OIDInt4, false), col("b", schema.OIDText, false))
	h.tx(func() {
		h.ensure(k1)
		h.write(&schema.Batch{Table: k1, Rows: []schema.RowChange{ins(row("1", "x")), ins(row("1", "x")), ins(row("2", "y"))}})
	})
	k2 := keyless("public", "evolving_keyless", col("a", schema.OIDInt4, false), col("b", schema.OIDText, false), col("c", schema.OIDText, false))
	k2 = schema.NewTable(k1.ID, k2.Schema, k2.Name, k2.Identity, k2.Columns)
	h.tx(func() {
		h.ensure(k2)
		h.write(&schema.Batch{Table: k2, Rows: []schema.RowChange{
			del(row("1", "x", nil)),
			upd(row("2", "y", nil), row("2", "y", "c")),
			ins(row("3", "z", "c")),
		}})
	})
	h.want(k2, r("1", "x", "NULL"), r("2", "y", "c"), r("3", "z", "c"))
}

// Hostile names: quoting, dots, percent signs, keywords, comments, unicode,
// things that look like placeholders.
var hostileNames = []string{
	"my table", `"quoted"`, `it's`, `semi;colon`, `dash--dash`, "Größe ✓", "select", "order",
	`'); DROP TABLE x; --`, "a.b", "100%", "?", "$1", `back\slash`, "tab\tand\nnewline",
}

var hostileColumns = []string{
	"order", "select", `"col"`, "it's", "semi;", "--c", "Größe ✓", "sp ace", "a.b", "?", "$1", ":name", "@p", "from",
}

func hostileRows() []schema.Tuple {
	return rows(
		row("1", `'); DROP TABLE x; --`, `"`, `'`, `;`, "naïve ✓ 日本語 🎉", "", nil, `\`, "line1\nline2\ttab", "?", "$1", "%s", "/* c */"),
		row("2", "", nil, "%", "%25", "100%", "-- not a comment", "/* c */", `\x41`, "'", `""`, "\r\n", " ", "  trailing  "),
		row("3", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
	)
}

// testHostileIdentifiers: any PostgreSQL identifier and any text value
// arrive intact.
func testHostileIdentifiers(h *harness) {
	cols := make([]schema.Column, len(hostileColumns))
	for i, n := range hostileColumns {
		cols[i] = col(n, schema.OIDText, i == 0)
	}
	cols[0].TypeID = schema.OIDInt4
	var tables []*schema.Table
	for _, sch := range []string{"public", `we"ird sch.ema`, "Größe ✓; --"} {
		for _, n := range hostileNames {
			tables = append(tables, keyed(sch, n, cols...))
		}
	}
	kl := keyless(`we"ird sch.ema`, `keyless "table"; --`, append([]schema.Column(nil), cols...)...)

	// Keyed tables also get a plain row 4, to be replaced by hostile values.
	plain := row("4", "p", "p", "p", "p", "p", "p", "p", "p", "p", "p", "p", "p", "p")
	h.tx(func() {
		h.ensure(tables...)
		h.ensure(kl)
		for _, t := range tables {
			h.write(&schema.Batch{Table: t, Inserts: append(hostileRows(), plain)})
		}
		in := hostileRows()
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{ins(in[0]), ins(in[0]), ins(in[1]), ins(in[2])}})
	})
	base := hostileRows()
	for _, t := range tables {
		h.want(t, render(base[0]), render(base[1]), render(base[2]), render(plain))
	}

	// Update, patch, key change with unsent columns, delete.
	update := append(row("4"), base[1][1:]...)
	patch := row("1", unsent, unsent, "patched", unsent, unsent, unsent, unsent, unsent, unsent, unsent, unsent, unsent, unsent)
	moveOld := row("2", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil)
	moveNew := row("20", unsent, unsent, unsent, unsent, unsent, unsent, unsent, unsent, unsent, unsent, "moved", unsent, unsent)
	h.tx(func() {
		h.ensure(tables...)
		for _, t := range tables {
			h.write(&schema.Batch{Table: t,
				Updates: rows(update),
				Patches: rows(patch),
				Rows:    []schema.RowChange{upd(moveOld, moveNew), del(row("3", nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil))},
			})
		}
		in := hostileRows()
		changed := append(schema.Tuple(nil), in[1]...)
		changed[3] = schema.Datum{State: schema.Text, Data: []byte("changed ' \" ;")}
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{del(in[0]), upd(in[1], changed), del(in[2])}})
	})
	want1 := render(base[0])
	want1[3] = "patched"
	want2 := render(base[1])
	want2[0], want2[11] = "20", "moved"
	want4 := render(update)
	for _, t := range tables {
		h.want(t, want1, want2, want4)
	}
	kw := render(base[1])
	kw[3] = "changed ' \" ;"
	h.want(kl, render(base[0]), kw)

	h.reopen()
	h.tx(func() {
		h.ensure(tables[0])
		h.truncate(tables[0])
	})
	h.want(tables[0])
	h.want(tables[1], want1, want2, want4)
	h.want(tables[len(hostileNames)], want1, want2, want4) // same name, other schema
}

// testValues: values of the common types read back as their text form;
// empty strings and empty byteas are not NULL.
func testValues(h *harness) {
	t := keyed("public", "vals",
		col("id", schema.OIDInt8, true),
		col("i2", schema.OIDInt2, false),
		col("i4", schema.OIDInt4, false),
		col("i8", schema.OIDInt8, false),
		col("t", schema.OIDText, false),
		col("vc", schema.OIDVarchar, false),
		col("bp", schema.OIDBpchar, false),
		col("by", schema.OIDBytea, false),
		col("f8", schema.OIDFloat8, false),
	)
	in := rows(
		row("-9223372036854775808", "-32768", "-2147483648", "-9223372036854775808", "", "", " ", `\x`, "0"),
		row("9223372036854775807", "32767", "2147483647", "9223372036854775807", "tab\there", "ü", "ab  ", `\x00ff10`, "1.5"),
		row("0", "0", "0", "0", "NUL-free \\ backslash", "x", "x", `\xdeadbeef`, "-2.25e-300"),
		row("1", nil, nil, nil, nil, nil, nil, nil, nil),
		row("2", "1", "1", "1", "1", "1", "1", `\x01`, "1e+300"),
		row("3", "1", "1", "1", "'quoted'", "1", "1", `\x01`, "Infinity"),
		row("4", "1", "1", "1", "\"dq\"", "1", "1", `\x01`, "-Infinity"),
		row("5", "1", "1", "1", "x", "1", "1", `\x01`, "123456.789"),
		row("6", "1", "1", "1", "x", "1", "1", `\x01`, "0.1"),
		row("7", "1", "1", "1", "x", "1", "1", `\x01`, "NaN"),
	)
	want := make([][]string, len(in))
	for i, tup := range in {
		want[i] = render(tup)
	}
	h.tx(func() {
		h.ensure(t)
		h.write(&schema.Batch{Table: t, Inserts: in})
	})
	h.want(t, want...)

	// The same values through Updates: each key takes the next row's values.
	shifted := make([]schema.Tuple, len(in))
	for i, tup := range in {
		next := in[(i+1)%len(in)]
		shifted[i] = append(schema.Tuple{tup[0]}, next[1:]...)
		want[i] = render(shifted[i])
	}
	h.tx(func() { h.write(&schema.Batch{Table: t, Updates: shifted}) })
	h.want(t, want...)

	// Whole-row matching on these values, NaN and empty bytea included.
	kl := keyless("public", "vals_keyless", col("f", schema.OIDFloat8, false), col("b", schema.OIDBytea, false), col("t", schema.OIDText, false))
	h.tx(func() {
		h.ensure(kl)
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			ins(row("1.5", `\x00ff`, "a")), ins(row("NaN", `\x`, "")), ins(row("NaN", nil, "")),
			ins(row("-Infinity", nil, nil)), ins(row("0.1", `\x`, nil)),
		}})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			del(row("NaN", `\x`, "")),
			upd(row("1.5", `\x00ff`, "a"), row("2.5", unsent, "b")),
			upd(row("-Infinity", nil, nil), row("Infinity", `\x`, nil)),
			del(row("0.1", `\x`, nil)),
		}})
	})
	h.want(kl, r("2.5", `\x00ff`, "b"), r("NaN", "NULL", ""), r("Infinity", `\x`, "NULL"))
}

// testNoRetain: Write must not keep the batch or its tuples: the caller
// reuses their memory as soon as Write returns.
func testNoRetain(h *harness) {
	t := keyed("public", "reuse", col("id", schema.OIDInt4, true), col("v", schema.OIDText, false), col("b", schema.OIDBytea, false))
	buf := []byte("1one\\x0102" + "2two\\x0304" + "3three\\x05" + "2deux\\x06")
	d := func(from, to int) schema.Datum { return schema.Datum{State: schema.Text, Data: buf[from:to]} }
	h.tx(func() {
		h.ensure(t)
		b := &schema.Batch{Table: t,
			Inserts: rows(schema.Tuple{d(0, 1), d(1, 4), d(4, 10)}),
			Rows:    []schema.RowChange{ins(schema.Tuple{d(10, 11), d(11, 14), d(14, 20)})},
		}
		h.write(b)
		b2 := &schema.Batch{Table: t,
			Updates: rows(schema.Tuple{d(30, 31), d(31, 35), d(35, 39)}),
			Rows:    []schema.RowChange{ins(schema.Tuple{d(20, 21), d(21, 26), d(26, 30)})},
		}
		h.write(b2)
		// Scribble over everything the sink was given.
		for i := range buf {
			buf[i] = '9'
		}
		b.Inserts[0][1] = schema.Datum{State: schema.Null}
		b.Rows[0].New[2] = schema.Datum{State: schema.Null}
		b2.Updates[0][1] = schema.Datum{State: schema.Null}
		b.Inserts, b.Rows, b2.Updates, b2.Rows = nil, nil, nil, nil
	})
	h.want(t, r("1", "one", `\x0102`), r("2", "deux", `\x06`), r("3", "three", `\x05`))
}

// testManyRows: batches far larger than any one statement can carry.
func testManyRows(h *harness) {
	const n, nDel = 25000, 10000
	big := keyed("public", "big", col("id", schema.OIDInt8, true), col("payload", schema.OIDText, false), col("n", schema.OIDInt4, false))
	mk := func(i int, tag string) schema.Tuple {
		return row(strconv.Itoa(i), fmt.Sprintf("%s-%d", tag, i), strconv.Itoa(i%97))
	}
	first := make([]schema.Tuple, n)
	for i := range first {
		first[i] = mk(i, "first")
	}
	h.tx(func() {
		h.ensure(big)
		h.write(&schema.Batch{Table: big, Inserts: first})
	})
	checkAll := func(present func(i int) (tag string, ok bool), count int) {
		h.t.Helper()
		got := h.wantCount(big, count)
		seen := make(map[string]bool, len(got))
		for _, g := range got {
			id, err := strconv.Atoi(g[0])
			if err != nil {
				h.t.Fatalf("id %q", g[0])
			}
			tag, ok := present(id)
			if !ok {
				h.t.Fatalf("row %q should not be there", g)
			}
			if w := render(mk(id, tag)); !slices.Equal(g, w) {
				h.t.Fatalf("row %q, want %q", g, w)
			}
			if seen[g[0]] {
				h.t.Fatalf("id %s twice", g[0])
			}
			seen[g[0]] = true
		}
	}
	checkAll(func(i int) (string, bool) { return "first", i >= 0 && i < n }, n)

	// 10,000 deletes (2 of every 5 ids) in one Write.
	var dels []schema.Tuple
	for i := range n {
		if i%5 < 2 {
			dels = append(dels, row(strconv.Itoa(i), nil, nil))
		}
	}
	if len(dels) != nDel {
		h.t.Fatalf("built %d deletes", len(dels))
	}
	h.tx(func() { h.write(&schema.Batch{Table: big, Deletes: dels}) })
	checkAll(func(i int) (string, bool) { return "first", i >= 0 && i < n && i%5 >= 2 }, n-nDel)

	// Every key again in one Write: Updates for the rows still there,
	// Inserts for the deleted ones.
	var upds, reins []schema.Tuple
	for i := range n {
		if i%5 < 2 {
			reins = append(reins, mk(i, "second"))
		} else {
			upds = append(upds, mk(i, "second"))
		}
	}
	h.tx(func() { h.write(&schema.Batch{Table: big, Inserts: reins, Updates: upds}) })
	checkAll(func(i int) (string, bool) { return "second", i >= 0 && i < n }, n)

	// Composite keys in bulk.
	ck := keyed("public", "big_ck", col("a", schema.OIDInt4, true), col("b", schema.OIDText, true), col("v", schema.OIDText, false))
	var cu, cd []schema.Tuple
	for i := range 6000 {
		cu = append(cu, row(strconv.Itoa(i/3), fmt.Sprintf("k%d", i%3), "v"))
		if i%2 == 0 {
			cd = append(cd, row(strconv.Itoa(i/3), fmt.Sprintf("k%d", i%3), nil))
		}
	}
	h.tx(func() {
		h.ensure(ck)
		h.write(&schema.Batch{Table: ck, Inserts: cu})
	})
	h.tx(func() { h.write(&schema.Batch{Table: ck, Deletes: cd}) })
	h.wantCount(ck, 3000)

	// Ordered inserts in bulk (the snapshot path), duplicates included.
	kl := keyless("public", "big_keyless", col("a", schema.OIDInt4, false), col("b", schema.OIDText, false))
	var inserts []schema.RowChange
	for i := range 12000 {
		inserts = append(inserts, ins(row(strconv.Itoa(i%6000), "dup")))
	}
	h.tx(func() {
		h.ensure(kl)
		h.write(&schema.Batch{Table: kl, Rows: inserts})
	})
	h.wantCount(kl, 12000)

	// A wide table: few rows fit in one statement.
	const width, wideRows = 1000, 300
	cols := make([]schema.Column, width)
	for i := range cols {
		cols[i] = col(fmt.Sprintf("c%04d", i), schema.OIDText, i == 0)
	}
	wide := keyed("public", "wide", cols...)
	// Values as long in both rounds: the rows are near PostgreSQL's limit.
	wideTuples := func(sep string) []schema.Tuple {
		var ts []schema.Tuple
		for i := range wideRows {
			tup := make(schema.Tuple, width)
			tup[0] = schema.Datum{State: schema.Text, Data: fmt.Appendf(nil, "%d", i)}
			for j := 1; j < width; j++ {
				tup[j] = schema.Datum{State: schema.Text, Data: fmt.Appendf(nil, "%d%s%d", i, sep, j)}
			}
			ts = append(ts, tup)
		}
		return ts
	}
	checkWide := func(sep string) {
		h.t.Helper()
		for _, g := range h.wantCount(wide, wideRows) {
			for j, v := range g[1:] {
				if w := fmt.Sprintf("%s%s%d", g[0], sep, j+1); v != w {
					h.t.Fatalf("wide row %s column %d = %q, want %q", g[0], j+1, v, w)
				}
			}
		}
	}
	h.tx(func() {
		h.ensure(wide)
		h.write(&schema.Batch{Table: wide, Inserts: wideTuples(".")})
	})
	checkWide(".")
	h.tx(func() { h.write(&schema.Batch{Table: wide, Updates: wideTuples(":")}) })
	checkWide(":")
}

// testNamespaces: tables of the same name in different schemas, and names
// that a naive schema.table mapping would confuse, stay apart.
func testNamespaces(h *harness) {
	pairs := [][2]string{
		{"public", "t"},
		{"other", "t"},
		{"public", "other.t"},
		{"other", "t.x"},
		{"other.t", "x"},
		{"public", "other%2Et"},
		{"other%2Et", "x"},
		{"public", "other%t"},
		{"other", "t%2Ex"},
	}
	var tables []*schema.Table
	for _, p := range pairs {
		tables = append(tables, keyed(p[0], p[1], col("id", schema.OIDInt4, true), col("origin", schema.OIDText, false)))
	}
	origin := func(t *schema.Table) string { return t.QualifiedName() }
	h.tx(func() {
		h.ensure(tables...)
		for _, t := range tables {
			h.write(&schema.Batch{Table: t, Inserts: rows(row("1", origin(t)))})
		}
		for _, t := range tables {
			h.write(&schema.Batch{Table: t, Rows: []schema.RowChange{ins(row("2", origin(t)))}})
		}
	})
	for _, t := range tables {
		h.want(t, r("1", origin(t)), r("2", origin(t)))
	}
	// Changes to one touch no other.
	h.tx(func() {
		h.write(&schema.Batch{Table: tables[0], Deletes: rows(row("1", nil))})
		h.write(&schema.Batch{Table: tables[1], Patches: rows(row("2", "patched"))})
		h.truncate(tables[2])
	})
	h.reopen()
	h.want(tables[0], r("2", origin(tables[0])))
	h.want(tables[1], r("1", origin(tables[1])), r("2", "patched"))
	h.want(tables[2])
	for _, t := range tables[3:] {
		h.want(t, r("1", origin(t)), r("2", origin(t)))
	}

	// PostgreSQL names are case-sensitive. A target whose names are not may
	// refuse the second table, but must never mix the two.
	mixed := keyed("public", "Mixed", col("id", schema.OIDInt4, true), col("origin", schema.OIDText, false))
	h.tx(func() {
		h.ensure(mixed)
		h.write(&schema.Batch{Table: mixed, Inserts: rows(row("1", origin(mixed)))})
	})
	for _, p := range []struct {
		first  *schema.Table
		want   [][]string
		second *schema.Table
	}{
		{mixed, [][]string{r("1", origin(mixed))},
			keyed("public", "mixed", col("id", schema.OIDInt4, true), col("origin", schema.OIDText, false))},
		{tables[1], [][]string{r("1", origin(tables[1])), r("2", "patched")}, // other.t
			keyed("Other", "t", col("id", schema.OIDInt4, true), col("origin", schema.OIDText, false))},
		{tables[0], [][]string{r("2", origin(tables[0]))}, // public.t
			keyed("public", "T", col("id", schema.OIDInt4, true), col("origin", schema.OIDText, false))},
	} {
		h.begin()
		if err := h.s.EnsureTable(h.ctx(), p.second); err != nil {
			h.t.Logf("EnsureTable(%s) with %s present refused (acceptable): %v", p.second.QualifiedName(), p.first.QualifiedName(), err)
			h.rollback()
			h.want(p.first, p.want...)
			continue
		}
		h.write(&schema.Batch{Table: p.second, Inserts: rows(row("1", origin(p.second))), Deletes: rows(row("2", nil))})
		h.commit()
		h.want(p.first, p.want...)
		h.want(p.second, r("1", origin(p.second)))
	}
}

// testInserts: Inserts are bulk-loaded rows the target does not hold, for
// keyed and keyless tables alike; one that collides with an existing key is
// an error, never a silent overwrite.
func testInserts(h *harness) {
	kv := keyed("public", "ins_kv", col("k", schema.OIDInt8, true), col("v", schema.OIDText, false))
	kl := keyless("public", "ins_kl", col("a", schema.OIDText, false), col("b", schema.OIDInt4, false))
	h.tx(func() {
		h.ensure(kv, kl)
		h.write(&schema.Batch{Table: kv, Inserts: rows(row("1", "a"), row("2", nil))})
		h.write(&schema.Batch{Table: kl, Inserts: rows(row("x", "1"), row("x", "1"), row(nil, nil))})
	})
	h.want(kv, r("1", "a"), r("2", "NULL"))
	h.want(kl, r("NULL", "NULL"), r("x", "1"), r("x", "1"))
	h.begin()
	if err := h.s.Write(h.ctx(), &schema.Batch{Table: kv, Inserts: rows(row("1", "dup"))}); err == nil {
		h.t.Error("an insert of an existing key succeeded; want a conflict error")
	}
	h.rollback()
	h.want(kv, r("1", "a"), r("2", "NULL"))

	// Updates replace rows the target holds, alongside the other parts.
	h.tx(func() {
		h.write(&schema.Batch{Table: kv, Updates: rows(row("1", "A"), row("2", "B")), Inserts: rows(row("3", "c"))})
	})
	h.want(kv, r("1", "A"), r("2", "B"), r("3", "c"))

	// A source transaction of many inserts (a sink may check their keys
	// at commit rather than per Write): one colliding key, in a later Write
	// or inside the bulk, fails the transaction (at Write or at Commit) and
	// leaves the table as it was; without it, every row arrives.
	const many = 150_000
	bulk := func(first int, dup string) []schema.Tuple {
		out := make([]schema.Tuple, 0, many)
		for i := range many {
			out = append(out, row(strconv.Itoa(first+i), "bulk"))
		}
		if dup != "" {
			out[many/2] = row(dup, "dup")
		}
		return out
	}
	for _, c := range []struct {
		name   string
		writes [][]schema.Tuple
	}{
		{"a colliding key after the bulk", [][]schema.Tuple{bulk(100, ""), rows(row("2", "dup"))}},
		{"a colliding key inside the bulk", [][]schema.Tuple{bulk(100, "3")}},
		{"a colliding key inside the bulk, other keys after it", [][]schema.Tuple{bulk(100, "3"), rows(row("999999", "later"))}},
		{"a key inserted twice", [][]schema.Tuple{bulk(100, ""), rows(row(strconv.Itoa(100+many-1), "dup"))}},
	} {
		h.begin()
		var err error
		for _, w := range c.writes {
			if err = h.s.Write(h.ctx(), &schema.Batch{Table: kv, Inserts: w}); err != nil {
				break
			}
		}
		if err == nil {
			err = h.s.Commit(h.ctx(), h.nextState())
			if err == nil {
				h.t.Fatalf("%s: the transaction committed; want a conflict error", c.name)
			}
		}
		h.rollback()
		h.want(kv, r("1", "A"), r("2", "B"), r("3", "c"))
	}
	h.tx(func() { h.write(&schema.Batch{Table: kv, Inserts: bulk(100, "")}) })
	h.wantCount(kv, 3+many)

	// Updates of many rows in one transaction (a sink may replace them
	// rather than update them in place): every row has its new value, and
	// later changes in the same transaction apply on top.
	updates := func(from, to int, v string) []schema.Tuple {
		var out []schema.Tuple
		for i := from; i < to; i++ {
			out = append(out, row(strconv.Itoa(i), v))
		}
		return out
	}
	half := 100 + many/2
	h.tx(func() {
		h.write(&schema.Batch{Table: kv, Updates: updates(100, half, "upd")})
		h.write(&schema.Batch{Table: kv, Updates: updates(half, 100+many, "upd")})
		h.write(&schema.Batch{Table: kv, Deletes: rows(row("100", nil)), Updates: rows(row("101", "again"))})
	})
	got := h.wantCount(kv, 2+many)
	for _, g := range got {
		want := "upd"
		switch g[0] {
		case "1":
			want = "A"
		case "2":
			want = "B"
		case "3":
			want = "c"
		case "100":
			h.t.Fatal("row 100 was deleted after its update")
		case "101":
			want = "again"
		}
		if g[1] != want {
			h.t.Fatalf("row %q after updates of many rows, want %q", g, want)
		}
	}
}

// testEqualKeys: a key changed to one equal in value but not in text
// (numeric 1.0 to 1.00; PostgreSQL logs a key change, as the bytes differ)
// is a Delete of the old key and an Insert of the new one in one batch. A
// target whose key index holds the two equal must apply the Delete first.
func testEqualKeys(h *harness) {
	nk := keyed("public", "eqkeys", col("id", schema.OIDNumeric, true), col("v", schema.OIDText, false))
	h.tx(func() {
		h.ensure(nk)
		h.write(&schema.Batch{Table: nk, Inserts: rows(row("1.0", "a"), row("2", "b"), row("3.5", "c"))})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: nk,
			Deletes: rows(row("1.0", nil), row("2", nil)),
			Inserts: rows(row("1.00", "a"), row("2.000", "B")),
			Updates: rows(row("3.5", "C")),
		})
	})
	h.want(nk, r("1.00", "a"), r("2.000", "B"), r("3.5", "C"))
	// And back, alongside a patch.
	h.tx(func() {
		h.write(&schema.Batch{Table: nk,
			Deletes: rows(row("1.00", nil)),
			Inserts: rows(row("1", "a1")),
			Patches: rows(row("2.000", "b2")),
		})
	})
	h.want(nk, r("1", "a1"), r("2.000", "b2"), r("3.5", "C"))
}

// testMissingRows: an update, a patch (an update that left a TOASTed
// value unsent) or an ordered update of a row the copy lacks fails with schema.ErrDiverged,
// naming the table: the copy no longer mirrors the source (someone deleted
// the row there), which the engine repairs by copying the table again.
// Before, the PostgreSQL and DuckDB sinks let a patch that found no row
// pass, and the copy stayed without it (helper-135).
func testMissingRows(h *harness) {
	for i, c := range []struct {
		name string
		b    func(t *schema.Table) *schema.Batch
		// healed: the sink may write the whole row instead (SQLite's
		// upsert of a full update), the copy then holding the source's.
		healed [][]string
	}{
		{"update", func(t *schema.Table) *schema.Batch { return &schema.Batch{Table: t, Updates: rows(row("9", "c", "z"))} },
			[][]string{r("1", "a", "x"), r("2", "b", "y"), r("9", "c", "z")}},
		{"patch", func(t *schema.Table) *schema.Batch {
			return &schema.Batch{Table: t, Patches: rows(row("9", "c", unsent))}
		}, nil},
		{"patch beside one that finds its row", func(t *schema.Table) *schema.Batch {
			return &schema.Batch{Table: t, Patches: rows(row("1", "a1", unsent), row("9", "c", unsent))}
		}, nil},
		// Ordered changes (a key change that left a TOASTed value unsent,
		// PostgreSQL's updates of very wide tables) are counted too
		// (helper-137).
		{"key change, TOASTed value unsent", func(t *schema.Table) *schema.Batch {
			return &schema.Batch{Table: t, Rows: []schema.RowChange{upd(row("9", nil, nil), row("90", "c", unsent))}}
		}, nil},
		{"ordered update beside one that finds its row", func(t *schema.Table) *schema.Batch {
			return &schema.Batch{Table: t, Rows: []schema.RowChange{
				upd(row("1", nil, nil), row("10", "a1", unsent)), upd(row("9", nil, nil), row("90", "c", "z"))}}
		}, nil},
	} {
		t := keyed("public", fmt.Sprintf("missing%d", i), col("id", schema.OIDInt8, true), col("v", schema.OIDText, false), col("big", schema.OIDText, false))
		h.tx(func() {
			h.ensure(t)
			h.write(&schema.Batch{Table: t, Inserts: rows(row("1", "a", "x"), row("2", "b", "y"))})
		})
		h.begin()
		err := h.s.Write(h.ctx(), c.b(t))
		if err == nil {
			// A sink may find it at commit.
			if err = h.s.Commit(h.ctx(), h.nextState()); err == nil {
				if c.healed == nil {
					h.t.Fatalf("%s of a missing row: committed, want schema.ErrDiverged", c.name)
				}
				h.want(t, c.healed...)
				continue
			}
		}
		if !errors.Is(err, schema.ErrDiverged) {
			h.t.Errorf("%s of a missing row: %v, want schema.ErrDiverged", c.name, err)
		}
		h.rollback()
		h.want(t, r("1", "a", "x"), r("2", "b", "y"))
	}
}

// testLooselyEqualValues: a value the target's type calls equal to the
// one stored, which PostgreSQL keeps apart (interval '30 days' and
// '1 mon', '24:00:00' and '1 day'), replaces it by every path: updates,
// patches, ordered changes by key (the key moving too), and keyless
// changes one by one and in sets, whose later changes find the rows
// (DuckDB skipped such updates, exit 0: helper-129).
func testLooselyEqualValues(h *harness) {
	t := keyed("public", "iv", col("id", schema.OIDInt8, true), col("v", schema.OIDInterval, false), col("w", schema.OIDText, false))
	h.tx(func() {
		h.ensure(t)
		h.write(&schema.Batch{Table: t, Inserts: rows(
			row("1", "1 mon", "a"), row("2", "1 day", "b"), row("3", "24:00:00", "c"), row("4", "1 mon", "d"), row("5", "1 day", "e"))})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: t,
			Updates: rows(row("1", "30 days", "a")),
			Patches: rows(row("2", "24:00:00", unsent)),
			Rows: []schema.RowChange{
				upd(row("3", nil, nil), row("3", "1 day", unsent)),
				upd(row("4", nil, nil), row("40", "30 days", "d")),
			}})
	})
	h.want(t, r("1", "30 days", "a"), r("2", "24:00:00", "b"), r("3", "1 day", "c"), r("40", "30 days", "d"), r("5", "1 day", "e"))

	kl := keyless("public", "iv_keyless", col("v", schema.OIDInterval, false), col("n", schema.OIDInt4, false))
	h.tx(func() {
		h.ensure(kl)
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			ins(row("1 mon", "1")), ins(row("1 mon", "1")), ins(row("1 day", "2")), ins(row("1 day", "3")), ins(row("1 day", "3")),
		}})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{upd(row("1 mon", "1"), row("30 days", "1"))}})
	})
	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			upd(row("1 day", "3"), row("24:00:00", "3")), upd(row("1 day", "3"), row("24:00:00", "3")),
		}})
	})
	h.want(kl, r("30 days", "1"), r("1 mon", "1"), r("1 day", "2"), r("24:00:00", "3"), r("24:00:00", "3"))
	h.tx(func() {
		h.write(&schema.Batch{Table: kl, Rows: []schema.RowChange{
			upd(row("30 days", "1"), row("30 days", "10")), del(row("24:00:00", "3")),
		}})
	})
	h.want(kl, r("30 days", "10"), r("1 mon", "1"), r("1 day", "2"), r("24:00:00", "3"))
}

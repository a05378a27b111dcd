package schema

import (
	"fmt"
	"strings"
	"testing"
)

func TestEachRun(t *testing.T) {
	row := func(s string) Tuple { return Tuple{{State: Text, Data: []byte(s)}} }
	rows := []RowChange{
		{Op: Insert, New: row("a")}, {Op: Insert, New: row("b")},
		{Op: Delete, Old: row("a")},
		{Op: Insert, New: row("c")},
		{Op: Update, Old: row("c"), New: row("d")}, {Op: Delete, Old: row("b")},
		{Op: Delete, Old: row("d")}, {Op: Delete, Old: row("e")},
	}
	var got []string
	err := EachRun(rows, func(ts []Tuple) error {
		var names []string
		for _, t := range ts {
			names = append(names, string(t[0].Data))
		}
		got = append(got, "insert "+strings.Join(names, ","))
		return nil
	}, func(cs []RowChange) error {
		for _, c := range cs {
			got = append(got, fmt.Sprintf("%s %s", c.Op, c.Old[0].Data))
		}
		got[len(got)-1] += fmt.Sprintf(" (%d)", len(cs))
		return nil
	})
	want := "insert a,b; delete a (1); insert c; update c (1); delete b; delete d; delete e (3)"
	if err != nil || strings.Join(got, "; ") != want {
		t.Fatalf("got %q, %v; want %q", strings.Join(got, "; "), err, want)
	}
}

func TestSetRun(t *testing.T) {
	row := func(vals ...string) Tuple {
		t := make(Tuple, len(vals))
		for i, v := range vals {
			switch v {
			case "<null>":
				t[i] = Datum{State: Null}
			case "<u>":
				t[i] = Datum{State: Unchanged}
			default:
				t[i] = Datum{State: Text, Data: []byte(v)}
			}
		}
		return t
	}
	upd := func(o, n Tuple) RowChange { return RowChange{Op: Update, Old: o, New: n} }
	del := func(o Tuple) RowChange { return RowChange{Op: Delete, Old: o} }
	for _, tc := range []struct {
		name string
		rows []RowChange
		want int
	}{
		{"empty", nil, 0},
		{"one", []RowChange{del(row("a", "1"))}, 1},
		{"deletes, duplicates too", []RowChange{del(row("a", "1")), del(row("a", "1")), del(row("b", "<null>"))}, 3},
		{"updates of distinct rows", []RowChange{upd(row("a", "1"), row("a", "2")), upd(row("b", "1"), row("b", "2")), upd(row("a", "1"), row("a", "3"))}, 3},
		{"update of a row written before", []RowChange{upd(row("a", "1"), row("a", "2")), upd(row("b", "1"), row("b", "2")), upd(row("a", "2"), row("a", "3"))}, 2},
		{"written row with unsent values", []RowChange{upd(row("a", "1"), row("<u>", "2")), upd(row("a", "2"), row("<u>", "3"))}, 1},
		{"null is not the text", []RowChange{upd(row("a", "1"), row("a", "<null>")), upd(row("a", ""), row("a", "3"))}, 2},
		{"kinds differ", []RowChange{del(row("a", "1")), upd(row("b", "1"), row("b", "2"))}, 1},
		{"sent columns differ", []RowChange{upd(row("a", "1"), row("a", "2")), upd(row("b", "1"), row("<u>", "2"))}, 1},
		{"insert first", []RowChange{{Op: Insert, New: row("a", "1")}, del(row("a", "1"))}, 1},
	} {
		if got := SetRun(tc.rows); got != tc.want {
			t.Errorf("%s: SetRun = %d, want %d", tc.name, got, tc.want)
		}
	}
}

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
	}
	var got []string
	err := EachRun(rows, func(ts []Tuple) error {
		var names []string
		for _, t := range ts {
			names = append(names, string(t[0].Data))
		}
		got = append(got, "insert "+strings.Join(names, ","))
		return nil
	}, func(c RowChange) error {
		got = append(got, fmt.Sprintf("%s %s", c.Op, c.Old[0].Data))
		return nil
	})
	want := "insert a,b; delete a; insert c; update c; delete b"
	if err != nil || strings.Join(got, "; ") != want {
		t.Fatalf("got %q, %v; want %q", strings.Join(got, "; "), err, want)
	}
}

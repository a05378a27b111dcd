package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// fakeSide serves rows given as text forms ("NULL" for NULL).
type fakeSide struct {
	rows    [][]string
	noTable bool
	err     error
	// unsorted ignores sorted: rows come in the order given.
	unsorted bool
}

func (f *fakeSide) Scan(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error {
	if f.noTable {
		return fmt.Errorf("t: %w", ErrNoTable)
	}
	var rows []Row
	var b rowBuilder
	for _, r := range f.rows {
		b.reset()
		for i, v := range r {
			if v == "NULL" {
				b.null()
			} else {
				b.text(t.cols[i], []byte(v))
			}
		}
		rows = append(rows, b.row())
	}
	if sorted && !f.unsorted {
		slices.SortStableFunc(rows, t.compareKeys)
	}
	for i, r := range rows {
		if f.err != nil && i == len(rows)/2 {
			return f.err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func table(identity byte, cols ...schema.Column) *Table {
	return NewTable(schema.NewTable(1, "public", "t", identity, cols))
}

var (
	keyID  = schema.Column{Name: "id", TypeID: schema.OIDInt4, Key: true}
	colV   = schema.Column{Name: "v", TypeID: schema.OIDText}
	colN   = schema.Column{Name: "n", TypeID: schema.OIDFloat8}
	keyNum = schema.Column{Name: "id", TypeID: schema.OIDNumeric, Key: true}
)

func rows(n int, f func(i int) []string) [][]string {
	var out [][]string
	for i := range n {
		out = append(out, f(i))
	}
	return out
}

func summary(r TableReport) string {
	var ex []string
	for _, e := range r.Examples {
		s := e.Kind + " " + e.Values.String()
		if len(e.Columns) > 0 {
			s += " " + strings.Join(e.Columns, ",")
		}
		ex = append(ex, s)
	}
	return fmt.Sprintf("%s src=%d dst=%d missing=%d extra=%d changed=%d absent=%v err=%q [%s]",
		r.Method, r.SourceRows, r.TargetRows, r.Missing, r.Extra, r.Changed, r.Absent, r.Err, strings.Join(ex, "; "))
}

func TestCompare(t *testing.T) {
	base := rows(1000, func(i int) []string { return []string{fmt.Sprint(i - 500), fmt.Sprintf("v%d", i), "0.1"} })
	edited := func(edit func([][]string) [][]string) [][]string {
		c := make([][]string, len(base))
		for i := range base {
			c[i] = slices.Clone(base[i])
		}
		return edit(c)
	}
	keyed := table(schema.IdentityDefault, keyID, colV, colN)
	differ := edited(func(r [][]string) [][]string {
		r[10][1] = "changed"                           // id -490: v
		r[20][2] = "0.10000000000001"                  // id -480: n
		r = slices.Delete(r, 30, 31)                   // id -470 missing
		r = append(r, []string{"5000", "new", "NULL"}) // extra
		return r
	})
	const differences = "src=1000 dst=1000 missing=1 extra=1 changed=2 absent=false err=\"\" [changed (id)=(-490) v; changed (id)=(-480) n; missing (id)=(-470); extra (id)=(5000)]"
	cases := []struct {
		name     string
		t        *Table
		src, dst *fakeSide
		want     string
	}{
		{"equal", keyed, &fakeSide{rows: base}, &fakeSide{rows: edited(func(r [][]string) [][]string {
			slices.Reverse(r) // the reader sorts
			r[0][2] = "1e-1"  // another spelling of the same float
			return r
		})}, "merge src=1000 dst=1000 missing=0 extra=0 changed=0 absent=false err=\"\" []"},
		{"differences", keyed, &fakeSide{rows: base}, &fakeSide{rows: differ}, "merge " + differences},
		{"copy not sorted: falls back to matching in memory", keyed, &fakeSide{rows: base},
			&fakeSide{rows: edited(func(r [][]string) [][]string { slices.Reverse(r); return r }), unsorted: true},
			"hash src=1000 dst=1000 missing=0 extra=0 changed=0 absent=false err=\"\" []"},
		{"differences, unsorted", keyed, &fakeSide{rows: base}, &fakeSide{rows: edited(func(r [][]string) [][]string {
			r = slices.Clone(differ)
			slices.Reverse(r)
			return r
		}), unsorted: true}, "hash src=1000 dst=1000 missing=1 extra=1 changed=2 absent=false err=\"\" [changed (id)=(-480) n; changed (id)=(-490) v; missing (id)=(-470); extra (id)=(5000)]"},
		{"duplicate key in the copy", keyed, &fakeSide{rows: base[:3]}, &fakeSide{rows: append(slices.Clone(base[:3]), base[1])},
			"merge src=3 dst=4 missing=0 extra=1 changed=0 absent=false err=\"\" [extra (id)=(-499)]"},
		{"duplicate key in the copy, hash", table(schema.IdentityDefault, keyNum, colV), &fakeSide{rows: [][]string{{"1.0", "a"}, {"2", "b"}}},
			&fakeSide{rows: [][]string{{"1", "a"}, {"2", "b"}, {"1.00", "a"}}},
			"hash src=2 dst=3 missing=0 extra=1 changed=0 absent=false err=\"\" [extra (id)=(1)]"},
		{"numeric key", table(schema.IdentityDefault, keyNum, colV), &fakeSide{rows: [][]string{{"1.0", "a"}, {"2", "b"}, {"3", "c"}}},
			&fakeSide{rows: [][]string{{"3", "c"}, {"1", "x"}, {"4", "d"}}},
			"hash src=3 dst=3 missing=1 extra=1 changed=1 absent=false err=\"\" [changed (id)=(1) v; missing (id)=(2); extra (id)=(4)]"},
		{"keyless: a duplicate removed", table(schema.IdentityFull, colV, colN),
			&fakeSide{rows: [][]string{{"a", "1"}, {"a", "1"}, {"b", "NULL"}}}, &fakeSide{rows: [][]string{{"b", "NULL"}, {"a", "1"}}},
			"multiset src=3 dst=2 missing=1 extra=0 changed=0 absent=false err=\"\" [missing (v, n)=(a, 1)]"},
		{"keyless: NULL is not the text NULL", table(schema.IdentityFull, colV),
			&fakeSide{rows: [][]string{{"NULL"}}}, &fakeSide{rows: [][]string{{""}}},
			"multiset src=1 dst=1 missing=1 extra=1 changed=0 absent=false err=\"\" [missing (v)=(NULL); extra (v)=()]"},
		{"absent table", keyed, &fakeSide{rows: base[:2]}, &fakeSide{noTable: true},
			"merge src=2 dst=0 missing=2 extra=0 changed=0 absent=true err=\"\" [missing (id)=(-500); missing (id)=(-499)]"},
		{"read error", keyed, &fakeSide{rows: base}, &fakeSide{rows: base, err: errors.New("disk on fire")},
			"merge src=0 dst=0 missing=0 extra=0 changed=0 absent=false err=\"read the copy: disk on fire\" []"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := summary(Compare(context.Background(), c.t, c.src, c.dst, Options{}))
			if got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestAbsentDiffers: a published table the copy lacks differs, also when
// it has no rows (before, an empty one was "equal", helper-128).
func TestAbsentDiffers(t *testing.T) {
	for _, rows := range []int64{0, 3} {
		tr := TableReport{Table: "public.e", Absent: true, SourceRows: rows, Missing: rows}
		if tr.Equal() || !tr.Different() || tr.Status() == "equal" {
			t.Errorf("absent with %d source rows: equal %v, different %v, status %q", rows, tr.Equal(), tr.Different(), tr.Status())
		}
	}
}

func TestCompareExamplesAreBounded(t *testing.T) {
	src := rows(100, func(i int) []string { return []string{fmt.Sprint(i), "x"} })
	r := Compare(context.Background(), table(schema.IdentityDefault, keyID, colV), &fakeSide{rows: src}, &fakeSide{}, Options{Examples: 3})
	if r.Missing != 100 || len(r.Examples) != 3 {
		t.Fatalf("%s", summary(r))
	}
}

package apply

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// tup builds a tuple: "~" is an unchanged (unsent) TOAST value, "<null>" NULL.
func tup(vals ...string) schema.Tuple {
	t := make(schema.Tuple, len(vals))
	for i, v := range vals {
		switch v {
		case "~":
			t[i] = schema.Datum{State: schema.Unchanged}
		case "<null>":
			t[i] = schema.Datum{State: schema.Null}
		default:
			t[i] = schema.Datum{State: schema.Text, Data: []byte(v)}
		}
	}
	return t
}

func show(t schema.Tuple) string {
	parts := make([]string, len(t))
	for i, d := range t {
		switch d.State {
		case schema.Unchanged:
			parts[i] = "~"
		case schema.Null:
			parts[i] = "<null>"
		default:
			parts[i] = string(d.Data)
		}
	}
	return strings.Join(parts, ",")
}

func showBatch(b *schema.Batch) string {
	var out []string
	list := func(name string, ts []schema.Tuple) {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = show(t)
		}
		slices.Sort(s)
		if len(s) > 0 {
			out = append(out, name+"["+strings.Join(s, " ")+"]")
		}
	}
	list("del", b.Deletes)
	list("ins", b.Inserts)
	list("upd", b.Updates)
	list("patch", b.Patches)
	for _, r := range b.Rows {
		out = append(out, fmt.Sprintf("%s(%s→%s)", r.Op, show(r.Old), show(r.New)))
	}
	return strings.Join(out, " ")
}

var keyed = schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
	{Name: "id", TypeID: schema.OIDInt4, Key: true}, {Name: "a", TypeID: schema.OIDText}, {Name: "big", TypeID: schema.OIDText},
})

func ins(v ...string) schema.RowChange { return schema.RowChange{Op: schema.Insert, New: tup(v...)} }
func upd(old schema.Tuple, v ...string) schema.RowChange {
	return schema.RowChange{Op: schema.Update, Old: old, New: tup(v...)}
}
func del(v ...string) schema.RowChange { return schema.RowChange{Op: schema.Delete, Old: tup(v...)} }

func TestCompaction(t *testing.T) {
	cases := []struct {
		name    string
		changes []schema.RowChange
		want    []string // one per batch
	}{
		{"insert then update merges", []schema.RowChange{ins("1", "x", "B"), upd(nil, "1", "y", "~")},
			[]string{"ins[1,y,B]"}},
		{"insert then delete leaves nothing", []schema.RowChange{ins("1", "x", "B"), del("1", "<null>", "<null>")},
			nil},
		{"insert, delete, insert again is an insert", []schema.RowChange{ins("1", "x", "B"), del("1", "<null>", "<null>"), ins("1", "y", "C")},
			[]string{"ins[1,y,C]"}},
		{"delete then insert is an update", []schema.RowChange{del("1", "<null>", "<null>"), ins("1", "z", "C")},
			[]string{"upd[1,z,C]"}},
		{"update of an existing row", []schema.RowChange{upd(nil, "1", "y", "Y")},
			[]string{"upd[1,y,Y]"}},
		{"unsent column without prior row is a patch", []schema.RowChange{upd(nil, "1", "y", "~"), upd(nil, "1", "~", "N")},
			[]string{"patch[1,y,N]"}},
		{"key change of a new row moves it", []schema.RowChange{ins("1", "x", "B"), upd(tup("1", "<null>", "<null>"), "2", "x", "~")},
			[]string{"ins[2,x,B]"}},
		{"key change of an existing row", []schema.RowChange{upd(tup("1", "<null>", "<null>"), "2", "x", "X")},
			[]string{"del[1,<null>,<null>] ins[2,x,X]"}},
		{"key change with unsent column is ordered", []schema.RowChange{
			ins("5", "e", "E"), upd(tup("1", "<null>", "<null>"), "2", "x", "~"), ins("3", "c", "C")},
			[]string{"ins[5,e,E] update(1,<null>,<null>→2,x,~)", "ins[3,c,C]"}},
		{"key swap through a temporary key", []schema.RowChange{
			upd(tup("1", "<null>", "<null>"), "3", "a", "A"), upd(tup("2", "<null>", "<null>"), "1", "b", "B"),
			upd(tup("3", "<null>", "<null>"), "2", "a", "A")},
			[]string{"upd[1,b,B 2,a,A]"}}, // key 3 never reached the target
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTableBuffer(keyed)
			for _, ch := range c.changes {
				b.add(ch)
			}
			var got []string
			for _, batch := range b.take() {
				got = append(got, showBatch(batch))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if b.n != 0 || len(b.take()) != 0 {
				t.Error("buffer not empty after take")
			}
		})
	}
}

func TestKeylessKeepsOrder(t *testing.T) {
	full := schema.NewTable(2, "public", "log", schema.IdentityFull, []schema.Column{
		{Name: "a", TypeID: schema.OIDText, Key: true}, {Name: "b", TypeID: schema.OIDText, Key: true},
	})
	b := newTableBuffer(full)
	b.add(ins("x", "1"))
	b.add(ins("x", "1"))
	b.add(del("x", "1"))
	b.add(upd(tup("x", "1"), "x", "2"))
	got := b.take()
	if len(got) != 1 || showBatch(got[0]) != "insert(→x,1) insert(→x,1) delete(x,1→) update(x,1→x,2)" {
		t.Fatalf("got %q", showBatch(got[0]))
	}
}

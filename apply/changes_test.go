package apply

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// TestCommitChanges: each commit reports the tables it changed and their
// keys (deduplicated, old and new of an update), "all rows" beyond the
// limit and for TRUNCATE; nothing is collected unless asked for.
func TestCommitChanges(t *testing.T) {
	var evs []source.Event
	evs = append(evs, source.Event{Msg: relMsg})
	evs = append(evs, txn(0x200, 0x210, &pgoutput.Insert{RelationID: 1, New: tup("1", "x", "B")},
		&pgoutput.Insert{RelationID: 1, New: tup("2", "x", "B")},
		&pgoutput.Update{RelationID: 1, New: tup("2", "y", "~")},
		&pgoutput.Update{RelationID: 1, OldKind: 'K', Old: tup("1", "", ""), New: tup("9", "y", "B")})...)
	evs = append(evs, source.Event{WALEnd: 0x300})
	var many []pgoutput.Message
	for i := range 7 {
		many = append(many, &pgoutput.Insert{RelationID: 1, New: tup(fmt.Sprint(100+i), "x", "B")})
	}
	evs = append(evs, txn(0x400, 0x410, many...)...)
	evs = append(evs, source.Event{WALEnd: 0x500})
	evs = append(evs, txn(0x600, 0x610, &pgoutput.Truncate{RelationIDs: []uint32{1}})...)
	evs = append(evs, source.Event{WALEnd: 0x700})
	for _, pipelined := range []bool{false, true} {
		sink := &recordingSink{}
		limits := DefaultLimits()
		limits.CommitRows = 1 // a target commit per source transaction
		e := newEngine(sink, slog.New(slog.DiscardHandler), limits, schema.State{}, 0)
		e.conf, e.pipelined = &confirmLog{t: t, sink: sink}, pipelined
		e.track, e.changes.limit = true, 5
		var got [][]TableChange
		e.onCommit = func(c CommitInfo) { got = append(got, c.Changes) }
		ch := make(chan []source.Event, len(evs))
		for _, ev := range evs {
			ch <- []source.Event{ev}
		}
		close(ch)
		_ = e.run(context.Background(), ch)
		want := [][]TableChange{
			{{RelID: 1, Table: "public.t", Keys: [][]string{{"1"}, {"2"}, {"9"}}}},
			{{RelID: 1, Table: "public.t", AllRows: true}},
			{{RelID: 1, Table: "public.t", AllRows: true}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pipelined=%v: changes\n got %+v\nwant %+v", pipelined, got, want)
		}
	}
}

// TestChangedKeyNotSent: an update that left a TOASTed key alone sends no
// key value: with no old tuple its table is "all rows" (before, the key ""
// was reported, helper-135); with one, the old key names the row.
func TestChangedKeyNotSent(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{{Name: "id", TypeID: 25, Key: true}, {Name: "a", TypeID: 25}, {Name: "big", TypeID: 25}})
	l := changeLog{limit: 10}
	l.add(tbl, schema.RowChange{Op: schema.Update, New: tup("~", "y", "~")})
	if got := l.take(); len(got) != 1 || !got[0].AllRows || got[0].Keys != nil {
		t.Errorf("update with the key unsent: %+v, want all rows", got)
	}
	l.add(tbl, schema.RowChange{Op: schema.Update, Old: tup("7", "", ""), New: tup("~", "y", "~")})
	if got := l.take(); len(got) != 1 || got[0].AllRows || !reflect.DeepEqual(got[0].Keys, [][]string{{"7"}}) {
		t.Errorf("update with the old key sent: %+v, want key 7", got)
	}
	// A two-column key, one part TOASTed and unsent, the other changed:
	// both the old key and the new one.
	two := schema.NewTable(2, "public", "two", schema.IdentityDefault, []schema.Column{{Name: "a", TypeID: 25, Key: true}, {Name: "b", TypeID: 25, Key: true}, {Name: "v", TypeID: 25}})
	l.add(two, schema.RowChange{Op: schema.Update, Old: tup("big", "1", ""), New: tup("~", "2", "v")})
	if got := l.take(); len(got) != 1 || got[0].AllRows || !reflect.DeepEqual(got[0].Keys, [][]string{{"big", "1"}, {"big", "2"}}) {
		t.Errorf("update of a key part beside an unsent one: %+v, want keys (big,1) and (big,2)", got)
	}
}

// TestCommitChangesRepeatedKeys: the ChangeKeys limit counts keys, not
// changes: a row changed more times than the limit, beside another, is
// two keys; more distinct keys than the limit are "all rows".
func TestCommitChangesRepeatedKeys(t *testing.T) {
	var evs []source.Event
	evs = append(evs, source.Event{Msg: relMsg})
	hot := []pgoutput.Message{&pgoutput.Insert{RelationID: 1, New: tup("1", "x", "B")}}
	for i := range 9 {
		hot = append(hot, &pgoutput.Update{RelationID: 1, New: tup("1", fmt.Sprint(i), "B")})
	}
	hot = append(hot, &pgoutput.Insert{RelationID: 1, New: tup("2", "x", "B")})
	evs = append(evs, txn(0x200, 0x210, hot...)...)
	evs = append(evs, source.Event{WALEnd: 0x300})
	var many []pgoutput.Message
	for i := range 4 {
		for range 3 {
			many = append(many, &pgoutput.Update{RelationID: 1, New: tup(fmt.Sprint(10+i), "y", "B")})
		}
	}
	evs = append(evs, txn(0x400, 0x410, many...)...)
	evs = append(evs, source.Event{WALEnd: 0x500})
	for _, pipelined := range []bool{false, true} {
		sink := &recordingSink{}
		limits := DefaultLimits()
		limits.CommitRows = 1 // a target commit per source transaction
		e := newEngine(sink, slog.New(slog.DiscardHandler), limits, schema.State{}, 0)
		e.conf, e.pipelined = &confirmLog{t: t, sink: sink}, pipelined
		e.track, e.changes.limit = true, 3
		var got [][]TableChange
		e.onCommit = func(c CommitInfo) { got = append(got, c.Changes) }
		ch := make(chan []source.Event, len(evs))
		for _, ev := range evs {
			ch <- []source.Event{ev}
		}
		close(ch)
		_ = e.run(context.Background(), ch)
		want := [][]TableChange{
			{{RelID: 1, Table: "public.t", Keys: [][]string{{"1"}, {"2"}}}},
			{{RelID: 1, Table: "public.t", AllRows: true}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pipelined=%v: changes\n got %+v\nwant %+v", pipelined, got, want)
		}
	}
}

package apply

import (
	"context"
	"log/slog"
	"testing"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// TestEngineHooks: the observation hooks see each commit with counts by
// operation and its duration, and a keepalive reports the copy caught up
// only once the commit before it returned; the calls and confirmations are
// those of a run without hooks.
func TestEngineHooks(t *testing.T) {
	var evs []source.Event
	evs = append(evs, source.Event{Msg: relMsg})
	evs = append(evs, txn(0x200, 0x210, &pgoutput.Insert{RelationID: 1, New: tup("1", "x", "B")},
		&pgoutput.Insert{RelationID: 1, New: tup("2", "x", "B")})...)
	evs = append(evs, txn(0x300, 0x310, &pgoutput.Update{RelationID: 1, New: tup("2", "y", "~")},
		&pgoutput.Delete{RelationID: 1, Old: tup("1", "", "")})...)
	evs = append(evs, source.Event{WALEnd: 0x400})
	plain, plainConf, _ := runEngine(t, schema.State{}, 0, DefaultLimits(), evs)
	for _, pipelined := range []bool{false, true} {
		sink := &recordingSink{}
		conf := &confirmLog{t: t, sink: sink}
		e := newEngine(sink, slog.New(slog.DiscardHandler), DefaultLimits(), schema.State{}, 0)
		e.conf, e.pipelined = conf, pipelined
		var commits []CommitInfo
		var positions []Position
		e.onCommit = func(c CommitInfo) { commits = append(commits, c) }
		e.onPosition = func(p Position) {
			if p.CaughtUp && (sink.open || sink.committed != 0x310) {
				t.Errorf("caught up reported with the target at %s (open %v)", sink.committed, sink.open)
			}
			positions = append(positions, p)
		}
		ch := make(chan []source.Event, len(evs))
		for _, ev := range evs {
			ch <- []source.Event{ev}
		}
		close(ch)
		_ = e.run(context.Background(), ch)
		if len(sink.calls) != len(plain.calls) || len(conf.confirmed) != len(plainConf.confirmed) {
			t.Errorf("pipelined=%v: hooks changed the run: %v / %v", pipelined, sink.calls, plain.calls)
		}
		var ins, upd, del int64
		if n := len(commits); n > 0 {
			s := commits[n-1].Stats
			ins, upd, del = s.Inserts, s.Updates, s.Deletes
		}
		if ins != 2 || upd != 1 || del != 1 {
			t.Errorf("pipelined=%v: stats at the last commit: %d inserts, %d updates, %d deletes; want 2, 1, 1", pipelined, ins, upd, del)
		}
		if len(positions) != 1 || positions[0] != (Position{ServerWALEnd: lsn.LSN(0x400), CaughtUp: true}) {
			t.Errorf("pipelined=%v: positions %+v", pipelined, positions)
		}
	}
}

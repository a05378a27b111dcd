package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// recordingSink logs the calls the engine makes; it stands in for a database
// only in tests of the engine's own bookkeeping.
type recordingSink struct {
	calls     []string
	committed lsn.LSN
	open      bool
	failWrite bool
}

func (r *recordingSink) ReadState(context.Context) (schema.State, bool, error) {
	return schema.State{}, false, nil
}
func (r *recordingSink) Begin(context.Context) error {
	r.open = true
	r.calls = append(r.calls, "begin")
	return nil
}
func (r *recordingSink) EnsureTable(_ context.Context, t *schema.Table) error {
	r.calls = append(r.calls, "ensure "+t.Name)
	return nil
}
func (r *recordingSink) Write(_ context.Context, b *schema.Batch) error {
	if r.failWrite {
		return errors.New("disk full")
	}
	r.calls = append(r.calls, "write "+showBatch(b))
	return nil
}
func (r *recordingSink) Truncate(_ context.Context, ts []*schema.Table) error {
	r.calls = append(r.calls, "truncate "+ts[0].Name)
	return nil
}
func (r *recordingSink) Commit(_ context.Context, st schema.State) error {
	r.open = false
	r.committed = st.LSN
	r.calls = append(r.calls, "commit "+st.LSN.String())
	return nil
}
func (r *recordingSink) Rollback(context.Context) error {
	r.open = false
	r.calls = append(r.calls, "rollback")
	return nil
}
func (r *recordingSink) Close() error { return nil }

// confirmLog checks the exactly-once rule as it happens: nothing is ever
// confirmed beyond what the sink committed (or held at the start: stored),
// nor while a target transaction is open.
type confirmLog struct {
	t         *testing.T
	sink      *recordingSink
	stored    lsn.LSN
	confirmed []lsn.LSN
}

func (c *confirmLog) Confirm(l lsn.LSN) {
	if c.sink.open {
		c.t.Errorf("confirmed %s while a target transaction was open", l)
	}
	if l > max(c.sink.committed, c.stored) {
		c.t.Errorf("confirmed %s, past the committed %s", l, max(c.sink.committed, c.stored))
	}
	c.confirmed = append(c.confirmed, l)
}
func (c *confirmLog) RequestReply() {}

var relMsg = &pgoutput.Relation{RelationID: 1, Namespace: "public", Name: "t", ReplicaIdentity: 'd',
	Columns: []pgoutput.RelationColumn{{Flags: 1, Name: "id", TypeID: schema.OIDInt4, Typmod: -1}, {Name: "a", TypeID: schema.OIDText, Typmod: -1}, {Name: "big", TypeID: schema.OIDText, Typmod: -1}}}

func txn(commit, end lsn.LSN, msgs ...pgoutput.Message) []source.Event {
	evs := []source.Event{{Msg: &pgoutput.Begin{FinalLSN: commit, CommitTime: time.Now()}}}
	for _, m := range msgs {
		evs = append(evs, source.Event{Msg: m})
	}
	return append(evs, source.Event{Msg: &pgoutput.Commit{CommitLSN: commit, EndLSN: end}})
}

// runEngine runs evs through the engine, then again with pipelining, which
// must make exactly the same target calls and confirmations.
func runEngine(t *testing.T, st schema.State, stopAt lsn.LSN, limits Limits, evs []source.Event) (*recordingSink, *confirmLog, error) {
	t.Helper()
	sink, conf, err := runEngineMode(t, st, stopAt, limits, evs, &recordingSink{}, false)
	psink, pconf, perr := runEngineMode(t, st, stopAt, limits, evs, &recordingSink{}, true)
	if a, b := strings.Join(sink.calls, "; "), strings.Join(psink.calls, "; "); a != b {
		t.Errorf("pipelined calls differ:\n     %s\npipe %s", a, b)
	}
	if fmt.Sprint(conf.confirmed) != fmt.Sprint(pconf.confirmed) || fmt.Sprint(err) != fmt.Sprint(perr) {
		t.Errorf("pipelined run differs: confirmed %v / %v, err %v / %v", conf.confirmed, pconf.confirmed, err, perr)
	}
	return sink, conf, err
}

func runEngineMode(t *testing.T, st schema.State, stopAt lsn.LSN, limits Limits, evs []source.Event, sink *recordingSink, pipelined bool) (*recordingSink, *confirmLog, error) {
	conf := &confirmLog{t: t, sink: sink, stored: st.LSN}
	e := newEngine(sink, slog.New(slog.DiscardHandler), limits, st, stopAt)
	e.conf = conf
	e.pipelined = pipelined
	// Batches of 1 to 3 events, as the stream cuts them anywhere.
	ch := make(chan []source.Event, len(evs))
	for i := 0; i < len(evs); {
		n := min(1+i%3, len(evs)-i)
		ch <- evs[i : i+n]
		i += n
	}
	close(ch)
	err := e.run(context.Background(), ch)
	return sink, conf, err
}

func TestEngineGroupsSkipsAndConfirms(t *testing.T) {
	var evs []source.Event
	evs = append(evs, source.Event{Msg: relMsg})
	evs = append(evs, txn(0x100, 0x110, &pgoutput.Insert{RelationID: 1, New: tup("1", "old", "B")})...) // already applied
	evs = append(evs, txn(0x200, 0x210, &pgoutput.Insert{RelationID: 1, New: tup("2", "x", "B")})...)
	evs = append(evs, txn(0x300, 0x310, &pgoutput.Update{RelationID: 1, New: tup("2", "y", "~")})...)
	evs = append(evs, source.Event{WALEnd: 0x400}) // idle keepalive
	sink, conf, err := runEngine(t, schema.State{LSN: 0x120}, 0, DefaultLimits(), evs)
	if !errors.Is(err, errStreamEnded) {
		t.Fatalf("run: %v", err)
	}
	got := strings.Join(sink.calls, "; ")
	want := "begin; ensure t; write ins[2,y,B]; commit 0/00000310"
	if got != want {
		t.Fatalf("calls:\n got %s\nwant %s", got, want)
	}
	if last := conf.confirmed[len(conf.confirmed)-1]; last != 0x310 {
		t.Errorf("confirmed %v; want the last commit, 0/310 (the keepalive's position is stored a while after the commit)", conf.confirmed)
	}
}

// idleFeed delivers evs one at a time on an unbuffered channel: every
// event is the last one waiting, as when the source is idle.
func idleFeed(evs []source.Event) <-chan []source.Event {
	ch := make(chan []source.Event)
	go func() {
		defer close(ch)
		for _, ev := range evs {
			ch <- []source.Event{ev}
		}
	}()
	return ch
}

// TestEnginePassedPositions: a position the stream passed with nothing for
// the copy (an idle keepalive, a transaction with nothing published) is
// stored before the slot is confirmed there (schema.State.SlotGuard), in a
// commit of the state alone that the OnCommit hook does not hear of; a
// bounded run stores no position past its stop.
func TestEnginePassedPositions(t *testing.T) {
	evs := []source.Event{{Msg: relMsg}}
	evs = append(evs, txn(0x200, 0x210, &pgoutput.Insert{RelationID: 1, New: tup("1", "x", "B")})...)
	evs = append(evs, source.Event{WALEnd: 0x400})
	evs = append(evs, txn(0x500, 0x510)...) // nothing published in it
	evs = append(evs, source.Event{WALEnd: 0x600})
	for _, stopAt := range []lsn.LSN{0, 0x580} {
		sink := &recordingSink{}
		conf := &confirmLog{t: t, sink: sink}
		e := newEngine(sink, slog.New(slog.DiscardHandler), DefaultLimits(), schema.State{}, stopAt)
		e.conf, e.passedEvery, e.passedBytes, e.guardFrom = conf, 0, 0, 0x300
		commits := 0
		e.onCommit = func(CommitInfo) { commits++ }
		err := e.run(context.Background(), idleFeed(evs))
		want := "begin; ensure t; write ins[1,x,B]; commit 0/00000210; begin; commit 0/00000400; begin; commit 0/00000510; begin; commit 0/00000600"
		wantConf := "[0/00000210 0/00000400 0/00000510 0/00000600]"
		if stopAt != 0 {
			want = "begin; ensure t; write ins[1,x,B]; commit 0/00000210; begin; commit 0/00000400; begin; commit 0/00000510; begin; commit 0/00000580"
			wantConf = "[0/00000210 0/00000400 0/00000510 0/00000580]"
		}
		if got := strings.Join(sink.calls, "; "); got != want {
			t.Errorf("stop at %s: calls\n got %s\nwant %s (err %v)", stopAt, got, want, err)
		}
		if got := fmt.Sprint(conf.confirmed); got != wantConf {
			t.Errorf("stop at %s: confirmed %s, want %s", stopAt, got, wantConf)
		}
		if commits != 1 {
			t.Errorf("stop at %s: OnCommit heard of %d commits, want 1 (the others store a position alone)", stopAt, commits)
		}
		if !e.state.SlotGuard || e.state.LSN == 0 {
			t.Errorf("stop at %s: state %+v: the guard is stored from a commit at or past the slot's position on", stopAt, e.state)
		}
	}
}

// floorLog is a confirmLog whose stream has a transaction streaming since
// floor (source.Stream.Floor).
type floorLog struct {
	*confirmLog
	floor lsn.LSN
}

func (f *floorLog) Floor() lsn.LSN { return f.floor }

// TestEnginePassedPositionsFloor: while a transaction streams, a
// transaction with nothing for the copy or a keepalive past its start
// stores that start, not its own end: stored past it, a restart would make
// the source spill the streaming transaction's beginning (its stream only
// starts at the position asked for). It failed when the first position
// stored in a run was the end of such a transaction.
func TestEnginePassedPositionsFloor(t *testing.T) {
	evs := []source.Event{{Msg: relMsg}}
	evs = append(evs, txn(0x500, 0x510)...) // nothing published in it, past the floor
	evs = append(evs, source.Event{WALEnd: 0x600})
	evs = append(evs, txn(0x700, 0x710, &pgoutput.Insert{RelationID: 1, New: tup("1", "x", "B")})...)
	evs = append(evs, source.Event{WALEnd: 0x800})
	sink := &recordingSink{}
	conf := &floorLog{confirmLog: &confirmLog{t: t, sink: sink, stored: 0x100}, floor: 0x300}
	e := newEngine(sink, slog.New(slog.DiscardHandler), DefaultLimits(), schema.State{LSN: 0x100}, 0)
	e.conf, e.passedEvery, e.passedBytes = conf, 0, 0
	err := e.run(context.Background(), idleFeed(evs))
	// A transaction with data is stored at its end (a restart must not
	// apply it again); the keepalive after it at the floor again (below
	// the stored position: confirmed only).
	want := "begin; commit 0/00000300; begin; ensure t; write ins[1,x,B]; commit 0/00000710"
	if got := strings.Join(sink.calls, "; "); got != want {
		t.Errorf("calls\n got %s\nwant %s (err %v)", got, want, err)
	}
	if got, want := fmt.Sprint(conf.confirmed), "[0/00000300 0/00000300 0/00000710 0/00000300]"; got != want {
		t.Errorf("confirmed %s, want %s", got, want)
	}
}

func TestEngineChunksHugeTransaction(t *testing.T) {
	evs := []source.Event{{Msg: relMsg}}
	var msgs []pgoutput.Message
	for i := range 10 {
		msgs = append(msgs, &pgoutput.Insert{RelationID: 1, New: tup(string(rune('a'+i)), "x", "y")})
	}
	evs = append(evs, txn(0x200, 0x210, msgs...)...)
	lim := DefaultLimits()
	lim.ChunkRows = 4
	sink, _, _ := runEngine(t, schema.State{}, 0, lim, evs)
	writes, commits := 0, 0
	for _, c := range sink.calls {
		if strings.HasPrefix(c, "write") {
			writes++
		}
		if strings.HasPrefix(c, "commit") {
			commits++
		}
	}
	if writes != 3 || commits != 1 {
		t.Fatalf("want 3 chunked writes in 1 commit, got %v", sink.calls)
	}
}

func TestEngineStopsAtLSN(t *testing.T) {
	evs := []source.Event{{Msg: relMsg}}
	evs = append(evs, txn(0x200, 0x210, &pgoutput.Insert{RelationID: 1, New: tup("1", "x", "y")})...)
	evs = append(evs, txn(0x300, 0x310, &pgoutput.Insert{RelationID: 1, New: tup("2", "x", "y")})...)
	sink, _, err := runEngine(t, schema.State{}, 0x250, DefaultLimits(), evs)
	if !errors.Is(err, errStopReached) {
		t.Fatalf("run: %v", err)
	}
	if sink.committed != 0x210 || strings.Contains(strings.Join(sink.calls, ";"), "2,x,y") {
		t.Fatalf("applied past the stop LSN: %v", sink.calls)
	}
}

func TestEngineFailedWriteRollsBackAndConfirmsNothing(t *testing.T) {
	evs := []source.Event{{Msg: relMsg}}
	evs = append(evs, txn(0x200, 0x210, &pgoutput.Insert{RelationID: 1, New: tup("1", "x", "y")})...)
	for _, pipelined := range []bool{false, true} {
		sink, conf, err := runEngineMode(t, schema.State{LSN: 0x100}, 0, DefaultLimits(), evs, &recordingSink{failWrite: true}, pipelined)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("pipelined=%v: run: %v", pipelined, err)
		}
		if len(conf.confirmed) != 0 || sink.calls[len(sink.calls)-1] != "rollback" {
			t.Fatalf("pipelined=%v: confirmed %v, calls %v", pipelined, conf.confirmed, sink.calls)
		}
	}
}

// TestEngineBacklogIsNotCommittedPerKeepalive: under a steady load the server
// sends a keepalive after nearly every transaction; with a backlog queued,
// those must not turn into one target commit per transaction.
func TestEngineBacklogIsNotCommittedPerKeepalive(t *testing.T) {
	evs := []source.Event{{Msg: relMsg}}
	for i := range 5 {
		base := lsn.LSN(0x1000 * (i + 1))
		evs = append(evs, txn(base, base+0x10, &pgoutput.Insert{RelationID: 1, New: tup(string(rune('a'+i)), "x", "y")})...)
		evs = append(evs, source.Event{WALEnd: base + 0x20})
	}
	sink, conf, err := runEngine(t, schema.State{}, 0, DefaultLimits(), evs)
	if !errors.Is(err, errStreamEnded) {
		t.Fatalf("run: %v", err)
	}
	commits := 0
	for _, c := range sink.calls {
		if strings.HasPrefix(c, "commit") {
			commits++
		}
	}
	if commits != 1 || sink.committed != 0x5010 {
		t.Fatalf("want the backlog in 1 commit up to 0/5010, got %d commits: %v", commits, sink.calls)
	}
	if last := conf.confirmed[len(conf.confirmed)-1]; last != 0x5010 {
		t.Errorf("last confirmed %s, want the commit's 0/5010 (the idle keepalive's position is stored a while after it)", last)
	}
}

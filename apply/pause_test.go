package apply

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// pauseEngine runs an engine with a Pauser over evs (one event per batch)
// on a goroutine; done receives run's error.
func pauseEngine(t *testing.T, pipelined bool, p *Pauser, evs []source.Event, setup func(*engine)) (*recordingSink, chan error) {
	sink := &recordingSink{}
	e := newEngine(sink, slog.New(slog.DiscardHandler), DefaultLimits(), schema.State{Phase: schema.PhaseStreaming}, 0)
	e.conf = &confirmLog{t: t, sink: sink}
	e.pipelined, e.pause = pipelined, p
	if setup != nil {
		setup(e)
	}
	ch := make(chan []source.Event, len(evs))
	for _, ev := range evs {
		ch <- []source.Event{ev}
	}
	close(ch)
	done := make(chan error, 1)
	go func() { done <- e.run(context.Background(), ch) }()
	return sink, done
}

func insMsg(id string) *pgoutput.Insert {
	return &pgoutput.Insert{RelationID: 1, New: tup(id, "x", "b")}
}

// TestPause: a hold keeps the engine from applying a transaction that
// committed at or after its floor until the position is known; then the
// engine applies exactly the transactions whose commit record begins
// before it, commits, and waits until released, with nothing open.
func TestPause(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		var evs []source.Event
		evs = append(evs, source.Event{Msg: relMsg})
		evs = append(evs, txn(0x200, 0x210, insMsg("1"))...)
		evs = append(evs, txn(0x300, 0x310, insMsg("2"))...) // at the floor: held until At
		evs = append(evs, txn(0x3e8, 0x400, insMsg("3"))...) // ends at 0x400: applied
		evs = append(evs, txn(0x400, 0x410, insMsg("4"))...) // at 0x400: not before the pause
		var p Pauser
		h, err := p.Hold(0x300)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Hold(0x300); !errors.Is(err, ErrPauseBusy) {
			t.Errorf("a second hold: %v", err)
		}
		sink, done := pauseEngine(t, pipelined, &p, evs, nil)
		// Held at the floor: the position is not known yet.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if seen, ok := h.Seen(); ok && seen == 0x300 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the engine did not reach the floor")
			}
			time.Sleep(time.Millisecond)
		}
		h.At(0x400)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := h.Wait(ctx)
		cancel()
		if err != nil {
			t.Fatalf("pipelined=%v: %v", pipelined, err)
		}
		calls := strings.Join(sink.calls, "; ")
		if st.LSN != 0x400 || sink.committed != 0x400 || sink.open || strings.Contains(calls, "4") && strings.Contains(calls, "write") && strings.Contains(calls, "[4") {
			t.Errorf("pipelined=%v: paused at %s, sink at %s (open %v): %s", pipelined, st.LSN, sink.committed, sink.open, calls)
		}
		if !slices.ContainsFunc(sink.calls, func(c string) bool { return c == "commit 0/00000210" }) {
			t.Errorf("pipelined=%v: nothing committed before the hold waited: %s", pipelined, calls)
		}
		if err := h.Release(); err != nil {
			t.Error(err)
		}
		if err := <-done; !errors.Is(err, errStreamEnded) {
			t.Errorf("pipelined=%v: run: %v", pipelined, err)
		}
		if sink.committed != 0x410 {
			t.Errorf("pipelined=%v: after the release the copy reached %s, want 0/410", pipelined, sink.committed)
		}
		if p.active() != nil {
			t.Error("the hold is still active after Release")
		}
	}
}

// TestPauseKeepalive: on a quiet source, a keepalive at the position
// pauses the copy (everything before it has been applied).
func TestPauseKeepalive(t *testing.T) {
	var evs []source.Event
	evs = append(evs, source.Event{Msg: relMsg})
	evs = append(evs, txn(0x200, 0x210, insMsg("1"))...)
	evs = append(evs, source.Event{WALEnd: 0x300}, source.Event{WALEnd: 0x4ff}, source.Event{WALEnd: 0x600})
	var p Pauser
	h, _ := p.Hold(0x100)
	h.At(0x500)
	sink, done := pauseEngine(t, false, &p, evs, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := h.Wait(ctx)
	if err != nil || st.LSN != 0x210 || sink.open {
		t.Errorf("paused at %s (open %v): %v", st.LSN, sink.open, err)
	}
	if seen, _ := h.Seen(); seen != 0x4ff {
		t.Errorf("paused at a keepalive of %s, want 0/4FF", seen)
	}
	_ = h.Release()
	<-done
}

// TestPauseRefused: a hold fails while tables are copied online, and a
// hold released before its position is known lets the engine go on.
func TestPauseRefused(t *testing.T) {
	evs := append([]source.Event{{Msg: relMsg}}, txn(0x200, 0x210, insMsg("1"))...)
	var p Pauser
	h, _ := p.Hold(0x100)
	_, done := pauseEngine(t, false, &p, evs, func(e *engine) {
		e.fills[7] = &fill{copy: schema.TableCopy{Table: "public.big"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.Wait(ctx); err == nil || !strings.Contains(err.Error(), "being copied online (public.big)") {
		t.Errorf("hold during an online copy: %v", err)
	}
	_ = h.Release()
	<-done

	h, _ = p.Hold(0x100)
	sink, done := pauseEngine(t, false, &p, evs, nil)
	time.Sleep(20 * time.Millisecond)
	if err := h.Release(); err != nil {
		t.Error(err)
	}
	<-done
	if sink.committed != lsn.LSN(0x210) {
		t.Errorf("after a released hold the copy is at %s", sink.committed)
	}
}

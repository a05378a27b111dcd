package apply

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walmirror/walmirror/schema"
)

// TestProgressWaitFor: commits, the start of streaming and caught-up
// keepalives move the position; keepalives that are not caught up do
// not; WaitFor and Notify wake on a move and WaitFor times out otherwise.
func TestProgressWaitFor(t *testing.T) {
	var p Progress
	ctx := t.Context()
	if err := p.WaitFor(ctx, 0); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(short, 0x100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor with nothing applied = %v, want a deadline error", err)
	}

	var prevCommits, prevPositions int
	cfg := Config{OnCommit: func(CommitInfo) { prevCommits++ }, OnPosition: func(Position) { prevPositions++ }}
	p.Hook(&cfg)

	done := make(chan error, 1)
	go func() { done <- p.WaitFor(ctx, 0x300) }()
	n := p.Notify()
	cfg.OnStreaming(0x100)
	cfg.OnReady(schema.State{LSN: 0x100})
	select {
	case <-n:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify not closed by a move")
	}
	cfg.OnCommit(CommitInfo{State: schema.State{LSN: 0x200}})
	cfg.OnPosition(Position{ServerWALEnd: 0x400}) // not caught up: a transaction is open
	select {
	case err := <-done:
		t.Fatalf("WaitFor(0x300) returned %v at %s", err, p.Applied())
	case <-time.After(50 * time.Millisecond):
	}
	cfg.OnPosition(Position{ServerWALEnd: 0x400, CaughtUp: true}) // idle source
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitFor(0x300) not woken by a caught-up keepalive at 0x400")
	}
	cfg.OnCommit(CommitInfo{State: schema.State{LSN: 0x350}}) // never moves back
	if p.Applied() != 0x400 {
		t.Errorf("applied %s, want 0/400", p.Applied())
	}
	if prevCommits != 2 || prevPositions != 2 {
		t.Errorf("hooks set before Hook called %d, %d times; want 2, 2", prevCommits, prevPositions)
	}
}

// TestProgressOnlineCopy: while a commit stores tables still being copied
// online, neither it nor caught-up keepalives move the position; the
// commit that stores none does.
func TestProgressOnlineCopy(t *testing.T) {
	var p Progress
	p.Streaming(0x100)
	p.Ready(schema.State{LSN: 0x100})
	p.Committed(CommitInfo{State: schema.State{LSN: 0x200, Copies: []schema.TableCopy{{RelID: 1}}}})
	p.Position(Position{ServerWALEnd: 0x300, CaughtUp: true})
	if p.Applied() != 0x100 {
		t.Fatalf("applied %s during an online copy, want 0/100", p.Applied())
	}
	// A position reached before the copy began is not held during it
	// either: the table copied again is emptied first.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(ctx, 0x80); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor an old position during an online copy = %v, want a timeout", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitFor(context.Background(), 0x80) }()
	time.Sleep(10 * time.Millisecond)
	p.Committed(CommitInfo{State: schema.State{LSN: 0x200}}) // the copy's end
	if err := <-done; err != nil {
		t.Fatalf("WaitFor after the copy = %v", err)
	}
	p.Committed(CommitInfo{State: schema.State{LSN: 0x400}})
	if p.Applied() != 0x400 {
		t.Fatalf("applied %s after the copy, want 0/400", p.Applied())
	}
}

// TestProgressStopped: once the run ends (Config.OnStop, which Hook
// sets), waiters for a position not reached return at once with
// ErrStopped and the run's error, positions reached still succeed, a
// second end (a run that never streamed) is taken, and streaming again
// makes WaitFor wait.
func TestProgressStopped(t *testing.T) {
	var p Progress
	var cfg Config
	prev := 0
	cfg.OnStop = func(error) { prev++ }
	p.Hook(&cfg)
	cfg.OnStreaming(0x100)
	cfg.OnReady(schema.State{LSN: 0x100})
	ctx := t.Context()
	done := make(chan error, 1)
	go func() { done <- p.WaitFor(ctx, 0x200) }()
	notify := p.Notify()
	time.Sleep(20 * time.Millisecond)
	if p.Err() != nil {
		t.Fatalf("Err while running = %v", p.Err())
	}
	cfg.OnStop(ErrSlotLost)
	select {
	case <-notify:
	default:
		t.Error("Notify's channel still open after the run ended")
	}
	if err := p.Err(); !errors.Is(err, ErrStopped) || !errors.Is(err, ErrSlotLost) {
		t.Errorf("Err after the run ended = %v, want ErrStopped and ErrSlotLost", err)
	}
	select { // a listener that asks again after the end must not hang
	case <-p.Notify():
	default:
		t.Error("Notify after the run ended returned an open channel")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrStopped) || !errors.Is(err, ErrSlotLost) {
			t.Fatalf("WaitFor after the run ended = %v, want ErrStopped and ErrSlotLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitFor still waiting after the run ended")
	}
	if prev != 1 {
		t.Errorf("OnStop set before Hook called %d times, want 1", prev)
	}
	if err := p.WaitFor(ctx, 0x100); err != nil {
		t.Errorf("WaitFor a position reached, after the end = %v", err)
	}
	p.Stopped(nil) // a second run that ended before it streamed
	if err := p.WaitFor(ctx, 0x200); !errors.Is(err, ErrStopped) || errors.Is(err, ErrSlotLost) {
		t.Errorf("WaitFor after a clean end = %v, want ErrStopped alone", err)
	}
	p.Streaming(0x100) // a run again
	if p.Err() != nil {
		t.Errorf("Err when streaming again = %v", p.Err())
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(short, 0x200); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor while streaming again = %v, want a deadline error", err)
	}
}

// TestProgressPageHeader: pg_current_wal_insert_lsn() taken after a record
// that ended its page points past the next page's 24-byte header, where
// no commit can end: WaitFor counts it as reached by a copy at the page
// boundary (before, it waited until the source wrote again); a position
// one more byte on is not, nor is anything before streaming starts.
func TestProgressPageHeader(t *testing.T) {
	var p Progress
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if err := p.WaitFor(short(), 24); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor(0/18) before streaming = %v, want a deadline error", err)
	}
	p.Committed(CommitInfo{State: schema.State{LSN: 0x4D12000}}) // a commit that ended its page
	if err := p.WaitFor(short(), 0x4D12018); err != nil {
		t.Errorf("WaitFor(0/4D12018) with the copy at 0/4D12000 = %v, want nil", err)
	}
	if err := p.WaitFor(short(), 0x4D12019); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor(0/4D12019) with the copy at 0/4D12000 = %v, want a deadline error", err)
	}
	if p.Applied() != 0x4D12000 {
		t.Errorf("Applied() = %s, want the position itself", p.Applied())
	}
}

// TestProgressChunkedStart: streaming that starts with tables still being
// copied (a chunked initial copy) does not move the position, nor do
// commits that store copies; OnReady (the copy complete) does. Before,
// the start of streaming did, and WaitFor returned with the copy empty.
func TestProgressChunkedStart(t *testing.T) {
	var p Progress
	var cfg Config
	p.Hook(&cfg)
	copies := []schema.TableCopy{{RelID: 1}}
	cfg.OnStreaming(0x100) // the chunked copy's consistent point, no rows yet
	cfg.OnCommit(CommitInfo{State: schema.State{LSN: 0x200, Copies: copies}})
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(short, 0x100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(0/100) with tables still being copied = %v (applied %s), want a deadline error", err, p.Applied())
	}
	cfg.OnCommit(CommitInfo{State: schema.State{LSN: 0x300}})
	cfg.OnReady(schema.State{LSN: 0x300})
	if p.Applied() != 0x300 {
		t.Errorf("applied %s once the copy completed, want 0/300", p.Applied())
	}
	p.Streaming(0x300) // a reconnect with nothing being copied
	p.Ready(schema.State{LSN: 0x300})
	if p.Applied() != 0x300 {
		t.Errorf("applied %s after a reconnect, want 0/300", p.Applied())
	}
	// The run ends; the next one replaces the copy (a lost slot, --resync)
	// and copies its tables in chunks: 0/300 is not held until the copy
	// completes (before, WaitFor(0/300) returned with the tables empty).
	cfg.OnStop(ErrSlotLost)
	cfg.OnStreaming(0x900)
	short, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(short, 0x300); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(0/300) as a new run's chunked copy starts = %v, want a deadline error", err)
	}
	cfg.OnCommit(CommitInfo{State: schema.State{LSN: 0xA00, Copies: copies}})
	cfg.OnCommit(CommitInfo{State: schema.State{LSN: 0xB00}})
	if err := p.WaitFor(t.Context(), 0x300); err != nil || p.Applied() != 0xB00 {
		t.Errorf("WaitFor(0/300) once the copy completed = %v, applied %s; want nil, 0/B00", err, p.Applied())
	}
}

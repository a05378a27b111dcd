package apply_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// TestWaitAfterRunStopped: the slot is dropped under a running Run, which
// ends with ErrSlotLost; a WaitFor for a later write, with a context that
// never ends, returns at once with ErrStopped and ErrSlotLost instead of
// waiting forever. Before OnStop, it waited until its context ended.
func TestWaitAfterRunStopped(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w VALUES (1, 'a');`)
	ctx := context.Background()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var p apply.Progress
	cfg := apply.Config{
		Source: source.Config{DSN: m.dsn, Slot: m.slot},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	p.Hook(&cfg)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- apply.Run(runCtx, sink, cfg) }()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := p.WaitFor(wctx, currentLSN(t, m.dsn)); err != nil {
		t.Fatal(err)
	}
	m.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '` + m.slot + `' AND active_pid IS NOT NULL`)
	for i := 0; ; i++ {
		err := server.Exec(ctx, m.db, `SELECT pg_drop_replication_slot('`+m.slot+`')`)
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the walsender is still going
	}
	m.exec(`INSERT INTO w VALUES (2, 'b')`)
	at := currentLSN(t, m.dsn)
	waited := make(chan error, 1)
	go func() { waited <- p.WaitFor(context.Background(), at) }()
	select {
	case err := <-done:
		if !errors.Is(err, apply.ErrSlotLost) {
			t.Fatalf("Run = %v, want ErrSlotLost", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Run still going after its slot was dropped")
	}
	select {
	case err := <-waited:
		if !errors.Is(err, apply.ErrStopped) || !errors.Is(err, apply.ErrSlotLost) {
			t.Fatalf("WaitFor(%s) after Run ended = %v, want ErrStopped and ErrSlotLost", at, err)
		}
		t.Logf("WaitFor: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("WaitFor(%s) still waiting 10s after Run ended", at)
	}
}

// currentLSN is the source's pg_current_wal_lsn().
func currentLSN(t *testing.T, dsn string) lsn.LSN {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, err := lsn.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestProgressReusedByNextRun: a restart loop keeps one Progress and one
// hooked Config; while the next Run starts (here it never gets past
// connecting), WaitFor waits for it instead of returning the previous
// run's end at once (helper-107: every read-your-writes request failed
// during a restart, and during the whole copy of a resync), and once that
// run ends WaitFor reports its end, not the earlier one's.
func TestProgressReusedByNextRun(t *testing.T) {
	p, cfg := hookedToSilent(t, "reused")
	if err := p.WaitFor(t.Context(), 0x100); !errors.Is(err, apply.ErrSlotLost) {
		t.Fatalf("WaitFor after the previous run = %v, want its ErrSlotLost", err)
	}
	_, cancel, done := startRun(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for p.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Err while the next run starts = %v", p.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	short, cancelShort := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancelShort()
	if err := p.WaitFor(short, 0x100); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor while the next run starts = %v, want a deadline error", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Logf("the next run returned %v", err)
	}
	if err := p.WaitFor(t.Context(), 0x100); !errors.Is(err, apply.ErrStopped) || errors.Is(err, apply.ErrSlotLost) {
		t.Errorf("WaitFor after the next run ended = %v, want ErrStopped without the previous run's ErrSlotLost", err)
	}
}

// hookedToSilent is a Progress and a Config hooked to it, whose runs stay
// in their start (silentServer); a previous run ended with ErrSlotLost.
func hookedToSilent(t *testing.T, slot string) (*apply.Progress, apply.Config) {
	p := &apply.Progress{}
	cfg := apply.Config{
		Source: source.Config{DSN: "postgres://walmirror@" + silentServer(t) + "/db?sslmode=disable", Slot: slot},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	p.Hook(&cfg)
	cfg.OnStop(apply.ErrSlotLost)
	return p, cfg
}

// startRun runs cfg on a new memory sink, on a goroutine: cancel ends it,
// and done has what it returned.
func startRun(t *testing.T, cfg apply.Config) (*memory.Sink, context.CancelFunc, <-chan error) {
	sink, err := memory.New().Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- apply.Run(ctx, sink, cfg) }()
	return sink, cancel, done
}

// silentServer listens on a local port, accepts connections and never
// answers: a Run against it stays in its start. It returns the address.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// TestProgressDoubleStart: a second Run with the same sink and hooked
// Config is refused without telling the Progress anything: the first run
// still keeps the copy, and its waiters must not learn it stopped
// (helper-114: every later WaitFor failed with the refusal). Starting lets
// a caller that starts Run on a goroutine keep waiters waiting from the
// start (helper-114: a WaitFor just after go apply.Run failed with the
// previous run's end). A nil sink is an error, not a panic.
func TestProgressDoubleStart(t *testing.T) {
	p, cfg := hookedToSilent(t, "double")
	p.Starting()
	short, cancelShort := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancelShort()
	if err := p.WaitFor(short, 0x100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor after Starting = %v, want a deadline error", err)
	}
	sink, cancel, done := startRun(t, cfg)
	time.Sleep(200 * time.Millisecond) // the first run claims the sink at once
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if second := apply.Run(ctx2, sink, cfg); second == nil || !strings.Contains(second.Error(), "in use by another Run") {
		t.Fatalf("second Run = %v, want refused", second)
	}
	if err := p.Err(); err != nil {
		t.Errorf("Err after a refused second Run = %v, want nil: the first run goes on", err)
	}
	if err := apply.Run(t.Context(), (*memory.Sink)(nil), apply.Config{Source: cfg.Source}); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("Run with a nil *memory.Sink = %v, want an error naming it", err)
	}
	cancel()
	<-done
}

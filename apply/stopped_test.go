package apply_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a server that accepts and never answers
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
	var p apply.Progress
	cfg := apply.Config{
		Source: source.Config{DSN: "postgres://walmirror@" + ln.Addr().String() + "/db?sslmode=disable", Slot: "reused"},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	p.Hook(&cfg)
	cfg.OnStop(apply.ErrSlotLost) // how the previous run ended
	if err := p.WaitFor(t.Context(), 0x100); !errors.Is(err, apply.ErrSlotLost) {
		t.Fatalf("WaitFor after the previous run = %v, want its ErrSlotLost", err)
	}
	sink, err := memory.New().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- apply.Run(ctx, sink, cfg) }()
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

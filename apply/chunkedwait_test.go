package apply_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/source"
)

// TestWaitChunkedInitialCopy: with a chunked initial copy, WaitFor for a
// position taken before Run returns only once the copy holds every row.
// Before, it returned at the start of streaming, with no row copied yet.
func TestWaitChunkedInitialCopy(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE cw (id int PRIMARY KEY, v text); INSERT INTO cw SELECT g, 'x' FROM generate_series(1, 30000) g`)
	at := currentLSN(t, m.dsn)
	db := memory.New()
	sink, err := db.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var p apply.Progress
	cfg := apply.Config{Source: source.Config{DSN: m.dsn, Slot: m.slot}, InitialCopy: "chunked", CopyChunkRows: 1000, CopyChunkTime: -1}
	p.Hook(&cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- apply.Run(ctx, sink, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := p.WaitFor(wctx, at); err != nil {
		t.Fatal(err)
	}
	if _, rows, _ := db.Rows("public", "cw"); len(rows) != 30000 {
		t.Fatalf("after WaitFor(%s) the copy holds %d of 30000 rows (applied %s)", at, len(rows), p.Applied())
	}
}

// commitWatch is a sink that calls after with each state it committed.
type commitWatch struct {
	*memory.Sink
	after func(schema.State)
}

func (c *commitWatch) Commit(ctx context.Context, st schema.State) error {
	if err := c.Sink.Commit(ctx, st); err != nil {
		return err
	}
	c.after(st)
	return nil
}

// TestWaitChunkedResync: a Progress kept across runs, the slot lost, the
// next run Resync with a chunked copy: from the commit that empties the
// tables, WaitFor no longer returns for a position the old copy held,
// until the new copy is complete (helper-138: it returned nil with the
// table empty, 80-340 ms each time, until streaming started).
func TestWaitChunkedResync(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE cr (id int PRIMARY KEY, v text); INSERT INTO cr SELECT g, 'x' FROM generate_series(1, 20000) g`)
	at := currentLSN(t, m.dsn)
	db := memory.New()
	var p apply.Progress
	cfg := apply.Config{Source: source.Config{DSN: m.dsn, Slot: m.slot}, InitialCopy: "chunked", CopyChunkRows: 1000, CopyChunkTime: -1}
	p.Hook(&cfg)
	run := func(cfg apply.Config, after func(schema.State)) (stop func()) {
		sink, err := db.Open()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- apply.Run(ctx, &commitWatch{Sink: sink, after: after}, cfg) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			sink.Close()
		}
	}
	wait := func() {
		t.Helper()
		wctx, wcancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer wcancel()
		if err := p.WaitFor(wctx, at); err != nil {
			t.Fatal(err)
		}
		if _, rows, _ := db.Rows("public", "cr"); len(rows) != 20000 {
			t.Fatalf("after WaitFor(%s) the copy holds %d of 20000 rows (applied %s)", at, len(rows), p.Applied())
		}
	}
	stop := run(cfg, func(schema.State) {})
	wait()
	stop()
	for i := 0; ; i++ {
		err := server.Exec(t.Context(), m.db, `SELECT pg_drop_replication_slot('`+m.slot+`')`)
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the walsender is still going
	}
	cfg.Resync = true
	var held []string
	copying, complete := false, make(chan struct{})
	stop = run(cfg, func(st schema.State) {
		if len(st.Copies) == 0 {
			if copying && st.Phase == schema.PhaseStreaming {
				copying = false
				close(complete)
			}
			return
		}
		copying = true
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if p.WaitFor(ctx, at) == nil {
			_, rows, _ := db.Rows("public", "cr")
			held = append(held, fmt.Sprintf("%s with %d rows", st.LSN, len(rows)))
		}
	})
	select {
	case <-complete:
	case <-time.After(2 * time.Minute):
		t.Fatal("the new copy did not complete")
	}
	wait()
	stop()
	if len(held) > 0 {
		t.Errorf("WaitFor(%s) returned at commits of the new copy in progress: %v", at, held)
	}
}

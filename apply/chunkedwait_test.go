package apply_test

import (
	"context"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
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

package apply_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/source"
)

// TestWaitAsyncCommit: after a commit with synchronous_commit = off,
// pg_current_wal_insert_lsn() covers it, as Progress says: WaitFor for it
// returns once the copy holds the write, every time (pg_current_wal_lsn()
// would lie before the commit record, and the read would miss the write).
func TestWaitAsyncCommit(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE ac (id int PRIMARY KEY)`)
	ctx := t.Context()
	db := memory.New()
	sink, err := db.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var p apply.Progress
	cfg := apply.Config{Source: source.Config{DSN: m.dsn, Slot: m.slot}}
	p.Hook(&cfg)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- apply.Run(runCtx, sink, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	conn, err := pgx.Connect(ctx, m.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= 20; id++ {
		if _, err := conn.Exec(ctx, `INSERT INTO ac VALUES ($1)`, id); err != nil {
			t.Fatal(err)
		}
		var at string
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		l, err := lsn.Parse(at)
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		err = p.WaitFor(wctx, l)
		wcancel()
		if err != nil {
			t.Fatalf("WaitFor(%s) after asynchronous commit %d: %v", l, id, err)
		}
		if _, ok := db.Lookup("public", "ac", map[string]string{"id": strconv.Itoa(id)}); !ok {
			t.Fatalf("row %d not in the copy after WaitFor(%s) (applied %s)", id, l, p.Applied())
		}
	}
}

package apply_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// TestWaitPastPageHeader: rows are written one by one until
// pg_current_wal_insert_lsn(), taken after a commit, points just past a
// page header (the last record ended its page); with the source idle
// then, WaitFor returns as soon as the copy reaches the page boundary.
// Before, it waited until the source wrote again (2-11 s here, the
// background writer's next record).
func TestWaitPastPageHeader(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE ph (id int PRIMARY KEY, v text)`)
	ctx := t.Context()
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
	for i := 1; ; i++ {
		if i > 50_000 {
			t.Skip("no commit ended a WAL page with the source idle after it in 50,000 writes")
		}
		var at string
		if err := conn.QueryRow(ctx, `WITH w AS (INSERT INTO ph VALUES ($1, repeat('x', $1 % 61)) RETURNING 1) SELECT count(*)::text FROM w`, i).Scan(&at); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&at); err != nil {
			t.Fatal(err)
		}
		l, err := lsn.Parse(at)
		if err != nil {
			t.Fatal(err)
		}
		if l%8192 != 24 {
			continue
		}
		// The copy reaches the page boundary (the commit's end, or a
		// keepalive's), then the position past the header at once.
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		err = p.WaitFor(wctx, l-24)
		wcancel()
		if err != nil {
			t.Fatalf("write %d: WaitFor(%s) = %v, applied %s", i, l-24, err, p.Applied())
		}
		wctx, wcancel = context.WithTimeout(ctx, time.Second)
		began := time.Now()
		err = p.WaitFor(wctx, l)
		took := time.Since(began)
		wcancel()
		var after string
		if qerr := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&after); qerr != nil {
			t.Fatal(qerr)
		}
		if after != at { // the source wrote meanwhile: not the idle case
			t.Logf("write %d: the source wrote again (%s -> %s); the next", i, at, after)
			continue
		}
		if err != nil {
			t.Fatalf("write %d: WaitFor(%s) on an idle source = %v after %s, applied %s", i, l, err, took.Round(time.Millisecond), p.Applied())
		}
		t.Logf("write %d: WaitFor(%s) took %s, applied %s", i, l, took.Round(time.Microsecond), p.Applied())
		return
	}
}

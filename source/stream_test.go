package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
	"github.com/walmirror/walmirror/testenv"
)

// TestFlushIsOnlyWhatWasConfirmed streams transactions without confirming
// them: the slot must not move, whatever was received. Then a confirmed
// position is reported.
func TestFlushIsOnlyWhatWasConfirmed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	src, err := source.Open(ctx, source.Config{DSN: srv.DSN("postgres"), Slot: "flushcheck", Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	snap, err := src.CreateSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := snap.ConsistentPoint
	if err := snap.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`INSERT INTO t VALUES (1, 'a')`, `INSERT INTO t VALUES (2, 'b')`} {
		if err := srv.Exec(ctx, "postgres", q); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := src.Start(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	var commits []lsn.LSN
	deadline := time.After(30 * time.Second)
	for len(commits) < 2 {
		select {
		case batch, ok := <-stream.Events():
			if !ok {
				t.Fatalf("stream ended: %v", stream.Err())
			}
			for _, ev := range batch {
				if c, ok := ev.Msg.(*pgoutput.Commit); ok {
					commits = append(commits, c.EndLSN)
				}
			}
		case <-deadline:
			t.Fatal("no commits received")
		}
	}
	time.Sleep(1500 * time.Millisecond) // several status intervals
	if err := stream.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := confirmedFlush(t, srv); got > start {
		t.Fatalf("slot confirmed %s although nothing was confirmed (start %s)", got, start)
	}

	stream, err = src.Start(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	stream.Confirm(commits[0])
	time.Sleep(500 * time.Millisecond)
	if err := stream.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := confirmedFlush(t, srv); got != commits[0] {
		t.Fatalf("slot confirmed %s, want %s", got, commits[0])
	}
}

func confirmedFlush(t *testing.T, srv *testenv.Server) lsn.LSN {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var text string
	if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'flushcheck'`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	l, err := lsn.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

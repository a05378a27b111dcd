package apply_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// A run to the source's position now that makes a one-transaction initial
// copy ends at its commit when the source wrote nothing since the copy's
// snapshot (no replication session to wait for), and streams as before
// when it did: rows and a table rewrite that came during the copy are in
// the copy when the run ends.
func TestBoundedCopyEnds(t *testing.T) {
	for _, during := range []string{"", "insert", "rewrite"} {
		t.Run("during="+during, func(t *testing.T) {
			m := newMirror(t)
			m.exec(`CREATE TABLE t (id int PRIMARY KEY, v text);
				INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;
				CREATE PUBLICATION walmirror FOR TABLE t`)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			sink, err := sqlite.Open(ctx, m.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			var (
				mu                     sync.Mutex
				logs                   strings.Builder
				streamed, ready, wrote int
				readyAt, caughtUp      lsn.LSN
			)
			lw := &lockedWriter{w: &logs}
			write := func(p apply.SnapshotProgress) {
				if during == "" || p.Done || wrote > 0 {
					return
				}
				wrote++
				// Another session, while the copy's transaction is open.
				conn, err := pgx.Connect(ctx, m.dsn)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close(context.Background())
				q := `INSERT INTO t VALUES (501, 'late'); UPDATE t SET v = 'changed' WHERE id = 1`
				if during == "rewrite" {
					// Rows the stream does not carry: a copy again.
					q = `ALTER TABLE t ADD COLUMN u text DEFAULT md5(random()::text)`
				}
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Error(err)
				}
			}
			err = apply.Run(ctx, sink, apply.Config{
				Source:      source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
				StopAtNow:   true,
				InitialCopy: "single",
				OnSnapshot:  write,
				OnStreaming: func(lsn.LSN) { mu.Lock(); streamed++; mu.Unlock() },
				OnReady:     func(st schema.State) { mu.Lock(); ready++; readyAt = st.LSN; mu.Unlock() },
				OnPosition: func(p apply.Position) {
					mu.Lock()
					if p.CaughtUp {
						caughtUp = max(caughtUp, p.ServerWALEnd)
					}
					mu.Unlock()
				},
				Logger: slog.New(slog.NewTextHandler(lw, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(lw.String(), "reached stop position") {
				t.Errorf("the log does not say the stop position was reached:\n%s", lw.String())
			}
			if ready == 0 || readyAt == 0 {
				t.Errorf("OnReady was called %d times (at %s), want at least once", ready, readyAt)
			}
			if during == "" && caughtUp < readyAt {
				// Progress lines, metrics and Progress.WaitFor hear of it so.
				t.Errorf("OnPosition reported the copy caught up to %s, not to where it ended (%s)", caughtUp, readyAt)
			}
			if during == "" && streamed != 0 {
				t.Errorf("the source wrote nothing after the copy's snapshot, yet the run streamed (%d times)", streamed)
			}
			if during != "" && streamed == 0 {
				t.Errorf("the source wrote during the copy, yet the run did not stream")
			}
			cols := "id, v"
			if during == "rewrite" {
				cols = "id, v, u"
			}
			m.same("t", "t", cols)
		})
	}
}

package apply_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// TestResyncTablesAtStart: rows damaged in the copy, then changed at the
// source. Catching up would meet an update of a row the copy lacks (the
// PostgreSQL target stops there; SQLite updates nothing); with
// Config.ResyncTables naming those rows (as verify --repair does), the
// changes wait for their copy from the run's first position and the copy
// ends equal, its other rows untouched.
func TestResyncTablesAtStart(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE r (id int PRIMARY KEY, v text); INSERT INTO r SELECT g, 'v' || g FROM generate_series(1, 300) g;`)
	m.catchUp(apply.Limits{})
	db, err := sql.Open("sqlite3", m.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM r WHERE id = 5; UPDATE r SET v = 'damaged' WHERE id IN (6, 7)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	m.exec(`UPDATE r SET v = 'changed' WHERE id IN (5, 6)`)
	var relid uint32
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, m.dsn)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(ctx, `SELECT 'public.r'::regclass::oid`).Scan(&relid)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := func(resync []apply.ResyncTable) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		sink, err := sqlite.Open(ctx, m.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		var logs strings.Builder
		err = apply.Run(ctx, sink, apply.Config{
			Source:       source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
			StopAtNow:    true,
			ResyncTables: resync,
			Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
			// The ready signal comes once the copies asked for are done,
			// not when streaming starts (before, a WaitFor could return
			// while the rows were deleted for their copy).
			OnCommit: func(c apply.CommitInfo) {
				if len(c.State.Copies) > 0 {
					fmt.Fprintf(&logs, "test: commit with copies\n")
				}
			},
			OnReady: func(st schema.State) { fmt.Fprintf(&logs, "test: ready with %d copies\n", len(st.Copies)) },
		})
		return logs.String(), err
	}
	logs, err := run([]apply.ResyncTable{{RelID: relid, Name: "public.r", Keys: [][]string{{"5"}, {"6"}}}})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	if !strings.Contains(logs, "rows copied again online") {
		t.Errorf("no copy of rows:\n%s", logs)
	}
	if i, j := strings.Index(logs, "test: commit with copies"), strings.Index(logs, "test: ready with 0 copies"); i < 0 || j < i || strings.Count(logs, "test: ready") != 1 {
		t.Errorf("want the ready signal once, after the commit recording the copies:\n%s", logs)
	}
	m.same("r WHERE id <> 7", "r WHERE id <> 7", "id, v")
	got, err := mirrortestRow(m.path, "SELECT v FROM r WHERE id = 7")
	if err != nil || got != "damaged" {
		t.Errorf("row 7, not named, is %q (%v): copied again too?", got, err)
	}
}

func mirrortestRow(path, q string) (string, error) {
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	return v, db.QueryRow(q).Scan(&v)
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestPublicationDroppedAndCreatedAgain: PostgreSQL 14-17 decode each change
// with the publication as it was then, so a change made while the
// publication was dropped fails the stream at every try ("publication ...
// does not exist"), also once it was created again (and run creates a
// missing one). The run stops (exit 1) and must say what gets past it:
// before, the bare server error named no way out. PostgreSQL 18 skips a
// missing publication: walmirror then goes on (the publication's tables
// are new members, copied again).
func TestPublicationDroppedAndCreatedAgain(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one');
		CREATE PUBLICATION pd FOR TABLE t`)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "pd_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, target, slot, "--publication", "pd")
	mustExec(t, db, `DROP PUBLICATION pd`)
	mustExec(t, db, `INSERT INTO t VALUES (2, 'while dropped')`)
	mustExec(t, db, `CREATE PUBLICATION pd FOR TABLE t`)
	mustExec(t, db, `INSERT INTO t VALUES (3, 'after')`)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--publication", "pd", "--stop-at-lsn", "now")
	if r.code != 0 {
		if !strings.Contains(r.stderr, "does not exist") || !strings.Contains(r.stderr, "walmirror drop") || !strings.Contains(r.stderr, "--resync") {
			t.Fatalf("run exited %d without naming the way out (walmirror drop, then run --resync):\n%s", r.code, r.stderr)
		}
		// The way it names.
		if r := walmirror(t, nil, "drop", "--source", dsn, "--target", target); r.code != 0 {
			t.Fatalf("drop exited %d:\n%s", r.code, r.stderr)
		}
		runNow(t, dsn, target, slot, "--publication", "pd", "--resync")
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }, `SELECT id, v FROM t`)
}

// TestAllTablesPublicationCreatedAgain: a FOR ALL TABLES publication
// dropped and created again under its name, with changes in between, while
// walmirror is stopped and while it streams (between two polls). Before
// 18 the stream fails at such a change (the test above); PostgreSQL 18
// skips it silently, and the membership walmirror stored for each table
// ("all") was the same before and after: the copy missed those changes with
// exit 0. The membership now names the publication's oid, so the tables
// are copied again.
func TestAllTablesPublicationCreatedAgain(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;
		CREATE PUBLICATION pa FOR ALL TABLES`)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "pa_" + db
	dropSlotAtEnd(t, db, slot)
	rows := func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }
	runNow(t, dsn, target, slot, "--publication", "pa")
	recreate := func(change string) {
		t.Helper()
		mustExec(t, db, `DROP PUBLICATION pa`)
		mustExec(t, db, change)
		mustExec(t, db, `CREATE PUBLICATION pa FOR ALL TABLES`)
		mustExec(t, db, `INSERT INTO t SELECT max(id) + 1, 'after' FROM t`)
	}
	// settle runs to now; before 18 it must stop naming the way out, which
	// is then taken.
	settle := func() {
		t.Helper()
		r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--publication", "pa", "--stop-at-lsn", "now")
		if r.code == 0 {
			return
		}
		if !strings.Contains(r.stderr, "does not exist") || !strings.Contains(r.stderr, "--resync") {
			t.Fatalf("run exited %d without naming the way out:\n%s", r.code, r.stderr)
		}
		if r := walmirror(t, nil, "drop", "--source", dsn, "--target", target); r.code != 0 {
			t.Fatalf("drop exited %d:\n%s", r.code, r.stderr)
		}
		if !publicationExists(t, db, "pa") {
			mustExec(t, db, `CREATE PUBLICATION pa FOR ALL TABLES`)
		}
		runNow(t, dsn, target, slot, "--publication", "pa", "--resync")
	}
	recreate(`DELETE FROM t WHERE id = 5; UPDATE t SET v = 'while dropped' WHERE id = 1; INSERT INTO t VALUES (100, 'while dropped')`)
	settle()
	compareRows(t, dsn, rows, `SELECT id, v FROM t`)

	// While streaming, between two polls (the default interval is 10s).
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--publication", "pa")
	recreate(`DELETE FROM t WHERE id = 6; UPDATE t SET v = 'while dropped, streaming' WHERE id = 2`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		want, _ := mirrortest.SourceRows(context.Background(), dsn, `SELECT id, v FROM t`)
		got, _ := rows(`SELECT id, v FROM t`)
		if mirrortest.Diff(want, got) == "" {
			break
		}
		log, _ := os.ReadFile(logPath)
		if bytes.Contains(log, []byte("does not exist")) {
			// Before 18: the stream failed (the way out is taken below).
			stop()
			settle()
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the streaming copy did not become equal within 60s (a new run would copy the table again at its start: not what is tested):\n%s", mirrortest.Diff(want, got))
		}
		time.Sleep(500 * time.Millisecond)
	}
	stop()
	compareRows(t, dsn, rows, `SELECT id, v FROM t`)
}

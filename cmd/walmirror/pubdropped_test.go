package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

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

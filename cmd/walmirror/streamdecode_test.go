package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestStreamDecodeFailure: PostgreSQL 14-18 cannot decode this transaction
// while it streams (protocol 2+): a large transaction that adds a column,
// drops another in a savepoint it rolls back, then changes the table and
// renames the column. Every try fails alike ("pg_attribute catalog is
// missing 1 attribute(s)", SQLSTATE XX000); decoded at its commit
// (--protocol 1) it goes through. walmirror decodes at commit for the rest
// of that run and makes the copy exact; later runs stream again. A run
// pinned to a streaming protocol (--protocol 2) stops and says to run with
// --protocol 1.
func TestStreamDecodeFailure(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE s (id int PRIMARY KEY, v text); CREATE TABLE s2 (id int PRIMARY KEY, v text);
		INSERT INTO s VALUES (1, 'one');`)
	mustExec(t, db, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` SET logical_decoding_work_mem = '64kB'`)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	run := func(extra ...string) result {
		t.Helper()
		return walmirror(t, nil, append([]string{"run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"}, extra...)...)
	}
	if r := run(); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	mustExec(t, db, `BEGIN;
		INSERT INTO s SELECT g, repeat('x', 100) FROM generate_series(1000, 6000) g;
		ALTER TABLE s ADD COLUMN c int DEFAULT 5;
		SAVEPOINT a;
		ALTER TABLE s DROP COLUMN v;
		INSERT INTO s SELECT g, g FROM generate_series(10000, 11000) g;
		ROLLBACK TO a;
		UPDATE s SET c = c + 1 WHERE id % 7 = 0;
		ALTER TABLE s RENAME COLUMN v TO vv;
		TRUNCATE s2;
		COMMIT`)
	r := run("--protocol", "2")
	if r.code == 0 {
		// A PostgreSQL that decodes it streamed: nothing to say.
		t.Logf("the source decoded the transaction while it streamed")
	} else if !strings.Contains(r.stderr, "--protocol 1") {
		t.Fatalf("run --protocol 2 exited %d without naming --protocol 1:\n%s", r.code, r.stderr)
	} else if r = run(); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	} else if !strings.Contains(r.stderr, "decoding each transaction at its commit") {
		t.Fatalf("run did not say it fell back to protocol 1:\n%s", r.stderr)
	}
	mustExec(t, db, `INSERT INTO s VALUES (2, 'two', 2)`)
	if r := run(); r.code != 0 {
		t.Fatalf("run after it exited %d:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }, `SELECT id, vv, c FROM s`)
}

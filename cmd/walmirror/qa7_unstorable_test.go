package main

import (
	"strings"
	"testing"
)

// TestUnstorableAfterRows: a value a DuckDB LIST cannot hold (a
// two-dimensional array) arrives after rows of the table were copied (a
// chunked copy's later chunk, or the stream). The remedy the error gives,
// ALTER ... TYPE VARCHAR, casts the rows already copied into DuckDB's own
// text ([1, 2, NULL] where PostgreSQL prints {1,2,NULL}), so the error must
// also say to copy the table again; after resync the copy is equal.
func TestUnstorableAfterRows(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE arr (id int PRIMARY KEY, a int[]);
		INSERT INTO arr SELECT i, ARRAY[i, i + 1, NULL] FROM generate_series(1, 5) i;
		INSERT INTO arr VALUES (6, '{{1,2}}');`)
	target, _ := schemaTargets[1].new(t) // duckdb
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	run := func() result {
		return walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now",
			"--initial-copy", "chunked", "--copy-chunk-rows", "2")
	}
	r := run()
	msg := lastLine(r.stderr)
	if r.code == 0 || !strings.Contains(msg, `column "a"`) || !strings.Contains(msg, "VARCHAR") || !strings.Contains(msg, "walmirror resync --table") {
		t.Fatalf("run exited %d, want an error naming the column, VARCHAR and resync: %s", r.code, msg)
	}
	targetExec(t, target, `ALTER TABLE public.arr ALTER COLUMN a TYPE VARCHAR`)
	if r = run(); r.code != 0 {
		t.Fatalf("run after the ALTER exited %d:\n%s", r.code, r.stderr)
	}
	// The rows copied before the ALTER hold DuckDB's text: verify says so.
	if r = walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 1 {
		t.Fatalf("verify exited %d, want 1 (rows cast by ALTER):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r = walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--slot", slot, "--table", "public.arr"); r.code != 0 {
		t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
	}
	if r = run(); r.code != 0 {
		t.Fatalf("run after resync exited %d:\n%s", r.code, r.stderr)
	}
	mustVerify(t, dsn, target)
}

package main

import (
	"strings"
	"testing"
)

// TestUnstorableFirstCopy: a value the DuckDB column cannot hold (NaN in a
// numeric(p,s)) stops the first copy; the advice must be one that can be
// followed. Before, it said to ALTER the column in the DuckDB file, where the
// rolled-back initial copy had left no table to alter. Following the advice
// as given (--initial-copy chunked, ALTER, run again) gives an equal copy.
func TestUnstorableFirstCopy(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE nan (id int PRIMARY KEY, n numeric(10,2), v text);
		INSERT INTO nan VALUES (1, 1.5, 'a'), (2, 'NaN', 'b');
		CREATE TABLE other (id int PRIMARY KEY);
		INSERT INTO other VALUES (1);`)
	target, rows := schemaTargets[1].new(t) // duckdb
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	run := func(extra ...string) result {
		return walmirror(t, nil, append([]string{"run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"}, extra...)...)
	}
	r := run()
	msg := lastLine(r.stderr)
	if r.code == 0 || !strings.Contains(msg, `column "n"`) || !strings.Contains(msg, "--initial-copy chunked") {
		t.Fatalf("first copy exited %d, want an error naming the column and --initial-copy chunked: %s", r.code, msg)
	}
	t.Log(msg)
	// The advice: chunked, which stops at the value with the table created.
	r = run("--initial-copy", "chunked")
	if msg := lastLine(r.stderr); r.code == 0 || !strings.Contains(msg, `column "n"`) || !strings.Contains(msg, "VARCHAR") {
		t.Fatalf("chunked copy exited %d, want an error naming the column and VARCHAR: %s", r.code, msg)
	}
	targetExec(t, target, `ALTER TABLE public.nan ALTER COLUMN n TYPE VARCHAR`)
	if r = run(); r.code != 0 {
		t.Fatalf("run after the ALTER exited %d:\n%s", r.code, r.stderr)
	}
	mustExec(t, db, `INSERT INTO nan VALUES (3, 'NaN', 'c'), (4, 2.25, 'd')`)
	if r = run(); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, rows, "SELECT id, n::text, v FROM nan", "SELECT id FROM other")
	if r = walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 {
		t.Fatalf("verify exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

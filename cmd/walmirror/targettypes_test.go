package main

import (
	"context"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestTargetHasSourceTypes: a PostgreSQL target that has a domain and an
// enum of the same qualified names as the source's keeps its columns of
// those types through later runs. The domain column was converted to text
// by the second run ("source column type changed", exit 0), though the
// source's column never changed.
func TestTargetHasSourceTypes(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	types := `CREATE DOMAIN pct AS numeric(5,2) CHECK (VALUE BETWEEN 0 AND 100);
		CREATE TYPE color AS ENUM ('red', 'green');`
	dsn, db := newDatabase(t, types+`CREATE TABLE e (id int PRIMARY KEY, p pct, c color, pa pct[]);
		INSERT INTO e VALUES (1, 50, 'red', NULL);`)
	tdb, err := server.CreateDatabase(ctx, "target_types")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tdb, types)
	target := server.DSN(tdb)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	colTypes := func() string {
		t.Helper()
		got, err := mirrortest.SourceRows(ctx, target, `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
			FROM pg_attribute WHERE attrelid = 'public.e'::regclass AND attnum > 0 AND NOT attisdropped`)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, "")
	}
	const want = "id integer, p pct, c color, pa pct[]"
	for i, change := range []string{"", `INSERT INTO e VALUES (2, 1.5, 'green', '{2.5}')`, `UPDATE e SET p = 3 WHERE id = 1`} {
		if change != "" {
			mustExec(t, db, change)
		}
		r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
		if r.code != 0 {
			t.Fatalf("run %d exited %d:\n%s", i, r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "type changed") {
			t.Errorf("run %d says a type changed:\n%s", i, r.stderr)
		}
		if got := colTypes(); got != want {
			t.Errorf("after run %d the copy's columns are %q, want %q", i, got, want)
		}
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SourceRows(ctx, target, q) }, `SELECT id, p, c, pa FROM e`)

	// A label added on the source only: the target's enum refuses it, and
	// the error says whose type and what to do (it was the raw "invalid
	// input value for enum", helper-92); the same change on the target
	// lets the run through.
	mustExec(t, db, `ALTER TYPE color ADD VALUE 'blue'`)
	mustExec(t, db, `INSERT INTO e VALUES (3, 2, 'blue', NULL)`)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "the target's own types are used for") || !strings.Contains(r.stderr, `"c" (color)`) || !strings.Contains(r.stderr, "ALTER TYPE ... ADD VALUE") {
		t.Errorf("a label the target's enum lacks: exit %d, want an error naming the column, its type and the remedy:\n%s", r.code, r.stderr)
	}
	mustExec(t, tdb, `ALTER TYPE color ADD VALUE 'blue'`)
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run after the target's ALTER TYPE exited %d:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SourceRows(ctx, target, q) }, `SELECT id, p, c, pa FROM e`)

	// The same for a column added with a new label as its default: the
	// target column's ADD COLUMN refuses it (a bare error before, helper-115).
	mustExec(t, db, `ALTER TYPE color ADD VALUE 'black'`)
	mustExec(t, db, `ALTER TABLE e ADD COLUMN c2 color DEFAULT 'black'; UPDATE e SET p = 4 WHERE id = 1`)
	r = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "the target's own types are used for") || !strings.Contains(r.stderr, `"c2" (color)`) {
		t.Errorf("a new column's default the target's enum lacks: exit %d, want an error naming the column, its type and the remedy:\n%s", r.code, r.stderr)
	}
	mustExec(t, tdb, `ALTER TYPE color ADD VALUE 'black'`)
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run after the target's ALTER TYPE exited %d:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SourceRows(ctx, target, q) }, `SELECT id, p, c, c2 FROM e`)
}

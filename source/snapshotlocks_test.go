package source

import (
	"context"
	"slices"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/testenv"
)

// TestSnapshotCopyLocks: the initial copy's transaction keeps every lock it
// takes until it ends, and the source's lock table is shared by every
// session. Read through a query, a table had all its indexes locked too
// (the planner opens them): a one-transaction copy of a database with a
// few indexes per table filled the lock table, and the application's own
// sessions failed with "out of shared memory". A plain table is read by
// name (only it locked); a row filter, a partitioned root and a published
// generated column still need the query, and every form copies the rows.
// Each read's locks are released after it (under a savepoint rolled back).
func TestSnapshotCopyLocks(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	ddl := `CREATE TABLE plain (id int PRIMARY KEY, a int, b text, g int GENERATED ALWAYS AS (a * 2) STORED);
		CREATE INDEX ON plain (a); CREATE INDEX ON plain (b); CREATE UNIQUE INDEX ON plain (a, id);
		INSERT INTO plain (id, a, b) SELECT x, x % 7, 'b' || x FROM generate_series(1, 50) x;
		CREATE TABLE filtered (id int PRIMARY KEY, a int); CREATE INDEX ON filtered (a);
		INSERT INTO filtered SELECT x, x FROM generate_series(1, 50) x;
		CREATE TABLE parted (id int PRIMARY KEY, a int) PARTITION BY RANGE (id);
		CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
		INSERT INTO parted SELECT x, x FROM generate_series(1, 50) x;`
	pub := `CREATE PUBLICATION p FOR TABLE plain, parted WITH (publish_via_partition_root)`
	switch {
	case srv.Major() >= 18:
		// A generated column published: COPY's column list refuses it.
		ddl += `CREATE TABLE gen (id int PRIMARY KEY, a int, g int GENERATED ALWAYS AS (a * 2) STORED);
			INSERT INTO gen (id, a) SELECT x, x FROM generate_series(1, 50) x;`
		pub = `CREATE PUBLICATION p FOR TABLE plain (id, a, b), filtered WHERE (a > 10), parted, gen
			WITH (publish_via_partition_root, publish_generated_columns = stored)`
	case srv.Major() >= 15:
		pub = `CREATE PUBLICATION p FOR TABLE plain, filtered WHERE (a > 10), parted WITH (publish_via_partition_root)`
	}
	if err := srv.Exec(ctx, "postgres", ddl+pub); err != nil {
		t.Fatal(err)
	}
	src, err := Open(ctx, Config{DSN: srv.DSN("postgres"), Slot: "locks", Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	sn, err := src.CreateSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close(ctx)
	tables, err := sn.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*schema.Table{}
	for _, tb := range tables {
		byName[tb.Name] = tb
	}
	want := map[string]int{"plain": 50, "filtered": 40, "parted": 50, "gen": 50}
	for name, rows := range want {
		tb := byName[name]
		if tb == nil {
			if name == "filtered" && srv.Major() < 15 || name == "gen" && srv.Major() < 18 {
				continue
			}
			t.Fatalf("%s not listed", name)
		}
		n := 0
		if err := sn.Copy(ctx, tb, func(row schema.Tuple) error {
			n++
			if name == "gen" && (len(row) != 3 || string(row[2].Data) == "") {
				t.Errorf("gen's published generated column not copied: %d columns", len(row))
			}
			return nil
		}); err != nil {
			t.Fatalf("copy %s: %v", name, err)
		}
		if bn, err := sn.CopyBinary(ctx, tb, func([]byte, int64) error { return nil }); err != nil || bn != int64(n) {
			t.Fatalf("binary copy of %s: %d rows, %v; the text copy had %d", name, bn, err, n)
		}
		if n != rows {
			t.Errorf("copy of %s: %d rows, want %d", name, n, rows)
		}
	}
	// The plain table's columns as published (not its generated column).
	var cols []string
	for _, c := range byName["plain"].Columns {
		cols = append(cols, c.Name)
	}
	if !slices.Equal(cols, []string{"id", "a", "b"}) {
		t.Errorf("plain's columns: %v", cols)
	}
	// No lock on any table read, nor on their indexes, TOAST tables and
	// partitions: the catalog's own are all that is left.
	var locked []string
	rows, err := sn.tx.Query(ctx, `SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE l.pid = pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND c.relnamespace <> 'pg_catalog'::regnamespace ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		locked = append(locked, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(locked) > 0 {
		t.Errorf("the copy's transaction holds locks on what it read: %v", locked)
	}
}

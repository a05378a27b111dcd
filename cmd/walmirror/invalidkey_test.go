package main

import (
	"fmt"
	"strings"
	"testing"
)

// keyRounds checks, on every target, a table whose key the snapshot and
// the stream must take alike: a single copy, a run over mutate(0)'s
// changes, a chunked copy after `resync --table` over mutate(1)'s, and a
// last run over mutate(2)'s, comparing query's rows with the source after
// each. No run may change the copy's key ("source key changed": the
// snapshot and the stream disagreed on it and the key flipped every run).
func keyRounds(t *testing.T, setup, table, query string, mutate func(round int) string, extra ...string) {
	t.Helper()
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, setup)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			for i, chunked := range []bool{false, false, true, false} {
				args := append([]string{"--publication", "pub", "--stop-on-divergence=false"}, extra...)
				if chunked {
					if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--slot", slot, "--table", table); r.code != 0 {
						t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
					}
					args = append(args, "--copy-chunk-rows", "500")
				}
				if log := runNowLog(t, dsn, target, slot, args...); strings.Contains(log, "source key changed") {
					t.Errorf("run %d changed the copy's key: the snapshot and the stream disagree on it:\n%s", i+1, log)
				}
				compareRows(t, dsn, rows, query)
				if i < 3 {
					mustExec(t, db, mutate(i))
				}
			}
		})
	}
}

// TestInvalidRootKey: a partitioned table whose primary key was added to the
// root alone (ALTER TABLE ONLY ... ADD PRIMARY KEY) has an invalid key index
// until every partition has one: its partitions may hold a key twice, and
// PostgreSQL's stream names no key for it. The copy is keyless, as the
// stream is, and equal to the source (the copy took the invalid index for a
// key and refused the duplicates, blaming someone else; helper-87).
func TestInvalidRootKey(t *testing.T) {
	needServer(t)
	keyRounds(t, `CREATE TABLE p (id int NOT NULL, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (1000);
		CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (1000) TO (2000);
		ALTER TABLE ONLY p ADD PRIMARY KEY (id);
		INSERT INTO p SELECT g % 1500, 'a' || g FROM generate_series(1, 3000) g;
		CREATE PUBLICATION pub FOR TABLE p WITH (publish_via_partition_root = true, publish = 'insert');`,
		"public.p", "SELECT id, v FROM p", func(i int) string {
			return fmt.Sprintf(`INSERT INTO p SELECT g %% 1500, 'b%d' || g FROM generate_series(1, 2000) g`, i)
		})
}

// TestUnlistedKeyColumn: a publication column list that leaves out part of
// the primary key (publish = 'insert' allows it) leaves a "key" that
// repeats. The copy is keyless and equal to the source's published columns
// (single and chunked copies refused the duplicates, and a streamed insert's
// refusal advised deleting the copy's row by hand; helper-87). PostgreSQL
// 15+ (column lists).
func TestUnlistedKeyColumn(t *testing.T) {
	needServer(t)
	if server.Major() < 15 {
		t.Skip("column lists are PostgreSQL 15+")
	}
	keyRounds(t, `CREATE TABLE t (a int, b int, v text, PRIMARY KEY (a, b));
		INSERT INTO t SELECT g % 100, g, 'a' || g FROM generate_series(1, 3000) g;
		CREATE PUBLICATION pub FOR TABLE t (a, v) WITH (publish = 'insert');`,
		"public.t", "SELECT a, v FROM t", func(i int) string {
			return fmt.Sprintf(`INSERT INTO t SELECT g %% 100, g, 'b' || g FROM generate_series(%d, %d) g`, 3001+i*500, 3500+i*500)
		})
}

// TestDeferrableKey: a DEFERRABLE primary key is not a replica identity
// for PostgreSQL (a transaction may hold a key twice until it commits), so
// the stream names no key. The copy is keyless too, from the start: the
// snapshot took the key and each run's first change rebuilt the target's
// table without it, and back at the next copy (helper-90).
func TestDeferrableKey(t *testing.T) {
	needServer(t)
	keyRounds(t, `CREATE TABLE d (a int, b int, c text, PRIMARY KEY (a) DEFERRABLE INITIALLY DEFERRED);
		INSERT INTO d SELECT x, x, 'c' || x FROM generate_series(1, 3000) x;
		CREATE PUBLICATION pub FOR TABLE d WITH (publish = 'insert');`,
		"public.d", "SELECT a, b, c FROM d", func(i int) string {
			return fmt.Sprintf(`INSERT INTO d SELECT x, x, 'n' || x FROM generate_series(%d, %d) x`, 3001+i*100, 3100+i*100)
		})
}

// TestPartitionedFullRootKey: a partitioned table with a primary key and
// REPLICA IDENTITY FULL on the root alone, published through its root:
// its partitions' old rows hold only their own keys, so the stream takes
// the root as a table without an identity (each update and delete copies
// it again). The copy is keyless from the start too: the snapshot took the
// root's key and every run's first change rebuilt the target's table
// without it (helper-90).
func TestPartitionedFullRootKey(t *testing.T) {
	needServer(t)
	keyRounds(t, `CREATE TABLE pr (a int PRIMARY KEY, b int, c text) PARTITION BY RANGE (a);
		CREATE TABLE pr_0 PARTITION OF pr FOR VALUES FROM (0) TO (5000);
		CREATE TABLE pr_1 PARTITION OF pr FOR VALUES FROM (5000) TO (100000);
		ALTER TABLE pr REPLICA IDENTITY FULL;
		INSERT INTO pr SELECT x, x % 10, 'c' || x FROM generate_series(1, 10000) x;
		CREATE PUBLICATION pub FOR TABLE pr WITH (publish_via_partition_root = true);`,
		"public.pr", "SELECT a, b, c FROM pr", func(i int) string {
			return fmt.Sprintf(`UPDATE pr SET c = 'u' WHERE a %% 100 = %d; DELETE FROM pr WHERE a %% 101 = %d; INSERT INTO pr VALUES (%d, 1, 'n')`, i, i, 20000+i)
		})
}

// TestKeyRenamedBehind: a key column renamed and retyped while walmirror is
// behind: the catalog is ahead of the stream, whose messages still name the
// column as it was. The key stays a key and the run does not stop on
// divergence (since f40d408 the table turned keyless and every update
// stopped the run; the simulation found it). Every target.
func TestKeyRenamedBehind(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
				INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 1000) g;
				CREATE PUBLICATION pub FOR TABLE t;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot, "--publication", "pub") }
			run()
			mustExec(t, db, `UPDATE t SET v = 'u' || id WHERE id % 7 = 0;
				ALTER TABLE t RENAME COLUMN id TO key_id;
				UPDATE t SET v = 'r' || key_id WHERE key_id % 11 = 0; DELETE FROM t WHERE key_id % 13 = 0;
				ALTER TABLE t ALTER COLUMN key_id TYPE bigint;
				UPDATE t SET v = 'b' || key_id WHERE key_id % 17 = 0; DELETE FROM t WHERE key_id % 19 = 0;
				INSERT INTO t VALUES (5000, 'new')`)
			run()
			compareRows(t, dsn, rows, "SELECT key_id, v FROM t")
			mustExec(t, db, `UPDATE t SET v = 'c' || key_id WHERE key_id % 5 = 0; DELETE FROM t WHERE key_id % 23 = 0`)
			run()
			compareRows(t, dsn, rows, "SELECT key_id, v FROM t")
		})
	}
}

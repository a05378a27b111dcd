package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestMembershipChangedAndBack: what decides whether a table's changes are
// published, changed and changed back while walmirror is stopped (or
// between two polls), with changes in between that were therefore not
// streamed: a partition detached, changed and attached again; the
// publication's operations or publish_via_partition_root switched and
// switched back. Each left the same data files and membership, and the copy
// kept the old rows with exit 0. The stored signature now holds the
// partitions' pg_inherits rows and the publication row's transaction, so
// the table is copied again.
func TestMembershipChangedAndBack(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
		CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200);
		INSERT INTO m SELECT g, 'v' || g FROM generate_series(1, 150) g;
		CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;
		CREATE PUBLICATION pm FOR TABLE m, t WITH (publish_via_partition_root = true)`)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	rows := func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }
	run := func() { t.Helper(); runNow(t, dsn, target, slot, "--publication", "pm") }
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM m`, `SELECT id, v FROM t`)

	mustExec(t, db, `ALTER TABLE m DETACH PARTITION m1;
		DELETE FROM m1 WHERE id IN (5, 6); UPDATE m1 SET v = 'while detached' WHERE id = 7;
		ALTER TABLE m ATTACH PARTITION m1 FOR VALUES FROM (0) TO (100)`)
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM m`)

	mustExec(t, db, `ALTER PUBLICATION pm SET (publish = 'insert');
		DELETE FROM t WHERE id = 3; UPDATE t SET v = 'not published' WHERE id = 4;
		ALTER PUBLICATION pm SET (publish = 'insert, update, delete, truncate')`)
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM t`)

	mustExec(t, db, `ALTER PUBLICATION pm SET (publish_via_partition_root = false);
		UPDATE m SET v = 'as a leaf' WHERE id IN (1, 101); DELETE FROM m WHERE id = 2;
		ALTER PUBLICATION pm SET (publish_via_partition_root = true)`)
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM m`, `SELECT id, v FROM t`)
}

// TestLeavesRootLeftAndBack: partitions published as their own tables
// (publish_via_partition_root = false) through their root, the root
// dropped from the publication, changed, and added back while walmirror was
// stopped: the leaves' own membership never changed (they have none), and
// their changes meanwhile were missing with exit 0. Their membership is now
// their root's; the same through a FOR TABLES IN SCHEMA publication of the
// root's schema, a leaf in another schema (PostgreSQL 15+).
func TestLeavesRootLeftAndBack(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE SCHEMA app; CREATE SCHEMA other;
		CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
		CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200);
		INSERT INTO m SELECT g, 'v' || g FROM generate_series(1, 199) g;
		CREATE TABLE app.s (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE other.s1 PARTITION OF app.s FOR VALUES FROM (0) TO (100);
		INSERT INTO app.s SELECT g, 's' || g FROM generate_series(1, 99) g;
		CREATE PUBLICATION pl FOR TABLE m`)
	schemas := server.Major() >= 15
	if schemas {
		mustExec(t, db, `ALTER PUBLICATION pl ADD TABLES IN SCHEMA app`)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	rows := func(q string) ([]string, error) {
		return mirrortest.SQLiteRows(context.Background(), path, strings.ReplaceAll(q, "other.s1", `"other.s1"`))
	}
	run := func() { t.Helper(); runNow(t, dsn, target, slot, "--publication", "pl") }
	run()
	mustExec(t, db, `ALTER PUBLICATION pl DROP TABLE m; UPDATE m SET v = 'while out' WHERE id IN (3, 103); DELETE FROM m WHERE id = 9;
		ALTER PUBLICATION pl ADD TABLE m`)
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM m1`, `SELECT id, v FROM m2`)
	if schemas {
		mustExec(t, db, `ALTER PUBLICATION pl DROP TABLES IN SCHEMA app; UPDATE app.s SET v = 'while out' WHERE id = 4; DELETE FROM app.s WHERE id = 8;
			ALTER PUBLICATION pl ADD TABLES IN SCHEMA app`)
		run()
		compareRows(t, dsn, rows, `SELECT id, v FROM other.s1`)
	}
}

// TestSubPartitionDetachedAndBack: published as its leaves
// (publish_via_partition_root = false), a leaf under a partitioned
// partition: that partition detached, the leaf changed, the partition
// attached again. The leaf's own link never changed, its parent's did.
func TestSubPartitionDetachedAndBack(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE n (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE n2 PARTITION OF n FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (id);
		CREATE TABLE n21 PARTITION OF n2 FOR VALUES FROM (0) TO (50);
		CREATE TABLE n22 PARTITION OF n2 FOR VALUES FROM (50) TO (100);
		INSERT INTO n SELECT g, 'v' || g FROM generate_series(1, 99) g;
		CREATE PUBLICATION pn FOR TABLE n WITH (publish_via_partition_root = false)`)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	rows := func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }
	run := func() { t.Helper(); runNow(t, dsn, target, slot, "--publication", "pn") }
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM n21`)
	mustExec(t, db, `ALTER TABLE n DETACH PARTITION n2;
		DELETE FROM n21 WHERE id = 5; UPDATE n21 SET v = 'while detached' WHERE id = 7;
		ALTER TABLE n ATTACH PARTITION n2 FOR VALUES FROM (0) TO (100)`)
	run()
	compareRows(t, dsn, rows, `SELECT id, v FROM n21`, `SELECT id, v FROM n22`)
}

// TestLegacySignatureStoredOnce: a storage signature stored by an older
// version (membership "all", no publication transaction) is read as
// today's, so the table is not copied again after an upgrade, and stored
// as today's at once: else every later run would take the parts it lacks
// as unchanged, and a change to them while walmirror was stopped would go
// unseen.
func TestLegacySignatureStoredOnce(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one');`)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, target, slot)
	conn, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	storage := func() string {
		t.Helper()
		var s string
		if err := conn.QueryRow(`SELECT json_extract(shape, '$.storage') FROM _walmirror_tables WHERE name = 't'`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := storage()
	legacy := regexp.MustCompile(`\|all[0-9]+;pub:[0-9]+\|`).ReplaceAllString(now, "|all|")
	if legacy == now {
		t.Fatalf("stored signature %q has no FOR ALL TABLES membership with the publication's oid and transaction", now)
	}
	if _, err := conn.Exec(`UPDATE _walmirror_tables SET shape = json_set(shape, '$.storage', ?) WHERE name = 't'`, legacy); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `INSERT INTO t VALUES (2, 'two')`) // a run with nothing to stream ends before its poll
	r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code != 0 || strings.Contains(r.stderr, "copying table online") {
		t.Fatalf("run after the upgrade exited %d or copied the table again:\n%s", r.code, r.stderr)
	}
	if got := storage(); got != now {
		t.Errorf("stored signature after a run: %q, want today's %q", got, now)
	}
}

// TestTablesInSchemaPublication: a FOR TABLES IN SCHEMA publication
// (PostgreSQL 15+), every target: the schema's tables are copied (keyless
// and partitioned ones too) and followed; a table moved into the schema and
// one created there join with their rows; a schema added to the publication
// brings its tables; a renamed schema renames the copy's tables. A table
// moved out of the schema, changed and moved back while walmirror was
// stopped left the same publication and schema rows, and its changes
// meanwhile were missing from the copy with exit 0; its schema link's
// transaction is now part of its membership, so it is copied again.
func TestTablesInSchemaPublication(t *testing.T) {
	needServer(t)
	if server.Major() < 15 {
		t.Skip("FOR TABLES IN SCHEMA is PostgreSQL 15+")
	}
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE SCHEMA app; CREATE SCHEMA other; CREATE SCHEMA extra;
				CREATE TABLE app.a (id int PRIMARY KEY, v text); INSERT INTO app.a SELECT g, 'a' || g FROM generate_series(1, 50) g;
				CREATE TABLE app.k (v text); ALTER TABLE app.k REPLICA IDENTITY FULL; INSERT INTO app.k SELECT 'k' || g FROM generate_series(1, 20) g;
				CREATE TABLE app.p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE app.p1 PARTITION OF app.p FOR VALUES FROM (0) TO (100);
				CREATE TABLE app.p2 PARTITION OF app.p FOR VALUES FROM (100) TO (200);
				INSERT INTO app.p SELECT g, 'p' || g FROM generate_series(1, 150) g;
				CREATE TABLE other.m (id int PRIMARY KEY, v text); INSERT INTO other.m SELECT g, 'm' || g FROM generate_series(1, 30) g;
				CREATE TABLE extra.e (id int PRIMARY KEY, v text); INSERT INTO extra.e SELECT g, 'e' || g FROM generate_series(1, 20) g;
				CREATE TABLE public.outside (id int PRIMARY KEY); INSERT INTO public.outside VALUES (1);
				CREATE PUBLICATION ps FOR TABLES IN SCHEMA app WITH (publish_via_partition_root = true)`)
			target, _ := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string { t.Helper(); return runNowLog(t, dsn, target, slot, "--publication", "ps") }
			run()

			mustExec(t, db, `UPDATE app.a SET v = 'changed' WHERE id < 4; DELETE FROM app.k WHERE v = 'k3';
				INSERT INTO app.p VALUES (160, 'new'); UPDATE app.p SET id = 170 WHERE id = 10; INSERT INTO public.outside VALUES (2);
				ALTER TABLE other.m SET SCHEMA app; UPDATE app.m SET v = 'moved in' WHERE id = 2;
				CREATE TABLE app.n (id int PRIMARY KEY, v text); INSERT INTO app.n VALUES (1, 'n1')`)
			run()

			mustExec(t, db, `ALTER TABLE app.a SET SCHEMA other;
				UPDATE other.a SET v = 'while out' WHERE id BETWEEN 5 AND 8; DELETE FROM other.a WHERE id = 10; INSERT INTO other.a VALUES (99, 'out');
				ALTER TABLE other.a SET SCHEMA app`)
			if log := run(); !strings.Contains(log, `msg="copying table online" table=app.a`) {
				t.Errorf("the table moved out and back was not copied again:\n%s", log)
			}
			mustVerify(t, dsn, target)

			mustExec(t, db, `ALTER PUBLICATION ps ADD TABLES IN SCHEMA extra; UPDATE extra.e SET v = 'joined' WHERE id = 1;
				ALTER SCHEMA app RENAME TO app2; UPDATE app2.a SET v = 'renamed' WHERE id = 20; DELETE FROM app2.p WHERE id = 120`)
			run()
			mustVerify(t, dsn, target)
		})
	}
}

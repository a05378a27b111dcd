package main

import (
	"context"
	"path/filepath"
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

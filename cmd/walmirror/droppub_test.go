package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDropFindsItsPublication: a copy made with --publication P (created by
// walmirror for its slot) is retired by drop --target without naming P
// again: the publication walmirror created for the slot is dropped too.
// Before, drop looked only at "walmirror" and left P behind.
func TestDropFindsItsPublication(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--publication", "mine", "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run: %s", r.stderr)
	}
	r := walmirror(t, nil, "drop", "--source", dsn, "--target", "sqlite:"+path)
	if r.code != 0 || !strings.Contains(r.stdout, `dropped publication "mine"`) {
		t.Fatalf("drop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if publicationExists(t, db, "mine") || slotExists(t, db, slot) {
		t.Fatal("drop left the slot or its publication")
	}
}

// TestDropLastSlotDropsSharedPublication: two copies follow one
// publication walmirror created for the first one's slot. Dropping the
// first leaves it to the second; dropping the second then drops it too.
// Before, the second drop left it ("created for slot a, not b") and
// nothing ever dropped it.
func TestDropLastSlotDropsSharedPublication(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	dir := t.TempDir()
	a, b := "sqlite:"+filepath.Join(dir, "a.db"), "sqlite:"+filepath.Join(dir, "b.db")
	dropSlotAtEnd(t, db, "a_"+db)
	dropSlotAtEnd(t, db, "b_"+db)
	runNow(t, dsn, a, "a_"+db)
	runNow(t, dsn, b, "b_"+db)
	r := walmirror(t, nil, "drop", "--source", dsn, "--target", a)
	if r.code != 0 || !strings.Contains(r.stdout, "left in place") || !publicationExists(t, db, "walmirror") {
		t.Fatalf("drop of the first copy: exit %d, want the publication left to the second:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = walmirror(t, nil, "drop", "--source", dsn, "--target", b)
	if r.code != 0 || !strings.Contains(r.stdout, `dropped publication "walmirror"`) || publicationExists(t, db, "walmirror") {
		t.Fatalf("drop of the last copy: exit %d, want the publication dropped:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

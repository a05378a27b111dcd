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

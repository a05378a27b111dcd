package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestDropTargetHoldingNoCopy: drop --target with a file that holds no
// walmirror copy (a typo, another application's database) dropped the
// default slot "walmirror", the one another copy follows, which then
// needed a full --resync (every target kind as --target, any PG version),
// and created walmirror's tables in that file. drop now refuses and
// leaves the file as it was; --slot still drops a slot by name.
func TestDropTargetHoldingNoCopy(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	dsn, _ := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
	dir := t.TempDir()
	copyTarget := "sqlite:" + filepath.Join(dir, "copy.db")
	runNow(t, dsn, copyTarget, "walmirror")
	t.Cleanup(func() { walmirror(t, nil, "drop", "--source", dsn, "--target", copyTarget) })

	other := filepath.Join(dir, "other.db") // an empty file is an empty SQLite database
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	slots := func() []string {
		got, err := mirrortest.SourceRows(ctx, dsn, "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, target := range []string{"sqlite:" + other, "sqlite:" + filepath.Join(dir, "missing.db")} {
		r := walmirror(t, nil, "drop", "--source", dsn, "--target", target)
		if r.code != 1 || !strings.Contains(lastLine(r.stderr), "nothing dropped") {
			t.Errorf("drop --target %s: exit %d, want 1 saying nothing was dropped: %s%s", target, r.code, r.stdout, r.stderr)
		}
		if got := slots(); len(got) != 1 {
			t.Fatalf("drop --target %s dropped the slot another copy follows (slots now %v)", target, got)
		}
	}
	if fi, err := os.Stat(other); err != nil || fi.Size() != 0 {
		t.Errorf("drop wrote to a file that holds no copy: %v, %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Errorf("drop created the missing target file")
	}
	runNow(t, dsn, copyTarget, "walmirror")
	if r := walmirror(t, nil, "drop", "--source", dsn, "--target", copyTarget); r.code != 0 || len(slots()) != 0 {
		t.Fatalf("drop of the real copy: exit %d, slots %v:\n%s", r.code, slots(), r.stderr)
	}
}

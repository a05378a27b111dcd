package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestResyncTarget: `walmirror resync --source DSN --target TARGET --table
// schema.t`, as design.md's command-line contract spells it, sends the
// request to the slot the target follows (no --slot needed), and the next
// run copies the table again. A --slot that disagrees with the target, a
// target holding no copy and a slot the source does not have are refused,
// since a request no walmirror takes up would be lost without a word.
// Every target.
func TestResyncTarget(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
				INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 50) i;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"}
			if r := walmirror(t, nil, run...); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			// Someone damages the copy.
			appExec(t, tg.name, target, "DELETE FROM t WHERE id % 5 = 0; UPDATE t SET v = 'damaged' WHERE id % 7 = 0")

			r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.t")
			if r.code != 0 {
				t.Fatalf("resync --target exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, `slot "`+slot+`"`) {
				t.Errorf("resync --target should name the target's slot %q: %s", slot, r.stdout)
			}
			if r := walmirror(t, nil, run...); r.code != 0 {
				t.Fatalf("catch-up run exited %d:\n%s", r.code, r.stderr)
			}
			want, err := mirrortest.SourceRows(t.Context(), dsn, "SELECT id, v FROM t")
			if err != nil {
				t.Fatal(err)
			}
			got, err := rows("SELECT id, v FROM t")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(want, got) {
				t.Errorf("after resync --target the copy differs:\n%s", mirrortest.Diff(want, got))
			}

			// --slot and --target that disagree.
			r = walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--slot", "other", "--table", "public.t")
			if r.code != 1 || !strings.Contains(r.stderr, slot) {
				t.Errorf("resync with a --slot the target does not follow: exit %d, %s", r.code, r.stderr)
			}
			// A slot the source does not have: no walmirror would take the
			// request up.
			r = walmirror(t, nil, "resync", "--source", dsn, "--slot", "no_such_slot", "--table", "public.t")
			if r.code != 1 || !strings.Contains(r.stderr, "no_such_slot") {
				t.Errorf("resync for a missing slot: exit %d, %s", r.code, r.stderr)
			}
			// The copy's own slot gone: say so, and how to go on
			// (helper-139: it said to pass the --target that was passed).
			mustExec(t, db, `SELECT pg_drop_replication_slot('`+slot+`')`)
			r = walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.t")
			if r.code != 1 || !strings.Contains(r.stderr, "is gone from the source") || !strings.Contains(r.stderr, "run --resync") {
				t.Errorf("resync of a copy whose slot is gone: exit %d, %s", r.code, r.stderr)
			}
		})
	}
	t.Run("no copy", func(t *testing.T) {
		dsn, _ := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION walmirror FOR TABLE t;`)
		target := "sqlite:" + t.TempDir() + "/none.db"
		r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.t")
		if r.code != 1 || !strings.Contains(r.stderr, "no walmirror copy") {
			t.Errorf("resync into a target without a copy: exit %d, %s", r.code, r.stderr)
		}
	})
}

// TestResyncSlotsPublication: `resync --slot S --table T` without
// --publication looks T up in the publication walmirror created for S, not
// in the default one (helper-98: T, published by another copy's default
// publication but not by S's, was "requested", exit 0, and the running
// walmirror dropped the request with an info line). A request that still
// names a table the copy's publication does not publish is a warning.
func TestResyncSlotsPublication(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int PRIMARY KEY);
		INSERT INTO t VALUES (1); INSERT INTO u VALUES (1); CREATE PUBLICATION walmirror FOR TABLE u;`)
	target := "sqlite:" + t.TempDir() + "/copy.db"
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	run := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--publication", "pt", "--tables", "t", "--stop-at-lsn", "now"}
	if r := walmirror(t, nil, run...); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "public.u")
	if r.code != 1 || !strings.Contains(r.stderr, `publication "pt" does not publish`) {
		t.Fatalf("resync of a table the slot's publication does not publish: exit %d, want 1 naming publication pt:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "public.t"); r.code != 0 {
		t.Fatalf("resync of t exited %d:\n%s", r.code, r.stderr)
	}
	// Forced through the default publication: the run says it copied nothing.
	if r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--publication", "walmirror", "--table", "public.u"); r.code != 0 {
		t.Fatalf("resync --publication walmirror exited %d:\n%s", r.code, r.stderr)
	}
	r = walmirror(t, nil, run...)
	if r.code != 0 || !strings.Contains(r.stderr, "copying table online") ||
		!strings.Contains(r.stderr, `level=WARN msg="a resync request names a table this copy's publication does not publish`) {
		t.Fatalf("run exited %d; want t copied again and a warning for u:\n%s", r.code, r.stderr)
	}
}

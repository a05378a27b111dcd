package duckdb_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// take returns what was logged since the last call.
func (b *syncBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.b.String()
	b.b.Reset()
	return s
}

// TestPublishCopyIncremental: after the first copy, PublishCopy leaves the
// file alone when nothing committed, copies again only the tables written
// since (and walmirror's own), and makes a whole copy when a table changed
// shape or the file is not the one it wrote; each time the published copy
// holds every row of the live one.
func TestPublishCopyIncremental(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	s, err := duckdb.Open(t.Context(), filepath.Join(dir, "live.duckdb"), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	kv := func(id uint32, name string, extra ...schema.Column) *schema.Table {
		return schema.NewTable(id, "public", name, schema.IdentityDefault, append([]schema.Column{
			{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
			{Name: "v", TypeID: schema.OIDText, Typmod: -1},
		}, extra...))
	}
	a, b, c := kv(1, "a"), kv(2, "b"), kv(3, "c")
	tx(t, s, func(ctx context.Context) error {
		for _, tbl := range []*schema.Table{a, b, c} {
			if err := s.EnsureTable(ctx, tbl); err != nil {
				return err
			}
			if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "one"), text("2", "it's")}}); err != nil {
				return err
			}
		}
		return nil
	})
	pub := filepath.Join(dir, "read.duckdb")
	publish := func() string {
		t.Helper()
		logs.take()
		if err := s.PublishCopy(t.Context(), pub); err != nil {
			t.Fatal(err)
		}
		samePublished(t, s, pub, "a", "b", "c")
		return logs.take()
	}
	publish()
	before, err := os.Stat(pub)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a rewrite would show in the modification time
	if l := publish(); !strings.Contains(l, "published copy is current") {
		t.Errorf("nothing committed: log %q, want the copy left as it is", l)
	}
	if after, err := os.Stat(pub); err != nil || !after.ModTime().Equal(before.ModTime()) || !os.SameFile(before, after) {
		t.Errorf("nothing committed, yet the file was replaced (%v)", err)
	}

	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: a, Updates: []schema.Tuple{text("1", "uno")}, Inserts: []schema.Tuple{text("3", "tres")}})
	})
	l := publish()
	if !strings.Contains(l, "public.a") || strings.Contains(l, "public.b") || strings.Contains(l, "public.c") {
		t.Errorf("after writing a: log %q, want a copied again and not b nor c", l)
	}
	tx(t, s, func(ctx context.Context) error { return s.Truncate(ctx, []*schema.Table{b}) })
	if l := publish(); !strings.Contains(l, "public.b") || strings.Contains(l, "public.a") {
		t.Errorf("after emptying b: log %q, want b copied again and not a", l)
	}

	// c gains a column: a whole copy.
	c2 := kv(3, "c", schema.Column{Name: "w", TypeID: schema.OIDInt4, Typmod: -1})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, c2); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: c2, Inserts: []schema.Tuple{text("3", "x", "7")}})
	})
	if l := publish(); !strings.Contains(l, "whole copy") {
		t.Errorf("after a column was added: log %q, want a whole copy", l)
	}
	// A file someone else changed is not built upon.
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: a, Deletes: []schema.Tuple{text("2", nil)}})
	})
	if err := os.Chtimes(pub, time.Now(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if l := publish(); !strings.Contains(l, "not the one published last") {
		t.Errorf("after the file was changed: log %q, want a whole copy", l)
	}
}

// samePublished fails unless the published copy at path holds the live tables'
// rows, and walmirror's position, exactly (as multisets).
func samePublished(t *testing.T, s *duckdb.Sink, path string, tables ...string) {
	t.Helper()
	conn, err := s.DB().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.WithoutCancel(t.Context())
	if _, err := conn.ExecContext(ctx, "ATTACH '"+strings.ReplaceAll(path, "'", "''")+"' AS published (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "DETACH published")
	for _, name := range append([]string{"main._walmirror_state"}, prefix("public.", tables)...) {
		live, copied := duckdb.Catalog+"."+name, "published."+name
		var diff int
		q := "SELECT count(*) FROM ((SELECT * FROM " + live + " EXCEPT ALL SELECT * FROM " + copied + ") UNION ALL (SELECT * FROM " + copied + " EXCEPT ALL SELECT * FROM " + live + "))"
		if err := conn.QueryRowContext(ctx, q).Scan(&diff); err != nil {
			t.Fatalf("compare %s: %v", name, err)
		}
		if diff != 0 {
			t.Errorf("published %s differs from the live one in %d rows", name, diff)
		}
	}
}

func prefix(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

// TestPublishPathRefused: PublishCopy replaces only a copy walmirror
// published: not a text file, another program's DuckDB database or an
// SQLite file there, not the live database (also through a symlink), not
// into a missing directory (helper-139: the file was replaced, exit 0).
// A copy it published, also by an earlier run, it replaces.
func TestPublishPathRefused(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.duckdb")
	s := openSink(t, live)
	tbl := kvTable()
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "one")}})
	})
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("precious notes, more than a header's worth\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.duckdb")
	db, err := openRaw(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE u.main.mine AS SELECT 42 AS answer`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	link := filepath.Join(dir, "link.duckdb")
	if err := os.Symlink(live, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{text, "not a DuckDB database"},
		{other, "without walmirror's state"},
		{live, "live database"},
		{link, "live database"},
		{filepath.Join(dir, "missing", "copy.duckdb"), "does not exist"},
	} {
		before, _ := os.ReadFile(c.path)
		err := s.CheckPublishPath(t.Context(), c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckPublishPath(%s): %v, want %q", filepath.Base(c.path), err, c.want)
		}
		if err := s.PublishCopy(t.Context(), c.path); err == nil {
			t.Errorf("PublishCopy(%s) succeeded", filepath.Base(c.path))
		}
		if after, _ := os.ReadFile(c.path); !bytes.Equal(before, after) {
			t.Errorf("%s changed", filepath.Base(c.path))
		}
	}
	// Another target's live file, its run stopped: walmirror's tables,
	// another slot and source (helper-142: replaced).
	third := filepath.Join(dir, "third.duckdb")
	s3 := openSink(t, third)
	if err := s3.Begin(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s3.Commit(t.Context(), schema.State{Slot: "other", SystemID: "2", Phase: schema.PhaseStreaming, LSN: 5}); err != nil {
		t.Fatal(err)
	}
	s3.Close()
	if err := s.CheckPublishPath(t.Context(), third); err == nil || !strings.Contains(err.Error(), "another walmirror target") {
		t.Errorf("CheckPublishPath(another target's live file): %v", err)
	}
	// A target that holds no copy yet does not replace a file naming a
	// slot (helper-143: its first run replaced it).
	fresh := openSink(t, filepath.Join(dir, "fresh.duckdb"))
	if err := fresh.CheckPublishPath(t.Context(), third); err == nil || !strings.Contains(err.Error(), "holds no copy yet") {
		t.Errorf("CheckPublishPath(another target's file) from a target without a copy: %v", err)
	}
	// A copy published by an earlier sink (an earlier run) is replaced.
	pub := filepath.Join(dir, "read.duckdb")
	if err := s.PublishCopy(t.Context(), pub); err != nil {
		t.Fatal(err)
	}
	s2 := openSink(t, filepath.Join(dir, "live2.duckdb"))
	tx(t, s2, func(ctx context.Context) error { return s2.EnsureTable(ctx, tbl) })
	if err := s2.CheckPublishPath(t.Context(), pub); err != nil {
		t.Errorf("a published copy: %v", err)
	}
	if err := s2.PublishCopy(t.Context(), pub); err != nil {
		t.Errorf("republish: %v", err)
	}
}

// TestHoldDuckDBHelper holds the DuckDB file $WALMIRROR_HOLD_DUCKDB open
// read-write until its stdin closes: another process, for
// TestPublishPathHeld.
func TestHoldDuckDBHelper(t *testing.T) {
	path := os.Getenv("WALMIRROR_HOLD_DUCKDB")
	if path == "" {
		t.Skip("a helper process")
	}
	db, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	os.Stdout.WriteString("held\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestPublishPathHeld: a file another process has open read-write (a
// reader that did not open it read-only, or someone's live database)
// cannot be looked into: it is not replaced (ErrPublishHeld), and is once
// the process lets it go (helper-142, helper-143).
func TestPublishPathHeld(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, filepath.Join(dir, "live.duckdb"))
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, kvTable()) })
	pub := filepath.Join(dir, "read.duckdb")
	other := filepath.Join(dir, "other.duckdb")
	db, err := openRaw(other)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, path := range []string{pub, other} {
		if path == pub {
			if err := s.PublishCopy(t.Context(), pub); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHoldDuckDBHelper$")
		cmd.Env = append(os.Environ(), "WALMIRROR_HOLD_DUCKDB="+path)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.Contains(line, "held") {
			t.Fatalf("helper: %q, %v", line, err)
		}
		before, _ := os.ReadFile(path)
		fresh := openSink(t, filepath.Join(dir, "fresh"+filepath.Base(path)))
		if err := fresh.CheckPublishPath(t.Context(), path); !errors.Is(err, duckdb.ErrPublishHeld) {
			t.Errorf("CheckPublishPath(%s held): %v, want ErrPublishHeld", filepath.Base(path), err)
		}
		if err := fresh.PublishCopy(t.Context(), path); !errors.Is(err, duckdb.ErrPublishHeld) {
			t.Errorf("PublishCopy(%s held): %v, want ErrPublishHeld", filepath.Base(path), err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Errorf("%s changed", filepath.Base(path))
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PublishCopy(t.Context(), pub); err != nil {
		t.Errorf("once let go: %v", err)
	}
}

package sinktest

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// FileTarget is a Target for a sink that lives in one file: Open makes a new
// file (named file) in a test's temporary directory, Reopen opens the same
// file again, and rows reads a table back given the sink and its file.
func FileTarget(name, file string, open func(ctx context.Context, path string) (Sink, error),
	rows func(t *testing.T, s Sink, path string, table *schema.Table) [][]string) Target {
	var mu sync.Mutex
	paths := map[Sink]string{}
	openAt := func(t *testing.T, path string) Sink {
		t.Helper()
		s, err := open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		paths[s] = path
		mu.Unlock()
		return s
	}
	pathOf := func(t *testing.T, s Sink) string {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		p, ok := paths[s]
		if !ok {
			t.Fatalf("sink %p was not opened by this target", s)
		}
		return p
	}
	return Target{
		Name:   name,
		Open:   func(t *testing.T) Sink { return openAt(t, filepath.Join(t.TempDir(), file)) },
		Reopen: func(t *testing.T, s Sink) Sink { return openAt(t, pathOf(t, s)) },
		Rows: func(t *testing.T, s Sink, table *schema.Table) [][]string {
			return rows(t, s, pathOf(t, s), table)
		},
	}
}

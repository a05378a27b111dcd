package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunValidatesFlags: run refuses a flag apply.Config.Validate refuses,
// naming the flag, before it connects or creates the target. Before,
// --initial-copy singel (or Single) ran as auto, and a negative
// --copy-chunk-rows as the default, with no word.
func TestRunValidatesFlags(t *testing.T) {
	for _, tc := range []struct{ args, want []string }{
		{[]string{"--initial-copy", "singel"}, []string{"--initial-copy singel", `"single"`}},
		{[]string{"--initial-copy", "Single"}, []string{"--initial-copy Single"}},
		{[]string{"--copy-chunk-rows", "-5"}, []string{"--copy-chunk-rows -5", "positive"}},
		{[]string{"--commit-rows", "-1"}, []string{"--commit-rows -1", "positive"}},
	} {
		path := filepath.Join(t.TempDir(), "copy.db")
		args := append([]string{"--source", "postgres://nobody@127.0.0.1:1/none", "--target", "sqlite:" + path}, tc.args...)
		err := cmdRun(t.Context(), args)
		if err == nil {
			t.Errorf("run %v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("run %v: %v; want it to say %s", tc.args, err, w)
			}
		}
		if _, serr := os.Stat(path); serr == nil {
			t.Errorf("run %v created the target", tc.args)
		}
	}
}

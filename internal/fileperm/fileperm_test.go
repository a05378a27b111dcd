package fileperm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHint(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro.db")
	if err := os.WriteFile(ro, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, want string }{
		{filepath.Join(dir, "missing", "x.db"), "the directory " + filepath.Join(dir, "missing") + " does not exist"},
		{filepath.Join(dir, "new.db"), ""},
	}
	if os.Geteuid() != 0 { // root may write any file
		cases = append(cases, struct{ path, want string }{ro, "the file is not writable"})
	}
	for _, c := range cases {
		if got := Hint(c.path); c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("Hint(%s) = %q, want %q", c.path, got, c.want)
		}
	}
}

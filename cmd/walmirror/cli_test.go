package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestVersionString(t *testing.T) {
	if got := versionString(); !strings.HasPrefix(got, "walmirror ") || strings.Contains(got, "\n") {
		t.Errorf("versionString() = %q", got)
	}
	defer func(v string) { version = v }(version)
	version = "v1.2.3"
	if got := versionString(); !strings.HasPrefix(got, "walmirror v1.2.3") {
		t.Errorf("with -X main.version: %q", got)
	}
}

// TestHelp: the help names every command and target kind, and every
// command answers --help with exit 0.
func TestHelp(t *testing.T) {
	needServer(t) // the binary is built with the server
	r := walmirror(t, nil, "--help")
	if r.code != 0 {
		t.Fatalf("--help exited %d: %s", r.code, r.stderr)
	}
	for _, want := range append(commands, "duckdb:PATH", "sqlite:PATH", "postgres://", "PGPASSWORD", "--version") {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "on the way") {
		t.Errorf("--help is stale:\n%s", r.stdout)
	}
	for _, cmd := range commands {
		if cmd == "version" || cmd == "help" {
			continue
		}
		r := walmirror(t, nil, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: walmirror "+cmd) || r.stderr != "" {
			t.Errorf("%s --help exited %d, its usage not on stdout alone:\n%s\nstderr: %s", cmd, r.code, r.stdout, r.stderr)
		}
		r = walmirror(t, nil, cmd, "--no-such-flag")
		if r.code != 2 || !strings.Contains(r.stderr, "flag provided but not defined: -no-such-flag") || !strings.Contains(r.stderr, "Usage: walmirror "+cmd) {
			t.Errorf("%s --no-such-flag exited %d, want 2 with the problem and the usage on stderr:\n%s", cmd, r.code, r.stderr)
		}
	}
	for _, arg := range []string{"--version", "version"} {
		r := walmirror(t, nil, arg)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "walmirror ") {
			t.Errorf("%s exited %d: %q %q", arg, r.code, r.stdout, r.stderr)
		}
	}
	if r := walmirror(t, nil, "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", r.code, r.stderr)
	}
}

// TestErrorLineServerHint: the server's hint reaches the error line (a
// full lock table said only "out of shared memory", helper-57), once.
func TestErrorLineServerHint(t *testing.T) {
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "53200", Message: "out of shared memory", Hint: "You might need to increase \"max_locks_per_transaction\"."}
	got := errorLine(fmt.Errorf("prepare target table for \"public\".\"b03597\": create table:\n%w", pgErr))
	want := `prepare target table for "public"."b03597": create table: ERROR: out of shared memory (SQLSTATE 53200) (server hint: You might need to increase "max_locks_per_transaction".)`
	if got != want {
		t.Errorf("errorLine =\n%s\nwant\n%s", got, want)
	}
	if got := errorLine(fmt.Errorf("%w (server hint: %s)", pgErr, pgErr.Hint)); strings.Count(got, "max_locks") != 1 {
		t.Errorf("the hint twice: %s", got)
	}
}

// TestTargetFileOfOtherKind: a file target that is the other kind of
// database, or none, is refused by every command, naming the kind it is
// and the target to give. Before, DuckDB given an SQLite file fetched its
// SQLite extension from the network in status, check and drop, and the
// messages sent users to the directory's permissions (helper-122).
func TestTargetFileOfOtherKind(t *testing.T) {
	needServer(t)
	dir := t.TempDir()
	files := map[string]string{"sqlite3": filepath.Join(dir, "a.sqlite"), "duckdb": filepath.Join(dir, "b.duckdb")}
	for driver, path := range files {
		db, err := sql.Open(driver, path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE t (a int)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a database at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "postgres://u@127.0.0.1:1/db?connect_timeout=2"
	for _, c := range []struct{ target, want string }{
		{"duckdb:" + files["sqlite3"], "is an SQLite database, not a DuckDB one: name it sqlite:"},
		{"sqlite:" + files["duckdb"], "is a DuckDB database, not an SQLite one: name it duckdb:"},
		{"sqlite:" + junk, "is not a database of that kind"},
		{"duckdb:" + junk, "is not a database of that kind"},
	} {
		for _, args := range [][]string{
			{"status", "--target", c.target},
			{"check", "--source", src, "--target", c.target},
			{"drop", "--source", src, "--target", c.target},
			{"run", "--source", src, "--target", c.target},
			{"verify", "--source", src, "--target", c.target},
		} {
			r := walmirror(t, nil, args...)
			if r.code == 0 || !strings.Contains(r.stdout+r.stderr, c.want) || strings.Contains(r.stdout+r.stderr, "extension") {
				t.Errorf("%s: exit %d, want a refusal saying %q:\n%s%s", strings.Join(args, " "), r.code, c.want, r.stdout, r.stderr)
			}
		}
	}
}

package main

import (
	"fmt"
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

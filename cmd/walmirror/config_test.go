package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "walmirror.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence: flags > environment > file, ${ENV} expanded, lists
// joined, keys with _ or -.
func TestConfigPrecedence(t *testing.T) {
	t.Setenv("MIRROR_PW", "s3cret$x")
	t.Setenv("WALMIRROR_PUBLICATION", "from_env")
	path := writeConfig(t, `
source: postgres://mirror:${MIRROR_PW}@db/shop
slot: from_file
publication: from_file
tables: [public.a, "sales.b"]
commit_rows: 5
commit-interval: 2s
pipeline: true
log-level: ${WALMIRROR_TEST_UNSET_LEVEL:-warn}
`)
	fs := newFlagSet("run", "")
	fs.strictConfig = true
	var source, slot, pub, tables string
	var rows int
	var every time.Duration
	var pipeline bool
	fs.StringVar(&source, "source", "", "")
	fs.StringVar(&slot, "slot", "walmirror", "")
	fs.StringVar(&pub, "publication", "walmirror", "")
	fs.StringVar(&tables, "tables", "", "")
	fs.IntVar(&rows, "commit-rows", 1, "")
	fs.DurationVar(&every, "commit-interval", time.Second, "")
	fs.BoolVar(&pipeline, "pipeline", false, "")
	if err := fs.parseFlags([]string{"--config", path, "--slot", "from_flag"}); err != nil {
		t.Fatal(err)
	}
	if source != "postgres://mirror:s3cret$x@db/shop" || slot != "from_flag" || pub != "from_env" || tables != "public.a,sales.b" ||
		rows != 5 || every != 2*time.Second || !pipeline || fs.logLevel != "warn" {
		t.Errorf("source %q slot %q publication %q tables %q rows %d interval %v pipeline %v log level %q",
			source, slot, pub, tables, rows, every, pipeline, fs.logLevel)
	}
	// WALMIRROR_CONFIG names the file too.
	t.Setenv("WALMIRROR_CONFIG", path)
	if got := configPath(nil); got != path {
		t.Errorf("configPath from the environment = %q", got)
	}
	if got := configPath([]string{"--config=/x.yaml"}); got != "/x.yaml" {
		t.Errorf("configPath(--config=) = %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"sorce: x\n", `unknown key "sorce"`},
		{"source: ${WALMIRROR_TEST_NOT_SET}\n", "WALMIRROR_TEST_NOT_SET is not set"},
		{"commit-rows: many\n", "commit-rows"},
		{"source: [unclosed\n", "--config"},
		{"source: {a: 1}\n", "not a mapping"},
	} {
		fs := newFlagSet("run", "")
		fs.strictConfig = true
		var source string
		var rows int
		fs.StringVar(&source, "source", "", "")
		fs.IntVar(&rows, "commit-rows", 1, "")
		err := fs.parseFlags([]string{"--config", writeConfig(t, c.text)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
	// Commands other than run ignore keys that are not theirs.
	fs := newFlagSet("status", "")
	var target string
	fs.StringVar(&target, "target", "", "")
	if err := fs.parseFlags([]string{"--config", writeConfig(t, "target: sqlite:/x\nmetrics-addr: :9187\n")}); err != nil || target != "sqlite:/x" {
		t.Errorf("status with run's keys: %v, target %q", err, target)
	}
}

// TestConfigFile: run and status take their settings from a file.
func TestConfigFile(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);`)
	path := filepath.Join(t.TempDir(), "copy.db")
	config := writeConfig(t, "source: ${TEST_SOURCE}\ntarget: sqlite:"+path+"\nslot: s_"+db+"\nstop-at-lsn: now\ntables: [t]\n")
	env := []string{"TEST_SOURCE=" + dsn}
	if r := walmirror(t, env, "run", "--config", config); r.code != 0 {
		t.Fatalf("run --config: exit %d\n%s", r.code, r.stderr)
	}
	r := walmirror(t, env, "status", "--config", config, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"slot": "s_`+db+`"`) || !strings.Contains(r.stdout, `"lag_bytes"`) {
		t.Fatalf("status --config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A slot the file names is given, as --slot is: refused for a copy
	// that follows another (helper-122: the copy's own was followed).
	other := writeConfig(t, "source: ${TEST_SOURCE}\ntarget: sqlite:"+path+"\nslot: other_slot\nstop-at-lsn: now\n")
	if r := walmirror(t, env, "run", "--config", other); r.code == 0 || !strings.Contains(r.stderr, `not "other_slot"`) {
		t.Errorf("run --config naming another slot: exit %d, want a refusal naming it:\n%s", r.code, r.stderr)
	}
	// An empty one is unset, as an empty variable is: the copy's own slot
	// and publication are followed (helper-123: refused, "not \"walmirror\"").
	empty := writeConfig(t, "source: ${TEST_SOURCE}\ntarget: sqlite:"+path+"\nslot: ${NO_SUCH_SLOT:-}\npublication: \"\"\nstop-at-lsn: now\n")
	if r := walmirror(t, env, "run", "--config", empty); r.code != 0 {
		t.Errorf("run --config with an empty slot and publication: exit %d, want the copy's own followed:\n%s", r.code, r.stderr)
	}
	dropSlotAtEnd(t, db, "s_"+db)
}

// TestValueErrorsSayForm: a value that does not parse says what form is
// wanted; an empty environment variable counts as unset (helper-55).
func TestValueErrorsSayForm(t *testing.T) {
	needServer(t) // the binary is built with the server (not in -short mode)
	for _, c := range []struct{ cmd, env, want string }{
		{"verify", "WALMIRROR_JSON=yes", "(want true or false)"},
		{"run", "WALMIRROR_COMMIT_ROWS=abc", "(want a whole number)"},
	} {
		r := walmirror(t, []string{c.env}, c.cmd, "--source", "postgres://u@127.0.0.1:1/db", "--target", "sqlite:/nonexistent/x.db")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d:\n%s", c.env, r.code, r.stderr)
		}
	}
	r := walmirror(t, []string{"WALMIRROR_SLOT="}, "check", "--source", "postgres://u@127.0.0.1:1/db?connect_timeout=2", "--target", "sqlite:/nonexistent/x.db")
	if strings.Contains(r.stdout+r.stderr, `--slot ""`) {
		t.Errorf("an empty WALMIRROR_SLOT was taken as a slot name:\n%s%s", r.stdout, r.stderr)
	}
}

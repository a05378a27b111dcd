package main

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusOfFileHoldingNoCopy: status on another program's SQLite file
// (or a typo's) says it holds no walmirror state and leaves the file as it
// was: it opened the file as a sink, which created walmirror's tables in it.
func TestStatusOfFileHoldingNoCopy(t *testing.T) {
	needServer(t)
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE app (id integer PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	r := walmirror(t, nil, "status", "--target", "sqlite:"+path)
	if r.code != 1 || !strings.Contains(r.stderr, "holds no walmirror state") {
		t.Errorf("status of a file holding no copy: exit %d, want 1 saying so:\n%s", r.code, r.stderr)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name LIKE '%walmirror%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("status wrote walmirror's tables into the file (%d, %v)", n, err)
	}
	r = walmirror(t, nil, "status", "--target", "sqlite:"+filepath.Join(t.TempDir(), "typo.db"))
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("status of a missing file: exit %d, want 1 saying so:\n%s", r.code, r.stderr)
	}
	// A script gets an object on stdout saying why, not nothing.
	r = walmirror(t, nil, "status", "--json", "--target", "sqlite:"+filepath.Join(t.TempDir(), "typo.db"))
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 1 || err != nil || !strings.Contains(rep.Error, "does not exist") {
		t.Errorf("status --json of a missing file: exit %d, %v, want 1 and an error in JSON:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
}

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A source schema named like a DuckDB catalog ("temp", "system", "memory",
// "walmirror": the copy's own catalog) makes a two-part name ambiguous in
// DuckDB ("Ambiguous reference to catalog or schema"). The sink names every
// table with its catalog; verify did not, and exited 2 with those tables
// "not compared". It must compare them, and find a difference in them.
func TestVerifyDuckDBSchemaNamedLikeCatalog(t *testing.T) {
	needServer(t)
	schemas := []string{"temp", "system", "memory", "walmirror", "main"}
	var setup strings.Builder
	for _, s := range schemas {
		setup.WriteString(`CREATE SCHEMA "` + s + `"; CREATE TABLE "` + s + `".t (id int PRIMARY KEY, v text);
			INSERT INTO "` + s + `".t SELECT i, '` + s + `' || i FROM generate_series(1, 20) i;`)
	}
	dsn, _ := newDatabase(t, setup.String())
	path := filepath.Join(t.TempDir(), "copy.duckdb")
	target := "duckdb:" + path
	runNow(t, dsn, target, "s_catalog_names")
	r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
	if r.code != 0 || !strings.Contains(r.stdout, "5 tables equal, 0 different") {
		t.Fatalf("verify exited %d, want 0 with 5 tables equal:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Opened directly, the file's catalog is "copy".
	sqlExec(t, "duckdb", path, `UPDATE "copy"."temp".t SET v = 'changed' WHERE id = 7`)
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target)
	if r.code != 1 || !strings.Contains(r.stdout, "4 tables equal, 1 different") {
		t.Fatalf("verify exited %d, want 1 with temp.t different:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

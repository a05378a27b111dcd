package main

import (
	"context"
	"strings"
	"testing"
)

// TestSourceEncoding: a source database in LATIN1. Source sessions ask for
// UTF-8, which every target holds; before, the database's encoding was the
// sessions' too, and its bytes reached SQLite as they were (verify said
// equal), DuckDB as NULLs (exit 0) and a PostgreSQL copy not at all.
// Names, text, char(n), json, arrays; copied and streamed; every target.
func TestSourceEncoding(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			db := "latin1_" + tg.name
			mustExec(t, "postgres", `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`)
			mustExec(t, "postgres", `CREATE DATABASE `+db+` ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
			t.Cleanup(func() { _ = server.Exec(ctx, "postgres", `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`) })
			dsn := server.DSN(db)
			mustExec(t, db, `CREATE TABLE "prés" ("clé" int PRIMARY KEY, t text, c char(3), j json, a text[], v varchar(10));
				INSERT INTO "prés" VALUES (1, 'café ÿ', 'é', '{"k": "é"}', '{é,"ü x"}', 'Ærø'), (2, 'plain', 'a', '[]', '{}', NULL);
				CREATE PUBLICATION walmirror FOR ALL TABLES;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			q := `SELECT "clé", t, c, CAST(j AS text), CAST(a AS text), v FROM "prés"`
			if tg.name == "duckdb" { // a LIST, printed otherwise
				q = `SELECT "clé", t, c, CAST(j AS text), array_to_string(a, '|'), v FROM "prés"`
			}
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q)
			mustExec(t, db, `INSERT INTO "prés" VALUES (3, 'naïve ß', 'ü', '"ß"', '{ß}', 'ñ');
				UPDATE "prés" SET t = t || ' ½' WHERE "clé" = 2;`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q)
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 {
				t.Errorf("verify exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			} else if !strings.Contains(r.stdout, "equal") {
				t.Errorf("verify:\n%s", r.stdout)
			}
		})
	}
}

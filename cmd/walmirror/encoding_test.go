package main

import (
	"context"
	"strings"

	"github.com/walmirror/walmirror/internal/mirrortest"
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

// TestSourceSearchPath: a source database whose search_path puts another
// schema first and quotes every identifier (helper-53). regclass, regtype
// and regproc values print relative to the session's search_path: the
// copy held orders for app.orders, public.orders for public's (a name
// that resolves to another table), and "app"."orders" once
// quote_all_identifiers was on (exit 0; verify agreed). Source sessions
// now use pg_catalog alone: every name outside it is schema-qualified.
// Copied and streamed, every target, compared with fixed text.
func TestSourceSearchPath(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE SCHEMA app; CREATE TABLE public.orders (x int); CREATE TABLE app.orders (x int);
				CREATE TYPE app.mood AS ENUM ('ok');
				CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
				CREATE TABLE public.audit (id int PRIMARY KEY, tbl regclass, typ regtype, fn regproc);
				INSERT INTO public.audit VALUES (1, 'app.orders', 'app.mood', 'app.f'), (2, 'public.orders', 'int4', 'pg_catalog.now');`)
			mustExec(t, "postgres", `ALTER DATABASE `+db+` SET search_path = app, public`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			want := []string{"1 | app.orders | app.mood | app.f", "2 | public.orders | integer | now"}
			check := func() {
				t.Helper()
				got, err := rows("SELECT id, tbl, typ, fn FROM audit")
				if err != nil {
					t.Fatal(err)
				}
				if d := mirrortest.Diff(want, got); d != "" {
					t.Error(d)
				}
			}
			runNow(t, dsn, target, slot)
			check()
			mustExec(t, "postgres", `ALTER DATABASE `+db+` SET quote_all_identifiers = on`)
			mustExec(t, db, `INSERT INTO public.audit VALUES (3, 'app.orders', 'app.mood', 'app.f')`)
			want = append(want, "3 | app.orders | app.mood | app.f")
			runNow(t, dsn, target, slot)
			check()
			mustVerify(t, dsn, target)
		})
	}
}

// TestTargetSessionSettings: a PostgreSQL target whose database sets
// xmloption document and a search_path of a missing schema (helper-53):
// XML content fragments stopped the copy ("invalid XML document"), and
// opening the target failed with a scan error about current_schema().
// The target's sessions now fix what they read values under. So do
// verify's: a target database with standard_conforming_strings off made
// every verify exit 2 with the driver's "simple protocol queries must be
// run with standard_conforming_strings=on" (helper-104).
func TestTargetSessionSettings(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE x (id int PRIMARY KEY, doc xml, m money);
		INSERT INTO x VALUES (1, 'text &amp; more', 1234.56), (2, '<a/><b/>', -2);`)
	tdb, err := server.CreateDatabase(context.Background(), "settings_target")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, "postgres", `ALTER DATABASE `+tdb+` SET xmloption = document; ALTER DATABASE `+tdb+` SET search_path = nosuch;
		ALTER DATABASE `+tdb+` SET standard_conforming_strings = off`)
	target := server.DSN(tdb)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, target, slot)
	mustExec(t, db, `INSERT INTO x VALUES (3, 'plain', 3), (4, '<c/>tail', 4)`)
	runNow(t, dsn, target, slot)
	rows := func(q string) ([]string, error) { return mirrortest.SourceRows(context.Background(), target, q) }
	compareRows(t, dsn, rows, `SELECT id, doc::text, m::text FROM public.x`)
	if v := walmirror(t, nil, "verify", "--source", dsn, "--target", target); v.code != 0 {
		t.Errorf("verify exited %d:\n%s%s", v.code, v.stdout, v.stderr)
	}
}

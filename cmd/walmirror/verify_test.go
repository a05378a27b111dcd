package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
	"github.com/walmirror/walmirror/verify"
)

// verifyTables are the tables TestVerify copies: keyed tables it tampers
// with (an int key, a uuid and int8 key, a text and timestamptz key whose
// text sorts otherwise in PostgreSQL's collation than by its bytes), a
// keyless one with duplicate rows, one whose key (numeric) does not sort
// alike everywhere, one with hostile identifiers, and one of hostile
// values that must compare equal in every target.
const verifyTables = `
CREATE TYPE mood AS ENUM ('happy', 'it''s "sad"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(10,2), f float8, at timestamptz);
INSERT INTO t SELECT i, 'row ' || i, i / 3.0, i / 7.0, '2024-01-01'::timestamptz + i * interval '1 hour' FROM generate_series(1, 200) i;
CREATE TABLE u (id uuid, a int8, v text, PRIMARY KEY (id, a));
INSERT INTO u SELECT ('A0EEBC99-9C0B-4EF8-BB6D-' || lpad(to_hex(i * 4099), 12, '0'))::uuid, i - 25, 'u ' || i FROM generate_series(1, 50) i;
CREATE TABLE k (v text, n int);
ALTER TABLE k REPLICA IDENTITY FULL;
INSERT INTO k VALUES ('dup', 1), ('dup', 1), ('dup', 1), ('other', NULL), (NULL, NULL);
CREATE TABLE ct (s text COLLATE "und-x-icu", at timestamptz, v text, PRIMARY KEY (s, at));
INSERT INTO ct SELECT (ARRAY['a', 'B', 'é', 'a ', 'b', 'É', '', 'it''s "q"'])[i % 8 + 1], '2024-01-01'::timestamptz + i * interval '1 minute', 'c ' || i
	FROM generate_series(1, 400) i;
INSERT INTO ct VALUES ('a', 'infinity', 'inf'), ('B', '-infinity', '-inf');
CREATE TABLE nk (id numeric PRIMARY KEY, v text);
INSERT INTO nk VALUES (1, 'a'), (1.5, 'b'), (-2, 'c'), (1e20, 'd');
CREATE SCHEMA "Odd ""Schema"".x";
CREATE TABLE "Odd ""Schema"".x"."Tab.le ""q""" ("Id" int PRIMARY KEY, "va lue" text, "ü" numeric);
INSERT INTO "Odd ""Schema"".x"."Tab.le ""q""" VALUES (1, 'a', 1.5), (2, NULL, NULL);
CREATE TABLE h (
	id text PRIMARY KEY, b bytea, f8 float8, f4 float4, n numeric, n2 numeric(12,3), big text, j jsonb, js json,
	a int[], ta text[], fa float8[], iv interval, d date, ts timestamp, tz timestamptz, tt timetz, tm time,
	u uuid, m mood, p posint, c char(5), ok bool);
`

// insertVerifyValues fills h: each hostile string as a key and a value,
// next to the values that most easily compare unequal after a type mapping.
func insertVerifyValues(ctx context.Context, t *testing.T, dsn string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	big := strings.Repeat("x", 1<<20)
	specials := []struct{ f8, f4, n, d, ts, tz, iv string }{
		{"NaN", "NaN", "NaN", "infinity", "infinity", "-infinity", "1 year 2 mons -3 days 04:05:06.789"},
		{"Infinity", "-Infinity", "Infinity", "-infinity", "-infinity", "infinity", "-1 days"},
		{"-Infinity", "Infinity", "-Infinity", "0044-03-15 BC", "0044-03-15 12:00:00.5 BC", "0001-01-01 00:00:00+00 BC", "00:00:00.000001"},
		{"-0", "-0", "-0.000", "2024-02-29", "2024-02-29 23:59:59.999999", "2024-06-01 12:00:00+02", "30 days"},
		{"1e-310", "1e-45", "123456789012345678901234567890.000000000000000000001", "10000-01-01", "10000-01-01 00:00:00", "2000-01-01 00:00:00.000001+00", "1 mon"},
		{"0.1", "0.1", "0.10", "1999-12-31", "1999-12-31 23:59:59", "1999-12-31 23:59:59-01:30", "0"},
	}
	for i, s := range hostileStrings {
		sp := specials[i%len(specials)]
		js, _ := json.Marshal(s)
		var long *string
		if i == 0 {
			long = &big
		}
		_, err := conn.Exec(ctx, `INSERT INTO h VALUES ($1, $2, $3::float8, $4::float4, $5::numeric, $6, $7, $8::jsonb, $9::json,
			$10, $11, $12, $13::interval, $14::date, $15::timestamp, $16::timestamptz, $17::timetz, $18::time, $19, $20, $21, $22, $23)`,
			s, append([]byte{0, '\'', 0xff, 0}, s...), sp.f8, sp.f4, sp.n, fmt.Sprintf("%d.%03d", i*1000, i), long,
			fmt.Sprintf(`{"k": %s, "\u00e9": [1, 2.50, null, "\\u0000"], "e": "‏é✓"}`, js), fmt.Sprintf(`{ "dup": 1,  "dup": %s }`, js),
			[]*int32{ptr(int32(i)), nil, ptr(int32(-1))}, []*string{&s, nil, ptr("NULL"), ptr("a,b"), ptr(`"{}"`), ptr("")},
			[]float64{0.1, 1e300, -0.0},
			sp.iv, sp.d, sp.ts, sp.tz, []string{"24:00:00+00", "04:05:06.5+05:30", "00:00:00-14:59"}[i%3], []string{"24:00:00", "00:00:00.000001", "12:34:56"}[i%3],
			fmt.Sprintf("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a%02x", i), []string{"happy", `it's "sad"`}[i%2], i+1, []string{"ab", "", "é"}[i%3], i%2 == 0)
		if err != nil {
			t.Fatalf("insert hostile row %d: %v", i, err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO h (id) VALUES ('all NULL ‏')`); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// verifyCopy is one kind of copy: how to make one and to change it behind
// walmirror's back.
type verifyCopy struct {
	name string
	make func(t *testing.T) (target string, tamper func(sql string))
	// table names a source table in the copy; rowid is how one row of a
	// keyless table is picked.
	table, rowid func(string) string
}

func TestVerify(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) { testVerify(t, c) })
	}
}

// verifyCopies are the kinds of copy verify is tested on.
func verifyCopies() []verifyCopy {
	return []verifyCopy{
		{"sqlite", func(t *testing.T) (string, func(string)) {
			path := filepath.Join(t.TempDir(), "copy.db")
			return "sqlite:" + path, func(q string) { sqlExec(t, "sqlite3", path, q) }
		}, func(s string) string { return s }, func(string) string { return "rowid" }},
		{"duckdb", func(t *testing.T) (string, func(string)) {
			path := filepath.Join(t.TempDir(), "copy.duckdb")
			return "duckdb:" + path, func(q string) { sqlExec(t, "duckdb", path, q) }
		}, func(s string) string { return "public." + s }, func(string) string { return "rowid" }},
		{"postgres", func(t *testing.T) (string, func(string)) {
			db, err := server.CreateDatabase(context.Background(), "verify_copy")
			if err != nil {
				t.Fatal(err)
			}
			return server.DSN(db), func(q string) {
				if err := server.Exec(context.Background(), db, q); err != nil {
					t.Fatal(err)
				}
			}
		}, func(s string) string { return "public." + s }, func(string) string { return "ctid" }},
	}
}

func testVerify(t *testing.T, c verifyCopy) {
	ctx := context.Background()
	began := time.Now()
	dsn, db := newDatabase(t, verifyTables)
	insertVerifyValues(ctx, t, dsn)
	// h's hostile values again, keyed by an integer: checksums by key
	// range in every target (DuckDB's LISTs too).
	if conn, err := pgx.Connect(ctx, dsn); err != nil {
		t.Fatal(err)
	} else {
		_, err := conn.Exec(ctx, `CREATE TABLE hi (id int PRIMARY KEY, s text, b bytea, f8 float8, f4 float4, n numeric, n2 numeric(12,3),
				big text, j jsonb, js json, a int[], ta text[], fa float8[], iv interval, d date, ts timestamp, tz timestamptz, tt timetz, tm time, u uuid, m mood, p posint,
				c char(5), ok bool);
			INSERT INTO hi SELECT row_number() OVER (ORDER BY id COLLATE "C"), id, b, f8, f4, n, n2, big, j, js, a, ta, fa, iv, d, ts, tz, tt, tm, u, m, p, c, ok FROM h`)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	pgbench := testenv.Tool("pgbench")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	target, tamper := c.make(t)
	slot := "s_" + db
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}

	// An equal copy verifies while pgbench writes to the source: verify
	// brings the copy to its snapshot's position and compares both there.
	load := exec.Command(pgbench, "-c", "2", "-T", "4", "-n", dsn)
	var loadOut bytes.Buffer
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // let changes pile up behind the copy
	r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, loadOut.String())
	}
	if r.code != 0 {
		t.Fatalf("verify under load exited %d, want 0 (equal):\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, table := range []string{"public.t", "public.u", "public.ct", "public.k", "public.nk", "public.h", "public.hi", "public.pgbench_accounts", "public.pgbench_history",
		`"Odd ""Schema"".x"."Tab.le ""q"""`} {
		if !strings.Contains(r.stdout, table) {
			t.Errorf("the report does not mention %s:\n%s", table, r.stdout)
		}
	}
	t.Logf("verified under load:\n%s", r.stdout)
	// Tables keyed otherwise than by one integer, and the keyless one, are
	// compared by checksums of buckets of their key's (row's) hash in every
	// target, with no bucket differing; h too (its arrays are LISTs in
	// DuckDB, hashed as the source hashes the arrays).
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--json",
		"--table", "public.u", "--table", "public.ct", "--table", "public.k", "--table", "public.nk", "--table", "public.h")
	var methods struct {
		Tables []struct{ Table, Status, Method, Note string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &methods); err != nil || r.code != 0 || len(methods.Tables) != 5 {
		t.Fatalf("verify --json exited %d (%v):\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for _, tb := range methods.Tables {
		want := "checksum"
		if tb.Status != "equal" || tb.Method != want || tb.Note != "" {
			t.Errorf("%s: %s by %s (%s), want equal by %s", tb.Table, tb.Status, tb.Method, tb.Note, want)
		}
	}

	// Changed, deleted and inserted behind walmirror's back, one of three
	// duplicate rows of the keyless table removed, and a float and the
	// last byte of 1 MB of text changed under a hostile key.
	tamper(fmt.Sprintf(`UPDATE %[1]s SET v = 'tampered' WHERE id = 2; DELETE FROM %[1]s WHERE id = 3;
		INSERT INTO %[1]s (id, v) VALUES (1000, 'extra');
		DELETE FROM %[2]s WHERE %[3]s = (SELECT %[3]s FROM %[2]s WHERE v = 'dup' LIMIT 1);
		UPDATE %[4]s SET f8 = 2.5, big = big || 'y' WHERE big IS NOT NULL;
		UPDATE %[5]s SET v = 'tampered' WHERE a = -15; DELETE FROM %[5]s WHERE a = -14;
		INSERT INTO %[5]s (id, a, v) SELECT id, 1000, 'extra' FROM %[5]s WHERE a = -13;
		UPDATE %[6]s SET v = 'tampered' WHERE s = 'a ' AND v = 'c 3'; DELETE FROM %[6]s WHERE v = 'inf'; INSERT INTO %[6]s VALUES ('A', '2024-01-01 00:00:00+00', 'extra')`,
		c.table("t"), c.table("k"), c.rowid("k"), c.table("h"), c.table("u"), c.table("ct")))
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target)
	if r.code != 1 {
		t.Fatalf("verify of a changed copy exited %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"public.t", "1 missing, 1 extra, 1 changed", "(id)=(3)", "(id)=(1000)", "(id)=(2) differs in v",
		"public.k", "(v, n)=(dup, 1)",
		"public.h", "(id)=('; DROP TABLE canary; --) differs in f8, big",
		"public.u", "(id, a)=(a0eebc99-9c0b-4ef8-bb6d-00000000a01e, -15) differs in v", "(id, a)=(a0eebc99-9c0b-4ef8-bb6d-00000000b021, -14)",
		"(id, a)=(a0eebc99-9c0b-4ef8-bb6d-00000000c024, 1000)",
		"public.ct", "(s, at)=(a , 2024-01-01 00:03:00+00) differs in v", "(s, at)=(a, infinity)", "(s, at)=(A, 2024-01-01 00:00:00+00)",
		"7 tables equal, 5 different"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the report lacks %q:\n%s", want, r.stdout)
		}
	}

	// The same as JSON, for the named tables only.
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--json", "--table", "public.t", "--table", "k")
	if r.code != 1 {
		t.Fatalf("verify --json exited %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
	}
	var rep struct {
		Equal  bool `json:"equal"`
		Tables []struct {
			Table, Status, Method   string
			Missing, Extra, Changed int
			Examples                []jsonExample
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify --json printed no JSON (%v):\n%s", err, r.stdout)
	}
	if rep.Equal || len(rep.Tables) != 2 || rep.Tables[0].Table != "public.t" || rep.Tables[1].Table != "public.k" {
		t.Fatalf("JSON report: %+v", rep)
	}
	// A table keyed by an integer is compared by checksums of key ranges,
	// in every target.
	if rep.Tables[0].Method != "checksum" {
		t.Errorf("public.t compared by %q, want checksum", rep.Tables[0].Method)
	}
	if tt := rep.Tables[0]; tt.Status != "different" || tt.Missing != 1 || tt.Extra != 1 || tt.Changed != 1 ||
		!slices.ContainsFunc(tt.Examples, func(e jsonExample) bool {
			return e.Kind == "changed" && e.Key["id"] != nil && *e.Key["id"] == "2" && strings.Join(e.Columns, ",") == "v"
		}) {
		t.Errorf("public.t in JSON: %+v", tt)
	}
	if k := rep.Tables[1]; k.Status != "different" || k.Missing != 1 || k.Extra != 0 || len(k.Examples) != 1 || *k.Examples[0].Row["v"] != "dup" {
		t.Errorf("public.k in JSON: %+v", k)
	}

	// --repair copies the differing rows of the tables keyed by integers,
	// uuids and text again, by key, and the other tables that differ whole,
	// brings the copy up to date and verifies them again: exit 0, and
	// nothing else is copied.
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--repair", "--json")
	if r.code != 0 {
		t.Fatalf("verify --repair exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
	}
	var repaired struct {
		Equal  bool `json:"equal"`
		Repair struct {
			Tables []string `json:"tables"`
			Copies []struct {
				Table, By, Why string
				Keys           int
			} `json:"copies"`
			RequestedAt string `json:"requested_at"`
			Equal       bool   `json:"equal"`
			Verify      struct {
				Equal  bool `json:"equal"`
				Tables []struct{ Table, Status string }
			} `json:"verify"`
		} `json:"repair"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &repaired); err != nil {
		t.Fatalf("verify --repair --json printed no JSON (%v):\n%s", err, r.stdout)
	}
	wantRepaired := []string{"public.ct", "public.h", "public.k", "public.t", "public.u"}
	got := slices.Sorted(slices.Values(repaired.Repair.Tables))
	if repaired.Equal || !repaired.Repair.Equal || !repaired.Repair.Verify.Equal || !slices.Equal(got, wantRepaired) ||
		repaired.Repair.RequestedAt == "" || len(repaired.Repair.Verify.Tables) != 5 {
		t.Errorf("verify --repair --json: %+v\n%s", repaired, r.stdout)
	}
	wantCopies := map[string]string{"public.t": "keys 3", "public.u": "keys 3", "public.k": "table no key", "public.h": "keys 1",
		"public.ct": "table key column at is not an integer, uuid, text or varchar"}
	for _, cp := range repaired.Repair.Copies {
		how := cp.By + " " + cp.Why
		if cp.By == "keys" {
			how = fmt.Sprint(cp.By, " ", cp.Keys)
		}
		if wantCopies[cp.Table] != how {
			t.Errorf("repair.copies: %s copied by %q, want %q", cp.Table, how, wantCopies[cp.Table])
		}
		delete(wantCopies, cp.Table)
	}
	if len(wantCopies) > 0 {
		t.Errorf("repair.copies lacks %v:\n%s", wantCopies, r.stdout)
	}
	// Only the differing rows were copied again (keys= is how many the
	// engine was asked for; rows= how many of them the source has), and
	// only the other two tables whole.
	checkCopied(t, r.stderr, "public.ct", "public.k")
	checkCopiedByKey(t, r.stderr, "public.h", 1, 1) // a hostile text key
	checkCopiedByKey(t, r.stderr, "public.t", 3, 2)
	checkCopiedByKey(t, r.stderr, "public.u", 3, 2)
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target)
	if r.code != 0 || !strings.Contains(r.stdout, "12 tables equal, 0 different") {
		t.Fatalf("verify after the repair exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The same as text, one table damaged.
	tamper(fmt.Sprintf(`UPDATE %[1]s SET v = 'again' WHERE id = 5; DELETE FROM %[1]s WHERE id = 6`, c.table("t")))
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--repair")
	if r.code != 0 {
		t.Fatalf("verify --repair exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"11 tables equal, 1 different", "repair: copied again public.t (2 rows by key)", "1 tables equal, 0 different"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify --repair's report lacks %q:\n%s", want, r.stdout)
		}
	}
	checkCopied(t, r.stderr)
	checkCopiedByKey(t, r.stderr, "public.t", 2, 2)
	// More differing rows than --repair-rows: the whole table.
	tamper(fmt.Sprintf(`UPDATE %[1]s SET v = 'again' WHERE id IN (8, 9)`, c.table("t")))
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--repair", "--repair-rows", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "repair: copied again public.t (whole: more than 1 rows differ)") {
		t.Errorf("verify --repair --repair-rows 1 exited %d, want 0 and the whole table copied:\n%s%s", r.code, r.stdout, r.stderr)
	}
	checkCopied(t, r.stderr, "public.t")
	if strings.Contains(r.stderr, "rows copied again online") {
		t.Errorf("rows copied by key beyond --repair-rows:\n%s", r.stderr)
	}

	// Hostile values compared by checksums: equal, then two rows changed
	// in columns whose values the target keeps in its own types.
	checkMethods := func(wantStatus string) string {
		t.Helper()
		r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--json", "--table", "public.hi", "--table", "public.pgbench_accounts")
		var rep struct {
			Tables []struct{ Table, Status, Method, Note string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Tables) != 2 {
			t.Fatalf("verify --json (%v):\n%s%s", err, r.stdout, r.stderr)
		}
		for i, tb := range rep.Tables {
			want := map[int]string{0: wantStatus, 1: "equal"}[i]
			if tb.Method != "checksum" || tb.Status != want {
				t.Errorf("%s: %s by %s (%s), want %s by checksum", tb.Table, tb.Status, tb.Method, tb.Note, want)
			}
			if want == "equal" && tb.Note != "" { // no value hashed otherwise than on the source
				t.Errorf("%s: equal, but %s", tb.Table, tb.Note)
			}
			t.Logf("%s: %s by %s (%s)", tb.Table, tb.Status, tb.Method, tb.Note)
		}
		return r.stdout
	}
	checkMethods("equal")
	tamper(fmt.Sprintf(`UPDATE %[1]s SET f4 = 0.5 WHERE id = 2; UPDATE %[1]s SET n2 = NULL WHERE id = 4`, c.table("hi")))
	if out := checkMethods("different"); !strings.Contains(out, `"f4"`) || !strings.Contains(out, `"n2"`) {
		t.Errorf("the report does not name f4 and n2:\n%s", out)
	}
	if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--repair", "--table", "public.hi"); r.code != 0 {
		t.Errorf("verify --repair --table public.hi exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// While walmirror replicates into the copy (no --metrics-addr), verify
	// finds it through its control socket and verifies through it: the
	// difference made behind its back is found, and --repair has the
	// running walmirror copy the row again. Before, both exited 2 and asked
	// for --sidecar (helper-130).
	tamper(fmt.Sprintf(`DELETE FROM %s WHERE id = 7`, c.table("t")))
	stop, _ := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--progress-interval", "0")
	r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--table", "public.t")
	rr := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--repair")
	ra := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--json")
	// An empty table created since the run last listed the publication has
	// no copy yet: not compared (exit 2) or, listed meanwhile, equal; not
	// different (helper-136).
	mustExec(t, db, `CREATE TABLE fresh (id int PRIMARY KEY)`)
	if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--table", "public.fresh"); r.code == 1 ||
		r.code == 2 && !strings.Contains(r.stdout+r.stderr, "the copy has not created yet") {
		t.Errorf("verify through the run of a table created a moment ago exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if c.name == "sqlite" {
		// A copy of the file holds the same state and slot, and is not the
		// run's: verified through the run, it was "equal" whatever it held
		// (helper-136).
		other := filepath.Join(t.TempDir(), "other.db")
		sqlExec(t, "sqlite3", strings.TrimPrefix(target, "sqlite:"), "VACUUM INTO '"+other+"'")
		sqlExec(t, "sqlite3", other, `DELETE FROM t`)
		if r := walmirror(t, nil, "verify", "--source", dsn, "--target", "sqlite:"+other); r.code == 0 || strings.Contains(r.stdout, "by the running walmirror") {
			t.Errorf("verify of a copy of the file a run writes exited %d through the run:\n%s%s", r.code, r.stdout, r.stderr)
		}
	}
	logs := stop()
	if r.code != 1 || !strings.Contains(r.stdout, "by the running walmirror") || !strings.Contains(r.stdout, "(id)=(7)") {
		t.Errorf("verify of a damaged copy walmirror is writing exited %d, want 1 naming (id)=(7), verified by the running walmirror:\n%s%s\n%s", r.code, r.stdout, r.stderr, logs)
	}
	if rr.code != 0 || !strings.Contains(rr.stdout, "public.t (1 rows by key)") {
		t.Errorf("verify --repair of a copy walmirror is writing exited %d, want 0 after copying row 7 again:\n%s%s\n%s", rr.code, rr.stdout, rr.stderr, logs)
	}
	if ra.code != 0 || !strings.Contains(ra.stdout, `"live": true`) {
		t.Errorf("verify after the repair exited %d, want 0 (live):\n%s%s", ra.code, ra.stdout, ra.stderr)
	}
	if !strings.Contains(logs, "verify: requested") {
		t.Errorf("the run's log does not show the verifications:\n%s", logs)
	}
	// The run removed its socket: verify does the work itself again.
	if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--table", "public.t"); r.code != 0 || strings.Contains(r.stdout, "by the running walmirror") {
		t.Errorf("verify after the run ended exited %d, want 0, verified by itself:\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// checkCopied checks that a log says exactly these tables were copied
// online.
func checkCopied(t *testing.T, log string, tables ...string) {
	t.Helper()
	if n := strings.Count(log, `msg="copying table online"`); n != len(tables) {
		t.Errorf("%d tables copied online, want %d (%s):\n%s", n, len(tables), strings.Join(tables, ", "), log)
	}
	for _, table := range tables {
		if !strings.Contains(log, `msg="copying table online" table=`+table+" ") {
			t.Errorf("%s was not copied online:\n%s", table, log)
		}
	}
}

// checkCopiedByKey checks that a log says table's rows were copied again
// by key, once: keys rows asked for, rows found on the source.
func checkCopiedByKey(t *testing.T, log, table string, keys, rows int) {
	t.Helper()
	want := fmt.Sprintf(`msg="rows copied again online" table=%s keys=%d rows=%d`, table, keys, rows)
	if n := strings.Count(log, want); n != 1 {
		t.Errorf("%q %d times in the log, want once:\n%s", want, n, log)
	}
}

// jsonExample is a differing row in verify --json's report.
type jsonExample struct {
	Kind     string
	Key, Row map[string]*string
	Columns  []string
}

// sqlExec runs statements on a SQLite or DuckDB file nothing else holds.
func sqlExec(t *testing.T, driver, path, q string) {
	t.Helper()
	db, err := sql.Open(driver, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range strings.Split(q, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func TestVerifyTableList(t *testing.T) {
	var l tableList
	for _, v := range []string{"public.t", `k, "a,b"."c ""d"", e" ,`, "x"} {
		if err := l.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(l, "|"); got != `public.t|k|"a,b"."c ""d"", e"|x` {
		t.Errorf("tables %s", got)
	}
	if err := l.Set("a.b.c"); err == nil {
		t.Error("a.b.c accepted")
	}
}

// TestVerifyRepairAfterSourceChange: rows damaged in the copy are changed
// at the source after verify compared them and before --repair copies them
// again (an update of a row the copy lost and of one it holds changed, an
// insert of a key the copy holds extra). The copies start from the copy's
// position, so those changes wait for them: the repair copies just those
// rows, by key, and the copy ends equal on every target.
func TestVerifyRepairAfterSourceChange(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dsn, db := newDatabase(t, `CREATE TABLE t (id int8 PRIMARY KEY, v text);
				INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 100) i;
				CREATE TABLE o (id int PRIMARY KEY, v text); INSERT INTO o VALUES (1, 'other');`)
			target, tamper := c.make(t)
			slot := "s_" + db
			if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			tamper(fmt.Sprintf(`DELETE FROM %[1]s WHERE id = 3; UPDATE %[1]s SET v = 'damaged' WHERE id = 4;
				INSERT INTO %[1]s VALUES (1000, 'extra')`, c.table("t")))

			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			sink, err := openTarget(ctx, target, log, true, defaultTargetOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			vt := verify.Target{Sink: sink, Open: copyReader(sink, target)}
			cfg := verify.Config{Source: source.Config{DSN: dsn, Publication: "walmirror"}, Options: verify.Options{Keys: 100}, Logger: log}
			rep, err := verify.Run(ctx, cfg, vt)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Different() || len(rep.Tables) != 2 {
				t.Fatalf("the damaged copy verified: %+v", rep.Tables)
			}
			// The source moves on past the verified position, over the
			// damaged rows.
			if err := server.Exec(ctx, db, `UPDATE t SET v = 'changed later' WHERE id IN (3, 4);
				INSERT INTO t VALUES (1000, 'inserted later'); UPDATE o SET v = 'other later'`); err != nil {
				t.Fatal(err)
			}
			rp, err := verify.RepairTables(ctx, cfg, vt, rep)
			if err != nil {
				t.Fatalf("repair: %v\n%s", err, logs.String())
			}
			if !rp.Equal() || len(rp.Copies) != 1 || rp.Copies[0].Table != "public.t" || rp.Copies[0].Keys != 3 {
				var b bytes.Buffer
				_ = rp.WriteText(&b)
				t.Fatalf("repair: %+v\n%s\n%s", rp.Copies, b.String(), logs.String())
			}
			checkCopied(t, logs.String())
			checkCopiedByKey(t, logs.String(), "public.t", 3, 3)
			sink.Close()
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 || !strings.Contains(r.stdout, "2 tables equal, 0 different") {
				t.Fatalf("verify after the repair exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestVerifyAfterPendingResync: a resync requested while no walmirror
// runs is taken up by verify's own catch-up, which completes the copy past
// the comparison's position. verify then compares at a new position: equal,
// exit 0. Before, it exited 2 saying that walmirror was replicating into
// the target, which nothing was.
func TestVerifyAfterPendingResync(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int8 PRIMARY KEY, v text);
				INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 1000) i;
				CREATE TABLE o (id int PRIMARY KEY, v text); INSERT INTO o VALUES (1, 'other');`)
			target, _ := c.make(t)
			runNow(t, dsn, target, "s_"+db)
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.t"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			if err := server.Exec(context.Background(), db, `UPDATE t SET v = 'later' WHERE id = 5`); err != nil {
				t.Fatal(err)
			}
			r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
			if r.code != 0 || !strings.Contains(r.stdout, "2 tables equal, 0 different") {
				t.Fatalf("verify exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
			}
			checkCopied(t, r.stderr, "public.t")
		})
	}
}

// TestCopyKeepsPublication: the target stores the publication its copy is
// made from. verify and resync without --publication use it (helper-71:
// verify took walmirror's default FOR ALL TABLES, caught the copy up through
// it, copied the damaged table again and others the copy never had, and
// said equal, exit 0); another --publication is refused, by run too.
func TestCopyKeepsPublication(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;
				CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other VALUES (1);
				CREATE PUBLICATION p6 FOR TABLE t`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot, "--publication", "p6")
			table := "t"
			if strings.HasPrefix(target, "duckdb:") {
				table = "public.t"
			}
			targetExec(t, target, "UPDATE "+table+" SET v = 'damaged' WHERE id = 7")
			r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
			if r.code != 1 || !strings.Contains(r.stdout, "(id)=(7) differs in v") || !strings.Contains(r.stdout, "0 tables equal, 1 different") {
				t.Fatalf("verify without --publication exited %d, want 1 naming the damaged row:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := walmirror(t, nil, "status", "--target", target); !strings.Contains(r.stdout, "publication: p6\n") {
				t.Errorf("status does not name the copy's publication:\n%s%s", r.stdout, r.stderr)
			}
			if publicationExists(t, db, "walmirror") {
				t.Error("verify created walmirror's default publication")
			}
			for _, args := range [][]string{
				{"verify", "--source", dsn, "--target", target, "--publication", "walmirror"},
				{"resync", "--source", dsn, "--target", target, "--table", "public.t", "--publication", "walmirror"},
				{"run", "--source", dsn, "--target", target, "--slot", slot, "--publication", "walmirror", "--stop-at-lsn", "now"},
			} {
				if r := walmirror(t, nil, args...); r.code == 0 || !strings.Contains(r.stderr, `copy of publication "p6"`) {
					t.Errorf("%s with another publication exited %d, want an error naming p6:\n%s", args[0], r.code, r.stderr)
				}
			}
			if r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot, "--publication", "walmirror"); r.code != 1 || !strings.Contains(r.stdout, `FAIL publication: the target is a copy of publication "p6"`) {
				t.Errorf("check with another publication exited %d, want 1 naming p6:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot); r.code != 0 || !strings.Contains(r.stdout, `publication: "p6"`) {
				t.Errorf("check without --publication exited %d, want 0 checking p6:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if publicationExists(t, db, "walmirror") {
				t.Error("a refused run created walmirror's default publication (helper-76)")
			}
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.t"); r.code != 0 {
				t.Fatalf("resync: %s", r.stderr)
			}
			// run too follows the copy's publication when none is named.
			runNow(t, dsn, target, slot)
			if publicationExists(t, db, "walmirror") {
				t.Error("run without --publication created walmirror's default publication")
			}
			// ... and its slot when none is named (helper-86: refused, asking for --slot).
			mustExec(t, db, "INSERT INTO t VALUES (101, 'v101')")
			if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now"); r.code != 0 ||
				!strings.Contains(r.stderr, "following the slot the copy is made from") {
				t.Errorf("run without --slot exited %d, want 0 following %s:\n%s", r.code, slot, r.stderr)
			}
			if slotExists(t, db, "walmirror") {
				t.Error("run without --slot created the default slot")
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
			if _, err := rows("SELECT id FROM other"); err == nil {
				t.Error("the copy holds a table its publication does not publish")
			}
		})
	}
}

// TestVerifyPartitionedUnderLoad: verify of a copy with a partitioned table
// while the source's WAL moves. On PostgreSQL 14 a run's first look at the
// partitions took their links for new and reconnected, storing a position
// past the one verify compares at, three times over: exit 2 (helper-75).
// Links as the copy stored them need no reconnect.
func TestVerifyPartitionedUnderLoad(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
		INSERT INTO p VALUES (1, 'x');`)
	_, other := newDatabase(t, `CREATE TABLE noise (id serial PRIMARY KEY, v text)`)
	target, _ := schemaTargets[0].new(t)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, target, slot)
	mustExec(t, db, "INSERT INTO p VALUES (2, 'y')")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = server.Exec(ctx, other, "INSERT INTO noise (v) VALUES ('n')")
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
	cancel()
	<-done
	if r.code != 0 || strings.Contains(r.stderr, "reconnecting so the source") {
		t.Errorf("verify exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyCreatesNothing: verify against a database or file that holds
// no copy exits 2 and leaves it as it was (helper-98: it created
// walmirror's tables there, then said there was no copy), as check and
// status do.
func TestVerifyCreatesNothing(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	dsn, _ := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	path := filepath.Join(t.TempDir(), "app.db")
	app, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(`CREATE TABLE app (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	app.Close()
	tdb, err := server.CreateDatabase(ctx, "verify_nothing_target")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		tables func() ([]string, error)
	}{
		{"sqlite:" + path, func() ([]string, error) {
			return mirrortest.SQLiteRows(ctx, path, `SELECT name FROM sqlite_master ORDER BY 1`)
		}},
		{server.DSN(tdb), func() ([]string, error) {
			return mirrortest.SourceRows(ctx, server.DSN(tdb), `SELECT nspname FROM pg_namespace WHERE nspname LIKE '%walmirror%'`)
		}},
		{"sqlite:" + filepath.Join(t.TempDir(), "missing.db"), func() ([]string, error) { return nil, nil }},
	} {
		before, err := c.tables()
		if err != nil {
			t.Fatal(err)
		}
		r := walmirror(t, nil, "verify", "--source", dsn, "--target", c.target)
		after, err := c.tables()
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 2 || !strings.Contains(r.stderr, "run walmirror run into it first") || fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("verify --target %s exited %d (want 2, no copy), tables %v then %v:\n%s", c.target, r.code, before, after, r.stderr)
		}
	}
}

// TestVerifyAbsentEmptyTable: a published table that has no rows and that
// the copy lacks (dropped behind walmirror's back) is different, exit 1,
// and --repair creates it again. Before, it was "equal" (helper-128), and
// a reader of the copy got "no such table".
func TestVerifyAbsentEmptyTable(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
				CREATE TABLE e (id int PRIMARY KEY, v text);`)
			target, tamper := c.make(t)
			slot := "s_" + db
			runNow(t, dsn, target, slot)
			tamper(`DROP TABLE ` + c.table("e"))
			r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
			if r.code != 1 || !strings.Contains(r.stdout, "the copy has no such table") {
				t.Fatalf("verify of a copy without an empty published table exited %d, want 1 saying so:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--repair"); r.code != 0 {
				t.Errorf("verify --repair exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 || !strings.Contains(r.stdout, "2 tables equal") {
				t.Errorf("verify after the repair exited %d, want 0:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

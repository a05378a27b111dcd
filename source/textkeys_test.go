package source

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// TestTextKeysBytewise: a chunk says whether its table's text keys sort
// by their bytes, from each key column's collation (or the database's) and
// the database's encoding, on every version's catalog.
func TestTextKeysBytewise(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	v := srv.VersionNum()
	if err := srv.Exec(ctx, "postgres", `CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`); err != nil {
		t.Fatal(err)
	}
	ddl := `CREATE TABLE ints (id int PRIMARY KEY, v text);
		CREATE TABLE dflt (k text PRIMARY KEY);
		CREATE TABLE c (k text COLLATE "C", n int, PRIMARY KEY (n, k));
		CREATE TABLE posix (k varchar(20) COLLATE "POSIX" PRIMARY KEY);
		CREATE TABLE cutf8 (k text COLLATE "C.utf8" PRIMARY KEY);
		CREATE PUBLICATION p FOR ALL TABLES;`
	want := map[string]bool{"ints": true, "dflt": true, "c": true, "posix": true, "cutf8": true}
	admin, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var icu bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_collation WHERE collname = 'und-x-icu')`).Scan(&icu); err != nil {
		t.Fatal(err)
	}
	// A language's collation, from the machine's locales (or ICU's).
	var lang string
	if err := admin.QueryRow(ctx, `SELECT coalesce(max(quote_ident(collname)), '') FROM pg_collation
		WHERE collprovider = 'c' AND collencoding IN (-1, 6) AND collcollate NOT IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8', 'ucs_basic')
			AND collcollate ~ '^[a-z][a-z]_'`).Scan(&lang); err != nil {
		t.Fatal(err)
	}
	if lang != "" {
		ddl += `CREATE TABLE lang (k text COLLATE ` + lang + ` PRIMARY KEY);
			CREATE TABLE nonkey (id int PRIMARY KEY, v text COLLATE ` + lang + `);`
		want["lang"], want["nonkey"] = false, true
	}
	t.Logf("language collation %q, ICU %v", lang, icu)
	if icu {
		ddl += `CREATE TABLE icu (k text COLLATE "und-x-icu" PRIMARY KEY);`
		want["icu"] = false
	}
	if v >= 170000 {
		ddl += `CREATE TABLE builtin (k text COLLATE pg_c_utf8 PRIMARY KEY);`
		want["builtin"] = true
	}
	if err := srv.Exec(ctx, "postgres", ddl); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "latin", `CREATE TABLE l (k text PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES`); err != nil {
		t.Fatal(err)
	}
	check := func(db, table string, want bool) {
		t.Helper()
		conn, err := pgx.Connect(ctx, srv.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var relid uint32
		if err := conn.QueryRow(ctx, `SELECT $1::regclass::oid`, table).Scan(&relid); err != nil {
			t.Fatal(err)
		}
		c := &Copier{conn: conn, publication: "p", version: v}
		ch, err := c.BeginChunk(ctx, relid)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		defer ch.tx.Rollback(ctx)
		if ch.TextKeysBytewise != want {
			t.Errorf("%s.%s: TextKeysBytewise = %v, want %v", db, table, ch.TextKeysBytewise, want)
		}
	}
	for table, w := range want {
		check("postgres", table, w)
	}
	check("latin", "l", false) // C, but not UTF-8: LATIN1 bytes order otherwise

	// What "sorts by bytes" rests on: each collation called so orders
	// strings of every plane as Go's byte comparison does.
	words := []string{"", " ", "!", "0", "9", "A", "Z", "_", "a", "a b", "a-b", "ab", "aB", "Ab", "z", "~", "\u007f",
		"\u00a0", "é", "e\u0301", "É", "ß", "ẞ", "İ", "ı", "Ω", "я", "€", "中", "\uffef", "😀", "𝔸", "\U0010ffff"}
	colls := []string{`"C"`, `"POSIX"`, `"C.utf8"`, `"default"`}
	if v >= 170000 {
		colls = append(colls, "pg_c_utf8")
	}
	for _, coll := range colls {
		rows, err := admin.Query(ctx, `SELECT w FROM unnest($1::text[]) w ORDER BY w COLLATE `+coll, words)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(got) || len(got) != len(words) {
			t.Errorf("ORDER BY COLLATE %s: %q, not in byte order", coll, got)
		}
	}
}

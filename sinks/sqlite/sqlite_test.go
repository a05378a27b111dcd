package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/sinktest"
	"github.com/walmirror/walmirror/sinks/sqlite"
)

func TestContract(t *testing.T) {
	sinktest.Run(t, sinktest.FileTarget("sqlite", "target.db",
		func(ctx context.Context, path string) (sinktest.Sink, error) { return sqlite.Open(ctx, path, nil) },
		func(t *testing.T, _ sinktest.Sink, path string, table *schema.Table) [][]string {
			return readRows(t, path, table)
		}))
}

// readDB opens the target file on a connection of its own, so reads see only
// what the sink committed.
func readDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// readRows renders a target table's rows the way sinktest wants them.
func readRows(t *testing.T, path string, table *schema.Table) [][]string {
	t.Helper()
	db := readDB(t, path)
	defer db.Close()
	name := sqlite.TableName(table.Schema, table.Name)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return nil
	}
	cols := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		cols[i] = quote(c.Name)
	}
	rows, err := db.Query("SELECT " + strings.Join(cols, ", ") + " FROM " + quote(name))
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	defer rows.Close()
	var out [][]string
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := make([]string, len(vals))
		for i, v := range vals {
			r[i] = renderValue(t, v)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// renderValue turns a stored SQLite value back into PostgreSQL's text form.
func renderValue(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return pgFloat(v)
	case string:
		return v
	case []byte:
		return `\x` + hex.EncodeToString(v)
	}
	t.Fatalf("unexpected stored value %#v (%T)", v, v)
	return ""
}

// pgFloat formats a float8 as PostgreSQL (12+) prints it: the shortest
// representation that reads back exactly, in fixed notation for decimal
// exponents from -4 to 14 and in exponent notation otherwise.
func pgFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	case math.IsNaN(v):
		return "NaN"
	}
	e := strconv.FormatFloat(v, 'e', -1, 64)
	exp, err := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if err != nil {
		panic(err)
	}
	if exp >= -4 && exp < 15 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return e
}

func TestPGFloat(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 1.5: "1.5", 0.1: "0.1", 1e-4: "0.0001", 1e-5: "1e-05", 123456.789: "123456.789",
		1e14: "100000000000000", 1e15: "1e+15", -2.25e-300: "-2.25e-300", 1e300: "1e+300",
		math.Inf(1): "Infinity", math.Inf(-1): "-Infinity",
	} {
		if got := pgFloat(in); got != want {
			t.Errorf("pgFloat(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestTableName(t *testing.T) {
	for _, c := range []struct{ schema, table, want string }{
		{"public", "t", "t"},
		{"other", "t", "other.t"},
		{"public", "other.t", "other%2Et"},
		{"other.t", "x", "other%2Et.x"},
		{"other", "t.x", "other.t%2Ex"},
		{"public", "100%", "100%25"},
		{"a%b", "c.d", "a%25b.c%2Ed"},
		{"Public", "t", "Public.t"},
	} {
		if got := sqlite.TableName(c.schema, c.table); got != c.want {
			t.Errorf("TableName(%q, %q) = %q, want %q", c.schema, c.table, got, c.want)
		}
	}
}

// TestTypeMapping checks what SQLite stores for each kind of PostgreSQL type:
// the exact value and its storage class.
func TestTypeMapping(t *testing.T) {
	const (
		oidInt4Array = 1007
		oidTextArray = 1009
		oidUnknown   = 16400 // a user type: enum, domain, composite, extension
	)
	type want struct {
		in    string
		class string // typeof()
		value any
	}
	cases := []struct {
		name     string
		oid      uint32
		declared string
		values   []want
	}{
		{"bool", schema.OIDBool, "INTEGER", []want{{"t", "integer", int64(1)}, {"f", "integer", int64(0)}}},
		{"int2", schema.OIDInt2, "INTEGER", []want{{"-32768", "integer", int64(-32768)}, {"32767", "integer", int64(32767)}}},
		{"int4", schema.OIDInt4, "INTEGER", []want{{"-2147483648", "integer", int64(math.MinInt32)}, {"2147483647", "integer", int64(math.MaxInt32)}}},
		{"int8", schema.OIDInt8, "INTEGER", []want{{"-9223372036854775808", "integer", int64(math.MinInt64)}, {"9223372036854775807", "integer", int64(math.MaxInt64)}}},
		{"oid", schema.OIDOid, "INTEGER", []want{{"4294967295", "integer", int64(math.MaxUint32)}}},
		{"float4", schema.OIDFloat4, "REAL", []want{
			{"1.5", "real", 1.5}, {"1.1", "real", 1.1}, {"-0.25", "real", -0.25},
			{"NaN", "text", "NaN"}, {"Infinity", "real", math.Inf(1)}, {"-Infinity", "real", math.Inf(-1)},
		}},
		{"float8", schema.OIDFloat8, "REAL", []want{
			{"-2.25e-300", "real", -2.25e-300}, {"1e+308", "real", 1e308}, {"0.1", "real", 0.1}, {"3", "real", 3.0},
			{"NaN", "text", "NaN"}, {"Infinity", "real", math.Inf(1)}, {"-Infinity", "real", math.Inf(-1)},
		}},
		{"numeric", schema.OIDNumeric, "TEXT", []want{
			{"123456789012345678901234567890.123456789", "text", "123456789012345678901234567890.123456789"},
			{"12.50", "text", "12.50"}, {"-0.001", "text", "-0.001"}, {"42", "text", "42"},
			{"NaN", "text", "NaN"}, {"Infinity", "text", "Infinity"},
		}},
		{"text", schema.OIDText, "TEXT", []want{{"hello ✓", "text", "hello ✓"}, {"007", "text", "007"}, {"1e3", "text", "1e3"}, {"", "text", ""}}},
		{"varchar", schema.OIDVarchar, "TEXT", []want{{"x", "text", "x"}}},
		{"bpchar", schema.OIDBpchar, "TEXT", []want{{"ab  ", "text", "ab  "}}},
		{"char", schema.OIDChar, "TEXT", []want{{"c", "text", "c"}}},
		{"name", schema.OIDName, "TEXT", []want{{"pg_class", "text", "pg_class"}}},
		{"bytea", schema.OIDBytea, "BLOB", []want{{`\x00ff`, "blob", []byte{0x00, 0xff}}, {`\xDEADbeef`, "blob", []byte{0xde, 0xad, 0xbe, 0xef}}, {`\x`, "blob", []byte{}}}},
		{"json", schema.OIDJSON, "TEXT", []want{{`{"a": [1, 2.50]}`, "text", `{"a": [1, 2.50]}`}, {"1", "text", "1"}}},
		{"jsonb", schema.OIDJSONB, "TEXT", []want{{`{"a": [1, 2.50]}`, "text", `{"a": [1, 2.50]}`}}},
		{"date", schema.OIDDate, "TEXT", []want{{"2024-01-02", "text", "2024-01-02"}, {"infinity", "text", "infinity"}, {"0044-03-15 BC", "text", "0044-03-15 BC"}}},
		{"time", schema.OIDTime, "TEXT", []want{{"03:04:05.123456", "text", "03:04:05.123456"}, {"24:00:00", "text", "24:00:00"}}},
		{"timetz", schema.OIDTimeTZ, "TEXT", []want{{"03:04:05+05:30", "text", "03:04:05+05:30"}}},
		{"timestamp", schema.OIDTimestamp, "TEXT", []want{
			{"2024-01-02 03:04:05", "text", "2024-01-02T03:04:05.000000"},
			{"2024-01-02 03:04:05.123456", "text", "2024-01-02T03:04:05.123456"},
			{"2024-01-02 03:04:05.5", "text", "2024-01-02T03:04:05.500000"},
			{"infinity", "text", "infinity"}, {"-infinity", "text", "-infinity"},
			{"0044-03-15 12:00:00 BC", "text", "0044-03-15 12:00:00 BC"},
			{"12345-01-02 03:04:05", "text", "12345-01-02T03:04:05.000000"},
		}},
		{"timestamptz", schema.OIDTimestampTZ, "TEXT", []want{
			{"2024-01-02 03:04:05.5+00", "text", "2024-01-02T03:04:05.500000Z"},
			{"2024-01-02 03:04:05+00", "text", "2024-01-02T03:04:05.000000Z"},
			{"2024-01-02 03:04:05.000001+00", "text", "2024-01-02T03:04:05.000001Z"},
			{"infinity", "text", "infinity"}, {"-infinity", "text", "-infinity"},
			{"0044-03-15 12:00:00+00 BC", "text", "0044-03-15 12:00:00+00 BC"},
			// Not UTC (the source session's TimeZone was not UTC): kept as sent.
			{"2024-01-02 03:04:05+05:30", "text", "2024-01-02 03:04:05+05:30"},
		}},
		{"uuid", schema.OIDUUID, "TEXT", []want{{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "text", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}}},
		{"interval", schema.OIDInterval, "TEXT", []want{{"1 year 2 mons 3 days 04:05:06.5", "text", "1 year 2 mons 3 days 04:05:06.5"}}},
		{"int4[]", oidInt4Array, "TEXT", []want{{"{1,2,3}", "text", "{1,2,3}"}}},
		{"text[]", oidTextArray, "TEXT", []want{{`{"a b",NULL,"c\"d"}`, "text", `{"a b",NULL,"c\"d"}`}}},
		{"unknown", oidUnknown, "TEXT", []want{{"(1,foo)", "text", "(1,foo)"}, {"5", "text", "5"}}},
	}

	cols := []schema.Column{{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true}}
	for _, c := range cases {
		cols = append(cols, schema.Column{Name: c.name, TypeID: c.oid, Typmod: -1})
	}
	tbl := schema.NewTable(1, "public", "types", schema.IdentityDefault, cols)
	type check struct {
		id, col int
		want    want
	}
	var tuples []schema.Tuple
	var checks []check
	for ci, c := range cases {
		for _, w := range c.values {
			id := len(tuples) + 1
			tup := make(schema.Tuple, len(cols))
			for i := range tup {
				tup[i] = schema.Datum{State: schema.Null}
			}
			tup[0] = schema.Datum{State: schema.Text, Data: []byte(strconv.Itoa(id))}
			tup[ci+1] = schema.Datum{State: schema.Text, Data: []byte(w.in)}
			tuples = append(tuples, tup)
			checks = append(checks, check{id, ci + 1, w})
		}
	}

	path := filepath.Join(t.TempDir(), "types.db")
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: tuples}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{LSN: 1, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}

	db := readDB(t, path)
	declared := map[string]string{}
	rows, err := db.Query(`SELECT name, type FROM pragma_table_info('types')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		declared[n] = typ
	}
	rows.Close()
	for _, c := range cases {
		if declared[c.name] != c.declared {
			t.Errorf("column %s (OID %d) declared %q, want %q", c.name, c.oid, declared[c.name], c.declared)
		}
	}

	for _, ch := range checks {
		name := cols[ch.col].Name
		var class string
		var got any
		q := fmt.Sprintf("SELECT typeof(%s), %s FROM types WHERE id = ?", quote(name), quote(name))
		if err := db.QueryRow(q, ch.id).Scan(&class, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if class != ch.want.class || !sameValue(got, ch.want.value) {
			t.Errorf("%s %q: stored %s %#v, want %s %#v", name, ch.want.in, class, got, ch.want.class, ch.want.value)
		}
	}

	// Whole-row matching finds rows by the stored forms of every kind.
	kl := schema.NewTable(2, "public", "types_keyless", schema.IdentityFull, cols[1:])
	var changes []schema.RowChange
	for _, tup := range tuples {
		changes = append(changes, schema.RowChange{Op: schema.Insert, New: tup[1:]})
	}
	for _, tup := range tuples {
		changes = append(changes, schema.RowChange{Op: schema.Delete, Old: tup[1:]})
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, kl); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: kl, Rows: changes[:len(tuples)]}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{LSN: 2, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM types_keyless`).Scan(&n); err != nil || n != len(tuples) {
		t.Fatalf("types_keyless has %d rows (%v), want %d", n, err, len(tuples))
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: kl, Rows: changes[len(tuples):]}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{LSN: 3, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM types_keyless`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after deleting every row by value, types_keyless has %d rows (%v)", n, err)
	}
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case []byte:
		g, ok := got.([]byte)
		return ok && string(g) == string(w)
	case float64:
		g, ok := got.(float64)
		return ok && (g == w || math.IsNaN(g) && math.IsNaN(w)) && math.Signbit(g) == math.Signbit(w)
	}
	return got == want
}

// TestBadValues: a value the sink cannot convert fails the write with the
// column named, and the transaction can be rolled back.
func TestBadValues(t *testing.T) {
	ctx := t.Context()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bad.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := schema.NewTable(1, "public", "bad", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "raw", TypeID: schema.OIDBytea, Typmod: -1},
	})
	for _, c := range []struct {
		tup  schema.Tuple
		want string
	}{
		{schema.Tuple{{State: schema.Text, Data: []byte("x1")}, {State: schema.Null}}, `"id"`},
		{schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Text, Data: []byte(`\000`)}}, `"raw"`}, // bytea_output = escape
		{schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Text, Data: []byte(`\xzz`)}}, `"raw"`},
		{schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Unchanged}}, `"raw"`}, // unsent in a complete row
	} {
		for _, b := range []schema.Batch{{Inserts: []schema.Tuple{c.tup}}, {Updates: []schema.Tuple{c.tup}}} {
			if err := s.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.EnsureTable(ctx, tbl); err != nil {
				t.Fatal(err)
			}
			b.Table = tbl
			err := s.Write(ctx, &b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Write(%q) = %v, want an error naming column %s", c.tup, err, c.want)
			}
			if err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReservedNames: source tables whose SQLite names would be walmirror's or
// SQLite's own are refused, in any letter case (SQLite names are
// case-insensitive), and the state table stays intact.
func TestReservedNames(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "reserved.db")
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := schema.State{LSN: 7, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	cols := []schema.Column{{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "v", TypeID: schema.OIDText, Typmod: -1}}
	for _, name := range []string{"_walmirror_state", "_WALMIRROR_STATE", "_Walmirror_migrations", "sqlite_master", "SQLITE_stat1"} {
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		err := s.EnsureTable(ctx, schema.NewTable(1, "public", name, schema.IdentityDefault, cols))
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("EnsureTable(public.%q) = %v, want a reserved-name error", name, err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.ReadState(ctx)
	if err != nil || !ok || !reflect.DeepEqual(got, st) {
		t.Fatalf("state after refused tables = %+v, %v, %v; want %+v", got, ok, err, st)
	}
	var n int
	if err := readDB(t, path).QueryRow(`SELECT count(*) FROM pragma_table_info('_walmirror_state')`).Scan(&n); err != nil || n != 11 {
		t.Fatalf("_walmirror_state has %d columns (%v), want 11", n, err)
	}
}

// TestOpenUnwritable: a path that cannot hold a database fails Open with an
// error that names it. (Tests may run as root, which file modes do not stop,
// so use a missing directory and a directory in place of the file.)
func TestOpenUnwritable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ what, path string }{
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "target.db")},
		{"path is a directory", dir},
	} {
		s, err := sqlite.Open(t.Context(), c.path, nil)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open(%q) succeeded", c.what, c.path)
			continue
		}
		if !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: Open error %q does not name the path %q", c.what, err, c.path)
		}
		t.Logf("%s: %v", c.what, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(err) {
		t.Errorf("Open created directories: %v", err)
	}
}

// TestOddPaths: file names with characters that mean something in a URI.
func TestOddPaths(t *testing.T) {
	for _, name := range []string{"a?b.db", "c#d.db", "e%20f.db", "g h.db", "i:j.db", "ü.db"} {
		path := filepath.Join(t.TempDir(), name)
		s, err := sqlite.Open(t.Context(), path, nil)
		if err != nil {
			t.Errorf("Open(%q): %v", path, err)
			continue
		}
		if err := s.Begin(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(t.Context(), schema.State{LSN: 1, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Open(%q) did not write that file: %v", path, err)
		}
	}
}

// TestLargeInserts: multi-row INSERTs of large values (over the size bound
// of a statement whose values are bound in one call) and of small ones,
// with the same statement shapes, read back equal; a duplicate key fails.
func TestLargeInserts(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "large.db")
	s, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := schema.NewTable(1, "public", "large", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	text := func(v string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(v)} }
	var rows []schema.Tuple
	want := map[string]string{}
	for i := range 250 {
		v := strconv.Itoa(i)
		if i < 100 {
			v = strings.Repeat(v, 20_000) // 100 rows of 20-60 kB: over 1 MB in one statement
		}
		rows = append(rows, schema.Tuple{text(strconv.Itoa(i)), text(v)})
		want[strconv.Itoa(i)] = v
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows}); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows[:1]}); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Errorf("a duplicate key: %v", err)
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{Slot: "s", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range readRows(t, path, tbl) {
		got[r[0]] = r[1]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%d rows read back, want %d, or values differ", len(got), len(want))
	}
}

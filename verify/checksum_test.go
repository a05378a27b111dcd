package verify

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/schema"
	duckdbsink "github.com/walmirror/walmirror/sinks/duckdb"
	sqlitesink "github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
)

// rowsOnly hides a reader's checksums: Compare then compares row by row.
type rowsOnly struct{ Reader }

// checksumEnv is a source database and a PostgreSQL copy of its tables
// (same DDL, rows copied by COPY), on a real server.
type checksumEnv struct {
	t        *testing.T
	srv      *testenv.Server
	src, dst string // database names
	rows     map[string][]byte
	rowsOK   bool // a table keyed by an integer may be compared row by row
	// exact: a range whose rows are equal must have equal checksums
	// (values equal but hashed otherwise, such as numeric 1.5 and 1.50,
	// make a range differ, which only costs its row comparison).
	exact bool
	// foreignSQL runs on a SQLite or DuckDB copy once the sink filled it:
	// changes behind the sink's back, in forms it would not write.
	foreignSQL string
	// targets are the copies compared: "postgres" (dst itself), "sqlite"
	// and "duckdb" (what those sinks make of dst's rows); none: postgres.
	targets []string
}

func newChecksumEnv(t *testing.T, ddl, fill string, tables ...string) *checksumEnv {
	if testing.Short() {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	e := &checksumEnv{t: t, srv: srv, rows: map[string][]byte{}}
	var err error
	if e.src, err = srv.CreateDatabase(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	if e.dst, err = srv.CreateDatabase(ctx, "dst"); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{e.src, e.dst} {
		if err := srv.Exec(ctx, db, ddl); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Exec(ctx, e.src, fill+"; CREATE PUBLICATION p FOR ALL TABLES"); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		var buf bytes.Buffer
		conn := e.conn(e.src)
		if _, err := conn.PgConn().CopyTo(ctx, &buf, "COPY "+tb+" TO STDOUT"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		e.rows[tb] = buf.Bytes()
		e.restore(tb)
	}
	return e
}

func (e *checksumEnv) conn(db string) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), e.srv.DSN(db))
	if err != nil {
		e.t.Fatal(err)
	}
	return conn
}

// restore makes the copy of tb equal to the source again.
func (e *checksumEnv) restore(tb string) {
	ctx := context.Background()
	conn := e.conn(e.dst)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "TRUNCATE "+tb); err != nil {
		e.t.Fatal(err)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(e.rows[tb]), "COPY "+tb+" FROM STDIN"); err != nil {
		e.t.Fatal(err)
	}
}

func (e *checksumEnv) exec(db, q string) {
	if err := e.srv.Exec(context.Background(), db, q); err != nil {
		e.t.Fatal(err)
	}
}

// compare compares every table by checksums and row by row, checks that
// both found the same, and returns the checksums' reports.
func (e *checksumEnv) compare() map[string]*TableReport {
	t := e.t
	t.Helper()
	ctx := context.Background()
	sn, err := source.OpenComparison(ctx, source.Config{DSN: e.srv.DSN(e.src), Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close(ctx)
	tables, err := sn.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	targets := e.targets
	if len(targets) == 0 {
		targets = []string{"postgres"}
	}
	out := map[string]*TableReport{}
	for _, target := range targets {
		dst := e.copyReader(target)
		defer dst.Close()
		for _, tb := range tables {
			vt := NewTable(tb)
			opts := Options{Keys: 100}
			sums := Compare(ctx, vt, SourceReader(sn), dst, opts)
			rows := Compare(ctx, vt, rowsOnly{SourceReader(sn)}, rowsOnly{dst}, opts)
			if sums.Err != "" || rows.Err != "" {
				t.Fatalf("%s in %s: %s / %s", vt.Qualified(), target, sums.Err, rows.Err)
			}
			if sums.Method != MethodChecksum && !e.rowsOK {
				t.Errorf("%s in %s compared by %s, want checksums (%s)", vt.Qualified(), target, sums.Method, sums.Note)
			}
			if e.exact && sums.Note != "" {
				t.Errorf("%s in %s: %s", vt.Qualified(), target, sums.Note)
			}
			a, b := sums, rows
			a.Method, a.Note, a.Took, b.Method, b.Note, b.Took = "", "", 0, "", "", 0
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s in %s: checksums found\n%+v\nrows found\n%+v", vt.Qualified(), target, sums, rows)
			}
			if prev := out[tb.Name]; prev != nil && prev.Different() != sums.Different() {
				t.Errorf("%s: %s found it different: %v, %s: %v", vt.Qualified(), targets[0], prev.Different(), target, sums.Different())
			}
			if out[tb.Name] == nil {
				out[tb.Name] = &sums
			}
		}
	}
	return out
}

// copyReader opens the copy target of dst: dst itself, or a SQLite or
// DuckDB file the sink fills with dst's rows (as walmirror's initial copy
// would).
func (e *checksumEnv) copyReader(target string) interface {
	Reader
	Close() error
} {
	t := e.t
	t.Helper()
	ctx := context.Background()
	if target == "postgres" {
		dst, err := OpenPostgres(ctx, e.srv.DSN(e.dst))
		if err != nil {
			t.Fatal(err)
		}
		return dst
	}
	e.exec(e.dst, "DROP PUBLICATION IF EXISTS p; CREATE PUBLICATION p FOR ALL TABLES")
	sn, err := source.OpenComparison(ctx, source.Config{DSN: e.srv.DSN(e.dst), Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close(ctx)
	tables, err := sn.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type sink interface {
		EnsureTable(context.Context, *schema.Table) error
		Begin(context.Context) error
		Write(context.Context, *schema.Batch) error
		Commit(context.Context, schema.State) error
		Close() error
	}
	path := filepath.Join(t.TempDir(), "copy."+target)
	var s sink
	var duck *duckdbsink.Sink
	if target == "sqlite" {
		s, err = sqlitesink.Open(ctx, path, slog.New(slog.DiscardHandler))
	} else {
		duck, err = duckdbsink.Open(ctx, path, slog.New(slog.DiscardHandler))
		s = duck
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if err := s.EnsureTable(ctx, tb); err != nil {
			t.Fatalf("%s: %v", tb.QualifiedName(), err)
		}
		var rows []schema.Tuple
		if err := sn.Copy(ctx, tb, func(tup schema.Tuple) error { rows = append(rows, tup); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, &schema.Batch{Table: tb, Inserts: rows}); err != nil {
			t.Fatalf("%s into %s: %v", tb.QualifiedName(), target, err)
		}
	}
	if err := s.Commit(ctx, schema.State{Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	if e.foreignSQL != "" && target == "duckdb" {
		if _, err := duck.DB().ExecContext(ctx, e.foreignSQL); err != nil {
			t.Fatal(err)
		}
	}
	if target == "sqlite" {
		s.Close()
		if e.foreignSQL != "" {
			db, err := sql.Open("sqlite3", path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.ExecContext(ctx, e.foreignSQL)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		r, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing writes to the copy: its first pass of checksums by key
		// range is read in two halves at once.
		if r.twin(ctx) == nil {
			t.Error("the SQLite copy has no second connection seeing what the first sees")
		}
		return r
	}
	r, err := DuckDB(ctx, duck.DB())
	if err != nil {
		t.Fatal(err)
	}
	return closeBoth{r, duck}
}

// closeBoth closes a reader, then the sink whose database it reads.
type closeBoth struct {
	*SQLReader
	sink interface{ Close() error }
}

func (c closeBoth) Close() error {
	err := c.SQLReader.Close()
	if cerr := c.sink.Close(); err == nil {
		err = cerr
	}
	return err
}

const hostileDDL = `
CREATE TYPE mood AS ENUM ('happy', 'it''s "sad"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE hv (
	id int8 PRIMARY KEY, s text, vc varchar(20), b bytea, f8 float8, f4 float4, n numeric, n2 numeric(12,3), big text,
	j jsonb, js json, a int[], ta text[], a8 int8[], an numeric(12,3)[], atz timestamptz[], af float8[], ab bool[], t70 timestamp, tz70 timestamptz, iv interval, d date, ts timestamp, tz timestamptz, tt timetz, tm time,
	u uuid, m mood, p posint, c char(5), ok bool, sm int2, i4 int4, i8 int8)`

// hostileFill: quotes, NUL in bytea, unicode, NaN and infinities, 1 MB of
// text, NULLs, numerics with many digits, timestamps near infinity and BC,
// json with spacing and duplicate keys.
const hostileFill = `
INSERT INTO hv SELECT i,
	(ARRAY[E'it''s "q" \\ ,()', '', ' ', 'é✓‏ 𝄞', E'tab\there\nnl', 'NULL', NULL, 'x'])[i % 8 + 1],
	(ARRAY['a', '', NULL, 'ü'])[i % 4 + 1],
	(ARRAY['\x00ff00'::bytea, '\x'::bytea, NULL, convert_to(E'it''s', 'UTF8')])[i % 4 + 1],
	(ARRAY['NaN', 'Infinity', '-Infinity', '-0', '0', '1e-310', '0.1', NULL])[i % 8 + 1]::float8,
	(ARRAY['NaN', '-Infinity', 'Infinity', '-0', '1e-45', '0.1', '3.4028235e38', NULL])[i % 8 + 1]::float4,
	(ARRAY['NaN', 'Infinity', '-Infinity', '-0.000', '123456789012345678901234567890.000000000000000000001', '0.10', '1e-100', NULL])[i % 8 + 1]::numeric,
	(ARRAY['1.500', '-0.001', '999999999.999', NULL])[i % 4 + 1]::numeric(12,3),
	CASE WHEN i = 3 THEN repeat('x', 1 << 20) END,
	(ARRAY['{"a": 1.0, "é": [1, 2.50, null, "\u0001x"]}', '{"b": "it''s"}', '[]', NULL])[i % 4 + 1]::jsonb,
	(ARRAY['{ "dup": 1,  "dup": 2 }', '"x"', 'null', NULL])[i % 4 + 1]::json,
	(ARRAY['{1,NULL,-1}', '{}', NULL])[i % 3 + 1]::int[],
	(ARRAY[E'{"a,b",NULL,"NULL","","\\"{}\\""}', '{}', NULL])[i % 3 + 1]::text[],
	(ARRAY['{1,-9223372036854775808,NULL,4294967296}', '{}', NULL])[i % 3 + 1]::int8[],
	(ARRAY['{1.500,-0.001,NULL}', '{0}', NULL])[i % 3 + 1]::numeric(12,3)[],
	(ARRAY['{infinity,"2024-06-01 12:00:00+02",NULL,"0001-01-01 00:00:00+00 BC"}', '{}', NULL])[i % 3 + 1]::timestamptz[],
	(ARRAY['{NaN,-0,Infinity,NULL,0.1}', '{-Infinity}', NULL])[i % 3 + 1]::float8[],
	(ARRAY['{t,f,NULL}', '{}', NULL])[i % 3 + 1]::bool[],
	(ARRAY['1969-12-31 23:59:59.999999', '1901-12-13 20:45:51', '2038-01-19 03:14:08', '1970-01-01 00:00:00', '9999-12-31 23:59:59.999999', NULL])[i % 6 + 1]::timestamp,
	(ARRAY['1969-12-31 23:59:59.999999+00', '1901-12-13 20:45:51+00', '2038-01-19 03:14:08+00', '1970-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00', NULL])[i % 6 + 1]::timestamptz,
	(ARRAY['1 year 2 mons -3 days 04:05:06.789', '1 mon', '30 days', '-00:00:00.000001', NULL])[i % 5 + 1]::interval,
	(ARRAY['infinity', '-infinity', '0044-03-15 BC', '2024-02-29', '10000-01-01', NULL])[i % 6 + 1]::date,
	(ARRAY['infinity', '-infinity', '0044-03-15 12:00:00.5 BC', '294276-12-31 23:59:59.999999', '4713-01-01 00:00:00 BC', NULL])[i % 6 + 1]::timestamp,
	(ARRAY['-infinity', 'infinity', '0001-01-01 00:00:00+00 BC', '2024-06-01 12:00:00+02', '2000-01-01 00:00:00.000001+00', '294276-12-31 23:59:59.999999+00', NULL])[i % 7 + 1]::timestamptz,
	(ARRAY['24:00:00+00', '04:05:06.5+05:30', '00:00:00-14:59', NULL])[i % 4 + 1]::timetz,
	(ARRAY['24:00:00', '00:00:00.000001', '12:34:56', NULL])[i % 4 + 1]::time,
	CASE WHEN i % 5 > 0 THEN ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a' || lpad(to_hex(i), 2, '0'))::uuid END,
	(ARRAY['happy', 'it''s "sad"', NULL])[i % 3 + 1]::mood,
	CASE WHEN i % 4 > 0 THEN i END,
	(ARRAY['ab', '', 'é', NULL])[i % 4 + 1],
	(ARRAY[true, false, NULL])[i % 3 + 1],
	(ARRAY[-32768, 32767, 0, NULL])[i % 4 + 1],
	(ARRAY[-2147483648, 2147483647, 0, NULL])[i % 4 + 1],
	(ARRAY[1, -9223372036854775808, 9223372036854775807, 4294967296, NULL])[i % 5 + 1]
FROM generate_series(1, 42) i;
INSERT INTO hv (id) VALUES (-9223372036854775808), (9223372036854775807), (0)`

// TestChecksumHostileValues: checksums and the row comparison find the
// same for hostile values, equal and changed one at a time (numerics and
// floats that are equal by value, the same instant in another zone),
// including what only checksums of text can tell apart.
//
// The copies are PostgreSQL, SQLite and DuckDB (what the sinks make of the
// same rows, so that checksums of each target's forms are checked against
// the source's hashes); DuckDB's with the timestamps past its range
// (294247 AD) a little earlier, and without the arrays a LIST cannot hold
// (several dimensions, other bounds).
func TestChecksumHostileValues(t *testing.T) {
	t.Run("postgres,sqlite", func(t *testing.T) {
		testChecksumHostileValues(t, hostileDDL, hostileFill, "postgres", "sqlite")
	})
	t.Run("duckdb", func(t *testing.T) {
		testChecksumHostileValues(t, hostileDDL, strings.ReplaceAll(hostileFill, "294276", "294246"), "duckdb")
	})
}

func testChecksumHostileValues(t *testing.T, ddl, fill string, targets ...string) {
	e := newChecksumEnv(t, ddl, fill, "hv")
	e.targets = targets
	duck := targets[0] == "duckdb"
	e.exact = true
	if r := e.compare()["hv"]; r.Different() || r.SourceRows != 45 {
		t.Fatalf("an equal copy: %+v", r)
	}
	e.exact = false
	for _, m := range []struct {
		set   string
		equal bool
	}{
		{"s = s || 'x' WHERE id = 1", false},
		{"s = E'it''s \"q\" \\\\ ,()x' WHERE id = 8", false},
		{"s = NULL WHERE id = 9", false}, // '' → NULL
		{"s = '' WHERE id = 15", false},  // NULL → ''
		{"vc = vc || ' ' WHERE vc IS NOT NULL AND id = 4", false},
		{"b = '\\x00ff01' WHERE id = 4", false},
		{"b = '\\x' WHERE b IS NULL AND id = 2", false},
		{"f8 = '0' WHERE id = 3", true}, // -0 and 0
		{"f8 = 'NaN' WHERE id = 1", false},
		{"f8 = f8 + 1e-16 * f8 WHERE id = 6", false},
		{"f4 = '1e-1' WHERE id = 5", true}, // the same float4
		{"f4 = '0.10000001' WHERE id = 5", false},
		{"n = '0.1' WHERE id = 5", true}, // 0.10
		{"n = '-1e-100' WHERE id = 6", false},
		{"n = 'Infinity' WHERE id = 0", false}, // NULL
		{"n = '123456789012345678901234567890.000000000000000000002' WHERE id = 4", false},
		{"n = 'NaN' WHERE id = 2", false},       // -Infinity
		{"n = 'Infinity' WHERE id = 2", false},  // -Infinity
		{"n2 = '-0.0010' WHERE id = 1", true},   // -0.001
		{"n2 = '0.001' WHERE id = 1", false},    // -0.001
		{"i8 = 4294967296 WHERE id = 5", false}, // 1
		{"i8 = i8 + 1 WHERE id = 6", false},     // -9223372036854775808
		{"ts = ts + interval '4294.967296 s' WHERE id = 4", false},
		{"tz = tz + interval '4294.967296 s' WHERE id = 4", false},
		{"tm = tm + interval '4294.967296 s' WHERE id = 2", false},
		{"big = big || 'y' WHERE id = 3", false},
		{`j = '{"a": 1.00, "é": [1, 2.50, null, "\u0001x"]}' WHERE id = 1`, false}, // jsonb equal as values, printed differently
		{`js = '{"dup": 1, "dup": 2 }' WHERE id = 1`, false},                       // json's spacing is kept
		{"a = '{1,NULL,-2}' WHERE id = 3", false},
		{`ta = '{"a,b",NULL,NULL,""}' WHERE id = 2`, false},
		{"a = '{{1},{NULL},{-1}}' WHERE id = 3", false},                      // two dimensions (not in a DuckDB LIST)
		{`ta = '[0:4]={"a,b",NULL,"NULL","","\"{}\""}' WHERE id = 3`, false}, // bounds
		{"a8 = '{1,-9223372036854775808,NULL,4294967297}' WHERE id = 3", false},
		{"a8 = '{1,-9223372036854775808,4294967296,NULL}' WHERE id = 3", false},
		{"a8 = '{}' WHERE id = 2", false}, // NULL
		{"a8 = NULL WHERE id = 1", false}, // {}
		{"a8 = '{NULL}' WHERE id = 1", false},
		{"an = '{1.5,-0.001,NULL}' WHERE id = 3", true}, // numeric(12,3): 1.500
		{"an = '{1.500,NULL,-0.001}' WHERE id = 3", false},
		{"an = '{1.500,-0.001}' WHERE id = 3", false},
		{"an = '{0.000}' WHERE id = 1", true},
		{"an = '{-0.001}' WHERE id = 1", false},
		{"af = '{NaN,0,Infinity,NULL,0.1}' WHERE id = 3", true}, // -0 and 0
		{"af = '{NaN,-0,Infinity,NULL,0.2}' WHERE id = 3", false},
		{"af = '{Infinity}' WHERE id = 1", false},
		{`atz = '{infinity,"2024-06-01 10:00:00+00",NULL,"0001-01-01 00:00:00+00 BC"}' WHERE id = 3`, true}, // the same instant
		{`atz = '{-infinity,"2024-06-01 10:00:00+00",NULL,"0001-01-01 00:00:00+00 BC"}' WHERE id = 3`, false},
		{`atz = '{infinity,"2024-06-01 10:00:00+00",NULL,"0001-01-01 00:00:00+00"}' WHERE id = 3`, false},
		{"ab = '{t,t,NULL}' WHERE id = 3", false},
		{"t70 = t70 + interval '1 microsecond' WHERE id = 6", false}, // 1969-12-31 23:59:59.999999
		{"t70 = '1970-01-01' WHERE id = 6", false},
		{"t70 = t70 - interval '1 microsecond' WHERE id = 2", false},             // 2038-01-19 03:14:08
		{"tz70 = '1969-12-31 18:59:59.999999-05' WHERE id = 6", true},            // the same instant
		{"tz70 = tz70 + interval '1 microsecond' WHERE id = 1", false},           // 1901
		{"tz70 = 'infinity' WHERE id = 4", false},                                // 9999-12-31
		{`j = '{"é": [1, 2.50, null, "\u0001x"], "a": 1.0}' WHERE id = 4`, true}, // jsonb keeps no key order
		{`js = '{ "dup": 2,  "dup": 1 }' WHERE id = 4`, false},                   // json does
		{"ab = '{f}' WHERE id = 1", false},
		{"iv = '30 days' WHERE id = 1", false}, // 1 mon
		{"iv = '1 mon 0 days' WHERE id = 1", true},
		{"d = 'infinity' WHERE id = 7", false},
		{"ts = '294276-12-31 23:59:59.999998' WHERE id = 3", false},
		{"ts = '0044-03-15 12:00:00.5' WHERE id = 2", false}, // not BC
		{"tz = '2024-06-01 10:00:00+00' WHERE id = 3", true}, // the same instant
		{"tz = '2024-06-01 10:00:00.000001+00' WHERE id = 3", false},
		{"tt = '04:05:06.5+05' WHERE id = 1", false},
		{"tm = '00:00:00' WHERE id = 3", false}, // 24:00:00
		{"u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380aff' WHERE id = 1", false},
		{`m = 'it''s "sad"' WHERE id = 3`, false},
		{"p = p + 1 WHERE id = 1", false},
		{"c = 'ab ' WHERE id = 4", true}, // padded to 5 either way
		{"c = ' ab' WHERE id = 4", false},
		{"ok = NOT ok WHERE id = 1", false},
		{"sm = -32767 WHERE id = 4", false},
		{"i4 = NULL WHERE id = 1", false},
		{"id = 43 WHERE id = 0", false},
		{"id = -9223372036854775807 WHERE id = -9223372036854775808", false},
	} {
		if duck && (strings.Contains(m.set, "{{") || strings.Contains(m.set, "[0:") || strings.Contains(m.set, "294276")) {
			continue
		}
		e.exec(e.dst, "UPDATE hv SET "+m.set)
		r := e.compare()["hv"]
		switch {
		case m.equal && r.Different():
			t.Errorf("SET %s: different, want equal: %+v", m.set, r)
		case !m.equal && !r.Different():
			t.Errorf("SET %s: equal, want different", m.set)
		}
		e.restore("hv")
	}
}

// TestChecksumRanges: keys across the whole range of each integer type,
// differences at the edges, in the middle, outside the source's keys and
// over many ranges are found and named as the row comparison names them.
// In SQLite and DuckDB copies too.
func TestChecksumRanges(t *testing.T) {
	for _, target := range []string{"postgres", "sqlite", "duckdb"} {
		t.Run(target, func(t *testing.T) { testChecksumRanges(t, target) })
	}
}

func testChecksumRanges(t *testing.T, target string) {
	e := newChecksumEnv(t, `
		CREATE TABLE w (id int8 PRIMARY KEY, v text, n int);
		CREATE TABLE s (id int2 PRIMARY KEY, v text);
		CREATE TABLE q (id int4 PRIMARY KEY, v text)`, `
		INSERT INTO w SELECT i * 37, 'v' || i, i FROM generate_series(-60000, 60000) i;
		INSERT INTO w VALUES (-9223372036854775808, 'min', 0), (9223372036854775807, 'max', 0), (9223372036854775806, NULL, NULL);
		INSERT INTO s SELECT i, 'v' || i FROM generate_series(-32768, 32767, 7) i;
		INSERT INTO q SELECT i * 65537, 'v' || i FROM generate_series(-32767, 32767) i`, "w", "s", "q")
	e.targets = []string{target}
	e.exact = true
	got := e.compare()
	e.exact = false
	for _, tb := range []string{"w", "s", "q"} {
		if got[tb].Different() {
			t.Fatalf("%s: an equal copy: %+v", tb, got[tb])
		}
	}
	for _, m := range []struct{ table, sql, want string }{
		{"w", "DELETE FROM w WHERE id = -9223372036854775808", "1 missing, 0 extra, 0 changed"},
		{"w", "UPDATE w SET v = 'x' WHERE id = 9223372036854775807; DELETE FROM w WHERE id = 9223372036854775806", "1 missing, 0 extra, 1 changed"},
		{"w", "INSERT INTO w VALUES (1, 'extra', 1), (-9223372036854775807, 'far', 0)", "0 missing, 2 extra, 0 changed"},
		{"w", "UPDATE w SET n = n + 1 WHERE id = 0; DELETE FROM w WHERE id BETWEEN 37 * 1000 AND 37 * 21000", "20001 missing, 0 extra, 1 changed"},
		{"w", "UPDATE w SET v = v || '.' WHERE id % (37 * 1000) = 0", "0 missing, 0 extra, 121 changed"},
		{"w", "DELETE FROM w", "120004 missing, 0 extra, 0 changed"},
		{"s", "DELETE FROM s WHERE id = -32768; UPDATE s SET v = NULL WHERE id = -32761; INSERT INTO s VALUES (32767, 'x')", "1 missing, 1 extra, 1 changed"},
		{"q", "UPDATE q SET v = 'x' WHERE id IN (-32767 * 65537, 32767 * 65537, 0)", "0 missing, 0 extra, 3 changed"},
		// A copy without an index on the key: compared row by row whole.
		{"q", "ALTER TABLE q DROP CONSTRAINT q_pkey; UPDATE q SET v = 'x' WHERE id IN (-32767 * 65537, 32767 * 65537, 0); INSERT INTO q VALUES (0, 'dup')",
			"0 missing, 1 extra, 3 changed"},
	} {
		if target != "postgres" && strings.Contains(m.sql, "DROP CONSTRAINT") {
			continue // the sinks keep keys unique
		}
		e.exec(e.dst, m.sql)
		e.rowsOK = strings.Contains(m.sql, "DROP CONSTRAINT")
		r := e.compare()[m.table]
		if got := fmt.Sprintf("%d missing, %d extra, %d changed", r.Missing, r.Extra, r.Changed); got != m.want {
			t.Errorf("%s: %s, want %s (%s)", m.sql, got, m.want, r.Note)
		}
		t.Logf("%s: %s", m.sql, r.Note)
		e.restore(m.table)
	}
}

// TestChecksumCollation: text is hashed by its bytes, whatever the
// column's collation (a nondeterministic one holds 'abc' = 'ABC').
func TestChecksumCollation(t *testing.T) {
	const ddl = `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
		CREATE TABLE ci (id int PRIMARY KEY, v text COLLATE ci, w varchar(10) COLLATE ci)`
	e := newChecksumEnv(t, ddl, `INSERT INTO ci VALUES (1, 'abc', 'abc'), (2, 'Straße', 'x')`, "ci")
	if r := e.compare()["ci"]; r.Different() {
		t.Fatalf("an equal copy: %+v", r)
	}
	for _, set := range []string{"v = 'ABC' WHERE id = 1", "w = 'ABC' WHERE id = 1", "v = 'STRASSE' WHERE id = 2"} {
		e.exec(e.dst, "UPDATE ci SET "+set)
		if r := e.compare()["ci"]; !r.Different() {
			t.Errorf("SET %s: equal, want different", set)
		}
		e.restore("ci")
	}
}

// TestChecksumForeignForms: values a SQLite or DuckDB copy holds in forms
// no sink writes (text in an INTEGER column, a timestamp spelled
// otherwise, NUL in text, columns changed to VARCHAR) are found as the row
// comparison finds them, never hidden by the checksums. (A SQLite key
// column is an INTEGER PRIMARY KEY, which refuses what is not an integer.)
func TestChecksumForeignForms(t *testing.T) {
	e := newChecksumEnv(t, `CREATE TABLE f (id int8 PRIMARY KEY, n int, x float8, at timestamptz, amount numeric(10,2), s text)`,
		`INSERT INTO f SELECT i, i, i / 4.0, '2024-01-01'::timestamptz + i * interval '1 s', i / 100.0, 'v' || i FROM generate_series(1, 5000) i`, "f")
	for _, c := range []struct{ target, sql, want string }{
		{"sqlite", `UPDATE f SET n = 'seven' WHERE id = 7`, "0 missing, 0 extra, 1 changed"},
		{"sqlite", `UPDATE f SET x = '2.25' WHERE id = 9`, "0 missing, 0 extra, 0 changed"}, // the same float, as text
		{"sqlite", `UPDATE f SET at = '2024-01-01 00:00:11+00' WHERE id = 11`, "0 missing, 0 extra, 0 changed"},
		{"sqlite", `UPDATE f SET at = '2024-01-01T00:00:12.000001Z' WHERE id = 12`, "0 missing, 0 extra, 1 changed"},
		{"sqlite", `UPDATE f SET amount = '0.150' WHERE id = 15`, "0 missing, 0 extra, 0 changed"}, // equal, spelled otherwise
		{"duckdb", `UPDATE public.f SET amount = NULL WHERE id = 16`, "0 missing, 0 extra, 1 changed"},
		{"duckdb", `UPDATE public.f SET s = s || chr(0) WHERE id = 17`, "0 missing, 0 extra, 1 changed"},
		{"duckdb", `ALTER TABLE public.f ALTER COLUMN amount TYPE VARCHAR; UPDATE public.f SET amount = '0.180' WHERE id = 18`, "0 missing, 0 extra, 0 changed"},
		{"duckdb", `ALTER TABLE public.f ALTER COLUMN n TYPE VARCHAR; UPDATE public.f SET n = '019' WHERE id = 19`, "0 missing, 0 extra, 0 changed"},
	} {
		e.targets, e.foreignSQL = []string{c.target}, c.sql
		r := e.compare()["f"]
		if got := fmt.Sprintf("%d missing, %d extra, %d changed", r.Missing, r.Extra, r.Changed); got != c.want {
			t.Errorf("%s: %s: %s, want %s (%s)", c.target, c.sql, got, c.want, r.Note)
		}
		t.Logf("%s: %s: %s by %s (%s)", c.target, c.sql, r.Status(), r.Method, r.Note)
	}
}

// TestChecksumSwapsAndZeros: values swapped between two rows of one key
// range or bucket, and a float 0 that became NULL, are found by the
// checksums as by the row comparison, in every target. Before, the sums
// of hash_record_extended (linear in its columns' hashes) were unchanged
// by a swap, and a float 0 hashed as a NULL: both verified equal.
func TestChecksumSwapsAndZeros(t *testing.T) {
	e := newChecksumEnv(t, `
		CREATE TABLE w (id int8 PRIMARY KEY, v text, f8 float8, f4 float4, af float8[]);
		CREATE TABLE u (k text PRIMARY KEY, v text, n int);
		CREATE TABLE nk (a int, b text);
		ALTER TABLE nk REPLICA IDENTITY FULL`, `
		INSERT INTO w SELECT i, 'v' || i, CASE WHEN i % 10 = 0 THEN 0 ELSE i END, CASE WHEN i % 10 = 0 THEN 0 ELSE i END,
			CASE WHEN i % 10 = 0 THEN '{0}'::float8[] ELSE ARRAY[i::float8] END FROM generate_series(1, 5000) i;
		INSERT INTO u SELECT 'k' || i, 'v' || i, i FROM generate_series(1, 5000) i;
		INSERT INTO nk SELECT i, 'b' || i FROM generate_series(1, 5000) i`, "w", "u", "nk")
	// Two keys of u whose key hashes share their low 20 bits: the same
	// bucket at any number of buckets.
	var k1, k2 string
	keyHash := recordHash([]string{`k COLLATE "C"`}, nil)
	conn := e.conn(e.src)
	err := conn.QueryRow(context.Background(), `SELECT min(k), max(k) FROM u GROUP BY `+keyHash+` & 1048575 HAVING count(*) > 1 LIMIT 1`).Scan(&k1, &k2)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.targets = []string{"postgres", "sqlite", "duckdb"}
	for tb, r := range e.compare() {
		if r.Different() {
			t.Fatalf("%s: an equal copy: %+v", tb, r)
		}
	}
	for _, m := range []struct{ table, sql, want string }{
		{"w", "UPDATE w SET v = CASE id WHEN 1 THEN 'v2' ELSE 'v1' END WHERE id IN (1, 2)", "0 missing, 0 extra, 2 changed"},
		{"w", "UPDATE w SET f8 = CASE id WHEN 3 THEN 4 ELSE 3 END, f4 = CASE id WHEN 5 THEN 6 ELSE 5 END WHERE id IN (3, 4, 5, 6)", "0 missing, 0 extra, 4 changed"},
		{"w", "UPDATE w SET f8 = NULL WHERE id = 10", "0 missing, 0 extra, 1 changed"},
		{"w", "UPDATE w SET f4 = NULL WHERE id = 20", "0 missing, 0 extra, 1 changed"},
		{"w", "UPDATE w SET af = '{NULL}' WHERE id = 30", "0 missing, 0 extra, 1 changed"},
		{"w", "UPDATE w SET f8 = '-0' WHERE id = 40", "0 missing, 0 extra, 0 changed"},
		{"u", fmt.Sprintf("UPDATE u SET v = CASE k WHEN '%[1]s' THEN (SELECT v FROM u WHERE k = '%[2]s') ELSE (SELECT v FROM u WHERE k = '%[1]s') END WHERE k IN ('%[1]s', '%[2]s')", k1, k2),
			"0 missing, 0 extra, 2 changed"},
		{"nk", "UPDATE nk SET b = CASE a WHEN 1 THEN 'b2' ELSE 'b1' END WHERE a IN (1, 2)", "2 missing, 2 extra, 0 changed"},
	} {
		e.exec(e.dst, m.sql)
		for tb, r := range e.compare() {
			want := "0 missing, 0 extra, 0 changed"
			if tb == m.table {
				want = m.want
			}
			if got := fmt.Sprintf("%d missing, %d extra, %d changed", r.Missing, r.Extra, r.Changed); got != want {
				t.Errorf("%s: %s: %s, want %s (%s)", m.sql, tb, got, want, r.Note)
			}
		}
		e.restore(m.table)
	}
}

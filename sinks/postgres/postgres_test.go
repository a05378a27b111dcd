package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/sinks/sinktest"
	"github.com/walmirror/walmirror/testenv"
)

var _ apply.Sink = (*postgres.Sink)(nil)

// srv is one throwaway PostgreSQL server for every test; each test uses
// databases of its own.
var srv *testenv.Server

func TestMain(m *testing.M) { os.Exit(testenv.RunTests(m, &srv)) }

// newDB creates a database and returns its DSN.
func newDB(tb testing.TB, prefix string) string {
	tb.Helper()
	if srv == nil {
		tb.Skip("needs PostgreSQL (not in -short mode)")
	}
	db, err := srv.CreateDatabase(context.Background(), prefix)
	if err != nil {
		tb.Fatal(err)
	}
	return srv.DSN(db)
}

func open(tb testing.TB, dsn string, opts postgres.Options) *postgres.Sink {
	tb.Helper()
	s, err := postgres.Open(context.Background(), dsn, nil, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// connect opens a plain connection with the session settings walmirror's
// text forms assume (the source's and the sink's).
func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range map[string]string{"DateStyle": "ISO, MDY", "TimeZone": "UTC", "IntervalStyle": "postgres",
		"extra_float_digits": "3", "bytea_output": "hex"} {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// query runs SQL with the simple protocol and returns the rows as PostgreSQL
// prints them (text format: each type's output function), nil for NULL.
func query(tb testing.TB, conn *pgx.Conn, sql string) [][][]byte {
	tb.Helper()
	res, err := conn.PgConn().Exec(context.Background(), sql).ReadAll()
	if err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return res[len(res)-1].Rows
}

func exec(tb testing.TB, conn *pgx.Conn, sql string) {
	tb.Helper()
	if _, err := conn.PgConn().Exec(context.Background(), sql).ReadAll(); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

func qident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// readRows renders a target table's rows for sinktest: PostgreSQL's own text
// output is the form the suite expects, so no mapping is needed.
func readRows(t *testing.T, dsn string, table *schema.Table) [][]string {
	t.Helper()
	conn := connect(t, dsn)
	defer conn.Close(context.Background())
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, table.Schema, table.Name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return nil
	}
	cols := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		cols[i] = qident(c.Name)
	}
	var out [][]string
	for _, r := range query(t, conn, "SELECT "+strings.Join(cols, ", ")+" FROM "+qident(table.Schema, table.Name)) {
		row := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	return out
}

// TestContract runs the suite twice: as configured by default, and with
// every staged batch, however small, going through the loader session.
func TestContract(t *testing.T) {
	if srv == nil {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	for _, v := range []struct {
		name       string
		loaderRows int // -1: the default
	}{{"postgres", -1}, {"postgres-loader", 1}} {
		var mu sync.Mutex
		dsns := map[sinktest.Sink]string{}
		openAt := func(t *testing.T, dsn string) sinktest.Sink {
			opts := postgres.DefaultOptions()
			if v.loaderRows >= 0 {
				opts.LoaderRows = v.loaderRows
			}
			s := open(t, dsn, opts)
			mu.Lock()
			dsns[s] = dsn
			mu.Unlock()
			return s
		}
		dsnOf := func(t *testing.T, s sinktest.Sink) string {
			mu.Lock()
			defer mu.Unlock()
			d, ok := dsns[s]
			if !ok {
				t.Fatalf("sink %p was not opened by this target", s)
			}
			return d
		}
		t.Run(v.name, func(t *testing.T) {
			sinktest.Run(t, sinktest.Target{
				Name:   v.name,
				Open:   func(t *testing.T) sinktest.Sink { return openAt(t, newDB(t, t.Name())) },
				Reopen: func(t *testing.T, s sinktest.Sink) sinktest.Sink { return openAt(t, dsnOf(t, s)) },
				Rows: func(t *testing.T, s sinktest.Sink, table *schema.Table) [][]string {
					return readRows(t, dsnOf(t, s), table)
				},
			})
		})
	}
}

// typesDDL is a source table with one column per interesting type; the
// values below are inserted on the source, read back as pgoutput would send
// them (each type's output function, under walmirror's session settings),
// written through the sink and read back from the target.
const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'it''s "complicated"');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE types (
	id int PRIMARY KEY,
	b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
	n numeric, n103 numeric(10,3), t text, vc varchar(10), c4 char(4), by bytea,
	j json, jb jsonb, d date, ts timestamp, tstz timestamptz, tm time, tmtz timetz,
	iv interval, u uuid, ia int[], ta text[], e mood, dom posint, ip inet, pt point
);
INSERT INTO types VALUES
(1, true, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', 'NaN', 123.456,
	E'tab\there "quoted" ''single''', 'varchar', 'ab', '\x00ff', '{"a": [1, 2.50], "b": null}',
	'{"b": 1, "a": [1.0, 2.50]}', '2024-01-02', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+05:30',
	'03:04:05.123456', '03:04:05+05:30', '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
	'{1,2,NULL}', '{"a b",NULL,"c\"d","e\\f","",NULL}', 'happy', 5, '10.0.0.1', '(1.5,-2.25)'),
(2, false, 32767, 2147483647, 9223372036854775807, 'Infinity', '-Infinity', 'Infinity', -0.001,
	'', '', '', '\x', '1', '[]', 'infinity', 'infinity', '-infinity',
	'24:00:00', '00:00:00-14', '-1 days +02:03:04', '00000000-0000-0000-0000-000000000000',
	'{}', '{}', 'it''s "complicated"', 1, '192.168.0.0/16', '(0,0)'),
(3, NULL, 0, 0, 0, '-Infinity', '-0', '-Infinity', 1.5,
	E'line1\nline2\r\nback\\slash ✓ 日本語 🎉', 'ü', 'abcd', '\xdeadbeef', ' { "spaces" :  true } ',
	'{"a": "ü 🎉", "n": 1e3}', '0044-03-15 BC', '0044-03-15 12:00:00 BC', '4713-01-01 00:00:00+00 BC',
	'00:00:00', '23:59:59.999999+14', '178000000 years', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12',
	'{{1,2},{3,4}}', '{"NULL",null,"{}"}', 'sad', 2147483647, '::1', '(1e+300,-1e-300)'),
(4, NULL, NULL, NULL, NULL, 1.1, 0.1, '123456789012345678901234567890.123456789', 1234567.1,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-02-29 23:59:59.999999', '1999-12-31 23:59:59+00',
	NULL, NULL, '00:00:00.000001', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(5, NULL, NULL, NULL, NULL, -3.4028235e+38, -2.25e-300, '0.000000000000000000001', -0,
	NULL, NULL, NULL, NULL, 'null', '{}', '5874897-12-31', '294276-12-31 23:59:59.999999', NULL,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`

// sourceTable describes a source table as pgoutput would (type OIDs, typmods,
// key flags, names of non-built-in types) and returns its rows as text.
func sourceTable(t *testing.T, conn *pgx.Conn, name string, identity byte) (*schema.Table, []schema.Tuple) {
	t.Helper()
	var cols []schema.Column
	names := map[uint32]string{}
	for _, r := range query(t, conn, `SELECT a.attname, a.atttypid, a.atttypmod,
			coalesce(a.attnum = ANY (i.indkey), false), n.nspname || '.' || ty.typname
		FROM pg_attribute a
		JOIN pg_type ty ON ty.oid = a.atttypid JOIN pg_namespace n ON n.oid = ty.typnamespace
		LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
		WHERE a.attrelid = '`+name+`'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`) {
		oid, _ := strconv.ParseUint(string(r[1]), 10, 32)
		mod, _ := strconv.ParseInt(string(r[2]), 10, 32)
		cols = append(cols, schema.Column{Name: string(r[0]), TypeID: uint32(oid), Typmod: int32(mod), Key: string(r[3]) == "t"})
		if oid >= 16384 {
			names[uint32(oid)] = string(r[4])
		}
	}
	tbl := schema.NewTable(1, "public", name, identity, cols)
	tbl.TypeNames = names
	var rows []schema.Tuple
	for _, r := range query(t, conn, "SELECT * FROM "+name+" ORDER BY 1") {
		tup := make(schema.Tuple, len(r))
		for i, v := range r {
			if v == nil {
				tup[i] = schema.Datum{State: schema.Null}
			} else {
				tup[i] = schema.Datum{State: schema.Text, Data: v}
			}
		}
		rows = append(rows, tup)
	}
	return tbl, rows
}

var anyState = schema.State{LSN: 0x1_0000_1000, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}

func tx(t testing.TB, s *postgres.Sink, fn func(ctx context.Context) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fn(ctx); err != nil {
		s.Rollback(ctx)
		t.Fatal(err)
	}
	if err := s.Commit(ctx, anyState); err != nil {
		t.Fatal(err)
	}
}

// TestTypeRoundTrip: every value reads back from the target exactly as the
// source printed it, through COPY, the staging table and whole-row matching;
// built-in column types are the source's, enums and domains are text unless
// the target has the type.
func TestTypeRoundTrip(t *testing.T) {
	srcDSN := newDB(t, "types_source")
	src := connect(t, srcDSN)
	exec(t, src, typesDDL)
	exec(t, src, "CREATE TABLE types_keyless (LIKE types); ALTER TABLE types_keyless REPLICA IDENTITY FULL")
	tbl, rows := sourceTable(t, src, "types", schema.IdentityDefault)
	kl, _ := sourceTable(t, src, "types_keyless", schema.IdentityFull)
	if len(rows) != 5 || !tbl.HasKey() || kl.HasKey() {
		t.Fatalf("source: %d rows, keyed %v, keyless keyed %v", len(rows), tbl.HasKey(), kl.HasKey())
	}
	srcTypes := map[string]string{}
	for _, r := range query(t, src, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'types'::regclass AND attnum > 0`) {
		srcTypes[string(r[0])] = string(r[1])
	}

	for _, c := range []struct {
		name     string
		prepare  string            // run on the target first
		wantType map[string]string // target types that differ from the source's
	}{
		{"types as text", "", map[string]string{"e": "text", "dom": "text"}},
		{"target has the types", typesDDL[:strings.Index(typesDDL, "CREATE TABLE")], nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := newDB(t, "types_target")
			dst := connect(t, dsn)
			if c.prepare != "" {
				exec(t, dst, c.prepare)
			}
			s := open(t, dsn, postgres.DefaultOptions())
			defer s.Close()
			tx(t, s, func(ctx context.Context) error {
				if err := s.EnsureTable(ctx, tbl); err != nil {
					return err
				}
				if err := s.EnsureTable(ctx, kl); err != nil {
					return err
				}
				// Through COPY, then through the staging table: updates
				// to the same values.
				if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows}); err != nil {
					return err
				}
				if err := s.Write(ctx, &schema.Batch{Table: tbl, Updates: rows[:3]}); err != nil {
					return err
				}
				var ins []schema.RowChange
				for _, r := range rows {
					ins = append(ins, schema.RowChange{Op: schema.Insert, New: r}, schema.RowChange{Op: schema.Insert, New: r})
				}
				return s.Write(ctx, &schema.Batch{Table: kl, Rows: ins})
			})
			for _, r := range query(t, dst, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
				WHERE attrelid = 'public.types'::regclass AND attnum > 0`) {
				name, got := string(r[0]), string(r[1])
				want, ok := c.wantType[name]
				if !ok {
					want = srcTypes[name]
				}
				if got != want {
					t.Errorf("column %s: target type %q, want %q", name, got, want)
				}
			}
			got := query(t, dst, "SELECT * FROM public.types ORDER BY 1")
			if len(got) != len(rows) {
				t.Fatalf("target has %d rows, want %d", len(got), len(rows))
			}
			for i, r := range rows {
				for j, d := range r {
					var want []byte
					if d.State == schema.Text {
						want = d.Data
					}
					if g := got[i][j]; (g == nil) != (want == nil) || string(g) != string(want) {
						t.Errorf("row %s column %s: target %q, source %q", r[0].Data, tbl.Columns[j].Name, g, want)
					}
				}
			}
			// Whole-row matching finds each row by its values: update one
			// of each pair of duplicates, delete the other.
			var changes []schema.RowChange
			for _, r := range rows {
				changed := slices.Clone(r)
				for j := range changed {
					changed[j] = schema.Datum{State: schema.Unchanged}
				}
				changed[3] = schema.Datum{State: schema.Text, Data: []byte("-1")} // i4
				changes = append(changes, schema.RowChange{Op: schema.Update, Old: r, New: changed},
					schema.RowChange{Op: schema.Delete, Old: r})
			}
			tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: kl, Rows: changes}) })
			left := query(t, dst, "SELECT i4, count(*) FROM public.types_keyless GROUP BY i4")
			if len(left) != 1 || string(left[0][0]) != "-1" || string(left[0][1]) != strconv.Itoa(len(rows)) {
				t.Errorf("after updating and deleting each keyless row by its values: %q, want one row per source row, all with i4 = -1", left)
			}
		})
	}
}

// TestSessionReplicationRole: by default the target's triggers and foreign
// keys do not fire for walmirror's writes; with ReplicaRole off they do.
func TestSessionReplicationRole(t *testing.T) {
	dsn := newDB(t, "replica_role")
	dst := connect(t, dsn)
	child := schema.NewTable(1, "public", "child", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "parent_id", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, child) })
	exec(t, dst, `
		CREATE TABLE parent (id int PRIMARY KEY);
		ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent;
		CREATE TABLE fired (what text);
		CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO fired VALUES (TG_OP); RETURN NULL; END $$;
		CREATE TRIGGER log_it AFTER INSERT OR UPDATE OR DELETE ON child FOR EACH ROW EXECUTE FUNCTION log_it();`)
	row := func(vals ...string) schema.Tuple {
		tup := make(schema.Tuple, len(vals))
		for i, v := range vals {
			tup[i] = schema.Datum{State: schema.Text, Data: []byte(v)}
			if v == "?" {
				tup[i] = schema.Datum{State: schema.Unchanged}
			}
		}
		return tup
	}
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: child,
			Inserts: []schema.Tuple{row("1", "100", "a"), row("2", "100", "b"), row("3", "101", "c")},
			Rows:    []schema.RowChange{{Op: schema.Update, Old: row("2", "?", "?"), New: row("2", "102", "?")}},
		})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: child,
			Deletes: []schema.Tuple{row("1", "?", "?")},
			Updates: []schema.Tuple{row("2", "102", "b2")},
			Patches: []schema.Tuple{row("3", "103", "?")},
		})
	})
	if got := query(t, dst, "SELECT count(*) FROM fired"); string(got[0][0]) != "0" {
		t.Errorf("the target's trigger fired %s times for walmirror's writes", got[0][0])
	}
	if got := query(t, dst, "SELECT id, parent_id, v FROM child ORDER BY id"); len(got) != 2 ||
		string(got[0][1]) != "102" || string(got[1][1]) != "103" {
		t.Errorf("child rows %q", got)
	}

	off := open(t, dsn, postgres.Options{ReplicaRole: false})
	defer off.Close()
	ctx := context.Background()
	if err := off.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err := off.Write(ctx, &schema.Batch{Table: child, Inserts: []schema.Tuple{row("9", "999", "x")}})
	if err == nil || !strings.Contains(err.Error(), "foreign key") {
		t.Errorf("with ReplicaRole off, a row without its parent: %v; want a foreign key violation", err)
	}
	if err := off.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	exec(t, dst, "INSERT INTO parent VALUES (999)")
	tx(t, off, func(ctx context.Context) error {
		return off.Write(ctx, &schema.Batch{Table: child, Inserts: []schema.Tuple{row("9", "999", "x")}})
	})
	if got := query(t, dst, "SELECT what FROM fired"); len(got) != 1 || string(got[0][0]) != "INSERT" {
		t.Errorf("with ReplicaRole off the trigger fired %q, want once for the insert", got)
	}
}

// TestOrigin: with an origin, the session is bound to it, each commit
// records the source position in it, and a decoder that skips changes from
// other origins (test_decoding's only-local, like a PG16 origin = none
// subscription) does not see walmirror's writes.
func TestOrigin(t *testing.T) {
	dsn := newDB(t, "origin")
	dst := connect(t, dsn)
	slot := "origin_check_" + strconv.Itoa(os.Getpid())
	exec(t, dst, "SELECT pg_create_logical_replication_slot('"+slot+"', 'test_decoding')")
	t.Cleanup(func() { exec(t, dst, "SELECT pg_drop_replication_slot('"+slot+"')") })

	const origin = "walmirror_test_origin"
	s := open(t, dsn, postgres.Options{ReplicaRole: true, Origin: origin})
	defer s.Close()
	tbl := schema.NewTable(1, "public", "echo", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	ctx := context.Background()
	st := schema.State{LSN: 0x3_0000_1234, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{
		{{State: schema.Text, Data: []byte("1")}, {State: schema.Text, Data: []byte("from walmirror")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	// (Decoding reads flushed WAL only; the test server commits asynchronously.)
	exec(t, dst, "SET synchronous_commit = on; INSERT INTO echo VALUES (2, 'local')")

	got := query(t, dst, "SELECT remote_lsn::text FROM pg_replication_origin_status WHERE external_id = '"+origin+"'")
	if len(got) != 1 || string(got[0][0]) != strings.Replace(st.LSN.String(), "/0000", "/", 1) {
		t.Errorf("pg_replication_origin_status for %s: %q, want remote_lsn %s", origin, got, st.LSN)
	}
	var changes []string
	for _, r := range query(t, dst, "SELECT data FROM pg_logical_slot_get_changes('"+slot+"', NULL, NULL, 'only-local', '1', 'skip-empty-xacts', '1')") {
		changes = append(changes, string(r[0]))
	}
	joined := strings.Join(changes, "\n")
	// (walmirror's one-time metadata setup, golang-migrate's version row, is
	// written on a connection of its own and not marked.)
	if !strings.Contains(joined, "'local'") || strings.Contains(joined, "from walmirror") || strings.Contains(joined, "_walmirror.state") {
		t.Errorf("origin-filtered decoding of the target saw:\n%s\nwant the local insert, not walmirror's data or state", joined)
	}

	// An origin is bound to one session at a time.
	if s2, err := postgres.Open(ctx, dsn, nil, postgres.Options{Origin: origin}); err == nil {
		s2.Close()
		t.Error("a second sink bound the same origin")
	} else if !strings.Contains(err.Error(), "origin") {
		t.Errorf("second sink on the same origin: %v; want an error naming the origin", err)
	}
}

// TestOpenErrors: a bad DSN, an unreachable server, a wrong password and a
// missing database fail Open with a clear error that never shows the password.
func TestOpenErrors(t *testing.T) {
	const secret = "s3cret-Pw"
	cases := []struct{ name, dsn, want string }{
		{"bad port", "postgres://walmirror:" + secret + "@127.0.0.1:notaport/db", "invalid connection string"},
		{"unterminated quote", "host=127.0.0.1 password='" + secret + " dbname=x", "invalid connection string"},
		{"bad sslmode", "postgresql://walmirror:" + secret + "@127.0.0.1:5/x?sslmode=maybe", "invalid connection string"},
		{"unreachable", "host=127.0.0.1 port=1 user=walmirror password='" + secret + "' dbname=x connect_timeout=5", "cannot reach the target server"},
	}
	if srv != nil {
		cases = append(cases,
			struct{ name, dsn, want string }{"wrong password", srv.DSNFor("postgres", secret, "postgres"), "password authentication failed for user \"postgres\" (SQLSTATE 28P01) (check the user name and password"},
			struct{ name, dsn, want string }{"missing database", srv.DSN("no_such_db"), "does not exist (SQLSTATE 3D000) (the database named in the target's URL does not exist"})
	}
	for _, c := range cases {
		s, err := postgres.Open(context.Background(), c.dsn, nil, postgres.DefaultOptions())
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", c.name)
			continue
		}
		if strings.Contains(err.Error(), secret) || (srv != nil && strings.Contains(err.Error(), srv.Password())) {
			t.Errorf("%s: error shows the password: %v", c.name, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.want)
		}
		t.Logf("%s: %v", c.name, err)
	}
}

// TestExistingTable: a table the target already has (without a unique
// index on the key) is used as it is, in its own column order, with columns
// the source lacks kept: updates leave them alone, inserts give them their
// default.
func TestExistingTable(t *testing.T) {
	dsn := newDB(t, "existing")
	dst := connect(t, dsn)
	exec(t, dst, `CREATE SCHEMA app; CREATE TABLE app.items (extra text DEFAULT 'd', v text, id bigint);
		INSERT INTO app.items VALUES ('keep', 'old', 1), ('keep', 'old', 2)`)
	tbl := schema.NewTable(1, "app", "items", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
		{Name: "added", TypeID: schema.OIDNumeric, Typmod: (5<<16 | 1) + 4},
	})
	// As the engine describes a table the target stores no shape for: a
	// kept column is warned of then (later shapings log it at debug).
	tbl.Change = &schema.Change{Unrecorded: true}
	var logs strings.Builder
	s, err := postgres.Open(context.Background(), dsn, slog.New(slog.NewTextHandler(&logs, nil)), postgres.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// As if walmirror had created it, in an earlier shape.
	exec(t, dst, `INSERT INTO _walmirror.tables (schema_name, table_name) VALUES ('app', 'items')`)
	row := func(vals ...string) schema.Tuple {
		tup := make(schema.Tuple, len(vals))
		for i, v := range vals {
			tup[i] = schema.Datum{State: schema.Text, Data: []byte(v)}
			if v == "?" {
				tup[i] = schema.Datum{State: schema.Unchanged}
			}
		}
		return tup
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl,
			Updates: []schema.Tuple{row("1", "new", "1.5")},
			Inserts: []schema.Tuple{row("3", "three", "3.0")},
			Patches: []schema.Tuple{row("2", "?", "2.25")},
		})
	})
	got := query(t, dst, "SELECT id, v, added, extra FROM app.items ORDER BY id")
	want := [][]string{{"1", "new", "1.5", "keep"}, {"2", "old", "2.3", "keep"}, {"3", "three", "3.0", "d"}}
	if len(got) != len(want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	for i := range want {
		for j := range want[i] {
			if string(got[i][j]) != want[i][j] {
				t.Errorf("row %d: %q, want %q", i, got[i], want[i])
				break
			}
		}
	}
	if got := query(t, dst, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.items'::regclass AND attname = 'added'"); string(got[0][0]) != "numeric(5,1)" {
		t.Errorf("added column has type %s", got[0][0])
	}
	if !strings.Contains(logs.String(), "extra") || !strings.Contains(logs.String(), "added target column") {
		t.Errorf("log does not mention the kept and the added column:\n%s", logs.String())
	}

	// The metadata schema is not a source schema.
	ctx := context.Background()
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err = s.EnsureTable(ctx, schema.NewTable(2, "_walmirror", "state", schema.IdentityDefault, tbl.Columns))
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("EnsureTable(_walmirror.state) = %v, want a reserved-schema error", err)
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestBadValues: a value the target cannot read fails the write with the
// column named, and the transaction can be rolled back and redone. (The
// table has a column named like the staging table's group column.)
func TestBadValues(t *testing.T) {
	dsn := newDB(t, "bad_values")
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	tbl := schema.NewTable(1, "public", "bad", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "g", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "raw", TypeID: schema.OIDBytea, Typmod: -1},
	})
	text := func(v string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(v)} }
	unsent := schema.Datum{State: schema.Unchanged}
	ctx := context.Background()
	for _, c := range []struct {
		b    schema.Batch
		want string
	}{
		{schema.Batch{Updates: []schema.Tuple{{text("x1"), text("1"), text(`\x`)}}}, "column id"},
		{schema.Batch{Inserts: []schema.Tuple{{text("1"), text("1"), text(`\xzz`)}}}, "column raw"},
		{schema.Batch{Updates: []schema.Tuple{{text("1"), text("1"), unsent}}}, `"raw"`},
		{schema.Batch{Rows: []schema.RowChange{{Op: schema.Insert, New: schema.Tuple{text("1"), text("1.5"), text(`\x`)}}}}, "column g"},
	} {
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureTable(ctx, tbl); err != nil {
			t.Fatal(err)
		}
		c.b.Table = tbl
		err := s.Write(ctx, &c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Write = %v, want an error naming %s", err, c.want)
		} else {
			t.Log(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{{text("1"), text("1"), text(`\x01`)}, {text("2"), text("2"), text(`\x02`)}}})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Deletes: []schema.Tuple{{text("2"), unsent, unsent}},
			Patches: []schema.Tuple{{text("1"), text("10"), unsent}}})
	})
	if got := readRows(t, dsn, tbl); len(got) != 1 || strings.Join(got[0], ",") != `1,10,\x01` {
		t.Errorf("rows %q", got)
	}
}

// TestReconnect: after the connection is lost between transactions, the
// next Begin reconnects and the sink carries on.
func TestReconnect(t *testing.T) {
	dsn := newDB(t, "reconnect")
	dst := connect(t, dsn)
	var logs strings.Builder
	s, err := postgres.Open(context.Background(), dsn, slog.New(slog.NewTextHandler(&logs, nil)), postgres.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	insert := func(id string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{
				{{State: schema.Text, Data: []byte(id)}, {State: schema.Text, Data: []byte("v" + id)}}}})
		}
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return insert("1")(ctx)
	})
	exec(t, dst, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'walmirror' AND datname = current_database()")
	tx(t, s, insert("2"))
	if got := query(t, dst, "SELECT count(*) FROM kv"); string(got[0][0]) != "2" {
		t.Errorf("kv has %s rows, want 2", got[0][0])
	}
	if !strings.Contains(logs.String(), "reconnecting") {
		t.Errorf("no reconnect logged:\n%s", logs.String())
	}
}

// ---- benchmarks ----

const benchRows = 100_000

var benchTable = schema.NewTable(1, "public", "bench", schema.IdentityDefault, []schema.Column{
	{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
	{Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
	{Name: "label", TypeID: schema.OIDText, Typmod: -1},
	{Name: "at", TypeID: schema.OIDTimestampTZ, Typmod: -1},
	{Name: "amount", TypeID: schema.OIDNumeric, Typmod: (12<<16 | 2) + 4},
	{Name: "doc", TypeID: schema.OIDJSONB, Typmod: -1},
})

// benchTuples builds benchRows rows with keys from first; round varies the values.
func benchTuples(first, round int) []schema.Tuple {
	rows := make([]schema.Tuple, benchRows)
	for i := range rows {
		id := first + i
		rows[i] = schema.Tuple{
			{State: schema.Text, Data: strconv.AppendInt(nil, int64(id), 10)},
			{State: schema.Text, Data: strconv.AppendInt(nil, int64(id%1000+round), 10)},
			{State: schema.Text, Data: fmt.Appendf(nil, "customer %d, round %d\twith a tab", id, round)},
			{State: schema.Text, Data: fmt.Appendf(nil, "2024-01-%02d 03:04:05.%06d+00", id%28+1, id%1000000)},
			{State: schema.Text, Data: fmt.Appendf(nil, "%d.%02d", id%100000, round%100)},
			{State: schema.Text, Data: fmt.Appendf(nil, `{"id": %d, "round": %d, "tags": ["a", "b"]}`, id, round)},
		}
	}
	return rows
}

func benchSink(b *testing.B) (*postgres.Sink, *pgx.Conn) {
	b.Helper()
	dsn := newDB(b, "bench")
	s := open(b, dsn, postgres.DefaultOptions())
	b.Cleanup(func() { s.Close() })
	tx(b, s, func(ctx context.Context) error { return s.EnsureTable(ctx, benchTable) })
	return s, connect(b, dsn)
}

// BenchmarkCopyInserts: Batch.Inserts of 100k rows per op, one target
// transaction each; the reference is a raw COPY of the same rows, encoded
// beforehand, through pgconn into an identical table (the floor for any sink).
func BenchmarkCopyInserts(b *testing.B) {
	b.Run("sink", func(b *testing.B) {
		s, conn := benchSink(b)
		rows := benchTuples(0, 0)
		b.ResetTimer()
		for range b.N {
			tx(b, s, func(ctx context.Context) error {
				return s.Write(ctx, &schema.Batch{Table: benchTable, Inserts: rows})
			})
			b.StopTimer()
			exec(b, conn, "TRUNCATE bench")
			b.StartTimer()
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("reference-raw-copy", func(b *testing.B) {
		_, conn := benchSink(b)
		var data []byte
		for _, r := range benchTuples(0, 0) {
			for i, d := range r {
				if i > 0 {
					data = append(data, '\t')
				}
				data = append(data, strings.ReplaceAll(string(d.Data), "\t", `\t`)...)
			}
			data = append(data, '\n')
		}
		b.ResetTimer()
		for range b.N {
			exec(b, conn, "BEGIN")
			if _, err := conn.PgConn().CopyFrom(context.Background(), strings.NewReader(string(data)), "COPY bench FROM STDIN"); err != nil {
				b.Fatal(err)
			}
			exec(b, conn, "COMMIT")
			b.StopTimer()
			exec(b, conn, "TRUNCATE bench")
			b.StartTimer()
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkUpdates: Batch.Updates of 100k rows per op, replacing every row
// of a table holding 100k rows (vacuumed again, untimed, after each op).
func BenchmarkUpdates(b *testing.B) {
	s, conn := benchSink(b)
	tx(b, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: benchTable, Inserts: benchTuples(0, 0)})
	})
	exec(b, conn, "VACUUM ANALYZE bench")
	rounds := [2][]schema.Tuple{benchTuples(0, 1), benchTuples(0, 2)}
	b.ResetTimer()
	for i := range b.N {
		tx(b, s, func(ctx context.Context) error {
			return s.Write(ctx, &schema.Batch{Table: benchTable, Updates: rounds[i%2]})
		})
		b.StopTimer()
		exec(b, conn, "VACUUM bench")
		b.StartTimer()
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// TestReconnectErrorKeepsCause: a reconnect that fails (the target
// restarting, unreachable) returns an error whose cause callers can still
// find, so that a run retries it; its text was a redacted copy with no
// cause, which a run took for a permanent failure and exited 1 on a
// target restart.
func TestReconnectErrorKeepsCause(t *testing.T) {
	dsn := newDB(t, "reconnectcause")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := testenv.StartProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = "127.0.0.1:" + strconv.Itoa(proxy.Port())
	s, err := postgres.Open(context.Background(), u.String(), slog.New(slog.DiscardHandler), postgres.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true}})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	proxy.Cut()
	ctx := context.Background()
	// The first use finds the connection gone; the next one reconnects.
	var last error
	for range 3 {
		if last = s.Begin(ctx); last == nil {
			t.Fatal("Begin succeeded through a cut proxy")
		}
		_ = s.Rollback(ctx)
	}
	var ce *pgconn.ConnectError
	if !errors.As(last, &ce) {
		t.Fatalf("reconnect error %q (%T): no connect error in its chain", last, last)
	}
	if strings.Contains(last.Error(), srv.Password()) {
		t.Fatalf("reconnect error %q shows the password", last)
	}
	proxy.Restore()
	tx(t, s, func(ctx context.Context) error { return nil })
}

// TestTargetDatabaseDropped: a target database dropped while walmirror runs
// (WITH (FORCE) ends its session) is named as such at the reconnect, as at
// the start (helper-110: pgx's bare text).
func TestTargetDatabaseDropped(t *testing.T) {
	dsn := newDB(t, "dropped")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	tbl := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true}})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	ctx := context.Background()
	admin := connect(t, srv.DSN("postgres"))
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	var last error
	for range 3 {
		if last = s.Begin(ctx); last == nil {
			t.Fatal("Begin succeeded on a dropped database")
		}
		_ = s.Rollback(ctx)
	}
	if !strings.Contains(last.Error(), "does not exist: create it") {
		t.Fatalf("reconnect to a dropped database: %q, want the hint", last)
	}
}

// TestRetypedByHand: a copy's column whose type someone changed in the
// target is converted back to the source's type, and the log says the
// target's column differed, not that the source changed it (helper-110).
func TestRetypedByHand(t *testing.T) {
	dsn := newDB(t, "retyped_by_hand")
	tbl := schema.NewTable(1, "public", "r", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "n", TypeID: schema.OIDInt4, Typmod: -1}})
	s := open(t, dsn, postgres.DefaultOptions())
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	s.Close()
	conn := connect(t, dsn)
	if _, err := conn.Exec(context.Background(), `ALTER TABLE public.r ALTER COLUMN n TYPE bigint`); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	var log strings.Builder
	s, err := postgres.Open(context.Background(), dsn, slog.New(slog.NewTextHandler(&log, nil)), postgres.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	if !strings.Contains(log.String(), `target column's type differs`) || strings.Contains(log.String(), "source column type changed") {
		t.Errorf("log after a column retyped in the target:\n%s", log.String())
	}
}

// TestInfiniteIntervalOlderTarget: an infinite interval (a PostgreSQL 17+
// source's) into a target older than 17 fails saying why and what to do
// (helper-109: the server's bare text); 17+ targets take it.
func TestInfiniteIntervalOlderTarget(t *testing.T) {
	dsn := newDB(t, "infinite_interval")
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	tbl := schema.NewTable(1, "public", "iv", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDInterval, Typmod: -1}})
	ctx := context.Background()
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Rollback(ctx)
	if err := s.EnsureTable(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	val := schema.Datum{State: schema.Text, Data: []byte("infinity")}
	err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{{schema.Datum{State: schema.Text, Data: []byte("1")}, val}}})
	switch {
	case srv.Major() >= 17 && err != nil:
		t.Fatalf("PostgreSQL %d target: %v", srv.Major(), err)
	case srv.Major() < 17 && (err == nil || !strings.Contains(err.Error(), "copy into a PostgreSQL 17 or newer target")):
		t.Fatalf("PostgreSQL %d target: %v, want the hint", srv.Major(), err)
	}
}

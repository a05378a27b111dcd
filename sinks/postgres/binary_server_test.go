package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/testenv"
)

// TestBinaryCopy: a value written through binary COPY reads back exactly as
// the same text written through text COPY (the server's own input
// function), for edge values of every type with a binary encoder, including
// typmod rounding and values the encoders leave to the text path.
func TestBinaryCopy(t *testing.T) {
	dsn := newDB(t, "binary")
	s := open(t, dsn, postgresDefault())
	defer s.Close()
	conn := connect(t, dsn)
	type typed struct {
		oid    uint32
		typmod int32
		values []string
	}
	numeric := func(p, s int) int32 { return int32(p<<16|(s&0x7ff)) + 4 }
	for i, c := range []typed{
		{schema.OIDBool, -1, []string{"t", "f", "true", "yes"}},
		{schema.OIDInt2, -1, []string{"0", "-1", "32767", "-32768", "007", "+5", " 1"}},
		{schema.OIDInt4, -1, []string{"0", "2147483647", "-2147483648", "-0"}},
		{schema.OIDInt8, -1, []string{"9223372036854775807", "-9223372036854775808", "1000000000000"}},
		{schema.OIDNumeric, -1, []string{"0", "0.00", "-1.5", "1.50", "10000", "100000000", "0.0001", "0.00010",
			"-0.000000000001", "123456789012345678901234567890.123456789012345678901234567890", "9999.9999",
			"NaN", "Infinity", "-Infinity", "1e5", "-0", ".5", "00.5", "1."}},
		{schema.OIDNumeric, numeric(12, 2), []string{"1.005", "-1.005", "1234567890.12", "0.1", "NaN", "0.00"}},
		{schema.OIDNumeric, numeric(5, -3), []string{"12345", "99499999", "0", "-500"}},
		{schema.OIDNumeric, numeric(3, 5), []string{"0.00123", "0.000005"}},
		{schema.OIDText, -1, []string{"", "a\tb\nc\\d\re", "ünïcødé ✓ 𝄞", "\\N", "NULL"}},
		{schema.OIDVarchar, 4 + 4, []string{"abcd", "ab  ", "abcd   ", "abcde"}},
		{schema.OIDBpchar, 4 + 4, []string{"abcd", "ab", "ab  ", "abcd   ", "abcde", "ü"}},
		{schema.OIDDate, -1, []string{"2024-02-29", "0001-01-01", "0001-12-31 BC", "4714-11-24 BC", "5874897-12-31",
			"infinity", "-infinity", "2000-01-01", "1999-12-31", "0004-02-29 BC", "0005-02-29 BC", "99999-01-01"}},
		{schema.OIDTimestamp, -1, []string{"2000-01-01 00:00:00", "1999-12-31 23:59:59.999999", "2024-02-29 12:34:56.5",
			"0001-01-01 00:00:00 BC", "4714-11-24 00:00:00 BC", "294276-12-31 23:59:59.999999", "infinity", "-infinity",
			"1970-01-01 00:00:00.000001", "2024-01-01 24:00:00"}},
		{schema.OIDTimestampTZ, -1, []string{"2024-01-01 00:00:01+00", "2000-01-01 00:00:00+00", "1999-12-31 23:59:59.999999+00",
			"0044-03-15 12:00:00+00 BC", "4714-11-24 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00", "infinity", "-infinity",
			"2024-06-01 12:00:00+05:30", "1900-01-01 00:00:00-00:19:32", "2024-01-01 00:00:00.10+00"}},
		{schema.OIDTimestampTZ, 0, []string{"2024-01-01 00:00:00.5+00", "2024-01-01 00:00:01.4999+00"}},
		{schema.OIDUUID, -1, []string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "00000000-0000-0000-0000-000000000000",
			"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"}},
		{schema.OIDJSONB, -1, []string{`{"a": 1, "a": 2}`, `{"ü": "✓ 𝄞", "s": "\u00e9\ud834\udd1e"}`, `[1.50, 1e400, -0]`, `"x"`, `null`}},
	} {
		t.Run(fmt.Sprintf("t%d_oid%d", i, c.oid), func(t *testing.T) {
			if c.oid == schema.OIDNumeric && c.typmod >= 4 {
				// PostgreSQL 14 refuses such a column ("NUMERIC scale
				// -3 must be between 0 and precision 5").
				p, sc := (c.typmod-4)>>16, (c.typmod-4)&0x7ff
				if sc >= 0x400 {
					sc -= 0x800 // 11-bit two's complement
				}
				if sc < 0 || sc > p {
					testenv.SkipBelow(t, srv, 15, fmt.Sprintf("NUMERIC(%d,%d), a scale below 0 or above the precision,", p, sc))
				}
			}
			binaryRoundTrip(t, s, conn, i, c.oid, c.typmod, c.values)
		})
	}
}

// binaryRoundTrip writes values into table t<i>_text through text COPY and
// t<i>_binary through binary COPY and compares what the server read.
func binaryRoundTrip(t *testing.T, s *postgres.Sink, conn *pgx.Conn, i int, oid uint32, typmod int32, values []string) {
	for _, via := range []string{"text", "binary"} {
		cols := []schema.Column{{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
			{Name: "v", TypeID: oid, Typmod: typmod}}
		if via == "text" {
			// A column without a binary encoder sends the table in text.
			cols = append(cols, schema.Column{Name: "other", TypeID: schema.OIDInterval, Typmod: -1})
		}
		tbl := schema.NewTable(uint32(i+1), "public", fmt.Sprintf("t%d_%s", i, via), schema.IdentityDefault, cols)
		tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
		for j, v := range values {
			row := schema.Tuple{{State: schema.Text, Data: fmt.Append(nil, j)}, {State: schema.Text, Data: []byte(v)}}
			if via == "text" {
				row = append(row, schema.Datum{State: schema.Null})
			}
			ctx := context.Background()
			if err := s.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			// Alone in its batch (one value the encoder leaves to text
			// sends the whole batch in text), first as an insert, then
			// staged as an update of the same row.
			err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{row}})
			if err == nil {
				err = s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{row}})
			}
			if err != nil {
				t.Logf("%s %d %q: %v", via, oid, v, err)
				if err := s.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := s.Commit(ctx, schema.State{Slot: "s", Phase: "streaming"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := query(t, conn, fmt.Sprintf(`SELECT coalesce(b.id, t.id), t.v, b.v FROM t%d_text t FULL JOIN t%d_binary b USING (id) ORDER BY 1`, i, i))
	if len(got) == 0 {
		t.Errorf("type %d: no values written", oid)
	}
	for _, r := range got {
		var id int
		fmt.Sscan(string(r[0]), &id)
		if string(r[1]) != string(r[2]) || (r[1] == nil) != (r[2] == nil) {
			t.Errorf("type %d(%d) %q: via text %q, via binary %q", oid, typmod, values[id], r[1], r[2])
		}
		// The output form (what the source sends) is always encoded.
		if r[1] != nil && !postgresBinaryAccepts(oid, r[1]) {
			t.Errorf("type %d: the output form %q is left to text", oid, r[1])
		}
	}
}

func postgresDefault() postgres.Options { return postgres.DefaultOptions() }

func postgresBinaryAccepts(oid uint32, text []byte) bool { return postgres.BinaryAccepts(oid, text) }

// TestBinaryThenText: a batch goes in binary up to the first value the
// encoders leave to the server, then in text; every row lands once.
func TestBinaryThenText(t *testing.T) {
	dsn := newDB(t, "binary_text")
	s := open(t, dsn, postgresDefault())
	defer s.Close()
	tbl := schema.NewTable(1, "public", "mixed", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDNumeric, Typmod: -1}})
	rows := func(vs ...string) []schema.Tuple {
		var out []schema.Tuple
		for i, v := range vs {
			out = append(out, schema.Tuple{{State: schema.Text, Data: fmt.Append(nil, i)}, {State: schema.Text, Data: []byte(v)}})
		}
		return out
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows("1.5", "2", "1e5", "3.25")})
	})
	conn := connect(t, dsn)
	if got := string(query(t, conn, "SELECT string_agg(v::text, ' ' ORDER BY id) FROM mixed")[0][0]); got != "1.5 2 100000 3.25" {
		t.Errorf("after inserts: %s", got)
	}
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Updates: rows("-1", "2E1", "7", "NaN")})
	})
	if got := string(query(t, conn, "SELECT string_agg(v::text, ' ' ORDER BY id) FROM mixed")[0][0]); got != "-1 20 7 NaN" {
		t.Errorf("after updates: %s", got)
	}
}

// TestStagingStaysSmall: small batches empty the staging table with DELETE;
// their dead rows (nothing vacuums temporary tables) must not pile up over
// a long run, or every staged statement scans more and more of them.
func TestStagingStaysSmall(t *testing.T) {
	dsn := newDB(t, "staging")
	s := open(t, dsn, postgresDefault())
	defer s.Close()
	tbl := schema.NewTable(1, "public", "st", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1}})
	const batch, rounds = 2000, 40
	rows := make([]schema.Tuple, batch)
	for i := range rows {
		rows[i] = schema.Tuple{{State: schema.Text, Data: fmt.Append(nil, i)}, {State: schema.Text, Data: fmt.Appendf(nil, "%0100d", i)}}
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows})
	})
	conn := connect(t, dsn)
	largest := 0
	for range rounds {
		tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: tbl, Updates: rows}) })
		got := query(t, conn, `SELECT coalesce(sum(pg_catalog.pg_relation_size(oid)), 0) FROM pg_catalog.pg_class WHERE relname LIKE '\_walmirror\_stage\_%'`)
		var size int
		fmt.Sscan(string(got[0][0]), &size)
		largest = max(largest, size)
	}
	// 80k rows of about 140 bytes pass through it; the dead versions of at
	// most about 12k should be left at any time.
	if largest == 0 || largest > 3<<20 {
		t.Errorf("staging table: up to %d bytes over %d batches of %d rows", largest, rounds, batch)
	}
	t.Logf("staging table: up to %d bytes", largest)
}

// TestOldShapeStagingDropped: a staging table belongs to one shape of a
// table; when the source drops a column the old shape's staging table is
// dropped with the commit, so a session that follows many shape changes
// does not keep one for each.
func TestOldShapeStagingDropped(t *testing.T) {
	dsn := newDB(t, "stagingshapes")
	s := open(t, dsn, postgresDefault())
	defer s.Close()
	conn := connect(t, dsn)
	stages := func() string {
		return string(query(t, conn, `SELECT count(*) FROM pg_catalog.pg_class WHERE relname LIKE '\_walmirror\_stage\_%'`)[0][0])
	}
	cols := []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	}
	key := 0
	for i := range 4 {
		// Each round: one more column, then that column dropped again.
		wide := append(append([]schema.Column(nil), cols...), schema.Column{Name: fmt.Sprintf("c%d", i), TypeID: schema.OIDInt4, Typmod: -1})
		for _, shape := range [][]schema.Column{wide, cols} {
			tbl := schema.NewTable(1, "public", "sh", schema.IdentityDefault, shape)
			key++
			row := make(schema.Tuple, len(shape))
			for j := range row {
				row[j] = schema.Datum{State: schema.Text, Data: fmt.Append(nil, key)}
			}
			tx(t, s, func(ctx context.Context) error {
				if err := s.EnsureTable(ctx, tbl); err != nil {
					return err
				}
				if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{row}}); err != nil {
					return err
				}
				return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{row}})
			})
		}
	}
	if got := stages(); got != "1" {
		t.Errorf("%s staging tables after 8 shapes of one table, want the current shape's only", got)
	}
}

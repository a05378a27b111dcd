package verify

import (
	"context"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/internal/pgtext"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/testenv"
)

// pgConn connects to a real server for the hash tests.
func pgConn(t *testing.T) *pgx.Conn {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	srv := testenv.StartT(t, testenv.Options{})
	conn, err := pgx.Connect(context.Background(), srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var v int
	if err := conn.QueryRow(context.Background(), `SELECT current_setting('server_version_num')::int`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v < 140000 {
		t.Skip("hash_record_extended needs PostgreSQL 14")
	}
	return conn
}

func serverHash(t *testing.T, conn *pgx.Conn, q string, args ...any) uint64 {
	t.Helper()
	var h int64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&h); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return uint64(h)
}

// TestPGHashPort: the Go port computes what the server computes, for
// bytes of every length up to three blocks and 1 MB, 32-bit integers,
// floats (NaN, infinities, -0, subnormals), int8's binary form, and rows
// of several columns with NULLs.
func TestPGHashPort(t *testing.T) {
	conn := pgConn(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 41 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if n == 5 {
			b = []byte{0, 0, 0xff, 0, 0}
		}
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW($1::bytea), 0)`, b)
		if got := pgRecordHash(0, pgHashBytes(b)); got != want {
			t.Errorf("bytes %x: Go %d, server %d", b, int64(got), int64(want))
		}
	}
	mb := make([]byte, 1<<20+3)
	for i := range mb {
		mb[i] = byte(rng.IntN(256))
	}
	if want, got := serverHash(t, conn, `SELECT hash_record_extended(ROW($1::bytea), 0)`, mb), pgRecordHash(0, pgHashBytes(mb)); got != want {
		t.Errorf("1 MB: Go %d, server %d", int64(got), int64(want))
	}
	for _, v := range []int64{math.MinInt32, -1, 0, 1, 42, math.MaxInt32, int64(rng.Int32())} {
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW($1::int4), 0)`, v)
		if got, _ := hashRow(string(hcInt32), []any{v}); got != want {
			t.Errorf("int4 %d: Go %d, server %d", v, int64(got), int64(want))
		}
		if v >= math.MinInt16 && v <= math.MaxInt16 {
			want := serverHash(t, conn, `SELECT hash_record_extended(ROW($1::int2), 0)`, v)
			if got, _ := hashRow(string(hcInt32), []any{int16(v)}); got != want {
				t.Errorf("int2 %d: Go %d, server %d", v, int64(got), int64(want))
			}
		}
		if v >= 0 {
			want := serverHash(t, conn, `SELECT hash_record_extended(ROW($1::int8::oid), 0)`, v)
			if got, _ := hashRow(string(hcOID), []any{v}); got != want {
				t.Errorf("oid %d: Go %d, server %d", v, int64(got), int64(want))
			}
		}
	}
	for _, v := range []int64{math.MinInt64, -1, 0, 1, 4294967296, math.MaxInt64} {
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW(int8send($1::int8)), 0)`, v)
		if got, _ := hashRow(string(hcInt8), []any{v}); got != want {
			t.Errorf("int8 %d: Go %d, server %d", v, int64(got), int64(want))
		}
	}
	for _, v := range []bool{true, false} {
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW($1::bool), 0)`, v)
		sqliteForm := map[bool]int64{true: 1, false: 0}[v]
		for _, form := range []any{v, sqliteForm} {
			if got, _ := hashRow(string(hcBool), []any{form}); got != want {
				t.Errorf("bool %v (%T): Go %d, server %d", v, form, int64(got), int64(want))
			}
		}
	}
	for _, s := range []string{"NaN", "Infinity", "-Infinity", "-0", "0", "1e-310", "0.1", "1.7976931348623157e308", "-2.5"} {
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW(`+floatHashExpr("v", false)+`), 0) FROM (SELECT $1::text::float8 AS v) s`, s)
		f, _ := strconv.ParseFloat(s, 64)
		for _, form := range []any{f, s} {
			if got, ok := hashRow(string(hcFloat8), []any{form}); got != want || !ok {
				t.Errorf("float8 %s (%T): Go %d, server %d", s, form, int64(got), int64(want))
			}
		}
	}
	for _, s := range []string{"NaN", "Infinity", "-Infinity", "-0", "1e-45", "0.1", "3.4028235e38", "1.1", "16777217"} {
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW(`+floatHashExpr("v", true)+`), 0) FROM (SELECT $1::text::float4 AS v) s`, s)
		f32, _ := strconv.ParseFloat(s, 32)
		// DuckDB: a float32; SQLite: the float4's text read as a double, or NaN's text.
		var text string
		if err := conn.QueryRow(context.Background(), `SET extra_float_digits = 3; SELECT $1::text::float4::text`, s).Scan(&text); err != nil {
			text = s
		}
		f64, _ := strconv.ParseFloat(text, 64)
		for _, form := range []any{float32(f32), f64, text} {
			if got, ok := hashRow(string(hcFloat4), []any{form}); got != want || !ok {
				t.Errorf("float4 %s (%T %v): Go %d, server %d", s, form, form, int64(got), int64(want))
			}
		}
	}
	// A NaN computed by the server (the x86 default NaN has its sign bit
	// set) hashes as 'NaN'.
	for _, typ := range []string{"float8", "float4"} {
		want := serverHash(t, conn, `SELECT hash_record_extended(ROW(`+floatHashExpr("v", typ == "float4")+`), 0) FROM (SELECT 'Infinity'::`+typ+` - 'Infinity'::`+typ+` AS v) s`)
		code := map[string]byte{"float8": hcFloat8, "float4": hcFloat4}[typ]
		if got, _ := hashRow(string(code), []any{math.NaN()}); got != want {
			t.Errorf("%s Infinity - Infinity: Go %d, server %d", typ, int64(got), int64(want))
		}
		// A float 0 hashes unlike a NULL (hashfloat8extended's hash of 0
		// is a NULL's, 0).
		if zero, _ := hashRow(string(code), []any{0.0}); zero == 0 {
			t.Errorf("%s 0 hashes as NULL", typ)
		}
	}
	// Several columns, NULLs among them.
	want := serverHash(t, conn, `SELECT hash_record_extended(ROW(7::int4, NULL::text, 'é✓'::text COLLATE "C", NULL::bytea, int8send(-5)), 0)`)
	if got, ok := hashRow("issx8", []any{int32(7), nil, "é✓", []byte(nil), int64(-5)}); got != want || !ok {
		t.Errorf("a row: Go %d, server %d", int64(got), int64(want))
	}
	// What both sides sum: the record's hash mixed again (recordHash).
	for _, r := range []string{"7::int4, NULL::text", "NULL::int4, NULL::text", "-1::int4, 'x'::text COLLATE \"C\""} {
		want := serverHash(t, conn, `SELECT `+recordHash([]string{r}, nil))
		vals := map[string][]any{"7::int4, NULL::text": {int32(7), nil}, "NULL::int4, NULL::text": {nil, nil},
			"-1::int4, 'x'::text COLLATE \"C\"": {int32(-1), "x"}}[r]
		if got, ok := rowHash("is", vals); got != want || !ok {
			t.Errorf("mixed row hash of (%s): Go %d, server %d", r, int64(got), int64(want))
		}
	}
}

// TestTargetHashValues: each form a DuckDB or SQLite copy keeps a value in
// hashes as the source hashes the value (the expression it uses for that
// hash code), for values at the edges of each type.
func TestTargetHashValues(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	dec := func(v int64, scale uint8) duckdb.Decimal {
		return duckdb.Decimal{Scale: scale, Value: big.NewInt(v)}
	}
	bigDec, _ := new(big.Int).SetString("-12345678901234567890123456789012345678", 10)
	duckDate := func(text string) any {
		days, inf, err := pgtext.ParseDate([]byte(text), pgtext.Lenient)
		if err != nil {
			t.Fatal(err)
		}
		switch inf {
		case pgtext.Infinity:
			return time.Unix(duckDateInfinity*86400, 0).UTC()
		case pgtext.NegInfinity:
			return time.Unix(-duckDateInfinity*86400, 0).UTC()
		}
		return time.Unix((days-pgtext.UnixEpochDays)*86400, 0).UTC()
	}
	duckTs := func(text string, tz bool) any {
		parse := pgtext.ParseTimestamp
		if tz {
			parse = pgtext.ParseTimestampTZ
		}
		us, inf, err := parse([]byte(text), pgtext.Lenient)
		if err != nil {
			t.Fatal(err)
		}
		switch inf {
		case pgtext.Infinity:
			return time.UnixMicro(duckTsInfinity).UTC()
		case pgtext.NegInfinity:
			return time.UnixMicro(-duckTsInfinity).UTC()
		}
		return time.UnixMicro(us + pgEpochMicros).UTC()
	}
	type tc struct {
		typ, text string
		code      byte
		forms     []any // as DuckDB and SQLite pass them; nil: the server's text
	}
	cases := []tc{
		{"numeric(12,3)", "1.500", hcDecimal, []any{dec(1500, 3)}},
		{"numeric(12,3)", "-0.001", hcDecimal, []any{dec(-1, 3)}},
		{"numeric(12,3)", "-0.000", hcDecimal, []any{dec(0, 3)}},
		{"numeric(12,3)", "999999999.999", hcDecimal, []any{dec(999999999999, 3)}},
		{"numeric(12,0)", "100000000", hcDecimal, []any{dec(100000000, 0)}},
		{"numeric(10,2)", "10000.01", hcDecimal, []any{dec(1000001, 2)}},
		{"numeric(5,5)", "0.00012", hcDecimal, []any{dec(12, 5)}},
		{"numeric(38,10)", "-1234567890123456789012345678.9012345678", hcDecimal, []any{duckdb.Decimal{Scale: 10, Value: bigDec}}},
		{"numeric(20,8)", "0.00000001", hcDecimal, []any{dec(1, 8)}},
		{"date", "infinity", hcDate, []any{duckDate("infinity")}},
		{"date", "-infinity", hcDate, []any{duckDate("-infinity")}},
		{"date", "0044-03-15 BC", hcDate, []any{duckDate("0044-03-15 BC")}},
		{"date", "4713-01-01 BC", hcDate, []any{duckDate("4713-01-01 BC")}},
		{"date", "2024-02-29", hcDate, []any{duckDate("2024-02-29")}},
		{"date", "5874897-12-31", hcDate, []any{duckDate("5874897-12-31")}},
		{"timestamp", "infinity", hcTimestamp, []any{duckTs("infinity", false), "infinity"}},
		{"timestamp", "-infinity", hcTimestamp, []any{duckTs("-infinity", false), "-infinity"}},
		{"timestamp", "0044-03-15 12:00:00.5 BC", hcTimestamp, []any{duckTs("0044-03-15 12:00:00.5 BC", false), "0044-03-15 12:00:00.5 BC"}},
		{"timestamp", "4713-01-01 00:00:00 BC", hcTimestamp, []any{duckTs("4713-01-01 00:00:00 BC", false), "4713-01-01 00:00:00 BC"}},
		{"timestamp", "294276-12-31 23:59:59.999999", hcTimestamp, []any{duckTs("294276-12-31 23:59:59.999999", false), "294276-12-31T23:59:59.999999"}},
		{"timestamp", "2024-02-29 23:59:59.5", hcTimestamp, []any{duckTs("2024-02-29 23:59:59.5", false), "2024-02-29T23:59:59.500000"}},
		{"timestamp", "1969-12-31 23:59:59.999999", hcTimestamp, []any{duckTs("1969-12-31 23:59:59.999999", false), "1969-12-31T23:59:59.999999"}},
		{"timestamptz", "2024-06-01 12:00:00+02", hcTimestampTZ, []any{duckTs("2024-06-01 10:00:00+00", true), "2024-06-01T10:00:00.000000Z"}},
		{"timestamptz", "0001-01-01 00:00:00+00 BC", hcTimestampTZ, []any{duckTs("0001-01-01 00:00:00+00 BC", true), "0001-01-01 00:00:00+00 BC"}},
		{"timestamptz", "infinity", hcTimestampTZ, []any{duckTs("infinity", true), "infinity"}},
		{"timestamptz", "-infinity", hcTimestampTZ, []any{duckTs("-infinity", true), "-infinity"}},
		{"timestamptz", "2000-01-01 00:00:00.000001+00", hcTimestampTZ, []any{duckTs("2000-01-01 00:00:00.000001+00", true), "2000-01-01T00:00:00.000001Z"}},
		{"time", "24:00:00", hcTime, []any{"24:00:00"}},
		{"time", "00:00:00.000001", hcTime, []any{"00:00:00.000001"}},
		{"time", "12:34:56", hcTime, []any{"12:34:56"}},
		{"timetz", "04:05:06.5+05:30", hcTimeTZ, []any{"04:05:06.5+05:30"}},
		{"timetz", "00:00:00-14:59", hcTimeTZ, []any{"00:00:00-14:59"}},
		{"timetz", "24:00:00+00", hcTimeTZ, []any{"24:00:00+00"}},
		{"interval", "1 year 2 mons -3 days 04:05:06.789", hcInterval, []any{duckdb.Interval{Months: 14, Days: -3, Micros: 14706789000}}},
		{"interval", "-00:00:00.000001", hcInterval, []any{duckdb.Interval{Micros: -1}}},
		{"interval", "30 days", hcInterval, []any{duckdb.Interval{Days: 30}}},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", hcUUID, []any{[]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}}},
		{"bytea", `\x00ff0027`, hcBytes, []any{[]byte{0, 0xff, 0, '\''}}},
		{"bytea", `\x`, hcBytes, []any{[]byte{}}},
		{"text", "é✓‏ 𝄞", hcText, nil},
		{"text", "", hcText, nil},
		{"varchar(20)", "it's \"q\" \\", hcText, nil},
		{"char(5)", "ab", hcText, nil},
		{"jsonb", `{"a": 1.0, "é": [1, 2.50, null, "\u0001x"]}`, hcText, nil},
		{"json", `{ "dup": 1,  "dup": 2 }`, hcText, nil},
		{"numeric", "123456789012345678901234567890.000000000000000000001", hcText, nil},
		{"numeric", "NaN", hcText, nil},
		{"numeric", "-Infinity", hcText, nil},
		{"numeric", "0.10", hcText, nil},
		{"int[]", "{1,NULL,-1}", hcText, nil},
		{"text[]", `{"a,b",NULL,"NULL","","\"{}\""}`, hcText, nil},
		{"interval", "1 year 2 mons -3 days 04:05:06.789", hcText, nil},
		{"date", "0044-03-15 BC", hcText, nil},
		{"time", "24:00:00", hcText, nil},
		{"timetz", "00:00:00-14:59", hcText, nil},
		{"uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", hcText, nil},
		{"float8", "0.1", hcText, nil},
		{"name", "a name", hcText, nil},
		{`"char"`, "x", hcText, nil},
	}
	for _, c := range cases {
		col := schema.Column{Name: "v", TypeID: 0}
		if err := conn.QueryRow(ctx, `SELECT $1::regtype::oid`, c.typ).Scan(&col.TypeID); err != nil {
			t.Fatal(err)
		}
		q := `SELECT hash_record_extended(ROW(` + sourceHashPart(col, c.code) + `), 0), format('%s', v) FROM (SELECT $1::text::` + c.typ + ` AS v) s`
		var want int64
		var text string
		if err := conn.QueryRow(ctx, q, c.text).Scan(&want, &text); err != nil {
			t.Fatalf("%s %q: %v", c.typ, c.text, err)
		}
		forms := c.forms
		if forms == nil {
			forms = []any{text, []byte(text)}
		}
		for _, form := range forms {
			got, ok := hashRow(string(c.code), []any{form})
			if !ok || int64(got) != want {
				t.Errorf("%s %q as %T %v: Go %d (ok %v), server %d", c.typ, c.text, form, form, int64(got), ok, want)
			}
		}
	}
	// Values a copy cannot hold as the source's type are not hashed (the
	// range is compared row by row).
	for _, c := range []struct {
		code byte
		v    any
	}{
		{hcInt32, int64(math.MaxInt32 + 1)}, {hcInt32, "5"}, {hcInt32, 5.0}, {hcOID, int64(-1)}, {hcInt8, "x"},
		{hcBool, int64(2)}, {hcFloat8, "abc"}, {hcDecimal, "1.5"}, {hcBytes, "x"}, {hcTime, "25:00:00"},
		{hcTimestamp, "not a time"}, {hcUUID, []byte{1, 2}}, {hcText, int64(1)},
	} {
		if _, ok := hashRow(string(c.code), []any{c.v}); ok {
			t.Errorf("code %c hashed %T %v", c.code, c.v, c.v)
		}
	}
}

// TestNumericSendInt64: the fast path encodes as the general one.
func TestNumericSendInt64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := []int64{0, 1, -1, 9999, 10000, -10000, 123456789, math.MaxInt64, math.MinInt64 + 1, 100000000, 1e18, -999999999999}
	for range 2000 {
		vals = append(vals, rng.Int64()>>rng.IntN(63)*int64(1-2*rng.IntN(2)))
	}
	for _, v := range vals {
		for scale := range 20 {
			fast, ok := numericSendInt64(v, scale)
			if !ok {
				continue
			}
			b := new(big.Int).SetInt64(v)
			slow := numericSendBig(b, scale)
			if string(fast) != string(slow) {
				t.Fatalf("%d scale %d: fast %x, general %x", v, scale, fast, slow)
			}
		}
	}
}

// TestISOMicros: the fast reading of the SQLite sink's timestamps agrees
// with the general one, and leaves every other text to it.
func TestISOMicros(t *testing.T) {
	for _, c := range []struct {
		s    string
		tz   bool
		fast bool
	}{
		{"2024-01-02T03:04:05.500000Z", true, true}, {"2000-01-01T00:00:00.000000Z", true, true},
		{"1999-12-31T23:59:59.999999Z", true, true}, {"0001-01-01T00:00:00.000000Z", true, true},
		{"2024-02-29T12:00:00.000001Z", true, true}, {"9999-12-31T23:59:59.999999Z", true, true},
		{"2024-01-02T03:04:05.500000", false, true}, {"1970-01-01T00:00:00.000001", false, true},
		// Left to the general reading:
		{"2024-01-02T03:04:05.500000Z", false, false}, {"2024-01-02T03:04:05.500000", true, false},
		{"2023-02-29T00:00:00.000000Z", true, false}, {"2024-01-02T24:00:00.000000Z", true, false},
		{"0000-01-01T00:00:00.000000Z", true, false}, {"2024-01-02T03:04:05.5Z", true, false},
		{"2024-01-02 03:04:05.500000+00", true, false}, {"10000-01-01T00:00:00.000000Z", true, false},
		{"infinity", false, false}, {"2024-13-01T00:00:00.000000Z", true, false}, {"2024-01-02T03:04:05.50000xZ", true, false},
	} {
		fast, ok := isoMicros(c.s, c.tz)
		if ok != c.fast {
			t.Errorf("%q (tz %v): read fast %v, want %v", c.s, c.tz, ok, c.fast)
		}
		if !ok {
			continue
		}
		parse := pgtext.ParseTimestamp
		if c.tz {
			parse = pgtext.ParseTimestampTZ
		}
		us, inf, err := parse(fromISO([]byte(c.s), c.tz), pgtext.Lenient)
		if err != nil || inf != pgtext.Finite || us != fast {
			t.Errorf("%q (tz %v): fast %d, general %d %v %v", c.s, c.tz, fast, us, inf, err)
		}
	}
}

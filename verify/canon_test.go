package verify

import (
	"math"
	"math/big"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/schema"
)

// canonCase: a value in PostgreSQL's text output, the canonical form it
// must have, and what each target may hand back for it, which must reach
// the same form.
type canonCase struct {
	oid     uint32
	pg      string
	want    string
	targets []any // database/sql values (SQLite, DuckDB, a VARCHAR'd column)
}

func TestCanonicalForm(t *testing.T) {
	ts := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04:05.999999", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []canonCase{
		{schema.OIDInt4, "42", "42", []any{int64(42), int32(42), "42"}},
		{schema.OIDInt8, "-9223372036854775808", "-9223372036854775808", []any{int64(math.MinInt64)}},
		{schema.OIDInt2, "0", "0", []any{int16(0), int64(0)}},
		{schema.OIDOid, "4294967295", "4294967295", []any{int64(4294967295)}},
		{schema.OIDBool, "t", "t", []any{int64(1), true, "t"}},
		{schema.OIDBool, "f", "f", []any{int64(0), false}},
		{schema.OIDFloat8, "0.1", "0.1", []any{0.1, "0.1"}},
		{schema.OIDFloat8, "1.2345678901234567e+15", "1.2345678901234568e+15", []any{1.2345678901234567e+15}},
		{schema.OIDFloat8, "NaN", "NaN", []any{"NaN", math.NaN()}},
		{schema.OIDFloat8, "Infinity", "Infinity", []any{math.Inf(1)}},
		{schema.OIDFloat8, "-Infinity", "-Infinity", []any{math.Inf(-1)}},
		{schema.OIDFloat8, "-0", "0", []any{0.0, math.Copysign(0, -1)}},
		{schema.OIDFloat4, "1.1", "1.1", []any{float32(1.1), 1.1}},
		{schema.OIDFloat4, "3.4028235e+38", "3.4028235e+38", []any{float32(math.MaxFloat32), 3.4028235e+38}},
		{schema.OIDFloat4, "1e-45", "1e-45", []any{float32(1e-45), 1e-45}},
		{schema.OIDFloat4, "NaN", "NaN", []any{"NaN", float32(math.NaN())}},
		{schema.OIDNumeric, "1.50", "1.5", []any{"1.50", duckdb.Decimal{Width: 10, Scale: 2, Value: big.NewInt(150)}}},
		{schema.OIDNumeric, "-0.0010", "-0.001", []any{duckdb.Decimal{Width: 10, Scale: 4, Value: big.NewInt(-10)}}},
		{schema.OIDNumeric, "0.00", "0", []any{duckdb.Decimal{Width: 5, Scale: 2, Value: big.NewInt(0)}}},
		{schema.OIDNumeric, "12300", "12300", []any{duckdb.Decimal{Width: 7, Scale: 0, Value: big.NewInt(12300)}}},
		{schema.OIDNumeric, "NaN", "NaN", []any{"NaN"}},
		{schema.OIDNumeric, "-Infinity", "-Infinity", []any{"-Infinity"}},
		{schema.OIDNumeric, "123456789012345678901234567890.123", "123456789012345678901234567890.123", []any{"123456789012345678901234567890.123"}},
		{schema.OIDText, "it's \"quoted\" ‏ünï", "it's \"quoted\" ‏ünï", []any{"it's \"quoted\" ‏ünï", []byte("it's \"quoted\" ‏ünï")}},
		{schema.OIDText, "", "", []any{"", []byte{}}},
		{schema.OIDBpchar, "ab  ", "ab  ", []any{"ab  "}},
		{schema.OIDJSONB, `{"a": [1, 2.50]}`, `{"a": [1, 2.50]}`, []any{`{"a": [1, 2.50]}`}},
		{schema.OIDBytea, `\x00ff27`, "\x00\xff'", []any{[]byte{0, 0xff, '\''}, `\x00ff27`}},
		{schema.OIDBytea, `\x`, "", []any{[]byte{}}},
		{schema.OIDUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", []any{
			"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
			[]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11},
			duckdb.UUID{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}}},
		{schema.OIDDate, "2024-02-29", "2024-02-29", []any{"2024-02-29", ts("2024-02-29 00:00:00")}},
		{schema.OIDDate, "0044-03-15 BC", "0044-03-15 BC", []any{time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC)}},
		{schema.OIDDate, "infinity", "infinity", []any{time.Unix(math.MaxInt32*86400, 0)}},
		{schema.OIDDate, "-infinity", "-infinity", []any{time.Unix(-math.MaxInt32*86400, 0)}},
		{schema.OIDTime, "24:00:00", "24:00:00", []any{"24:00:00"}},
		{schema.OIDTime, "04:05:06.5", "04:05:06.5", []any{"04:05:06.5", time.Date(1, 1, 1, 4, 5, 6, 500000000, time.UTC)}},
		{schema.OIDTimeTZ, "04:05:06.5+05:30", "04:05:06.5+05:30", []any{"04:05:06.5+05:30"}},
		{schema.OIDTimestamp, "2024-01-02 03:04:05.5", "2024-01-02 03:04:05.5", []any{
			"2024-01-02T03:04:05.500000", ts("2024-01-02 03:04:05.5")}},
		{schema.OIDTimestamp, "10000-01-01 00:00:00", "10000-01-01 00:00:00", []any{"10000-01-01T00:00:00.000000"}},
		{schema.OIDTimestamp, "0044-03-15 12:00:00 BC", "0044-03-15 12:00:00 BC", []any{
			"0044-03-15 12:00:00 BC", time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC)}},
		{schema.OIDTimestamp, "infinity", "infinity", []any{"infinity", time.UnixMicro(math.MaxInt64)}},
		{schema.OIDTimestamp, "-infinity", "-infinity", []any{time.UnixMicro(-math.MaxInt64)}},
		{schema.OIDTimestampTZ, "2024-01-02 03:04:05.000001+00", "2024-01-02 03:04:05.000001+00", []any{
			"2024-01-02T03:04:05.000001Z", ts("2024-01-02 03:04:05.000001"), ts("2024-01-02 03:04:05.000001").In(time.FixedZone("x", 3600))}},
		{schema.OIDTimestampTZ, "2024-01-02 05:04:05+02", "2024-01-02 03:04:05+00", nil},
		{schema.OIDTimestampTZ, "-infinity", "-infinity", []any{"-infinity", time.UnixMicro(-math.MaxInt64)}},
		{schema.OIDInterval, "1 year 2 mons 3 days 04:05:06.5", "14 mons 3 days 14706500000 us", []any{
			"1 year 2 mons 3 days 04:05:06.5", duckdb.Interval{Months: 14, Days: 3, Micros: 14706500000}}},
		{1007, "{1,2,NULL}", `{"1","2",NULL}`, []any{"{1,2,NULL}", []any{int32(1), int32(2), nil}}},
		{1009, `{"a,b","c\"d",NULL,"NULL",""}`, `{"a,b","c\"d",NULL,"NULL",""}`, []any{[]any{"a,b", `c"d`, nil, "NULL", ""}}},
		{1001, `{"\\x00ff"}`, "{\"\x00\xff\"}", []any{[]any{[]byte{0, 0xff}}}},
		{1021, `{1.1,NaN}`, `{"1.1","NaN"}`, []any{[]any{float32(1.1), float32(math.NaN())}}},
		{1115, `{"2024-01-02 03:04:05"}`, `{"2024-01-02 03:04:05"}`, []any{[]any{ts("2024-01-02 03:04:05")}}},
		{1007, `{{1,2},{3,4}}`, "\x01{{1,2},{3,4}}", []any{"{{1,2},{3,4}}"}},
		{1007, `{}`, `{}`, []any{[]any{}}},
		{30000, "(1,\"a b\")", "(1,\"a b\")", []any{"(1,\"a b\")"}}, // a composite: text
	}
	for _, c := range cases {
		col := newColumn(schema.Column{Name: "c", TypeID: c.oid, Typmod: -1})
		if got := string(col.appendText(nil, []byte(c.pg))); got != c.want {
			t.Errorf("oid %d: text %q: canonical %q, want %q", c.oid, c.pg, got, c.want)
		}
		for _, v := range c.targets {
			if got := string(col.appendValue(nil, v)); got != c.want {
				t.Errorf("oid %d: %T %#v: canonical %q, want %q (from %q)", c.oid, v, v, got, c.want, c.pg)
			}
		}
	}
}

// Values that differ must not meet in one form.
func TestCanonicalFormKeepsDifferences(t *testing.T) {
	pairs := []struct {
		oid  uint32
		a, b any
	}{
		{schema.OIDInt4, "1", "2"},
		{schema.OIDInt4, "1", int64(2)},
		{schema.OIDInt4, "1", "abc"}, // unreadable: never equal to a value
		{schema.OIDBool, "t", int64(2)},
		{schema.OIDFloat8, "0.1", 0.1000000000000001},
		{schema.OIDFloat4, "1.1", 1.1000001},
		{schema.OIDNumeric, "1.5", "1.05"},
		{schema.OIDText, "a", "a "},
		{schema.OIDText, "", "\u200f"},
		{schema.OIDBytea, `\x00`, []byte{}},
		{schema.OIDBytea, `\x41`, "A"}, // text in a BLOB column is not the bytes
		{schema.OIDTimestampTZ, "2024-01-02 03:04:05+00", "2024-01-02 03:04:05.000001+00"},
		{schema.OIDTimestamp, "0044-03-15 12:00:00 BC", "0044-03-15 12:00:00"},
		{schema.OIDTimeTZ, "04:00:00+02", "03:00:00+01"},
		{schema.OIDInterval, "1 mon", "30 days"},
		{schema.OIDDate, "infinity", time.Date(5881580, 7, 10, 0, 0, 0, 0, time.UTC)},
		{1009, `{"a,b"}`, `{a,b}`},
		{1009, `{NULL}`, `{"NULL"}`},
		{1007, `{1}`, "1"},
		{schema.OIDJSON, `{"a":1}`, `{"a": 1}`}, // json keeps its text
	}
	for _, p := range pairs {
		col := newColumn(schema.Column{Name: "c", TypeID: p.oid, Typmod: -1})
		form := func(v any) string {
			if s, ok := v.(string); ok {
				return string(col.appendText(nil, []byte(s)))
			}
			return string(col.appendValue(nil, v))
		}
		if fa, fb := form(p.a), form(p.b); fa == fb {
			t.Errorf("oid %d: %#v and %#v share the canonical form %q", p.oid, p.a, p.b, fa)
		}
	}
}

// Key order: what compare says must be how the databases sort.
func TestKeyOrder(t *testing.T) {
	cases := []struct {
		oid uint32
		asc []string // canonical forms, ascending
	}{
		{schema.OIDInt8, []string{"-100", "-99", "-1", "0", "1", "9", "10", "9223372036854775807"}},
		{schema.OIDText, []string{"", "A", "B", "a", "ab", "b", "é"}},
		{schema.OIDUUID, []string{"10eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "80eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "f0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}},
		{schema.OIDDate, []string{"-infinity", "0100-01-01 BC", "0044-03-15 BC", "0001-01-01", "2024-01-02", "10000-01-01", "infinity"}},
		{schema.OIDTimestampTZ, []string{"-infinity", "0044-03-15 00:00:00+00 BC", "2024-01-02 03:04:05+00", "2024-01-02 03:04:05.5+00", "infinity"}},
	}
	for _, c := range cases {
		col := newColumn(schema.Column{Name: "k", TypeID: c.oid, Typmod: -1})
		if col.order == unordered {
			t.Fatalf("oid %d: not orderable", c.oid)
		}
		for i := range c.asc {
			for j := range c.asc {
				want := 0
				if i < j {
					want = -1
				} else if i > j {
					want = 1
				}
				if got := col.compare([]byte(c.asc[i]), []byte(c.asc[j])); got != want {
					t.Errorf("oid %d: compare(%q, %q) = %d, want %d", c.oid, c.asc[i], c.asc[j], got, want)
				}
			}
		}
	}
}

// FuzzCanonicalText: any bytes, read as any type's text form, give a
// canonical form without panicking, and the same form every time.
func FuzzCanonicalText(f *testing.F) {
	oids := []uint32{schema.OIDInt4, schema.OIDFloat4, schema.OIDNumeric, schema.OIDBytea, schema.OIDDate, schema.OIDTime,
		schema.OIDTimeTZ, schema.OIDTimestamp, schema.OIDTimestampTZ, schema.OIDInterval, schema.OIDUUID, schema.OIDBool,
		1007, 1009, 1001, 1115, 1021}
	for _, s := range []string{"{1,2,NULL}", `{"a\"b",NULL,""}`, `{{1},{2}}`, "[0:1]={1,2}", "2024-01-02T03:04:05.5Z",
		"0044-03-15 12:00:00 BC", "-infinity", `\x00ff`, "1 year -2 mons", "NaN", "-0", "24:00:00+14:59"} {
		for i := range oids {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, s string) {
		col := newColumn(schema.Column{Name: "c", TypeID: oids[int(i)%len(oids)], Typmod: -1})
		a := col.appendText(nil, []byte(s))
		b := col.appendValue(nil, s)
		if string(a) != string(b) {
			t.Fatalf("oid %d %q: text %q, value %q", col.oid, s, a, b)
		}
		if col.order != unordered {
			_ = col.compare(a, b)
		}
	})
}

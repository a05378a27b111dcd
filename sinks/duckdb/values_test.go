package duckdb

import (
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/schema"
)

func TestParseArray(t *testing.T) {
	type el = *string // nil: NULL
	s := func(v string) el { return &v }
	for _, c := range []struct {
		in   string
		want []el
	}{
		{"{}", []el{}},
		{" { } ", []el{}},
		{"{1,NULL,3}", []el{s("1"), nil, s("3")}},
		{`{"a b",NULL,"c\"d","NULL","",x,"y,z","\\","{}"}`, []el{s("a b"), nil, s(`c"d`), s("NULL"), s(""), s("x"), s("y,z"), s(`\`), s("{}")}},
		{`{null,Null,nulls}`, []el{nil, nil, s("nulls")}},
		{`{ a , b }`, []el{s("a"), s("b")}},
		{`{a\,b,c\"}`, []el{s("a,b"), s(`c"`)}},
		{`{"\\x0102"}`, []el{s(`\x0102`)}},
		{`{"2024-01-02 03:04:05+00",infinity}`, []el{s("2024-01-02 03:04:05+00"), s("infinity")}},
		{`{ü ✓}`, []el{s("ü ✓")}},
	} {
		elems, _, err := parseArray([]byte(c.in), nil, nil)
		if err != nil {
			t.Errorf("parseArray(%q): %v", c.in, err)
			continue
		}
		got := make([]el, len(elems))
		for i, e := range elems {
			if !e.null {
				got[i] = s(string(e.val))
			}
		}
		if !slices.EqualFunc(got, c.want, func(a, b el) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }) {
			t.Errorf("parseArray(%q) = %v, want %v", c.in, show(got), show(c.want))
		}
	}
	for _, in := range []string{"", "1,2", "{", "{1", "{1,", `{"a`, `{"a\`, "{1}x", "{a\"b}", "{1,,2}", "{,}", `{a\`} {
		if _, _, err := parseArray([]byte(in), nil, nil); err == nil {
			t.Errorf("parseArray(%q) succeeded", in)
		}
	}
	for _, in := range []string{"{{1,2},{3,4}}", "[0:1]={1,2}", "[1:1][1:2]={{1,2}}", "{{}}"} {
		if _, _, err := parseArray([]byte(in), nil, nil); err != errNotOneDimensional {
			t.Errorf("parseArray(%q) = %v, want errNotOneDimensional", in, err)
		}
	}
}

func show(els []*string) string {
	parts := make([]string, len(els))
	for i, e := range els {
		if e == nil {
			parts[i] = "NULL"
		} else {
			parts[i] = `"` + *e + `"`
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// formatArray prints elements as array_out does.
func formatArray(elems []arrayElem) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, e := range elems {
		if i > 0 {
			sb.WriteByte(',')
		}
		if e.null {
			sb.WriteString("NULL")
			continue
		}
		v := string(e.val)
		need := v == "" || strings.EqualFold(v, "NULL") || strings.ContainsAny(v, "{},\"\\ \t\n\r\v\f")
		if !need {
			sb.WriteString(v)
			continue
		}
		sb.WriteByte('"')
		for j := 0; j < len(v); j++ {
			if v[j] == '"' || v[j] == '\\' {
				sb.WriteByte('\\')
			}
			sb.WriteByte(v[j])
		}
		sb.WriteByte('"')
	}
	sb.WriteByte('}')
	return sb.String()
}

// FuzzParseArray: the parser never panics, and what it accepts prints back
// (as PostgreSQL would) to text that parses to the same elements.
// The seed corpus is in testdata/fuzz/FuzzParseArray.
func FuzzParseArray(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		elems, buf, err := parseArray(in, nil, nil)
		if err != nil {
			return
		}
		_ = buf
		out := formatArray(elems)
		again, _, err := parseArray([]byte(out), nil, nil)
		if err != nil {
			t.Fatalf("parseArray(%q) printed as %q does not parse: %v", in, out, err)
		}
		if !slices.EqualFunc(elems, again, func(a, b arrayElem) bool { return a.null == b.null && string(a.val) == string(b.val) }) {
			t.Fatalf("parseArray(%q) printed as %q parses to %q", in, out, formatArray(again))
		}
	})
}

// FuzzParseValues: no text crashes a conversion.
func FuzzParseValues(f *testing.F) {
	for _, s := range []string{"1", "-9223372036854775808", "1.5", "NaN", `\x00ff`, "2024-01-02", "0044-03-15 BC",
		"24:00:00", "03:04:05+05:30", "2024-01-02 03:04:05.5+00", "1 year 2 mons 3 days 04:05:06.5", "-00:00:01",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{1,NULL}", "12.50", "infinity"} {
		f.Add([]byte(s))
	}
	oids := []uint32{schema.OIDBool, schema.OIDInt2, schema.OIDInt4, schema.OIDInt8, schema.OIDOid, schema.OIDFloat4,
		schema.OIDFloat8, schema.OIDNumeric, schema.OIDBytea, schema.OIDJSON, schema.OIDDate, schema.OIDTime, schema.OIDTimeTZ,
		schema.OIDTimestamp, schema.OIDTimestampTZ, schema.OIDInterval, schema.OIDUUID, 1007, 1185, 1187, 1231}
	f.Fuzz(func(t *testing.T, in []byte) {
		var cv converter
		for _, oid := range oids {
			for _, typmod := range []int32{-1, 12<<16 | 2 + 4, 38<<16 | 10 + 4} {
				cv.reset()
				_, _ = cv.value(planFor(oid, typmod), in)
			}
		}
	})
}

// TestDateTimeSentinels: infinities become DuckDB's sentinels, and values
// past DuckDB's range fail with the remedy (the parsing itself is
// internal/pgtext's and tested there).
func TestDateTimeSentinels(t *testing.T) {
	for _, c := range []struct {
		in   string
		tz   bool
		want int64
	}{
		{"2024-01-02 03:04:05+05:30", true, time.Date(2024, 1, 1, 21, 34, 5, 0, time.UTC).UnixMicro()},
		{"0044-03-15 12:00:00 BC", false, time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC).UnixMicro()},
		{"294247-01-10 04:00:54.775806", false, math.MaxInt64 - 1}, // DuckDB's last finite timestamp
		{"infinity", true, math.MaxInt64},
		{"-infinity", false, -math.MaxInt64},
	} {
		got, err := parseTimestamp([]byte(c.in), c.tz)
		if err != nil || got != c.want {
			t.Errorf("parseTimestamp(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"294247-01-10 04:00:54.775807", "294277-01-01 00:00:00", "290309-01-01 00:00:00 BC"} {
		if _, err := parseTimestamp([]byte(in), false); err == nil || !strings.Contains(err.Error(), "DuckDB's range") {
			t.Errorf("parseTimestamp(%q) = %v, want an error about DuckDB's range", in, err)
		}
	}
	for in, want := range map[string]int64{"2000-02-29": time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC).Unix() / 86400, "infinity": math.MaxInt32, "-infinity": -math.MaxInt32} {
		if d, err := parseDate([]byte(in)); err != nil || d != want {
			t.Errorf("parseDate(%q) = %d, %v; want %d", in, d, err, want)
		}
	}
	var cv converter
	v, err := cv.value(planFor(schema.OIDInterval, -1), []byte("-1 years +2 mons 3 days -04:05:06"))
	if want := (duckdb.Interval{Months: -10, Days: 3, Micros: -14706_000000}); err != nil || v != want {
		t.Errorf("interval: %v, %v; want %v", v, err, want)
	}
}

func TestParseDecimal(t *testing.T) {
	huge, _ := new(big.Int).SetString("-99999999999999999999999999999999999999", 10)
	for _, c := range []struct {
		in           string
		width, scale int
		want         any
	}{
		{"12.5", 12, 2, int64(1250)},
		{"-0.01", 12, 2, int64(-1)},
		{"0", 5, 0, int64(0)},
		{"12300", 7, 0, int64(12300)},
		{"-9999999999999999999999999999.9999999999", 38, 10, huge},
		{"-922337203685477580.8", 38, 1, int64(math.MinInt64 + 0)},
	} {
		got, err := parseDecimal([]byte(c.in), c.width, c.scale)
		if err != nil {
			t.Errorf("parseDecimal(%q): %v", c.in, err)
			continue
		}
		if g, ok := got.(*big.Int); ok {
			if w, ok := c.want.(*big.Int); !ok || g.Cmp(w) != 0 {
				t.Errorf("parseDecimal(%q) = %v, want %v", c.in, g, c.want)
			}
		} else if got != c.want {
			t.Errorf("parseDecimal(%q) = %#v, want %#v", c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		in           string
		width, scale int
	}{{"NaN", 12, 2}, {"1.234", 12, 2}, {"1000", 5, 2}, {"", 5, 2}, {"1e5", 12, 2}, {"--1", 5, 0}} {
		if v, err := parseDecimal([]byte(c.in), c.width, c.scale); err == nil {
			t.Errorf("parseDecimal(%q, %d, %d) = %v, want an error", c.in, c.width, c.scale, v)
		}
	}
}

// TestValueAllocations: converting a typical row allocates only the boxes
// the appender's interface takes.
func TestValueAllocations(t *testing.T) {
	var cv converter
	cases := []struct {
		oid    uint32
		typmod int32
		in     string
		max    float64
	}{
		{schema.OIDInt8, -1, "123456789", 1},
		{schema.OIDText, -1, "hello", 1},
		{schema.OIDTimestampTZ, -1, "2024-01-02 03:04:05.5+00", 1},
		{schema.OIDNumeric, 12<<16 | 2 + 4, "12345.67", 1},
		{schema.OIDJSON, -1, `{"a": 1}`, 1},
		{schema.OIDFloat8, -1, "1.5", 1},
	}
	for _, c := range cases {
		p := planFor(c.oid, c.typmod)
		in := []byte(c.in)
		n := testing.AllocsPerRun(100, func() {
			cv.reset()
			if _, err := cv.value(p, in); err != nil {
				t.Fatal(err)
			}
		})
		if n > c.max {
			t.Errorf("OID %d %q: %.0f allocations per value, want at most %.0f", c.oid, c.in, n, c.max)
		}
	}
}

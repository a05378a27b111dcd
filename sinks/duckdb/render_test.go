package duckdb_test

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	duckdb "github.com/duckdb/duckdb-go/v2"

	wmduckdb "github.com/walmirror/walmirror/sinks/duckdb"
)

// This file reads DuckDB values back and renders them in PostgreSQL's text
// form (DateStyle ISO, TimeZone UTC, IntervalStyle postgres,
// extra_float_digits 3, bytea_output hex), so tests can compare with what the
// source would show. Most types go through DuckDB's own VARCHAR cast, which
// prints them as PostgreSQL does except for BC dates; floats, booleans,
// blobs and intervals are formatted here.

// renderer reads one column: the select expression for it and the function
// rendering the scanned value.
type renderer struct {
	sel    func(col string) string
	render func(t *testing.T, v any) string
}

func asVarchar(col string) string { return "CAST(" + col + " AS VARCHAR)" }
func raw(col string) string       { return col }

// rendererFor chooses how to read a column of the given DuckDB type.
func rendererFor(typ string) renderer {
	if elem, ok := strings.CutSuffix(typ, "[]"); ok {
		er := rendererFor(elem)
		if elemNeedsGo(elem) {
			return renderer{sel: raw, render: func(t *testing.T, v any) string { return pgArray(t, v, er.render) }}
		}
		return renderer{
			sel: func(col string) string {
				return "list_transform(" + col + ", lambda x: CAST(x AS VARCHAR))"
			},
			render: func(t *testing.T, v any) string { return pgArray(t, v, er.render) },
		}
	}
	if elemNeedsGo(typ) {
		return renderer{sel: raw, render: renderGo}
	}
	decimal := strings.HasPrefix(typ, "DECIMAL(")
	return renderer{sel: asVarchar, render: func(t *testing.T, v any) string {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("expected text, got %#v (%T)", v, v)
		}
		if decimal {
			return fixDecimal(s)
		}
		return fixBC(s)
	}}
}

// fixDecimal adds the leading zero DuckDB leaves out of DECIMAL(p,p) values:
// ".5" → "0.5".
func fixDecimal(s string) string {
	if rest, ok := strings.CutPrefix(s, "-."); ok {
		return "-0." + rest
	}
	if strings.HasPrefix(s, ".") {
		return "0" + s
	}
	return s
}

func elemNeedsGo(typ string) bool {
	switch typ {
	case "BOOLEAN", "FLOAT", "DOUBLE", "BLOB", "INTERVAL":
		return true
	}
	return false
}

// renderGo formats values DuckDB's VARCHAR cast would print differently.
func renderGo(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case bool:
		if v {
			return "t"
		}
		return "f"
	case float32:
		return pgFloat(float64(v), 32)
	case float64:
		return pgFloat(v, 64)
	case []byte:
		return `\x` + hex.EncodeToString(v)
	case duckdb.Interval:
		return pgInterval(v)
	case string:
		return fixBC(v) // list elements cast to VARCHAR
	}
	t.Fatalf("unexpected value %#v (%T)", v, v)
	return ""
}

// fixBC moves DuckDB's "(BC)" marker where PostgreSQL puts " BC": at the end.
// "0044-03-15 (BC) 12:00:00+00" → "0044-03-15 12:00:00+00 BC".
func fixBC(s string) string {
	if before, after, ok := strings.Cut(s, " (BC)"); ok {
		return before + after + " BC"
	}
	return s
}

// pgFloat formats a float as PostgreSQL (12+) prints float4/float8: the
// shortest text that reads back exactly, in exponent notation below 1e-4
// and from 1e15 (float8) or 1e6 (float4) on.
func pgFloat(v float64, bits int) string {
	switch {
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	case math.IsNaN(v):
		return "NaN"
	}
	e := strconv.FormatFloat(v, 'e', -1, bits)
	exp, err := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if err != nil {
		panic(err)
	}
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp >= -4 && exp < limit {
		return strconv.FormatFloat(v, 'f', -1, bits)
	}
	return e
}

// pgInterval formats an interval as IntervalStyle postgres does.
func pgInterval(iv duckdb.Interval) string {
	switch {
	case iv.Months == math.MaxInt32 && iv.Days == math.MaxInt32 && iv.Micros == math.MaxInt64:
		return "infinity"
	case iv.Months == math.MinInt32 && iv.Days == math.MinInt32 && iv.Micros == math.MinInt64:
		return "-infinity"
	}
	var sb strings.Builder
	isZero, isBefore := true, false
	part := func(v int64, unit string) {
		if v == 0 {
			return
		}
		if !isZero {
			sb.WriteByte(' ')
		}
		if isBefore && v > 0 {
			sb.WriteByte('+')
		}
		sb.WriteString(strconv.FormatInt(v, 10) + " " + unit)
		if v != 1 {
			sb.WriteByte('s')
		}
		isBefore, isZero = v < 0, false
	}
	part(int64(iv.Months/12), "year")
	part(int64(iv.Months%12), "mon")
	part(int64(iv.Days), "day")
	us := iv.Micros
	if isZero || us != 0 {
		if !isZero {
			sb.WriteByte(' ')
		}
		neg := us < 0
		u := uint64(us)
		if neg {
			sb.WriteByte('-')
			u = -u
		} else if isBefore {
			sb.WriteByte('+')
		}
		h, m, s, f := u/3_600_000_000, u/60_000_000%60, u/1_000_000%60, u%1_000_000
		fmt.Fprintf(&sb, "%02d:%02d:%02d", h, m, s)
		if f != 0 {
			sb.WriteString(strings.TrimRight(fmt.Sprintf(".%06d", f), "0"))
		}
	}
	return sb.String()
}

// pgArray renders a LIST as PostgreSQL's array text.
func pgArray(t *testing.T, v any, elem func(*testing.T, any) string) string {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("expected a list, got %#v (%T)", v, v)
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, e := range l {
		if i > 0 {
			sb.WriteByte(',')
		}
		if e == nil {
			sb.WriteString("NULL")
			continue
		}
		sb.WriteString(quoteArrayElem(elem(t, e)))
	}
	sb.WriteByte('}')
	return sb.String()
}

// quoteArrayElem quotes an element as array_out does.
func quoteArrayElem(s string) string {
	need := s == "" || strings.EqualFold(s, "NULL")
	for i := 0; i < len(s) && !need; i++ {
		switch s[i] {
		case '{', '}', ',', '"', '\\', ' ', '\t', '\n', '\r', '\v', '\f':
			need = true
		}
	}
	if !need {
		return s
	}
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('"')
	return sb.String()
}

// columnTypes returns the DuckDB types of a target table's columns by name;
// nil when the table does not exist.
func columnTypes(t *testing.T, db *sql.DB, schemaName, table string) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = ? AND schema_name = ? AND table_name = ?`, wmduckdb.Catalog, schemaName, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out map[string]string
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[n] = typ
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// readTable renders the rows of a target table, the given columns in order,
// with an optional WHERE clause.
func readTable(t *testing.T, db *sql.DB, schemaName, table string, cols []string, where string, args ...any) [][]string {
	t.Helper()
	types := columnTypes(t, db, schemaName, table)
	if types == nil {
		return nil
	}
	rs := make([]renderer, len(cols))
	sels := make([]string, len(cols))
	for i, c := range cols {
		typ, ok := types[c]
		if !ok {
			t.Fatalf("table %s.%s has no column %q (has %v)", schemaName, table, c, types)
		}
		rs[i] = rendererFor(typ)
		sels[i] = rs[i].sel(quote(c))
	}
	q := "SELECT " + strings.Join(sels, ", ") + " FROM " + wmduckdb.TableName(schemaName, table)
	if where != "" {
		q += " WHERE " + where
	}
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
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
		r := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				r[i] = "NULL"
				continue
			}
			r[i] = rs[i].render(t, v)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRenderHelpers(t *testing.T) {
	for in, want := range map[float64]string{
		0: "0", 1.5: "1.5", 0.1: "0.1", 1e-4: "0.0001", 1e-5: "1e-05", 123456.789: "123456.789",
		1e14: "100000000000000", 1e15: "1e+15", -2.25e-300: "-2.25e-300", 1e300: "1e+300",
		math.Inf(1): "Infinity", math.Inf(-1): "-Infinity", math.Copysign(0, -1): "-0",
	} {
		if got := pgFloat(in, 64); got != want {
			t.Errorf("pgFloat(%v, 64) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float32]string{1.1: "1.1", 100000: "100000", 1e6: "1e+06", 1e-45: "1e-45", 3.4028235e38: "3.4028235e+38"} {
		if got := pgFloat(float64(in), 32); got != want {
			t.Errorf("pgFloat(%v, 32) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		iv   duckdb.Interval
		want string
	}{
		{duckdb.Interval{Months: 14, Days: 3, Micros: 14706_500000}, "1 year 2 mons 3 days 04:05:06.5"},
		{duckdb.Interval{Micros: -1_000_000}, "-00:00:01"},
		{duckdb.Interval{}, "00:00:00"},
		{duckdb.Interval{Months: -14, Days: 3, Micros: -14706_000000}, "-1 years -2 mons +3 days -04:05:06"},
		{duckdb.Interval{Days: -1}, "-1 days"},
		{duckdb.Interval{Months: 1}, "1 mon"},
	} {
		if got := pgInterval(c.iv); got != c.want {
			t.Errorf("pgInterval(%+v) = %q, want %q", c.iv, got, c.want)
		}
	}
	if got := fixBC("0044-03-15 (BC) 12:00:00+00"); got != "0044-03-15 12:00:00+00 BC" {
		t.Errorf("fixBC = %q", got)
	}
}

package verify

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/internal/pgtext"
	"github.com/walmirror/walmirror/schema"
)

// The canonical form of a value is what both sides are compared by: for
// every PostgreSQL type, one byte string per value, whatever form a target
// keeps it in (PostgreSQL's text output, a SQLite INTEGER or ISO-8601 text,
// a DuckDB native value). It is PostgreSQL's text output under walmirror's
// session settings (DateStyle ISO, IntervalStyle postgres, TimeZone UTC,
// bytea hex), except where that output has several spellings for values
// PostgreSQL's own equality holds equal, or a target cannot keep the
// difference:
//
//   - numeric: no leading zeros, no trailing fractional zeros ("1.50" and
//     "1.5" are equal, as in PostgreSQL), "0" for zero;
//   - float4/float8: the shortest text that reads back as the same float of
//     the column's width; -0 is 0 (SQLite keeps no negative zero, and
//     PostgreSQL's = holds them equal);
//   - bytea: the bytes themselves (shown as \x hex);
//   - interval: months, days and microseconds as stored ("1 mon" and "30
//     days" differ, as in the copy);
//   - date, time, timetz, timestamp, timestamptz, uuid, bool, integers:
//     PostgreSQL's output form, rebuilt from the value;
//   - a one-dimensional array: its elements' canonical forms, each quoted;
//     other arrays (several dimensions, explicit bounds) their text;
//   - text, json, jsonb, enums, domains and every other type: the text as
//     PostgreSQL printed it (DuckDB's JSON keeps it exactly).
//
// A value a side holds in a form that cannot be read as its column's type
// (a hand-written 'abc' in a SQLite INTEGER column) becomes a form no valid
// value has, so it differs from every valid value and equals only the same
// unreadable value.
type column struct {
	name  string
	oid   uint32
	kind  schema.Kind
	bits  int     // KindFloat: 32 or 64
	elem  *column // KindArray
	order order   // how keys of this column sort
}

// order says whether and how a key column's values sort the same way in
// every database, so both sides can be read in key order and merged.
type order uint8

const (
	unordered   order = iota
	byInteger         // numerically
	byBytes           // byte-wise (text in the C collation, uuid)
	byDate            // date value, -infinity first, infinity last
	byTimestamp       // timestamp value, likewise
)

func newColumn(c schema.Column) *column {
	col := &column{name: c.Name, oid: c.TypeID, kind: schema.KindOf(c.TypeID), bits: 64}
	switch col.kind {
	case schema.KindFloat:
		if c.TypeID == schema.OIDFloat4 {
			col.bits = 32
		}
	case schema.KindArray:
		e, _ := schema.ArrayElem(c.TypeID)
		col.elem = newColumn(schema.Column{Name: c.Name, TypeID: e, Typmod: c.Typmod})
	case schema.KindInt:
		col.order = byInteger
	case schema.KindUUID:
		col.order = byBytes
	case schema.KindText:
		// bpchar sorts without its padding and "char" as a signed byte:
		// neither sorts as its stored text does.
		if c.TypeID == schema.OIDText || c.TypeID == schema.OIDVarchar || c.TypeID == schema.OIDName {
			col.order = byBytes
		}
	case schema.KindDate:
		col.order = byDate
	case schema.KindTimestamp, schema.KindTimestampTZ:
		col.order = byTimestamp
	}
	return col
}

// invalidMark starts the canonical form of a value that could not be read
// as its column's type, followed by what was read. No valid form of a
// non-bytea type starts with 0xff (text is UTF-8); a bytea could, but not
// with these ten bytes by accident.
var invalidMark = []byte("\xff\x00invalid\x00")

func appendInvalid(dst []byte, raw string) []byte {
	return append(append(dst, invalidMark...), raw...)
}

func isInvalid(b []byte) bool { return bytes.HasPrefix(b, invalidMark) }

// appendText appends the canonical form of b, a value in PostgreSQL's text
// output form (as the source and a PostgreSQL target print it, and as a
// SQLite or DuckDB target stores types it has no native form for).
func (c *column) appendText(dst, b []byte) []byte {
	out, err := c.text(dst, b)
	if err != nil {
		return appendInvalid(dst, string(b))
	}
	return out
}

func (c *column) text(dst, b []byte) ([]byte, error) {
	switch c.kind {
	case schema.KindBool:
		v, err := pgtext.ParseBool(b)
		if err != nil {
			return nil, err
		}
		return appendBool(dst, v), nil
	case schema.KindInt:
		if canonicalInt(b) {
			return append(dst, b...), nil
		}
		v, err := pgtext.ParseInt(b, 64, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return strconv.AppendInt(dst, v, 10), nil
	case schema.KindFloat:
		v, err := pgtext.ParseFloat(b, c.bits)
		if err != nil {
			return nil, err
		}
		return appendFloat(dst, v, c.bits), nil
	case schema.KindNumeric:
		n, err := pgtext.ParseNumeric(b, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return appendNumeric(dst, n), nil
	case schema.KindBytea:
		return pgtext.AppendBytea(dst, b)
	case schema.KindDate:
		d, inf, err := pgtext.ParseDate(b, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return appendDate(dst, d, inf), nil
	case schema.KindTime:
		us, err := pgtext.ParseTime(b, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return appendClock(dst, us), nil
	case schema.KindTimeTZ:
		us, off, err := pgtext.ParseTimeTZ(b, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return appendOffset(appendClock(dst, us), off), nil
	case schema.KindTimestamp, schema.KindTimestampTZ:
		tz := c.kind == schema.KindTimestampTZ
		b = fromISO(b, tz)
		parse := pgtext.ParseTimestamp
		if tz {
			parse = pgtext.ParseTimestampTZ
		}
		us, inf, err := parse(b, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return appendTimestamp(dst, floorDiv(us, usPerDay), floorMod(us, usPerDay), inf, tz), nil
	case schema.KindInterval:
		v, err := pgtext.ParseInterval(b)
		if err != nil {
			return nil, err
		}
		return appendInterval(dst, v.Months, v.Days, v.Micros), nil
	case schema.KindUUID:
		u, err := pgtext.ParseUUID(b, pgtext.Lenient)
		if err != nil {
			return nil, err
		}
		return appendUUID(dst, u[:]), nil
	case schema.KindArray:
		return c.arrayText(dst, b)
	}
	return append(dst, b...), nil // text, json, enums, domains, ...
}

// appendValue appends the canonical form of v, a value as database/sql
// drivers return it (SQLite: int64, float64, string, []byte; DuckDB: its
// native Go types). Strings and byte slices of non-binary types are read
// as text forms.
func (c *column) appendValue(dst []byte, v any) []byte {
	out, err := c.value(dst, v)
	if err != nil {
		// Unreadable text is kept as it is, so that the same text on both
		// sides (a form the parsers do not know) still compares equal.
		switch v := v.(type) {
		case string:
			return appendInvalid(dst, v)
		case []byte:
			return appendInvalid(dst, string(v))
		}
		return appendInvalid(dst, fmt.Sprintf("%T %v", v, v))
	}
	return out
}

var errType = fmt.Errorf("unexpected type")

func (c *column) value(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return c.text(dst, []byte(v))
	case []byte:
		switch c.kind {
		case schema.KindBytea:
			return append(dst, v...), nil
		case schema.KindUUID:
			if len(v) == 16 {
				return appendUUID(dst, v), nil
			}
		}
		return c.text(dst, v)
	case int64:
		return c.integer(dst, v)
	case int32:
		return c.integer(dst, int64(v))
	case int16:
		return c.integer(dst, int64(v))
	case int8:
		return c.integer(dst, int64(v))
	case int:
		return c.integer(dst, int64(v))
	case uint32:
		return c.integer(dst, int64(v))
	case bool:
		if c.kind == schema.KindBool {
			return appendBool(dst, v), nil
		}
	case float64:
		switch c.kind {
		case schema.KindFloat:
			if c.bits == 32 && !math.IsNaN(v) && !math.IsInf(v, 0) {
				// A float4 kept as a double (SQLite) was read from the
				// shortest text of the float4, which reads back exactly.
				f, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', -1, 64), 32)
				if err != nil {
					return nil, err
				}
				v = f
			}
			return appendFloat(dst, v, c.bits), nil
		case schema.KindNumeric:
			return c.text(dst, strconv.AppendFloat(nil, v, 'f', -1, 64))
		case schema.KindInt:
			if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
				return strconv.AppendInt(dst, int64(v), 10), nil
			}
			return nil, errType
		}
	case float32:
		if c.kind == schema.KindFloat {
			return appendFloat(dst, float64(v), c.bits), nil
		}
	case duckdb.Decimal:
		if c.kind == schema.KindNumeric && v.Value != nil {
			return c.text(dst, decimalText(v))
		}
	case duckdb.Interval:
		if c.kind == schema.KindInterval {
			return appendInterval(dst, v.Months, v.Days, v.Micros), nil
		}
	case duckdb.UUID:
		if c.kind == schema.KindUUID {
			return appendUUID(dst, v[:]), nil
		}
	case time.Time:
		return c.timeValue(dst, v)
	case []any:
		if c.kind == schema.KindArray {
			dst = append(dst, '{')
			for i, e := range v {
				if i > 0 {
					dst = append(dst, ',')
				}
				if e == nil {
					dst = append(dst, "NULL"...)
					continue
				}
				dst = appendQuoted(dst, c.elem.appendValue(nil, e))
			}
			return append(dst, '}'), nil
		}
	}
	return nil, errType
}

func (c *column) integer(dst []byte, v int64) ([]byte, error) {
	switch c.kind {
	case schema.KindInt:
		return strconv.AppendInt(dst, v, 10), nil
	case schema.KindBool:
		switch v {
		case 0:
			return appendBool(dst, false), nil
		case 1:
			return appendBool(dst, true), nil
		}
	case schema.KindFloat:
		return appendFloat(dst, float64(v), c.bits), nil
	case schema.KindNumeric:
		return c.text(dst, strconv.AppendInt(nil, v, 10))
	}
	return nil, errType
}

// DuckDB's sentinels for infinite dates and timestamps, as the driver
// returns them (days and microseconds since 1970).
const (
	duckDateInfinity = math.MaxInt32
	duckTsInfinity   = math.MaxInt64
)

// timeValue reads DuckDB's DATE, TIMESTAMP and TIMESTAMPTZ (TIME and TIMETZ
// are read as text: the driver loses 24:00:00 and time zones).
func (c *column) timeValue(dst []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	switch c.kind {
	case schema.KindDate:
		days := floorDiv(t.Unix(), 86400)
		switch days {
		case duckDateInfinity:
			return appendDate(dst, 0, pgtext.Infinity), nil
		case -duckDateInfinity:
			return appendDate(dst, 0, pgtext.NegInfinity), nil
		}
		return appendDate(dst, days+pgtext.UnixEpochDays, pgtext.Finite), nil
	case schema.KindTimestamp, schema.KindTimestampTZ:
		tz := c.kind == schema.KindTimestampTZ
		// UnixMicro of DuckDB's extremes: they stand for ±infinity.
		sec, nsec := t.Unix(), int64(t.Nanosecond())
		us := sec*1_000_000 + nsec/1000
		if sec < 0 { // sec*1e6 alone may pass math.MinInt64
			us = (sec+1)*1_000_000 + nsec/1000 - 1_000_000
		}
		switch {
		case sec > 0 && us == duckTsInfinity:
			return appendTimestamp(dst, 0, 0, pgtext.Infinity, tz), nil
		case sec < 0 && us == -duckTsInfinity:
			return appendTimestamp(dst, 0, 0, pgtext.NegInfinity, tz), nil
		}
		days := floorDiv(sec, 86400)
		dayUs := floorMod(sec, 86400)*1_000_000 + nsec/1000
		return appendTimestamp(dst, days+pgtext.UnixEpochDays, dayUs, pgtext.Finite, tz), nil
	case schema.KindTime:
		return appendClock(dst, int64(t.Hour())*3600_000_000+int64(t.Minute())*60_000_000+int64(t.Second())*1_000_000+int64(t.Nanosecond())/1000), nil
	}
	return nil, errType
}

const usPerDay = 86_400_000_000

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// canonicalInt reports whether b is an integer as int8out prints it.
func canonicalInt(b []byte) bool {
	s := b
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 19 || s[0] == '0' && (len(s) > 1 || len(b) > 1) {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) < 19 // 19 digits may overflow: let ParseInt judge
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 't')
	}
	return append(dst, 'f')
}

func appendFloat(dst []byte, v float64, bits int) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(v, -1):
		return append(dst, "-Infinity"...)
	case v == 0:
		return append(dst, '0')
	}
	return strconv.AppendFloat(dst, v, 'g', -1, bits)
}

// appendNumeric writes a numeric without leading or trailing zeros.
func appendNumeric(dst []byte, n pgtext.Numeric) []byte {
	switch {
	case n.NaN:
		return append(dst, "NaN"...)
	case n.Inf == pgtext.Infinity:
		return append(dst, "Infinity"...)
	case n.Inf == pgtext.NegInfinity:
		return append(dst, "-Infinity"...)
	}
	i := bytes.TrimLeft(n.Int, "0")
	f := bytes.TrimRight(n.Frac, "0")
	if len(i) == 0 && len(f) == 0 {
		return append(dst, '0')
	}
	if n.Neg {
		dst = append(dst, '-')
	}
	if len(i) == 0 {
		dst = append(dst, '0')
	}
	dst = append(dst, i...)
	if len(f) > 0 {
		dst = append(append(dst, '.'), f...)
	}
	return dst
}

// decimalText is a DuckDB DECIMAL in numeric's text form.
func decimalText(d duckdb.Decimal) []byte {
	digits := new(big.Int).Abs(d.Value).String()
	scale := int(d.Scale)
	var b []byte
	if d.Value.Sign() < 0 {
		b = append(b, '-')
	}
	if len(digits) <= scale {
		b = append(b, '0')
		b = append(b, '.')
		for range scale - len(digits) {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[:len(digits)-scale]...)
	if scale > 0 {
		b = append(append(b, '.'), digits[len(digits)-scale:]...)
	}
	return b
}

// appendDate writes date_out's ISO form for days since 2000-01-01.
func appendDate(dst []byte, days int64, inf pgtext.Inf) []byte {
	switch inf {
	case pgtext.Infinity:
		return append(dst, "infinity"...)
	case pgtext.NegInfinity:
		return append(dst, "-infinity"...)
	}
	dst, bc := appendYMD(dst, days)
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendYMD(dst []byte, days int64) ([]byte, bool) {
	y, m, d := pgtext.CivilFromDays(days)
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, '-')
	return appendPadded(dst, d, 2), bc
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	for range width - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendClock writes time_out's form for microseconds since midnight.
func appendClock(dst []byte, us int64) []byte {
	dst = appendPadded(dst, us/3600_000_000, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, us/60_000_000%60, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, us/1_000_000%60, 2)
	if frac := us % 1_000_000; frac != 0 {
		var buf [6]byte
		for i := 5; i >= 0; i-- {
			buf[i] = byte('0' + frac%10)
			frac /= 10
		}
		dst = append(dst, '.')
		dst = append(dst, bytes.TrimRight(buf[:], "0")...)
	}
	return dst
}

// appendOffset writes a UTC offset (seconds east) as timetz_out does.
func appendOffset(dst []byte, off int64) []byte {
	if off < 0 {
		dst, off = append(dst, '-'), -off
	} else {
		dst = append(dst, '+')
	}
	dst = appendPadded(dst, off/3600, 2)
	if off%3600 != 0 {
		dst = append(dst, ':')
		dst = appendPadded(dst, off/60%60, 2)
		if off%60 != 0 {
			dst = append(dst, ':')
			dst = appendPadded(dst, off%60, 2)
		}
	}
	return dst
}

// appendTimestamp writes timestamp_out's ISO form (timestamptz's in UTC).
func appendTimestamp(dst []byte, days, dayUs int64, inf pgtext.Inf, tz bool) []byte {
	switch inf {
	case pgtext.Infinity:
		return append(dst, "infinity"...)
	case pgtext.NegInfinity:
		return append(dst, "-infinity"...)
	}
	dst, bc := appendYMD(dst, days)
	dst = appendClock(append(dst, ' '), dayUs)
	if tz {
		dst = append(dst, "+00"...)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendInterval(dst []byte, months, days int32, us int64) []byte {
	dst = strconv.AppendInt(dst, int64(months), 10)
	dst = append(dst, " mons "...)
	dst = strconv.AppendInt(dst, int64(days), 10)
	dst = append(dst, " days "...)
	dst = strconv.AppendInt(dst, us, 10)
	return append(dst, " us"...)
}

func appendUUID(dst, u []byte) []byte {
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = hex.AppendEncode(dst, []byte{c})
	}
	return dst
}

// fromISO turns the ISO-8601 text a SQLite target keeps timestamps in
// ("2024-01-02T03:04:05.500000Z") back into PostgreSQL's form.
func fromISO(b []byte, tz bool) []byte {
	i := bytes.IndexByte(b, 'T')
	if i < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+2)
	out = append(append(out, b[:i]...), ' ')
	rest := b[i+1:]
	if tz && len(rest) > 0 && rest[len(rest)-1] == 'Z' {
		out = append(append(out, rest[:len(rest)-1]...), "+00"...)
	} else {
		out = append(out, rest...)
	}
	return out
}

package duckdb

import (
	"bytes"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"
	"unsafe"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/schema"
)

// conv says how a value in PostgreSQL's text form becomes what the appender
// takes. The appender's columns ("staging types") are chosen so that every
// source value has an exact Go form; a SQL expression (plan.expr) then turns
// the staged value into the column's type where the two differ.
type conv uint8

const (
	cvText        conv = iota // VARCHAR: the PostgreSQL text as sent
	cvBool                    // BOOLEAN from t/f
	cvInt16                   // SMALLINT
	cvInt32                   // INTEGER
	cvInt64                   // BIGINT
	cvOID                     // BIGINT from an unsigned 32-bit oid
	cvFloat32                 // FLOAT
	cvFloat64                 // DOUBLE
	cvDecimal                 // DECIMAL(w,s) from the unscaled integer
	cvBlob                    // BLOB from \x hex
	cvJSON                    // JSON, staged as VARCHAR (the appender would re-encode it)
	cvDate                    // DATE, infinities included
	cvTime                    // TIME, staged as microseconds (keeps 24:00:00)
	cvTimeTZ                  // TIMETZ, staged as validated text
	cvTimestamp               // TIMESTAMP, staged as microseconds (keeps ±infinity)
	cvTimestampTZ             // TIMESTAMPTZ, staged as microseconds since the epoch
	cvInterval                // INTERVAL: months, days, microseconds as PostgreSQL has them
	cvUUID                    // UUID
	cvList                    // LIST of elem: a one-dimensional PostgreSQL array
)

// plan is how one PostgreSQL type is stored.
type plan struct {
	conv         conv
	typ          string // DuckDB column type, spelled as duckdb_columns() shows it
	width, scale int    // cvDecimal
	elem         *plan  // cvList
}

var textPlan = &plan{conv: cvText, typ: "VARCHAR"}

// Sentinels DuckDB uses for infinite dates and timestamps.
const (
	dateInfinity = math.MaxInt32  // date_t::infinity()
	tsInfinity   = math.MaxInt64  // timestamp_t::infinity()
	usPerDay     = 86_400_000_000 // microseconds
	maxDecimal   = 38             // DuckDB's widest DECIMAL
)

// planFor maps a PostgreSQL type (OID and typmod) to its DuckDB column type.
// Anything without a faithful native type is VARCHAR holding PostgreSQL's
// text form.
func planFor(oid uint32, typmod int32) *plan {
	switch schema.KindOf(oid) {
	case schema.KindBool:
		return &plan{conv: cvBool, typ: "BOOLEAN"}
	case schema.KindInt:
		switch oid {
		case schema.OIDInt2:
			return &plan{conv: cvInt16, typ: "SMALLINT"}
		case schema.OIDInt4:
			return &plan{conv: cvInt32, typ: "INTEGER"}
		case schema.OIDOid:
			return &plan{conv: cvOID, typ: "BIGINT"}
		}
		return &plan{conv: cvInt64, typ: "BIGINT"}
	case schema.KindFloat:
		if oid == schema.OIDFloat4 {
			return &plan{conv: cvFloat32, typ: "FLOAT"}
		}
		return &plan{conv: cvFloat64, typ: "DOUBLE"}
	case schema.KindNumeric:
		if w, s, ok := decimalType(typmod); ok {
			return &plan{conv: cvDecimal, typ: "DECIMAL(" + strconv.Itoa(w) + "," + strconv.Itoa(s) + ")", width: w, scale: s}
		}
		return textPlan // unconstrained or wider than DECIMAL(38): every digit kept as text
	case schema.KindBytea:
		return &plan{conv: cvBlob, typ: "BLOB"}
	case schema.KindJSON:
		return &plan{conv: cvJSON, typ: "JSON"}
	case schema.KindDate:
		return &plan{conv: cvDate, typ: "DATE"}
	case schema.KindTime:
		return &plan{conv: cvTime, typ: "TIME"}
	case schema.KindTimeTZ:
		return &plan{conv: cvTimeTZ, typ: "TIME WITH TIME ZONE"}
	case schema.KindTimestamp:
		return &plan{conv: cvTimestamp, typ: "TIMESTAMP"}
	case schema.KindTimestampTZ:
		return &plan{conv: cvTimestampTZ, typ: "TIMESTAMP WITH TIME ZONE"}
	case schema.KindInterval:
		return &plan{conv: cvInterval, typ: "INTERVAL"}
	case schema.KindUUID:
		return &plan{conv: cvUUID, typ: "UUID"}
	case schema.KindArray:
		elemOID, _ := schema.ArrayElem(oid)
		e := planFor(elemOID, typmod) // an array column's typmod is its elements'
		return &plan{conv: cvList, typ: e.typ + "[]", elem: e}
	}
	return textPlan // text types, enums, domains, composites, extension types
}

// decimalType maps numeric(p,s) to DECIMAL(width,scale). PostgreSQL 15
// allows a negative scale (rounding to tens, hundreds, ...) and a scale above
// the precision; both fit a DECIMAL that is wide enough.
func decimalType(typmod int32) (width, scale int, ok bool) {
	p, s, ok := schema.NumericPrecisionScale(typmod)
	if !ok || p < 1 {
		return 0, 0, false
	}
	switch {
	case s < 0:
		width, scale = p-s, 0
	case s > p:
		width, scale = s, s
	default:
		width, scale = p, s
	}
	if width > maxDecimal {
		return 0, 0, false
	}
	return width, scale, true
}

// stageType is the appender's column type for p.
func (p *plan) stageType() (duckdb.TypeInfo, error) {
	var t duckdb.Type
	switch p.conv {
	case cvText, cvJSON, cvTimeTZ:
		t = duckdb.TYPE_VARCHAR
	case cvBool:
		t = duckdb.TYPE_BOOLEAN
	case cvInt16:
		t = duckdb.TYPE_SMALLINT
	case cvInt32:
		t = duckdb.TYPE_INTEGER
	case cvInt64, cvOID, cvTime, cvTimestamp, cvTimestampTZ:
		t = duckdb.TYPE_BIGINT
	case cvFloat32:
		t = duckdb.TYPE_FLOAT
	case cvFloat64:
		t = duckdb.TYPE_DOUBLE
	case cvDecimal:
		return duckdb.NewDecimalInfo(uint8(p.width), uint8(p.scale))
	case cvBlob:
		t = duckdb.TYPE_BLOB
	case cvDate:
		t = duckdb.TYPE_DATE
	case cvInterval:
		t = duckdb.TYPE_INTERVAL
	case cvUUID:
		t = duckdb.TYPE_UUID
	case cvList:
		e, err := p.elem.stageType()
		if err != nil {
			return nil, err
		}
		return duckdb.NewListInfo(e)
	default:
		return nil, fmt.Errorf("internal error: no staging type for conversion %d", p.conv)
	}
	return duckdb.NewTypeInfo(t)
}

// expr is the SQL that turns the staged value ref into p's column type.
func (p *plan) expr(ref string) string {
	switch p.conv {
	case cvJSON:
		return "CAST(" + ref + " AS JSON)"
	case cvTimeTZ:
		return "CAST(" + ref + " AS TIMETZ)"
	case cvTime:
		return "CASE WHEN " + ref + " = 86400000000 THEN TIME '24:00:00' ELSE TIME '00:00:00' + to_microseconds(" + ref + ") END"
	case cvTimestamp:
		return "CASE " + ref + " WHEN 9223372036854775807 THEN TIMESTAMP 'infinity' WHEN -9223372036854775807 THEN TIMESTAMP '-infinity' ELSE make_timestamp(" + ref + ") END"
	case cvTimestampTZ:
		return "CASE " + ref + " WHEN 9223372036854775807 THEN TIMESTAMPTZ 'infinity' WHEN -9223372036854775807 THEN TIMESTAMPTZ '-infinity' ELSE make_timestamptz(" + ref + ") END"
	case cvList:
		switch p.elem.conv {
		case cvJSON, cvTimeTZ:
			return "CAST(" + ref + " AS " + p.typ + ")"
		case cvTime, cvTimestamp, cvTimestampTZ:
			return "list_transform(" + ref + ", lambda walmirror_e: " + p.elem.expr("walmirror_e") + ")"
		}
	}
	return ref
}

// exactCompare reports whether DuckDB's equality for p's type is looser
// than "same stored value" (INTERVAL '1 month' = INTERVAL '30 days'), so
// whole-row matching must compare text forms instead.
func (p *plan) exactCompare() bool {
	return p.conv == cvInterval || p.conv == cvList && p.elem.conv == cvInterval
}

// converter turns text-form values into appender values. Its buffer holds
// decoded bytes for the row being appended (the appender copies them).
type converter struct {
	buf   []byte
	elems []arrayElem
}

// varcharHint is the remedy for values a native column cannot hold.
const varcharHint = ": to keep such values, change the column's type to VARCHAR in the DuckDB file (ALTER TABLE ... ALTER COLUMN ... TYPE VARCHAR, with walmirror stopped); walmirror then stores that column's values there in PostgreSQL's text form"

// errNaNDecimal: PostgreSQL allows NaN in numeric(p,s); DuckDB's DECIMAL has
// no NaN. Storing NULL would lose it silently and storing every constrained
// numeric as text would cost all users native decimals for a rare value, so
// the write fails with the remedy.
var errNaNDecimal = errors.New("NaN cannot be stored in a DuckDB DECIMAL column" + varcharHint)

// value converts one non-NULL value.
func (cv *converter) value(p *plan, b []byte) (driver.Value, error) {
	switch p.conv {
	case cvText, cvJSON:
		return b, nil
	case cvBool:
		if len(b) == 1 {
			switch b[0] {
			case 't':
				return true, nil
			case 'f':
				return false, nil
			}
		}
		return nil, fmt.Errorf("boolean %q: want t or f", b)
	case cvInt16:
		v, err := parseInt(b, 16)
		return int16(v), err
	case cvInt32:
		v, err := parseInt(b, 32)
		return int32(v), err
	case cvInt64:
		return parseInt(b, 64)
	case cvOID:
		v, err := parseInt(b, 64)
		if err == nil && (v < 0 || v > math.MaxUint32) {
			err = fmt.Errorf("oid %q out of range", b)
		}
		return v, err
	case cvFloat32:
		v, err := parseFloat(b, 32)
		return float32(v), err
	case cvFloat64:
		return parseFloat(b, 64)
	case cvDecimal:
		return parseDecimal(b, p.width, p.scale)
	case cvBlob:
		return cv.bytea(b)
	case cvDate:
		d, err := parseDate(b)
		if err != nil {
			return nil, err
		}
		// The appender takes a time.Time and stores its Unix seconds / 86400,
		// which reaches DuckDB's infinity sentinels too.
		return unixDay(d), nil
	case cvTime:
		us, rest, err := parseClock(b)
		if err == nil && len(rest) > 0 {
			err = fmt.Errorf("time %q: trailing characters", b)
		}
		return us, err
	case cvTimeTZ:
		_, rest, err := parseClock(b)
		if err == nil {
			var n int
			_, n, err = parseOffset(rest)
			if err == nil && n != len(rest) {
				err = fmt.Errorf("timetz %q: trailing characters", b)
			}
		}
		if err != nil {
			return nil, err
		}
		return b, nil
	case cvTimestamp:
		return parseTimestamp(b, false)
	case cvTimestampTZ:
		return parseTimestamp(b, true)
	case cvInterval:
		return parseInterval(b)
	case cvUUID:
		return parseUUID(b)
	case cvList:
		return cv.list(p, b)
	}
	return nil, fmt.Errorf("internal error: conversion %d", p.conv)
}

// unixDay is the time.Time the appender turns into DATE days.
func unixDay(days int64) time.Time {
	return time.Unix(days*86400, 0)
}

// bytea decodes PostgreSQL's hex output (\x...) into the row buffer.
func (cv *converter) bytea(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'x' {
		return nil, errors.New("bytea not in hex format (bytea_output must be hex)")
	}
	h := b[2:]
	if len(h)%2 != 0 {
		return nil, fmt.Errorf("bytea: odd number of hex digits (%d)", len(h))
	}
	start := len(cv.buf)
	for i := 0; i < len(h); i += 2 {
		hi, ok1 := unhex(h[i])
		lo, ok2 := unhex(h[i+1])
		if !ok1 || !ok2 {
			cv.buf = cv.buf[:start]
			return nil, fmt.Errorf("bytea: invalid hex digit near %q", h[i:i+2])
		}
		cv.buf = append(cv.buf, hi<<4|lo)
	}
	return cv.buf[start:len(cv.buf):len(cv.buf)], nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// list converts a one-dimensional array to a []any of element values.
func (cv *converter) list(p *plan, b []byte) (driver.Value, error) {
	var err error
	start := len(cv.elems)
	cv.elems, cv.buf, err = parseArray(b, cv.elems, cv.buf)
	if err != nil {
		cv.elems = cv.elems[:start]
		return nil, err
	}
	elems := cv.elems[start:]
	out := make([]any, len(elems))
	for i, e := range elems {
		if e.null {
			continue
		}
		v, err := cv.value(p.elem, e.val)
		if err != nil {
			return nil, fmt.Errorf("array element %d: %w", i+1, err)
		}
		out[i] = v
	}
	cv.elems = cv.elems[:start]
	return out, nil
}

// reset forgets the previous row's decoded bytes.
func (cv *converter) reset() {
	cv.buf = cv.buf[:0]
	if cap(cv.buf) > 1<<20 { // don't keep a huge bytea's buffer around
		cv.buf = nil
	}
}

// ---- numbers ----

// parseInt parses a decimal integer that fits bits, without allocating.
func parseInt(b []byte, bits uint) (int64, error) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, i = b[0] == '-', 1
	}
	if i == len(b) {
		return 0, fmt.Errorf("integer %q: no digits", b)
	}
	limit := uint64(1) << (bits - 1) // |min|; max is limit-1
	var u uint64
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			return 0, fmt.Errorf("integer %q: invalid character", b)
		}
		u = u*10 + uint64(c)
		if u > limit {
			return 0, fmt.Errorf("integer %q out of range for %d bits", b, bits)
		}
	}
	if neg {
		return -int64(u), nil // -(1<<63) wraps to itself: correct
	}
	if u == limit {
		return 0, fmt.Errorf("integer %q out of range for %d bits", b, bits)
	}
	return int64(u), nil
}

// parseFloat parses PostgreSQL's float output (shortest exact digits,
// NaN, Infinity, -Infinity) without copying b.
func parseFloat(b []byte, bits int) (float64, error) {
	if len(b) == 0 {
		return 0, errors.New("float: empty")
	}
	// strconv copies the text into any error it returns.
	v, err := strconv.ParseFloat(unsafe.String(&b[0], len(b)), bits)
	if err != nil {
		return 0, fmt.Errorf("float %q: %w", b, err)
	}
	return v, nil
}

// parseDecimal returns the unscaled value of a numeric for DECIMAL(width,
// scale): an int64 when it fits, else a *big.Int.
func parseDecimal(b []byte, width, scale int) (any, error) {
	if string(b) == "NaN" {
		return nil, errNaNDecimal
	}
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, i = b[0] == '-', 1
	}
	intDigits, fracDigits, sig := 0, 0, 0
	var u uint64
	overflow := false
	seenDot := false
	digit := func(c byte) {
		if sig > 0 || c != '0' {
			sig++
		}
		if u > (math.MaxUint64-9)/10 {
			overflow = true
		}
		u = u*10 + uint64(c-'0')
	}
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			digit(c)
			if seenDot {
				fracDigits++
			} else {
				intDigits++
			}
		case c == '.' && !seenDot:
			seenDot = true
		default:
			return nil, fmt.Errorf("numeric %q: invalid character", b)
		}
	}
	if intDigits+fracDigits == 0 {
		return nil, fmt.Errorf("numeric %q: no digits", b)
	}
	if fracDigits > scale {
		return nil, fmt.Errorf("numeric %q has more than %d decimal places: it does not fit DECIMAL(%d,%d)", b, scale, width, scale)
	}
	for range scale - fracDigits {
		digit('0')
	}
	if sig > width {
		return nil, fmt.Errorf("numeric %q does not fit DECIMAL(%d,%d)", b, width, scale)
	}
	if !overflow && (u <= math.MaxInt64 || neg && u == 1<<63) {
		v := int64(u)
		if neg {
			v = -v // -(2^63) wraps to MinInt64: correct
		}
		return v, nil
	}
	// More than 18 digits: go through big.Int (rare: only DECIMAL(19..38)).
	digits := make([]byte, 0, intDigits+scale+1)
	if neg {
		digits = append(digits, '-')
	}
	for _, c := range b {
		if c >= '0' && c <= '9' {
			digits = append(digits, c)
		}
	}
	for range scale - fracDigits {
		digits = append(digits, '0')
	}
	v, ok := new(big.Int).SetString(string(digits), 10)
	if !ok {
		return nil, fmt.Errorf("numeric %q: invalid", b)
	}
	return v, nil
}

// ---- dates and times ----

// parseDate parses "YYYY-MM-DD" (more year digits allowed), optionally
// followed by " BC", or ±infinity, to days since 1970-01-01.
func parseDate(b []byte) (int64, error) {
	switch string(b) {
	case "infinity":
		return dateInfinity, nil
	case "-infinity":
		return -dateInfinity, nil
	}
	days, rest, err := parseYMD(b)
	if err != nil {
		return 0, err
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("date %q: trailing characters", b)
	}
	return days, nil
}

// parseYMD parses a date at the start of b, and a " BC" suffix at the end
// of b if there is one; rest is what lies between.
func parseYMD(b []byte) (days int64, rest []byte, err error) {
	bc := bytes.HasSuffix(b, []byte(" BC"))
	s := b
	if bc {
		s = s[:len(s)-3]
	}
	i := 0
	var y int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if i >= 9 {
			return 0, nil, fmt.Errorf("date %q: year too large", b)
		}
		y = y*10 + int64(s[i]-'0')
		i++
	}
	if i < 4 || len(s) < i+6 || s[i] != '-' || s[i+3] != '-' {
		return 0, nil, fmt.Errorf("date %q: want YYYY-MM-DD", b)
	}
	m, ok1 := two(s[i+1:])
	d, ok2 := two(s[i+4:])
	if !ok1 || !ok2 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m, bc) {
		return 0, nil, fmt.Errorf("date %q: invalid month or day", b)
	}
	if bc {
		if y == 0 {
			return 0, nil, fmt.Errorf("date %q: there is no year 0 BC", b)
		}
		y = 1 - y // 1 BC is year 0
	}
	return daysFromCivil(y, m, d), s[i+6:], nil
}

func two(b []byte) (int64, bool) {
	if len(b) < 2 || b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int64(b[0]-'0')*10 + int64(b[1]-'0'), true
}

func daysIn(y, m int64, bc bool) int64 {
	if bc {
		y = 1 - y
	}
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to a proleptic Gregorian date
// with astronomical year numbering (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// parseClock parses HH:MM:SS[.ffffff] at the start of b to microseconds.
func parseClock(b []byte) (us int64, rest []byte, err error) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, nil, fmt.Errorf("time %q: want HH:MM:SS", b)
	}
	h, ok1 := two(b)
	m, ok2 := two(b[3:])
	s, ok3 := two(b[6:])
	if !ok1 || !ok2 || !ok3 || h > 24 || m > 59 || s > 60 {
		return 0, nil, fmt.Errorf("time %q: out of range", b)
	}
	us = ((h*60+m)*60 + s) * 1_000_000
	i := 8
	if i < len(b) && b[i] == '.' {
		i++
		scale := int64(100_000)
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if scale == 0 {
				return 0, nil, fmt.Errorf("time %q: more than 6 fractional digits", b)
			}
			us += int64(b[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return 0, nil, fmt.Errorf("time %q: empty fraction", b)
		}
	}
	if us > usPerDay {
		return 0, nil, fmt.Errorf("time %q: out of range", b)
	}
	return us, b[i:], nil
}

// parseOffset parses a UTC offset (+HH, -HH:MM, +HH:MM:SS) at the start of
// b to seconds east of UTC; n is the number of bytes used.
func parseOffset(b []byte) (secs int64, n int, err error) {
	if len(b) < 3 || (b[0] != '+' && b[0] != '-') {
		return 0, 0, fmt.Errorf("offset %q: want +HH[:MM[:SS]]", b)
	}
	h, ok := two(b[1:])
	if !ok {
		return 0, 0, fmt.Errorf("offset %q: want +HH[:MM[:SS]]", b)
	}
	secs, n = h*3600, 3
	for _, unit := range []int64{60, 1} {
		if len(b) < n+3 || b[n] != ':' {
			break
		}
		v, ok := two(b[n+1:])
		if !ok || v > 59 {
			return 0, 0, fmt.Errorf("offset %q: invalid", b)
		}
		secs += v * unit
		n += 3
	}
	if b[0] == '-' {
		secs = -secs
	}
	return secs, n, nil
}

// parseTimestamp parses PostgreSQL's ISO timestamp output
// ("2024-01-02 03:04:05.5", with "+00" for timestamptz, " BC" for BC) to
// microseconds since 1970-01-01 (UTC for timestamptz), or ±infinity to
// DuckDB's sentinels.
func parseTimestamp(b []byte, tz bool) (int64, error) {
	switch string(b) {
	case "infinity":
		return tsInfinity, nil
	case "-infinity":
		return -tsInfinity, nil
	}
	days, rest, err := parseYMD(b)
	if err != nil {
		return 0, err
	}
	if len(rest) < 1 || rest[0] != ' ' {
		return 0, fmt.Errorf("timestamp %q: want date and time", b)
	}
	clock, rest, err := parseClock(rest[1:])
	if err != nil {
		return 0, fmt.Errorf("timestamp %q: %w", b, err)
	}
	var off int64
	if tz {
		var n int
		off, n, err = parseOffset(rest)
		if err != nil {
			return 0, fmt.Errorf("timestamptz %q: %w", b, err)
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("timestamp %q: trailing characters", b)
	}
	// DuckDB timestamps are int64 microseconds: years 290308 BC to 294247 AD.
	// PostgreSQL's range ends later (294276 AD).
	const maxDays = math.MaxInt64/usPerDay - 1
	if days > maxDays || days < -maxDays {
		return 0, fmt.Errorf("timestamp %q is outside DuckDB's range (290308 BC to 294247 AD)%s", b, varcharHint)
	}
	v := days*usPerDay + clock - off*1_000_000
	if v >= tsInfinity || v <= -tsInfinity {
		return 0, fmt.Errorf("timestamp %q is outside DuckDB's range (290308 BC to 294247 AD)%s", b, varcharHint)
	}
	return v, nil
}

// parseInterval parses IntervalStyle=postgres output: "1 year 2 mons 3 days
// 04:05:06.5", "-1 years +2 mons", "-00:00:01", "00:00:00", and PostgreSQL
// 17's "infinity"/"-infinity" (kept as the same extreme fields PostgreSQL uses).
func parseInterval(b []byte) (duckdb.Interval, error) {
	switch string(b) {
	case "infinity":
		return duckdb.Interval{Months: math.MaxInt32, Days: math.MaxInt32, Micros: math.MaxInt64}, nil
	case "-infinity":
		return duckdb.Interval{Months: math.MinInt32, Days: math.MinInt32, Micros: math.MinInt64}, nil
	}
	var months, days, us int64
	bad := func() (duckdb.Interval, error) {
		return duckdb.Interval{}, fmt.Errorf("interval %q: not in IntervalStyle postgres form", b)
	}
	if len(b) == 0 {
		return bad()
	}
	s := b
	seenTime := false
	for len(s) > 0 {
		tok := s
		if sp := bytes.IndexByte(s, ' '); sp >= 0 {
			tok, s = s[:sp], s[sp+1:]
		} else {
			s = nil
		}
		if len(tok) == 0 {
			return bad()
		}
		if bytes.IndexByte(tok, ':') >= 0 {
			if seenTime || len(s) > 0 {
				return bad()
			}
			seenTime = true
			v, ok := parseIntervalTime(tok)
			if !ok {
				return bad()
			}
			us = v
			continue
		}
		n, err := parseInt(tok, 64)
		if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
			return bad()
		}
		unit := s
		if sp := bytes.IndexByte(s, ' '); sp >= 0 {
			unit, s = s[:sp], s[sp+1:]
		} else {
			s = nil
		}
		switch string(unit) {
		case "year", "years":
			months += n * 12
		case "mon", "mons":
			months += n
		case "day", "days":
			days += n
		default:
			return bad()
		}
	}
	if months > math.MaxInt32 || months < math.MinInt32 || days > math.MaxInt32 || days < math.MinInt32 {
		return duckdb.Interval{}, fmt.Errorf("interval %q out of range", b)
	}
	return duckdb.Interval{Months: int32(months), Days: int32(days), Micros: us}, nil
}

// parseIntervalTime parses [+-]H+:MM:SS[.ffffff] (hours unbounded).
func parseIntervalTime(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	const usPerHour = 3_600_000_000
	i := 0
	var h uint64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		h = h*10 + uint64(b[i]-'0')
		if h > 1<<63/usPerHour {
			return 0, false
		}
		i++
	}
	if i == 0 || len(b) < i+6 || b[i] != ':' || b[i+3] != ':' {
		return 0, false
	}
	m, ok1 := two(b[i+1:])
	sec, ok2 := two(b[i+4:])
	if !ok1 || !ok2 || m > 59 || sec > 59 {
		return 0, false
	}
	us := uint64(m*60+sec) * 1_000_000
	i += 6
	if i < len(b) {
		if b[i] != '.' || i+1 == len(b) || len(b)-i-1 > 6 {
			return 0, false
		}
		scale := uint64(100_000)
		for _, c := range b[i+1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			us += uint64(c-'0') * scale
			scale /= 10
		}
	}
	us += h * usPerHour // no overflow: h*usPerHour <= 2^63 and us < 1 hour
	if neg {
		if us > 1<<63 {
			return 0, false
		}
		return int64(-us), true // -(2^63) wraps to MinInt64: correct
	}
	if us > math.MaxInt64 {
		return 0, false
	}
	return int64(us), true
}

// parseUUID parses the canonical 8-4-4-4-12 hex form (or 32 bare hex digits).
func parseUUID(b []byte) (duckdb.UUID, error) {
	var u duckdb.UUID
	j := 0
	for i := 0; i < len(b); {
		if b[i] == '-' && len(b) == 36 && (i == 8 || i == 13 || i == 18 || i == 23) {
			i++
			continue
		}
		if j == 16 || i+1 >= len(b) {
			return u, fmt.Errorf("uuid %q: invalid", b)
		}
		hi, ok1 := unhex(b[i])
		lo, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 {
			return u, fmt.Errorf("uuid %q: invalid", b)
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	if j != 16 {
		return u, fmt.Errorf("uuid %q: invalid", b)
	}
	return u, nil
}

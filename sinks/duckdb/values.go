package duckdb

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/internal/pgtext"
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
	dateInfinity = math.MaxInt32 // date_t::infinity()
	tsInfinity   = math.MaxInt64 // timestamp_t::infinity()
	maxDecimal   = 38            // DuckDB's widest DECIMAL
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
// ALTER casts the rows already copied into DuckDB's own text for the type
// ([1, 2] for a list, "(BC)" dates), which is not PostgreSQL's: copying the
// table again (resync) puts them in PostgreSQL's form too.
const varcharHint = ": to keep such values, change the column's type to VARCHAR in the DuckDB file (ALTER TABLE ... ALTER COLUMN ... TYPE VARCHAR, with walmirror stopped), then request a copy of the table again (walmirror resync --table ...): walmirror then stores that column's values there in PostgreSQL's text form, also those of the rows copied before, which ALTER leaves in DuckDB's own text form"

// errNaNDecimal: PostgreSQL allows NaN in numeric(p,s); DuckDB's DECIMAL has
// no NaN. Storing NULL would lose it silently and storing every constrained
// numeric as text would cost all users native decimals for a rare value, so
// the write fails with the remedy.
var errNaNDecimal = schema.Unstorable("NaN cannot be stored in a DuckDB DECIMAL column" + varcharHint)

// value converts one non-NULL value. Text is parsed in pgtext's Lenient
// mode: DuckDB stores the value whatever its spelling (only binary COPY into
// PostgreSQL needs the exact output form).
func (cv *converter) value(p *plan, b []byte) (driver.Value, error) {
	switch p.conv {
	case cvText, cvJSON:
		return b, nil
	case cvBool:
		return pgtext.ParseBool(b)
	case cvInt16:
		v, err := pgtext.ParseInt(b, 16, pgtext.Lenient)
		return int16(v), err
	case cvInt32:
		v, err := pgtext.ParseInt(b, 32, pgtext.Lenient)
		return int32(v), err
	case cvInt64:
		return pgtext.ParseInt(b, 64, pgtext.Lenient)
	case cvOID:
		v, err := pgtext.ParseInt(b, 64, pgtext.Lenient)
		if err == nil && (v < 0 || v > math.MaxUint32) {
			err = fmt.Errorf("oid %q out of range", b)
		}
		return v, err
	case cvFloat32:
		v, err := pgtext.ParseFloat(b, 32)
		return float32(v), err
	case cvFloat64:
		return pgtext.ParseFloat(b, 64)
	case cvDecimal:
		return parseDecimal(b, p.width, p.scale)
	case cvBlob:
		start := len(cv.buf)
		var err error
		if cv.buf, err = pgtext.AppendBytea(cv.buf, b); err != nil {
			return nil, err
		}
		return cv.buf[start:len(cv.buf):len(cv.buf)], nil
	case cvDate:
		d, err := parseDate(b)
		if err != nil {
			return nil, err
		}
		// The appender takes a time.Time and stores its Unix seconds / 86400,
		// which reaches DuckDB's infinity sentinels too.
		return unixDay(d), nil
	case cvTime:
		return pgtext.ParseTime(b, pgtext.Lenient)
	case cvTimeTZ:
		if _, _, err := pgtext.ParseTimeTZ(b, pgtext.Lenient); err != nil {
			return nil, err
		}
		return b, nil
	case cvTimestamp:
		return parseTimestamp(b, false)
	case cvTimestampTZ:
		return parseTimestamp(b, true)
	case cvInterval:
		// PostgreSQL 17's infinite intervals are the fields PostgreSQL
		// stores for them (DuckDB shows 178956970 years ...); they read
		// back as infinity (TestTypeRoundTrip).
		v, err := pgtext.ParseInterval(b)
		return duckdb.Interval{Months: v.Months, Days: v.Days, Micros: v.Micros}, err
	case cvUUID:
		u, err := pgtext.ParseUUID(b, pgtext.Lenient)
		return duckdb.UUID(u), err
	case cvList:
		return cv.list(p, b)
	}
	return nil, fmt.Errorf("internal error: conversion %d", p.conv)
}

// unixDay is the time.Time the appender turns into DATE days.
func unixDay(days int64) time.Time {
	return time.Unix(days*86400, 0)
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

// parseDecimal returns the unscaled value of a numeric for DECIMAL(width,
// scale): an int64 when it fits, else a *big.Int.
func parseDecimal(b []byte, width, scale int) (any, error) {
	n, err := pgtext.ParseNumeric(b, pgtext.Lenient)
	switch {
	case err != nil:
		return nil, err
	case n.NaN:
		return nil, errNaNDecimal
	case n.Inf != pgtext.Finite:
		return nil, fmt.Errorf("numeric %q does not fit DECIMAL(%d,%d)", b, width, scale)
	case len(n.Frac) > scale:
		return nil, fmt.Errorf("numeric %q has more than %d decimal places: it does not fit DECIMAL(%d,%d)", b, scale, width, scale)
	}
	sig := 0
	var u uint64
	overflow := false
	digit := func(c byte) {
		if sig > 0 || c != '0' {
			sig++
		}
		if u > (math.MaxUint64-9)/10 {
			overflow = true
		}
		u = u*10 + uint64(c-'0')
	}
	for _, c := range n.Int {
		digit(c)
	}
	for _, c := range n.Frac {
		digit(c)
	}
	for range scale - len(n.Frac) {
		digit('0')
	}
	if sig > width {
		return nil, fmt.Errorf("numeric %q does not fit DECIMAL(%d,%d)", b, width, scale)
	}
	if !overflow && (u <= math.MaxInt64 || n.Neg && u == 1<<63) {
		v := int64(u)
		if n.Neg {
			v = -v // -(2^63) wraps to MinInt64: correct
		}
		return v, nil
	}
	// More than 18 digits: go through big.Int (rare: only DECIMAL(19..38)).
	digits := make([]byte, 0, 1+len(n.Int)+scale)
	if n.Neg {
		digits = append(digits, '-')
	}
	digits = append(append(digits, n.Int...), n.Frac...)
	for range scale - len(n.Frac) {
		digits = append(digits, '0')
	}
	v, ok := new(big.Int).SetString(string(digits), 10)
	if !ok {
		return nil, fmt.Errorf("numeric %q: invalid", b)
	}
	return v, nil
}

// parseDate converts a date to days since 1970-01-01, ±infinity to DuckDB's
// sentinels.
func parseDate(b []byte) (int64, error) {
	d, inf, err := pgtext.ParseDate(b, pgtext.Lenient)
	switch {
	case err != nil:
		return 0, err
	case inf != pgtext.Finite:
		return int64(inf) * dateInfinity, nil
	}
	return d - pgtext.UnixEpochDays, nil
}

// parseTimestamp converts a timestamp (tz: timestamptz) to DuckDB's
// microseconds since 1970-01-01 (UTC for timestamptz), ±infinity to its
// sentinels.
func parseTimestamp(b []byte, tz bool) (int64, error) {
	parse := pgtext.ParseTimestamp
	if tz {
		parse = pgtext.ParseTimestampTZ
	}
	v, inf, err := parse(b, pgtext.Lenient)
	switch {
	case err == nil && inf == pgtext.Finite && v < tsInfinity+pgtext.UnixEpochMicros:
		return v - pgtext.UnixEpochMicros, nil
	case err == nil && inf != pgtext.Finite:
		return int64(inf) * tsInfinity, nil
	case err != nil && !errors.Is(err, pgtext.ErrRange):
		return 0, err
	}
	// DuckDB's timestamps are int64 microseconds since 1970, the extremes
	// kept for ±infinity: years 290308 BC to 294247 AD. PostgreSQL's range
	// ends later (294276 AD).
	return 0, schema.Unstorable(fmt.Sprintf("timestamp %q is outside DuckDB's range (290308 BC to 294247 AD)%s", b, varcharHint))
}

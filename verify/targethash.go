package verify

import (
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/internal/pgtext"
	"github.com/walmirror/walmirror/schema"
)

// Checksums of DuckDB and SQLite copies. The source computes, per key
// range, the sum of hash_record_extended over one expression per column,
// as for a PostgreSQL copy; the copy computes the very same 64-bit hashes
// with a Go port of PostgreSQL's hashing (pghash.go): in DuckDB a function
// registered on the connection, in SQLite (in the process itself) as it
// reads its rows, fed with what the copy stores:
// for each column a hash code (below) says which form the source hashes
// (the value itself as its type hashes it, its binary send form, or its
// text) and how the copy's value is turned into exactly those bytes. A
// value the copy holds in a form that cannot give the source's bytes (a
// hand-written text in a SQLite INTEGER column, a numeric whose scale
// differs) makes its range differ, so that it is compared row by row: a
// false difference only costs time, a false equality cannot happen (but
// for a 64-bit hash collision).

// Hash codes: how a column is hashed on both sides.
const (
	hcInt32       = 'i' // int2, int4: the value (hashint4extended); SMALLINT, INTEGER, SQLite INTEGER
	hcOID         = 'o' // oid: the value (hashoidextended); BIGINT, SQLite INTEGER
	hcInt8        = '8' // int8: int8send; BIGINT, SQLite INTEGER
	hcBool        = 'b' // bool: the value (hashcharextended); BOOLEAN, SQLite 0/1
	hcFloat4      = 'f' // float4: the value (hashfloat4extended); FLOAT, SQLite REAL or 'NaN'
	hcFloat8      = 'F' // float8: the value; DOUBLE, SQLite REAL or 'NaN'
	hcDecimal     = 'n' // numeric(p,s): numeric_send; DECIMAL(w,s)
	hcBytes       = 'x' // bytea: the value; BLOB
	hcDate        = 'd' // date: the value (hashint4extended of its days); DATE
	hcTime        = 't' // time: time_send; TIME read as text
	hcTimeTZ      = 'z' // timetz: timetz_send; TIMETZ read as text
	hcTimestamp   = 'T' // timestamp: timestamp_send; TIMESTAMP, SQLite ISO or PostgreSQL text
	hcTimestampTZ = 'Z' // timestamptz: timestamptz_send; TIMESTAMPTZ, SQLite ISO or PostgreSQL text
	hcInterval    = 'v' // interval: interval_send; INTERVAL
	hcUUID        = 'u' // uuid: the value (uuid_hash_extended); UUID
	hcText        = 's' // PostgreSQL's text of the value (text types by their bytes); VARCHAR, JSON, SQLite TEXT
	// hcList marks a one-dimensional array kept as a DuckDB LIST whose
	// elements are hashed by the code hcList|code takes away: see
	// sourceArrayPart.
	hcList = 0x80
)

// pgTextHashExpr is a column's text as the source hashes it (COLLATE "C":
// by its bytes), NULL staying NULL.
func pgTextHashExpr(c schema.Column) string {
	q := quoteIdent(c.Name)
	switch {
	case c.TypeID == schema.OIDText || c.TypeID == schema.OIDVarchar:
		return q + ` COLLATE "C"`
	case textCastIsOutput[c.TypeID]:
		return "(" + q + `::text) COLLATE "C"`
	}
	return pgOutputExpr(q)
}

// pgOutputExpr is the text of the output function of q's type (format's
// %s; a cast to text is not always it: bpchar drops its padding), NULL
// staying NULL. Not "q IS NOT NULL": for a composite that is false when any
// field is NULL, so '(1,)' and '(,)' hashed as a NULL did, and a copy
// holding NULL for them verified equal; IS DISTINCT FROM NULL tests the
// value itself.
func pgOutputExpr(q string) string {
	return `(CASE WHEN ` + q + ` IS DISTINCT FROM NULL THEN format('%s', ` + q + `) END) COLLATE "C"`
}

// textCastIsOutput are built-in types whose cast to text is their output
// function's text: those without a cast function to text in pg_cast, so
// that ::text is an I/O conversion (not bpchar, "char", name, inet, cidr,
// bool, which have one; not domains, whose cast is their base type's). It
// costs the source a quarter less than format('%s', ...), which looks the
// output function up again for every row (numeric of the bench table: 840
// -> 640 ms of CPU per million rows).
var textCastIsOutput = map[uint32]bool{
	schema.OIDJSON: true, schema.OIDJSONB: true, schema.OIDNumeric: true, schema.OIDInterval: true,
	schema.OIDDate: true, schema.OIDTime: true, schema.OIDTimeTZ: true, schema.OIDTimestamp: true,
	schema.OIDTimestampTZ: true, schema.OIDUUID: true, schema.OIDInt2: true, schema.OIDInt4: true,
	schema.OIDInt8: true, schema.OIDOid: true, schema.OIDFloat4: true, schema.OIDFloat8: true,
}

// sourceHashPart is the source's expression for a column hashed by code.
func sourceHashPart(c schema.Column, code byte) string {
	q := quoteIdent(c.Name)
	if code&hcList != 0 {
		return sourceArrayPart(c, code&^hcList)
	}
	switch code {
	case hcInt8:
		return "int8send(" + q + ")"
	case hcDecimal:
		return "numeric_send(" + q + ")"
	case hcTime:
		return "time_send(" + q + ")"
	case hcTimeTZ:
		return "timetz_send(" + q + ")"
	case hcTimestamp:
		return "timestamp_send(" + q + ")"
	case hcTimestampTZ:
		return "timestamptz_send(" + q + ")"
	case hcInterval:
		return "interval_send(" + q + ")"
	case hcText:
		return pgTextHashExpr(c)
	case hcFloat4, hcFloat8:
		return floatHashExpr(q, code == hcFloat4)
	}
	return q
}

// sourceArrayPart is the source's expression for an array column kept as
// a DuckDB LIST of elements hashed by code: two fields of the record, the
// array of its elements' hashable forms (their expressions as for a column
// of the element type: hash_array_extended hashes it as
// h = 31*h + hash(element), from 1, a NULL element hashing as 0), and
// array_dims, which hash_array_extended ignores ('{{1},{2}}' and '{1,2}'
// hash alike; a LIST holds one dimension from 1: "[1:n]", NULL when empty).
// A NULL array is NULL in both fields (the CASE: ARRAY() of no rows is an
// empty array, not NULL).
func sourceArrayPart(c schema.Column, code byte) string {
	q := quoteIdent(c.Name)
	elem, _ := schema.ArrayElem(c.TypeID)
	e := sourceHashPart(schema.Column{Name: "x", TypeID: elem, Typmod: c.Typmod}, code)
	return `CASE WHEN ` + q + ` IS NOT NULL THEN ARRAY(SELECT ` + e + ` FROM unnest(` + q + `) WITH ORDINALITY AS u("x", "n") ORDER BY "n") END, array_dims(` + q + `)`
}

// targetPlan is how a table's rows are hashed on both sides.
type targetPlan struct {
	codes string   // one hash code per column
	dst   []string // the copy's expression per column, the function's arguments
}

// sourceExpr is the source's row hash for the plan.
func (p *targetPlan) sourceExpr(t *Table) string { return recordHash(p.sourceParts(t), nil) }

// sourceParts is the source's expression per column for the plan.
func (p *targetPlan) sourceParts(t *Table) []string {
	parts := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		parts[i] = sourceHashPart(c, p.codes[i])
	}
	return parts
}

// duckHashCode is the hash code of a source column the DuckDB copy keeps
// as typ (duckdb_columns' data_type), and the expression it is read by;
// 0 when no code reproduces the source's bytes (a LIST, a changed type).
func duckHashCode(c schema.Column, typ string) (byte, string) {
	q := quoteIdent(c.Name)
	if elemTyp, ok := strings.CutSuffix(typ, "[]"); ok {
		elem, isArray := schema.ArrayElem(c.TypeID)
		if !isArray {
			return 0, ""
		}
		// Elements read as they are (not through a cast, which a LIST's
		// elements would need), of a type that has a code.
		code, expr := duckHashCode(schema.Column{Name: c.Name, TypeID: elem, Typmod: c.Typmod}, elemTyp)
		if code == 0 || code&hcList != 0 || expr != q {
			return 0, ""
		}
		return hcList | code, q
	}
	switch typ {
	case "VARCHAR":
		return hcText, q // the sink's text form, or a column changed to VARCHAR
	case "JSON":
		if schema.KindOf(c.TypeID) == schema.KindJSON {
			return hcText, "CAST(" + q + " AS VARCHAR)" // the driver would decode it
		}
		return 0, ""
	}
	want := map[uint32]struct {
		typ  string
		code byte
	}{
		schema.OIDBool: {"BOOLEAN", hcBool}, schema.OIDInt2: {"SMALLINT", hcInt32}, schema.OIDInt4: {"INTEGER", hcInt32},
		schema.OIDInt8: {"BIGINT", hcInt8}, schema.OIDOid: {"BIGINT", hcOID}, schema.OIDFloat4: {"FLOAT", hcFloat4},
		schema.OIDFloat8: {"DOUBLE", hcFloat8}, schema.OIDBytea: {"BLOB", hcBytes}, schema.OIDDate: {"DATE", hcDate},
		schema.OIDTime: {"TIME", hcTime}, schema.OIDTimeTZ: {"TIME WITH TIME ZONE", hcTimeTZ},
		schema.OIDTimestamp: {"TIMESTAMP", hcTimestamp}, schema.OIDTimestampTZ: {"TIMESTAMP WITH TIME ZONE", hcTimestampTZ},
		schema.OIDInterval: {"INTERVAL", hcInterval}, schema.OIDUUID: {"UUID", hcUUID},
	}[c.TypeID]
	switch {
	case c.TypeID == schema.OIDNumeric && strings.HasPrefix(typ, "DECIMAL("):
		return hcDecimal, q
	case want.typ != typ:
		return 0, ""
	case want.code == hcTimeTZ:
		return want.code, duckTimeTZText(q) // the driver loses offsets
	case want.code == hcTime:
		return want.code, "CAST(" + q + " AS VARCHAR)" // the driver loses 24:00:00
	}
	return want.code, q
}

// sqliteHashCode is the hash code of a source column in a SQLite copy,
// which keeps integers and bool as INTEGER, floats as REAL (NaN as text),
// bytea as BLOB, timestamps as ISO-8601 text and everything else as
// PostgreSQL's text.
func sqliteHashCode(c schema.Column) byte {
	switch c.TypeID {
	case schema.OIDInt2, schema.OIDInt4:
		return hcInt32
	case schema.OIDInt8:
		return hcInt8
	case schema.OIDOid:
		return hcOID
	case schema.OIDBool:
		return hcBool
	case schema.OIDFloat4:
		return hcFloat4
	case schema.OIDFloat8:
		return hcFloat8
	case schema.OIDBytea:
		return hcBytes
	case schema.OIDTimestamp:
		return hcTimestamp
	case schema.OIDTimestampTZ:
		return hcTimestampTZ
	}
	return hcText
}

// hashRow is hash_record_extended of one row of the copy: vals are its
// columns' values as the DuckDB or SQLite driver passes them to a
// function, codes their hash codes. ok is false when a value cannot give
// the bytes the source hashes.
func hashRow[V any](codes string, vals []V) (h uint64, ok bool) {
	if len(vals) != len(codes) {
		return 0, false
	}
	for i, v := range vals {
		if codes[i]&hcList != 0 {
			e, dims, ok := hashList(codes[i]&^hcList, any(v))
			if !ok {
				return 0, false
			}
			h = pgRecordHash(pgRecordHash(h, e), dims)
			continue
		}
		e, ok := hashValue(codes[i], any(v))
		if !ok {
			return 0, false
		}
		h = pgRecordHash(h, e)
	}
	return h, true
}

// rowHash is the hash both sides sum and bucket a row (or a key) by:
// hashRow's hash_record_extended, mixed again (pgMixRowHash, recordHash).
func rowHash[V any](codes string, vals []V) (uint64, bool) {
	h, ok := hashRow(codes, vals)
	return pgMixRowHash(h), ok
}

// hashList hashes a DuckDB LIST (v: its elements, or nil for NULL) as the
// source hashes the two fields of sourceArrayPart: hash_array_extended of
// its elements hashed by code, and its array_dims text.
func hashList(code byte, v any) (elems, dims uint64, ok bool) {
	if v == nil {
		return 0, 0, true
	}
	l, isList := v.([]any)
	if !isList {
		return 0, 0, false
	}
	h := uint64(1)
	for _, e := range l {
		eh, ok := hashValue(code, e)
		if !ok {
			return 0, 0, false
		}
		h = h<<5 - h + eh
	}
	if len(l) > 0 {
		dims = pgHashBytes("[1:" + strconv.Itoa(len(l)) + "]")
	}
	return h, dims, true
}

// pgEpochMicros is 2000-01-01 (PostgreSQL's epoch) in Unix microseconds.
const pgEpochMicros = 946_684_800_000_000

func hashValue(code byte, v any) (uint64, bool) {
	if v == nil {
		return 0, true
	}
	if b, isBytes := v.([]byte); isBytes && b == nil {
		return 0, true // SQLite passes NULL as a nil []byte
	}
	switch code {
	case hcInt32, hcOID, hcInt8:
		var n int64
		switch v := v.(type) {
		case int64:
			n = v
		case int32:
			n = int64(v)
		case int16:
			n = int64(v)
		default:
			return 0, false
		}
		switch code {
		case hcInt32:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return 0, false
			}
			return pgHashUint32(uint32(int32(n))), true
		case hcOID:
			if n < 0 || n > math.MaxUint32 {
				return 0, false
			}
			return pgHashUint32(uint32(n)), true
		}
		return pgHashInt64Send(n), true
	case hcBool:
		switch v {
		case true, int64(1):
			return pgHashUint32(1), true
		case false, int64(0):
			return pgHashUint32(0), true
		}
	case hcFloat4, hcFloat8:
		return hashFloat(code == hcFloat4, v)
	case hcDecimal:
		if d, isDec := v.(duckdb.Decimal); isDec && d.Value != nil {
			return pgHashBytes(numericSend(d.Value, int(d.Scale))), true
		}
	case hcBytes:
		if b, isBytes := v.([]byte); isBytes {
			return pgHashBytes(b), true
		}
	case hcDate:
		if t, isTime := v.(time.Time); isTime {
			var days int64
			switch d := floorDiv(t.Unix(), 86400); d {
			case duckDateInfinity:
				days = math.MaxInt32 // DATEVAL_NOEND
			case -duckDateInfinity:
				days = math.MinInt32 // DATEVAL_NOBEGIN
			default:
				days = d + pgtext.UnixEpochDays
			}
			return pgHashUint32(uint32(int32(days))), true
		}
	case hcTime:
		if s, isText := v.(string); isText {
			if us, err := pgtext.ParseTime([]byte(s), pgtext.Lenient); err == nil {
				return pgHashInt64Send(us), true
			}
		}
	case hcTimeTZ:
		if s, isText := v.(string); isText {
			if us, off, err := pgtext.ParseTimeTZ([]byte(s), pgtext.Lenient); err == nil {
				var buf [12]byte
				binary.BigEndian.PutUint64(buf[:], uint64(us))
				binary.BigEndian.PutUint32(buf[8:], uint32(int32(-off))) // PostgreSQL keeps seconds west
				return pgHashBytes(buf[:]), true
			}
		}
	case hcTimestamp, hcTimestampTZ:
		return hashTimestamp(v, code == hcTimestampTZ)
	case hcInterval:
		if iv, isIv := v.(duckdb.Interval); isIv {
			var buf [16]byte
			binary.BigEndian.PutUint64(buf[:], uint64(iv.Micros))
			binary.BigEndian.PutUint32(buf[8:], uint32(iv.Days))
			binary.BigEndian.PutUint32(buf[12:], uint32(iv.Months))
			return pgHashBytes(buf[:]), true
		}
	case hcUUID:
		switch u := v.(type) {
		case []byte:
			if len(u) == 16 {
				return pgHashBytes(u), true
			}
		case duckdb.UUID:
			return pgHashBytes(u[:]), true
		}
	case hcText:
		switch s := v.(type) {
		case string:
			return pgHashBytes(s), true
		case []byte:
			return pgHashBytes(s), true
		}
	}
	return 0, false
}

// hashFloat hashes a float4 or float8 as the source does: DuckDB passes
// float32 or float64, SQLite a double (a float4's shortest text read as a
// double) or the text of NaN.
func hashFloat(f4 bool, v any) (uint64, bool) {
	var f float64
	switch v := v.(type) {
	case float32:
		if !f4 {
			return 0, false
		}
		f = float64(v)
	case float64:
		f = v
		if f4 && !math.IsNaN(v) && !math.IsInf(v, 0) {
			// As canon.go: the float4 whose shortest text this double is.
			f32, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', -1, 64), 32)
			if err != nil {
				return 0, false
			}
			f = f32
		}
	case string:
		bits := 64
		if f4 {
			bits = 32
		}
		p, err := pgtext.ParseFloat([]byte(v), bits)
		if err != nil {
			return 0, false
		}
		f = p
	default:
		return 0, false
	}
	return pgHashFloatSend(f, f4), true
}

// hashTimestamp hashes a timestamp(tz) as its send function's bytes:
// microseconds since 2000-01-01, infinities as the int64 extremes.
func hashTimestamp(v any, tz bool) (uint64, bool) {
	var us int64
	switch v := v.(type) {
	case time.Time:
		// As canon.go's timeValue: DuckDB's extremes stand for ±infinity.
		sec, nsec := v.Unix(), int64(v.Nanosecond())
		if sec > math.MaxInt64/1_000_000 || sec < math.MinInt64/1_000_000-1 {
			return 0, false
		}
		us = sec*1_000_000 + nsec/1000
		if sec < 0 { // sec*1e6 alone may pass math.MinInt64
			us = (sec+1)*1_000_000 + nsec/1000 - 1_000_000
		}
		switch {
		case sec > 0 && us == duckTsInfinity:
			return pgHashInt64Send(math.MaxInt64), true // DT_NOEND
		case sec < 0 && us == -duckTsInfinity:
			return pgHashInt64Send(math.MinInt64), true // DT_NOBEGIN
		}
		us -= pgEpochMicros
	case string:
		if us, ok := isoMicros(v, tz); ok {
			return pgHashInt64Send(us), true
		}
		b := fromISO([]byte(v), tz)
		var inf pgtext.Inf
		var err error
		if tz {
			us, inf, err = pgtext.ParseTimestampTZ(b, pgtext.Lenient)
		} else {
			us, inf, err = pgtext.ParseTimestamp(b, pgtext.Lenient)
		}
		switch {
		case err != nil:
			return 0, false
		case inf == pgtext.Infinity:
			us = math.MaxInt64
		case inf == pgtext.NegInfinity:
			us = math.MinInt64
		}
	default:
		return 0, false
	}
	return pgHashInt64Send(us), true
}

// isoMicros reads a timestamp in the exact form the SQLite sink writes a
// finite one with a four-digit year AD ("2024-01-02T03:04:05.500000", with
// a "Z" for timestamptz) as microseconds since 2000-01-01, without
// allocating; ok false for any other text (read by the general parser).
func isoMicros(s string, tz bool) (int64, bool) {
	n := 26
	if tz {
		n = 27
		if len(s) != n || s[26] != 'Z' {
			return 0, false
		}
	}
	if len(s) != n || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' {
		return 0, false
	}
	num := func(i, j int) (int64, bool) {
		v := int64(0)
		for ; i < j; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int64(c-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	frac, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || y == 0 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return 0, false
	}
	days := pgtext.DaysFromCivil(y, mo, d)
	if cy, cm, cd := pgtext.CivilFromDays(days); cy != y || cm != mo || cd != d { // no such day
		return 0, false
	}
	return days*86_400_000_000 + ((h*60+mi)*60+sec)*1_000_000 + frac, true
}

// numericSend is numeric_send of the finite numeric unscaled×10^-scale
// with display scale scale: digit count, weight, sign and dscale, then the
// base-10000 digits without leading or trailing zero digits, as int16s.
func numericSend(unscaled *big.Int, scale int) []byte {
	if scale < 0 {
		scale = 0
	}
	if unscaled.IsInt64() {
		if b, ok := numericSendInt64(unscaled.Int64(), scale); ok {
			return b
		}
	}
	return numericSendBig(unscaled, scale)
}

// numericSendBig is numericSend through the value's decimal digits.
func numericSendBig(unscaled *big.Int, scale int) []byte {
	digits := new(big.Int).Abs(unscaled).String()
	if len(digits) < scale {
		digits = strings.Repeat("0", scale-len(digits)) + digits
	}
	ipart, fpart := digits[:len(digits)-scale], digits[len(digits)-scale:]
	if r := len(ipart) % 4; r != 0 {
		ipart = strings.Repeat("0", 4-r) + ipart
	}
	if r := len(fpart) % 4; r != 0 {
		fpart += strings.Repeat("0", 4-r)
	}
	all := ipart + fpart
	groups := make([]uint16, 0, len(all)/4)
	for i := 0; i < len(all); i += 4 {
		g, _ := strconv.Atoi(all[i : i+4])
		groups = append(groups, uint16(g))
	}
	return numericSendGroups(groups, len(ipart)/4-1, unscaled.Sign() < 0, scale)
}

// numericSendInt64 is numericSend for an unscaled value that fits an
// int64, without allocating the digits; ok false when the value, aligned
// to whole base-10000 digits, would not fit a uint64.
func numericSendInt64(v int64, scale int) ([]byte, bool) {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = -u
	}
	// Align the fraction to whole base-10000 digits.
	fracGroups := (scale + 3) / 4
	for range fracGroups*4 - scale {
		if u > math.MaxUint64/10 {
			return nil, false
		}
		u *= 10
	}
	var rev [6]uint16 // least significant first; 10^20 > 2^64
	n := 0
	for u > 0 {
		rev[n] = uint16(u % 10000)
		u /= 10000
		n++
	}
	groups := make([]uint16, n)
	for i := range n {
		groups[i] = rev[n-1-i]
	}
	return numericSendGroups(groups, n-fracGroups-1, neg, scale), true
}

// numericSendGroups strips the zero digits at both ends of groups (most
// significant first; weight is the first one's) and encodes the rest.
func numericSendGroups(groups []uint16, weight int, neg bool, scale int) []byte {
	for len(groups) > 0 && groups[0] == 0 {
		groups, weight = groups[1:], weight-1
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	sign := uint16(0x0000) // NUMERIC_POS
	if len(groups) == 0 {
		weight = 0
	} else if neg {
		sign = 0x4000 // NUMERIC_NEG
	}
	out := make([]byte, 8+2*len(groups))
	binary.BigEndian.PutUint16(out, uint16(len(groups)))
	binary.BigEndian.PutUint16(out[2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(out[4:], sign)
	binary.BigEndian.PutUint16(out[6:], uint16(scale))
	for i, g := range groups {
		binary.BigEndian.PutUint16(out[8+2*i:], g)
	}
	return out
}

// pgHashFunc names the functions registered on a DuckDB connection:
// walmirror_pg_hash_<codes in hex>(v1, v2, ...), one per list of hash
// codes, a scalar function returning a row's hash of the values v1, v2,
// ... hashed by those codes (NULL when a value cannot be hashed). The
// codes are no argument: DuckDB would hand that constant to Go as a new
// string for every row. A SQLite copy is in the process itself: its rows
// are hashed as SQLite reads them (sqlsum.go), which costs less than a
// function SQLite calls per row through the driver (2.7 µs a row in
// BenchmarkTargetChecksums).
const pgHashFunc = "walmirror_pg_hash"

// duckHashUDF is the DuckDB scalar function for one list of hash codes.
type duckHashUDF struct{ codes string }

func (duckHashUDF) Config() duckdb.ScalarFuncConfig {
	anyType, _ := duckdb.NewTypeInfo(duckdb.TYPE_ANY)
	result, _ := duckdb.NewTypeInfo(duckdb.TYPE_BIGINT)
	return duckdb.ScalarFuncConfig{
		VariadicTypeInfo:    anyType,
		ResultTypeInfo:      result,
		SpecialNullHandling: true, // a NULL column hashes as 0
		Volatile:            true, // computed once per row, not once per use
	}
}

func (f duckHashUDF) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(vals []driver.Value) (any, error) {
		h, ok := rowHash(f.codes, vals)
		if !ok {
			return nil, nil
		}
		return int64(h), nil
	}}
}

// duckHashName is the name of the function for codes.
func duckHashName(codes string) string { return pgHashFunc + "_" + hex.EncodeToString([]byte(codes)) }

// registerHash registers the function for codes on conn, a DuckDB
// connection.
func registerHash(conn *sql.Conn, codes string) error {
	return duckdb.RegisterScalarUDF(conn, duckHashName(codes), duckHashUDF{codes})
}

// targetArgs are the arguments of pgHashFunc on the copy: the hash codes,
// then the columns as the copy reads them.
func (p *targetPlan) targetArgs() string { return p.targetArgsOf(nil) }

// targetArgsOf is targetArgs for the columns at cols (all when nil), the
// hash of those columns as a record.
func (p *targetPlan) targetArgsOf(cols []int) string {
	if cols == nil {
		return "'" + p.codes + "', " + strings.Join(p.dst, ", ")
	}
	codes := make([]byte, len(cols))
	dst := make([]string, len(cols))
	for i, k := range cols {
		codes[i], dst[i] = p.codes[k], p.dst[k]
	}
	return "'" + string(codes) + "', " + strings.Join(dst, ", ")
}

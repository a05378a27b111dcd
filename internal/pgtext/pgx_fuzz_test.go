package pgtext

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// FuzzPgx runs every parser on the same text, in both modes, and checks
//   - against pgx's own text decoding of the type (pgtype's scan plans for
//     the text format), where pgx has one: for text both accept, the values
//     agree;
//   - that what Exact accepts, Lenient accepts with the same value;
//   - that what Exact accepts is the one spelling PostgreSQL prints for the
//     value (formatted back, it is the same text).
//
// The seed corpus is in testdata/fuzz/FuzzPgx.
func FuzzPgx(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) { fuzzBody(t, in) })
}

var pgxMap = pgtype.NewMap()

// fuzzBody is FuzzPgx's check of one text.
func fuzzBody(t testing.TB, in []byte) {
	m := pgxMap
	scan := func(oid uint32, dst any) bool {
		return m.Scan(oid, pgtype.TextFormatCode, in, dst) == nil
	}
	// agree: for text both accept, pgtext's value prints as pgx's.
	agree := func(typ string, ours any, err error, pgxOK bool, pgx any) {
		if err == nil && pgxOK && fmt.Sprint(ours) != fmt.Sprint(pgx) {
			t.Errorf("%s %q: pgtext %v, pgx %v", typ, in, ours, pgx)
		}
	}
	// same: what Exact accepts, Lenient accepts with the same value.
	same := func(typ string, exact, lenient any, errE, errL error) {
		if errE == nil && (errL != nil || fmt.Sprint(exact) != fmt.Sprint(lenient)) {
			t.Errorf("%s %q: Exact %v, Lenient %v, %v", typ, in, exact, lenient, errL)
		}
	}
	// printed: what Exact accepts is the text format makes of its value.
	printed := func(typ string, err error, format func() string) {
		if err != nil {
			return
		}
		if out := format(); out != string(in) {
			t.Errorf("%s %q: Exact accepts it, but PostgreSQL prints the value as %q", typ, in, out)
		}
	}

	var b bool
	v, err := ParseBool(in)
	agree("bool", v, err, scan(pgtype.BoolOID, &b), b)

	for _, c := range []struct {
		bits int
		oid  uint32
	}{{16, pgtype.Int2OID}, {32, pgtype.Int4OID}, {64, pgtype.Int8OID}} {
		var p int64
		pgxOK := scan(c.oid, &p) && (p>>(c.bits-1) == 0 || p>>(c.bits-1) == -1)
		e, errE := ParseInt(in, c.bits, Exact)
		l, errL := ParseInt(in, c.bits, Lenient)
		agree("int", l, errL, pgxOK, p)
		if (errL == nil) != pgxOK { // both are strconv's syntax
			t.Errorf("int%d %q: pgtext %v, pgx accepts %v", c.bits, in, errL, pgxOK)
		}
		same("int", e, l, errE, errL)
		printed("int", errE, func() string { return strconv.FormatInt(e, 10) })
	}

	var f4 float32
	var f8 float64
	for _, c := range []struct {
		bits  int
		pgxOK bool
		pgx   func() float64
	}{
		{32, scan(pgtype.Float4OID, &f4), func() float64 { return float64(f4) }},
		{64, scan(pgtype.Float8OID, &f8), func() float64 { return f8 }},
	} {
		l, err := ParseFloat(in, c.bits)
		if err == nil && c.pgxOK && math.Float64bits(l) != math.Float64bits(c.pgx()) && !(math.IsNaN(l) && math.IsNaN(c.pgx())) {
			t.Errorf("float%d %q: pgtext %v, pgx %v", c.bits, in, l, c.pgx())
		}
	}

	var num pgtype.Numeric
	pgxOK := scan(pgtype.NumericOID, &num)
	nE, errE := ParseNumeric(in, Exact)
	nL, errL := ParseNumeric(in, Lenient)
	if pgxOK {
		agree("numeric", numericString(nL), errL, pgxOK, pgxNumericString(num))
	}
	same("numeric", numericString(nE), numericString(nL), errE, errL)

	for _, c := range []struct {
		typ    string
		oid    uint32
		parse  func([]byte, Mode) (int64, Inf, error)
		format func(int64, Inf) string
	}{
		{"date", pgtype.DateOID, ParseDate, func(v int64, inf Inf) string { return formatDate(v, inf, "") }},
		{"timestamp", pgtype.TimestampOID, ParseTimestamp, func(v int64, inf Inf) string { return formatTimestamp(v, inf, "") }},
		{"timestamptz", pgtype.TimestamptzOID, ParseTimestampTZ, func(v int64, inf Inf) string { return formatTimestamp(v, inf, "+00") }},
	} {
		var p pgxDateTime
		pgxOK := scan(c.oid, &p)
		vE, infE, errE := c.parse(in, Exact)
		vL, infL, errL := c.parse(in, Lenient)
		agree(c.typ, orInf(vL, infL), errL, pgxOK, p.v)
		same(c.typ, orInf(vE, infE), orInf(vL, infL), errE, errL)
		if c.oid != pgtype.TimestamptzOID || bytes.Contains(in, []byte("+00")) && !bytes.Contains(in, []byte("+00:")) {
			// Other offsets print the instant otherwise.
			printed(c.typ, errE, func() string { return c.format(vE, infE) })
		}
	}

	var tm pgtype.Time
	pgxOK = scan(pgtype.TimeOID, &tm)
	cE, errE := ParseTime(in, Exact)
	cL, errL := ParseTime(in, Lenient)
	agree("time", cL, errL, pgxOK, tm.Microseconds)
	same("time", cE, cL, errE, errL)
	printed("time", errE, func() string { return formatClock(cE) })

	cE, oE, errE := ParseTimeTZ(in, Exact)
	cL, oL, errL := ParseTimeTZ(in, Lenient)
	same("timetz", [2]int64{cE, oE}, [2]int64{cL, oL}, errE, errL)

	var iv pgtype.Interval
	pgxOK = scan(pgtype.IntervalOID, &iv)
	i, err := ParseInterval(in)
	agree("interval", i, err, pgxOK, Interval{Months: iv.Months, Days: iv.Days, Micros: iv.Microseconds})

	var u pgtype.UUID
	pgxOK = scan(pgtype.UUIDOID, &u)
	uE, errE := ParseUUID(in, Exact)
	uL, errL := ParseUUID(in, Lenient)
	agree("uuid", uL, errL, pgxOK, u.Bytes)
	same("uuid", uE, uL, errE, errL)
	printed("uuid", errE, func() string { return fmt.Sprintf("%x-%x-%x-%x-%x", uE[:4], uE[4:6], uE[6:8], uE[8:10], uE[10:]) })

	var by []byte
	pgxOK = scan(pgtype.ByteaOID, &by)
	bL, err := AppendBytea(nil, in)
	agree("bytea", fmt.Sprintf("%x", bL), err, pgxOK, fmt.Sprintf("%x", by))
}

// orInf is a day or microsecond count, or which infinity.
func orInf(v int64, inf Inf) any {
	if inf != Finite {
		return pgtype.InfinityModifier(inf)
	}
	return v
}

// pgxDateTime takes what pgx scans from a date (days since 2000), a
// timestamp or a timestamptz (microseconds since 2000), or an infinity.
type pgxDateTime struct{ v any }

func (p *pgxDateTime) set(t time.Time, inf pgtype.InfinityModifier, days bool) error {
	switch {
	case inf != pgtype.Finite:
		p.v = inf
	case days:
		p.v = t.Unix()/86400 + UnixEpochDays
	default:
		p.v = t.UnixMicro() + UnixEpochMicros
	}
	return nil
}

func (p *pgxDateTime) ScanDate(v pgtype.Date) error { return p.set(v.Time, v.InfinityModifier, true) }
func (p *pgxDateTime) ScanTimestamp(v pgtype.Timestamp) error {
	return p.set(v.Time, v.InfinityModifier, false)
}
func (p *pgxDateTime) ScanTimestamptz(v pgtype.Timestamptz) error {
	return p.set(v.Time, v.InfinityModifier, false)
}

// numericString is n's value as digits and a power of ten, without
// trailing zeros, or NaN, Infinity, -Infinity.
func numericString(n Numeric) string {
	switch {
	case n.NaN:
		return "NaN"
	case n.Inf == Infinity:
		return "Infinity"
	case n.Inf == NegInfinity:
		return "-Infinity"
	}
	v, _ := new(big.Int).SetString("0"+string(n.Int)+string(n.Frac), 10)
	if n.Neg {
		v.Neg(v)
	}
	return normalized(v, -len(n.Frac))
}

func pgxNumericString(n pgtype.Numeric) string {
	switch {
	case n.NaN:
		return "NaN"
	case n.InfinityModifier == pgtype.Infinity:
		return "Infinity"
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return "-Infinity"
	}
	return normalized(n.Int, int(n.Exp))
}

func normalized(v *big.Int, exp int) string {
	if v.Sign() == 0 {
		return "0"
	}
	ten, q, r := big.NewInt(10), new(big.Int), new(big.Int)
	v = new(big.Int).Set(v)
	for {
		q.QuoRem(v, ten, r)
		if r.Sign() != 0 {
			break
		}
		v.Set(q)
		exp++
	}
	return fmt.Sprintf("%se%d", v, exp)
}

// formatDate prints days since 2000 as date_out does, with after (a time)
// before any " BC".
func formatDate(days int64, inf Inf, after string) string {
	switch inf {
	case Infinity:
		return "infinity"
	case NegInfinity:
		return "-infinity"
	}
	y, m, d := CivilFromDays(days)
	bc := ""
	if y <= 0 {
		y, bc = 1-y, " BC"
	}
	return fmt.Sprintf("%04d-%02d-%02d%s%s", y, m, d, after, bc)
}

// formatTimestamp prints microseconds since 2000 as timestamp_out does, with
// offset after the time (timestamptz_out in UTC: "+00").
func formatTimestamp(us int64, inf Inf, offset string) string {
	days, clock := us/usPerDay, us%usPerDay
	if clock < 0 {
		days, clock = days-1, clock+usPerDay
	}
	return formatDate(days, inf, " "+formatClock(clock)+offset)
}

func formatClock(us int64) string {
	s := fmt.Sprintf("%02d:%02d:%02d", us/3_600_000_000, us/60_000_000%60, us/1_000_000%60)
	if f := us % 1_000_000; f != 0 {
		s += string(bytes.TrimRight(fmt.Appendf(nil, ".%06d", f), "0"))
	}
	return s
}

// TestPgxOracle: pgx decodes the output forms FuzzPgx compares, to the
// values pgtext has, so the comparison is not vacuous.
func TestPgxOracle(t *testing.T) {
	var (
		dt  pgxDateTime
		i   int64
		iv  pgtype.Interval
		u   pgtype.UUID
		num pgtype.Numeric
	)
	for _, c := range []struct {
		oid  uint32
		in   string
		dst  any
		got  func() any
		want any
	}{
		{pgtype.DateOID, "0001-12-31 BC", &dt, func() any { return dt.v }, int64(-730120)},
		{pgtype.TimestampOID, "2000-01-01 00:00:01.5", &dt, func() any { return dt.v }, int64(1_500_000)},
		{pgtype.TimestamptzOID, "2000-01-01 05:30:00+05:30", &dt, func() any { return dt.v }, int64(0)},
		{pgtype.TimestamptzOID, "-infinity", &dt, func() any { return dt.v }, pgtype.NegativeInfinity},
		{pgtype.Int2OID, "-32768", &i, func() any { return i }, int64(-32768)},
		{pgtype.NumericOID, "-1.50", &num, func() any { return pgxNumericString(num) }, "-15e-1"},
		{pgtype.IntervalOID, "1 year -2 days +01:00:00", &iv, func() any { return Interval{iv.Months, iv.Days, iv.Microseconds} },
			Interval{12, -2, 3_600_000_000}},
		{pgtype.UUIDOID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", &u, func() any { return u.Bytes[0] }, byte(0xa0)},
	} {
		if err := pgxMap.Scan(c.oid, pgtype.TextFormatCode, []byte(c.in), c.dst); err != nil {
			t.Errorf("pgx scan of %q: %v", c.in, err)
		} else if got := c.got(); got != c.want {
			t.Errorf("pgx scan of %q = %v, want %v", c.in, got, c.want)
		}
	}
}

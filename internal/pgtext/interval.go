package pgtext

import (
	"bytes"
	"fmt"
	"math"
)

// Interval is an interval as PostgreSQL stores it.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// ParseInterval parses interval_out's form under IntervalStyle postgres:
// "1 year 2 mons 3 days 04:05:06.5", "-1 years +2 mons", "-00:00:01",
// "00:00:00", and PostgreSQL 17's "infinity" and "-infinity" (the extreme
// fields PostgreSQL stores for them). Each unit comes at most once, as in
// PostgreSQL's input; signs and counts are read leniently ('+', leading
// zeros). Other IntervalStyles are refused.
func ParseInterval(b []byte) (Interval, error) {
	switch infinity(b) {
	case Infinity:
		return Interval{Months: math.MaxInt32, Days: math.MaxInt32, Micros: math.MaxInt64}, nil
	case NegInfinity:
		return Interval{Months: math.MinInt32, Days: math.MinInt32, Micros: math.MinInt64}, nil
	}
	var months, days, us int64
	bad := func() (Interval, error) {
		return Interval{}, fmt.Errorf("interval %q: not in IntervalStyle postgres form", b)
	}
	if len(b) == 0 || b[len(b)-1] == ' ' {
		return bad()
	}
	const (
		seenYears = 1 << iota
		seenMonths
		seenDays
	)
	seen := 0
	s := b
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
			if len(s) > 0 { // the time comes last
				return bad()
			}
			v, ok := parseIntervalTime(tok)
			if !ok {
				return bad()
			}
			us = v
			continue
		}
		n, err := ParseInt(tok, 32, Lenient)
		if err != nil {
			return bad()
		}
		unit := s
		if sp := bytes.IndexByte(s, ' '); sp >= 0 {
			unit, s = s[:sp], s[sp+1:]
		} else {
			s = nil
		}
		var bit int
		switch string(unit) {
		case "year", "years":
			bit, months = seenYears, months+n*12
		case "mon", "mons":
			bit, months = seenMonths, months+n
		case "day", "days":
			bit, days = seenDays, n
		default:
			return bad()
		}
		if seen&bit != 0 {
			return bad()
		}
		seen |= bit
	}
	if months > math.MaxInt32 || months < math.MinInt32 {
		return Interval{}, fmt.Errorf("interval %q: %w", b, ErrRange)
	}
	return Interval{Months: int32(months), Days: int32(days), Micros: us}, nil
}

// parseIntervalTime parses [+-]H+:MM:SS[.ffffff] (hours unbounded).
func parseIntervalTime(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	const usPerHour = 3600 * usPerSecond
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
	us := uint64(m*60+sec) * usPerSecond
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

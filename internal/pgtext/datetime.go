package pgtext

import (
	"bytes"
	"fmt"
	"math"
)

const (
	usPerSecond = 1_000_000
	usPerDay    = 86_400 * usPerSecond
)

// ParseDate parses date_out's ISO form "YYYY-MM-DD" (more year digits past
// 9999, " BC" after it for years before 1) or ±infinity, to days since
// 2000-01-01 (see DaysFromCivil). Exact: four year digits, or more without a
// leading zero, a year from 1, and a date in date's range (4714-11-24 BC to
// 5874897-12-31). Lenient: up to nine year digits with any leading zeros.
func ParseDate(b []byte, m Mode) (days int64, inf Inf, err error) {
	if inf = infinity(b); inf != Finite {
		return 0, inf, nil
	}
	days, rest, err := parseYMD(b, m)
	if err != nil {
		return 0, Finite, err
	}
	if len(rest) != 0 {
		return 0, Finite, fmt.Errorf("date %q: trailing characters", b)
	}
	if m == Exact && (days < minDay || days >= dateEndDay) {
		return 0, Finite, fmt.Errorf("date %q: %w", b, ErrRange)
	}
	return days, Finite, nil
}

// ParseTime parses time_out's form HH:MM:SS[.ffffff], 24:00:00 at most, to
// microseconds since midnight. Exact: seconds to 59 and no trailing zero in
// the fraction. Lenient: seconds to 60 (23:59:60 is 24:00:00) and trailing
// zeros.
func ParseTime(b []byte, m Mode) (us int64, err error) {
	us, rest, err := parseClock(b, m)
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("time %q: trailing characters", b)
	}
	return us, err
}

// ParseTimeTZ parses timetz_out's form: a time as ParseTime reads it and a
// UTC offset (+HH[:MM[:SS]]), to microseconds since midnight and the offset
// in seconds east of UTC.
func ParseTimeTZ(b []byte, m Mode) (us, offset int64, err error) {
	us, rest, err := parseClock(b, m)
	if err != nil {
		return 0, 0, err
	}
	offset, n, err := parseOffset(rest)
	if err != nil {
		return 0, 0, fmt.Errorf("timetz %q: %w", b, err)
	}
	if n != len(rest) {
		return 0, 0, fmt.Errorf("timetz %q: trailing characters", b)
	}
	return us, offset, nil
}

// ParseTimestamp parses timestamp_out's ISO form "2024-01-02 03:04:05.5"
// (" BC" at the end for years before 1) or ±infinity, to microseconds since
// 2000-01-01 00:00:00 (PostgreSQL's epoch; UnixEpochMicros is 1970's). The
// date is read as ParseDate reads it and the time as ParseTime, except that
// Exact mode refuses 24:00:00 and keeps to timestamp's range (4714-11-24 BC
// to 294276-12-31), and Lenient mode rolls 24:00:00 over to the next day and
// takes dates up to about 292,000 years either side of 2000, so that every
// value fits an int64 strictly between math.MinInt64 and math.MaxInt64
// (which stay free for the infinities). An error for a date beyond that
// wraps ErrRange.
func ParseTimestamp(b []byte, m Mode) (us int64, inf Inf, err error) {
	return parseTimestamp(b, false, m)
}

// ParseTimestampTZ parses timestamptz_out's ISO form: a timestamp as
// ParseTimestamp reads it with a UTC offset (+HH[:MM[:SS]]) after the time
// and before any " BC", to microseconds since 2000-01-01 00:00:00 UTC. The
// offset is the session's time zone's: any is accepted in either mode.
func ParseTimestampTZ(b []byte, m Mode) (us int64, inf Inf, err error) {
	return parseTimestamp(b, true, m)
}

func parseTimestamp(b []byte, tz bool, m Mode) (int64, Inf, error) {
	if inf := infinity(b); inf != Finite {
		return 0, inf, nil
	}
	days, rest, err := parseYMD(b, m)
	if err != nil {
		return 0, Finite, err
	}
	if len(rest) < 1 || rest[0] != ' ' {
		return 0, Finite, fmt.Errorf("timestamp %q: want date and time", b)
	}
	clock, rest, err := parseClock(rest[1:], m)
	if err != nil {
		return 0, Finite, fmt.Errorf("timestamp %q: %w", b, err)
	}
	if m == Exact && clock == usPerDay {
		return 0, Finite, fmt.Errorf("timestamp %q: 24:00:00 is not an output form", b)
	}
	var off int64
	if tz {
		var n int
		off, n, err = parseOffset(rest)
		if err != nil {
			return 0, Finite, fmt.Errorf("timestamptz %q: %w", b, err)
		}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return 0, Finite, fmt.Errorf("timestamp %q: trailing characters", b)
	}
	if m == Exact && (days < minDay || days >= timestampEndDay) {
		return 0, Finite, fmt.Errorf("timestamp %q: %w", b, ErrRange)
	}
	// Room for the time of day and an offset of up to 99:59:59.
	const maxDays = math.MaxInt64/usPerDay - 6
	if days > maxDays || days < -maxDays {
		return 0, Finite, fmt.Errorf("timestamp %q: %w", b, ErrRange)
	}
	return days*usPerDay + clock - off*usPerSecond, Finite, nil
}

// parseYMD parses a date at the start of b, and a " BC" suffix at the end of
// b if there is one, to days since 2000-01-01; rest is what lies between.
func parseYMD(b []byte, m Mode) (days int64, rest []byte, err error) {
	bc := bytes.HasSuffix(b, []byte(" BC"))
	s := b
	if bc {
		s = s[:len(s)-3]
	}
	maxDigits := 9
	if m == Exact {
		maxDigits = 7 // date's last year is 5874897
	}
	i := 0
	var y int64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if i == maxDigits {
			return 0, nil, fmt.Errorf("date %q: year too large", b)
		}
		y = y*10 + int64(s[i]-'0')
		i++
	}
	if i < 4 || len(s) < i+6 || s[i] != '-' || s[i+3] != '-' {
		return 0, nil, fmt.Errorf("date %q: want YYYY-MM-DD", b)
	}
	if y == 0 {
		return 0, nil, fmt.Errorf("date %q: there is no year 0", b)
	}
	if m == Exact && i > 4 && s[0] == '0' {
		return 0, nil, fmt.Errorf("date %q: year not in output form", b)
	}
	if bc {
		y = 1 - y // 1 BC is year 0
	}
	mo, ok1 := two(s[i+1:])
	d, ok2 := two(s[i+4:])
	if !ok1 || !ok2 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return 0, nil, fmt.Errorf("date %q: invalid month or day", b)
	}
	return DaysFromCivil(y, mo, d), s[i+6:], nil
}

// parseClock parses HH:MM:SS[.ffffff] at the start of b, 24:00:00 at most,
// to microseconds (see ParseTime for the modes).
func parseClock(b []byte, m Mode) (us int64, rest []byte, err error) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, nil, fmt.Errorf("time %q: want HH:MM:SS", b)
	}
	maxSec := int64(60)
	if m == Exact {
		maxSec = 59
	}
	h, ok1 := two(b)
	mi, ok2 := two(b[3:])
	s, ok3 := two(b[6:])
	if !ok1 || !ok2 || !ok3 || h > 24 || mi > 59 || s > maxSec {
		return 0, nil, fmt.Errorf("time %q: out of range", b)
	}
	us = ((h*60+mi)*60 + s) * usPerSecond
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
		if m == Exact && b[i-1] == '0' {
			return 0, nil, fmt.Errorf("time %q: trailing zero in the fraction", b)
		}
	}
	if us > usPerDay {
		return 0, nil, fmt.Errorf("time %q: out of range", b)
	}
	return us, b[i:], nil
}

// parseOffset parses a UTC offset (+HH, -HH:MM, +HH:MM:SS) at the start of b
// to seconds east of UTC; n is the number of bytes used.
func parseOffset(b []byte) (secs int64, n int, err error) {
	if len(b) < 3 || (b[0] != '+' && b[0] != '-') {
		return 0, 0, fmt.Errorf("offset %q: want +HH[:MM[:SS]]", b)
	}
	h, ok := two(b[1:])
	if !ok {
		return 0, 0, fmt.Errorf("offset %q: want +HH[:MM[:SS]]", b)
	}
	secs, n = h*3600, 3
	for _, unit := range [...]int64{60, 1} {
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

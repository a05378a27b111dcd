package pgtext

import (
	"errors"
	"math"
	"testing"
	"time"
)

func day(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()/86400 + UnixEpochDays
}

func TestParseDate(t *testing.T) {
	for _, c := range []struct {
		accepts
		want int64
	}{
		{accepts{"2000-02-29", true, true}, day(2000, 2, 29)},
		{accepts{"1970-01-01", true, true}, UnixEpochDays},
		{accepts{"2000-01-01", true, true}, 0},
		{accepts{"0001-01-01", true, true}, day(1, 1, 1)},
		{accepts{"0001-12-31 BC", true, true}, day(0, 12, 31)},
		{accepts{"0004-02-29 BC", false, false}, 0},            // 4 BC is year -3: not a leap year ...
		{accepts{"0005-02-29 BC", true, true}, day(-4, 2, 29)}, // ... 5 BC (year -4) is
		{accepts{"4714-11-24 BC", true, true}, minDay},
		{accepts{"5874897-12-31", true, true}, dateEndDay - 1},
		{accepts{"10000-01-01", true, true}, day(10000, 1, 1)},
		{accepts{"4714-11-23 BC", false, true}, minDay - 1},
		{accepts{"5874898-01-01", false, true}, dateEndDay},
		{accepts{"010000-01-01", false, true}, day(10000, 1, 1)},
		{accepts{"0000-01-01", false, false}, 0},
		{accepts{"123456789-01-01", false, true}, DaysFromCivil(123456789, 1, 1)},
	} {
		for _, m := range modes {
			got, inf, err := ParseDate([]byte(c.in), m)
			if (err == nil) != c.ok(m) || err == nil && (got != c.want || inf != Finite) {
				t.Errorf("ParseDate(%q, %v) = %d, %v, %v; want %d (accepted: %v)", c.in, m, got, inf, err, c.want, c.ok(m))
			}
		}
	}
	for _, in := range []string{"", "2024-1-01", "2024-01-1", "202-01-01", "2024-13-01", "2024-00-01", "2024-02-30",
		"2023-02-29", "2024-01-00", "0000-01-01 BC", "2024-01-01 ", "2024-01-01 AD", "1234567890-01-01", "Infinity",
		"2024-01-01 00:00:00", "2024/01/01", " BC"} {
		for _, m := range modes {
			if got, _, err := ParseDate([]byte(in), m); err == nil {
				t.Errorf("ParseDate(%q, %v) = %d, want an error", in, m, got)
			}
		}
	}
	for in, want := range map[string]Inf{"infinity": Infinity, "-infinity": NegInfinity} {
		for _, m := range modes {
			if _, inf, err := ParseDate([]byte(in), m); err != nil || inf != want {
				t.Errorf("ParseDate(%q, %v) = %v, %v", in, m, inf, err)
			}
		}
	}
}

func micros(y int, m time.Month, d, h, mi, s, us int) int64 {
	return time.Date(y, m, d, h, mi, s, us*1000, time.UTC).UnixMicro() + UnixEpochMicros
}

func TestParseTimestamp(t *testing.T) {
	for _, c := range []struct {
		accepts
		tz   bool
		want int64
	}{
		{accepts{"2000-01-01 00:00:00", true, true}, false, 0},
		{accepts{"1970-01-01 00:00:00.000001", true, true}, false, UnixEpochMicros + 1},
		{accepts{"2024-01-02 03:04:05.5+00", true, true}, true, micros(2024, 1, 2, 3, 4, 5, 500000)},
		{accepts{"2024-01-02 03:04:05+05:30", true, true}, true, micros(2024, 1, 1, 21, 34, 5, 0)},
		{accepts{"1900-01-01 00:00:00-00:19:32", true, true}, true, micros(1900, 1, 1, 0, 19, 32, 0)},
		{accepts{"0001-01-01 00:00:00 BC", true, true}, false, micros(0, 1, 1, 0, 0, 0, 0)},
		{accepts{"0044-03-15 12:00:00+00 BC", true, true}, true, micros(-43, 3, 15, 12, 0, 0, 0)},
		{accepts{"4714-11-24 00:00:00 BC", true, true}, false, minDay * usPerDay},
		{accepts{"294276-12-31 23:59:59.999999", true, true}, false, timestampEndDay*usPerDay - 1},
		{accepts{"2024-01-01 00:00:00.10+00", false, true}, true, micros(2024, 1, 1, 0, 0, 0, 100000)},
		{accepts{"2024-01-01 24:00:00", false, true}, false, micros(2024, 1, 2, 0, 0, 0, 0)},
		{accepts{"2024-01-01 23:59:60", false, true}, false, micros(2024, 1, 2, 0, 0, 0, 0)},
		{accepts{"294277-01-01 00:00:00", false, true}, false, timestampEndDay * usPerDay},
		{accepts{"4714-11-23 00:00:00 BC", false, true}, false, (minDay - 1) * usPerDay},
	} {
		for _, m := range modes {
			parse := ParseTimestamp
			if c.tz {
				parse = ParseTimestampTZ
			}
			got, inf, err := parse([]byte(c.in), m)
			if (err == nil) != c.ok(m) || err == nil && (got != c.want || inf != Finite) {
				t.Errorf("ParseTimestamp(%q, tz %v, %v) = %d, %v, %v; want %d (accepted: %v)", c.in, c.tz, m, got, inf, err, c.want, c.ok(m))
			}
		}
	}
	for _, in := range []string{"2024-01-02", "2024-13-02 00:00:00", "2024-02-30 00:00:00", "2023-02-29 00:00:00",
		"0000-01-01 00:00:00 BC", "2024-01-02 25:00:00", "2024-01-02 24:00:01", "2024-01-02 03:04:05.1234567",
		"2024-01-02 03:04:05.", "2024-01-02 3:04:05", "2024-01-02T03:04:05", "2024-01-02  03:04:05",
		"2024-01-02 03:60:05", "2024-01-02 03:04:61", "2024-01-02 03:04:05+00 AD", "2024-01-02 03:04:05+00"} {
		for _, m := range modes {
			if _, _, err := ParseTimestamp([]byte(in), m); err == nil {
				t.Errorf("ParseTimestamp(%q, %v) succeeded", in, m)
			}
		}
	}
	for _, in := range []string{"2024-01-02 03:04:05", "2024-01-02 03:04:05+", "2024-01-02 03:04:05+5", "2024-01-02 03:04:05Z",
		"2024-01-02 03:04:05+05:60", "2024-01-02 03:04:05+05:", "2024-01-02 03:04:05+05:30:1", "2024-01-02 03:04:05 +00"} {
		for _, m := range modes {
			if _, _, err := ParseTimestampTZ([]byte(in), m); err == nil {
				t.Errorf("ParseTimestampTZ(%q, %v) succeeded", in, m)
			}
		}
	}
	// Lenient keeps to what an int64 of microseconds holds.
	for _, in := range []string{"294278-01-01 00:00:00", "290309-01-01 00:00:00 BC", "999999999-01-01 00:00:00"} {
		if _, _, err := ParseTimestamp([]byte(in), Lenient); !errors.Is(err, ErrRange) {
			t.Errorf("ParseTimestamp(%q, Lenient) = %v, want ErrRange", in, err)
		}
	}
	for in, want := range map[string]Inf{"infinity": Infinity, "-infinity": NegInfinity} {
		for _, m := range modes {
			if _, inf, err := ParseTimestampTZ([]byte(in), m); err != nil || inf != want {
				t.Errorf("ParseTimestampTZ(%q, %v) = %v, %v", in, m, inf, err)
			}
		}
	}
}

func TestParseTime(t *testing.T) {
	const s = usPerSecond
	for _, c := range []struct {
		accepts
		want int64
	}{
		{accepts{"00:00:00", true, true}, 0},
		{accepts{"03:04:05.5", true, true}, (3*3600+4*60+5)*s + 500000},
		{accepts{"23:59:59.999999", true, true}, usPerDay - 1},
		{accepts{"24:00:00", true, true}, usPerDay},
		{accepts{"03:04:05.50", false, true}, (3*3600+4*60+5)*s + 500000},
		{accepts{"23:59:60", false, true}, usPerDay},
		{accepts{"24:00:00.000001", false, false}, 0},
		{accepts{"25:00:00", false, false}, 0},
		{accepts{"03:04:05.", false, false}, 0},
		{accepts{"03:04:05.1234567", false, false}, 0},
		{accepts{"03:04:05+00", false, false}, 0},
		{accepts{"3:04:05", false, false}, 0},
	} {
		for _, m := range modes {
			got, err := ParseTime([]byte(c.in), m)
			if (err == nil) != c.ok(m) || err == nil && got != c.want {
				t.Errorf("ParseTime(%q, %v) = %d, %v; want %d (accepted: %v)", c.in, m, got, err, c.want, c.ok(m))
			}
		}
	}
	for _, c := range []struct {
		in      string
		us, off int64
	}{{"03:04:05+05:30", (3*3600 + 4*60 + 5) * s, 5*3600 + 30*60}, {"24:00:00-00:00:01", usPerDay, -1}, {"00:00:00.5+00", 500000, 0}} {
		for _, m := range modes {
			if us, off, err := ParseTimeTZ([]byte(c.in), m); err != nil || us != c.us || off != c.off {
				t.Errorf("ParseTimeTZ(%q, %v) = %d, %d, %v", c.in, m, us, off, err)
			}
		}
	}
	for _, in := range []string{"03:04:05", "03:04:05+", "03:04:05+05:30x", "03:04:05 +05"} {
		if _, _, err := ParseTimeTZ([]byte(in), Lenient); err == nil {
			t.Errorf("ParseTimeTZ(%q) succeeded", in)
		}
	}
}

// TestDays: the day counts agree with package time, invert each other, and
// name PostgreSQL's range limits.
func TestDays(t *testing.T) {
	for _, d := range []int64{minDay - 1000, minDay, -730485, -1, 0, 1, UnixEpochDays, 2932896, timestampEndDay, dateEndDay} {
		y, m, dd := CivilFromDays(d)
		if got := day(int(y), time.Month(m), int(dd)); got != d {
			t.Errorf("CivilFromDays(%d) = %d-%d-%d, which is day %d", d, y, m, dd, got)
		}
		if got := DaysFromCivil(y, m, dd); got != d {
			t.Errorf("DaysFromCivil(CivilFromDays(%d)) = %d", d, got)
		}
	}
	for d := int64(-800_000); d < 800_000; d += 97 {
		if y, m, dd := CivilFromDays(d); DaysFromCivil(y, m, dd) != d || dd < 1 || dd > daysIn(y, m) {
			t.Fatalf("day %d: %d-%d-%d", d, y, m, dd)
		}
	}
	for _, c := range []struct {
		name      string
		y, m, d   int64
		want      int64
		julianDay int64
	}{
		{"Julian day 0", -4713, 11, 24, minDay, 0},
		{"date's end", 5874898, 1, 1, dateEndDay, 2147483494},
		{"timestamp's end", 294277, 1, 1, timestampEndDay, 109203528},
		{"PostgreSQL's epoch", 2000, 1, 1, 0, 2451545},
		{"Unix epoch", 1970, 1, 1, UnixEpochDays, 2440588},
	} {
		if got := DaysFromCivil(c.y, c.m, c.d); got != c.want || got-minDay != c.julianDay {
			t.Errorf("%s: DaysFromCivil(%d, %d, %d) = %d, want %d (Julian day %d)", c.name, c.y, c.m, c.d, got, c.want, c.julianDay)
		}
	}
	if math.MaxInt64/usPerDay <= timestampEndDay {
		t.Error("timestamps do not fit int64 microseconds")
	}
}

package pgtext

import (
	"errors"
	"math"
	"testing"
)

var modes = []Mode{Exact, Lenient}

func (m Mode) String() string {
	if m == Exact {
		return "Exact"
	}
	return "Lenient"
}

// accepts lists, per mode, whether a parser takes each input.
type accepts struct {
	in           string
	exact, loose bool
}

func (a accepts) ok(m Mode) bool { return a.exact && m == Exact || a.loose && m == Lenient }

func TestParseInt(t *testing.T) {
	for _, c := range []struct {
		in   string
		bits int
		want int64
	}{
		{"0", 16, 0}, {"-32768", 16, math.MinInt16}, {"32767", 16, math.MaxInt16}, {"2147483647", 32, math.MaxInt32},
		{"-9223372036854775808", 64, math.MinInt64}, {"9223372036854775807", 64, math.MaxInt64}, {"-17", 64, -17},
	} {
		for _, m := range modes {
			if got, err := ParseInt([]byte(c.in), c.bits, m); err != nil || got != c.want {
				t.Errorf("ParseInt(%q, %d, %v) = %d, %v; want %d", c.in, c.bits, m, got, err, c.want)
			}
		}
	}
	for _, c := range []accepts{
		{"+5", false, true}, {"007", false, true}, {"-0", false, true}, {"00", false, true},
		{"", false, false}, {"-", false, false}, {"+", false, false}, {" 1", false, false}, {"1 ", false, false},
		{"1.0", false, false}, {"1e3", false, false}, {"--1", false, false}, {"+-1", false, false},
		{"9223372036854775808", false, false}, {"-9223372036854775809", false, false},
		{"20000000000000000000", false, false}, {"99999999999999999999999", false, false},
	} {
		for _, m := range modes {
			_, err := ParseInt([]byte(c.in), 64, m)
			if (err == nil) != c.ok(m) {
				t.Errorf("ParseInt(%q, 64, %v): %v", c.in, m, err)
			}
		}
	}
	for _, in := range []string{"32768", "-32769", "100000"} {
		if _, err := ParseInt([]byte(in), 16, Lenient); !errors.Is(err, ErrRange) {
			t.Errorf("ParseInt(%q, 16) = %v, want ErrRange", in, err)
		}
	}
}

func TestParseNumeric(t *testing.T) {
	for _, c := range []struct {
		accepts
		neg       bool
		int, frac string
	}{
		{accepts{"0", true, true}, false, "0", ""},
		{accepts{"-1.50", true, true}, true, "1", "50"},
		{accepts{"0.0001", true, true}, false, "0", "0001"},
		{accepts{"12300", true, true}, false, "12300", ""},
		{accepts{"+1", false, true}, false, "1", ""},
		{accepts{"007.5", false, true}, false, "007", "5"},
		{accepts{".5", false, true}, false, "", "5"},
		{accepts{"1.", false, true}, false, "1", ""},
		{accepts{"-0", false, true}, true, "0", ""},
		{accepts{"-0.00", false, true}, true, "0", "00"},
		{accepts{"", false, false}, false, "", ""},
		{accepts{".", false, false}, false, "", ""},
		{accepts{"-", false, false}, false, "", ""},
		{accepts{"1e5", false, false}, false, "", ""},
		{accepts{"1.2.3", false, false}, false, "", ""},
		{accepts{"--1", false, false}, false, "", ""},
		{accepts{"nan", false, false}, false, "", ""},
		{accepts{" 1", false, false}, false, "", ""},
	} {
		for _, m := range modes {
			n, err := ParseNumeric([]byte(c.in), m)
			if (err == nil) != c.ok(m) {
				t.Errorf("ParseNumeric(%q, %v): %v", c.in, m, err)
			}
			if err == nil && (n.Neg != c.neg || string(n.Int) != c.int || string(n.Frac) != c.frac || n.NaN || n.Inf != Finite) {
				t.Errorf("ParseNumeric(%q, %v) = %+v", c.in, m, n)
			}
		}
	}
	for in, want := range map[string]Numeric{"NaN": {NaN: true}, "Infinity": {Inf: Infinity}, "-Infinity": {Inf: NegInfinity}} {
		for _, m := range modes {
			if n, err := ParseNumeric([]byte(in), m); err != nil || n.NaN != want.NaN || n.Inf != want.Inf {
				t.Errorf("ParseNumeric(%q, %v) = %+v, %v", in, m, n, err)
			}
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"t": true, "f": false} {
		if v, err := ParseBool([]byte(in)); err != nil || v != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, v, err)
		}
	}
	for _, in := range []string{"", "true", "T", "1", "tt"} {
		if _, err := ParseBool([]byte(in)); err == nil {
			t.Errorf("ParseBool(%q) succeeded", in)
		}
	}
}

func TestParseFloat(t *testing.T) {
	for in, want := range map[string]float64{"1.5": 1.5, "-0": math.Copysign(0, -1), "1e+20": 1e20, "Infinity": math.Inf(1), "-Infinity": math.Inf(-1)} {
		if v, err := ParseFloat([]byte(in), 64); err != nil || v != want || math.Signbit(v) != math.Signbit(want) {
			t.Errorf("ParseFloat(%q) = %v, %v", in, v, err)
		}
	}
	if v, err := ParseFloat([]byte("NaN"), 32); err != nil || !math.IsNaN(v) {
		t.Errorf("ParseFloat(NaN) = %v, %v", v, err)
	}
	for _, in := range []string{"", "1e400", "x", "1.5 "} {
		if _, err := ParseFloat([]byte(in), 64); err == nil {
			t.Errorf("ParseFloat(%q) succeeded", in)
		}
	}
}

// TestNoAllocations: parsing a value that is accepted allocates nothing.
func TestNoAllocations(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    string
		parse func(b []byte, m Mode) error
	}{
		{"int", "-123456789", func(b []byte, m Mode) error { _, err := ParseInt(b, 64, m); return err }},
		{"float", "1.5e-07", func(b []byte, m Mode) error { _, err := ParseFloat(b, 64); return err }},
		{"numeric", "-12345.678", func(b []byte, m Mode) error { _, err := ParseNumeric(b, m); return err }},
		{"date", "2024-02-29", func(b []byte, m Mode) error { _, _, err := ParseDate(b, m); return err }},
		{"time", "12:34:56.5", func(b []byte, m Mode) error { _, err := ParseTime(b, m); return err }},
		{"timetz", "12:34:56.5+05:30", func(b []byte, m Mode) error { _, _, err := ParseTimeTZ(b, m); return err }},
		{"timestamp", "infinity", func(b []byte, m Mode) error { _, _, err := ParseTimestamp(b, m); return err }},
		{"timestamptz", "2024-01-02 03:04:05.5+00", func(b []byte, m Mode) error { _, _, err := ParseTimestampTZ(b, m); return err }},
		{"interval", "1 year 2 mons -3 days +04:05:06.5", func(b []byte, m Mode) error { _, err := ParseInterval(b); return err }},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", func(b []byte, m Mode) error { _, err := ParseUUID(b, m); return err }},
		{"bytea", `\x0001020304`, func(b []byte, m Mode) error {
			_, err := AppendBytea(make([]byte, 0, 8)[:0:8], b) // a buffer with room
			return err
		}},
	} {
		in := []byte(c.in)
		for _, m := range modes {
			var err error
			if n := testing.AllocsPerRun(100, func() { err = c.parse(in, m) }); n > 0 || err != nil {
				t.Errorf("%s %q (%v): %.0f allocations, %v", c.name, c.in, m, n, err)
			}
		}
	}
}

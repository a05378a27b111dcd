package pgtext

import (
	"math"
	"testing"
)

func TestParseInterval(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Interval
	}{
		{"00:00:00", Interval{}},
		{"1 year 2 mons 3 days 04:05:06.5", Interval{Months: 14, Days: 3, Micros: 14706_500000}},
		{"-1 years -2 mons +3 days -04:05:06", Interval{Months: -14, Days: 3, Micros: -14706_000000}},
		{"-00:00:01", Interval{Micros: -1_000_000}},
		{"1 day", Interval{Days: 1}},
		{"2 mons 1 year", Interval{Months: 14}},
		{"100:00:00.000001", Interval{Micros: 360_000_000_001}},
		{"-2562047788:00:54.775808", Interval{Micros: math.MinInt64}},
		{"2562047788:00:54.775807", Interval{Micros: math.MaxInt64}},
		{"178956970 years 7 mons", Interval{Months: math.MaxInt32}},
		{"infinity", Interval{Months: math.MaxInt32, Days: math.MaxInt32, Micros: math.MaxInt64}},
		{"-infinity", Interval{Months: math.MinInt32, Days: math.MinInt32, Micros: math.MinInt64}},
	} {
		got, err := ParseInterval([]byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("ParseInterval(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "1", "1 week", "P1D", "1 day 2", "2562047788:00:54.775808", "1:2:3", "00:00:00 1 day",
		"1  day", "1 day 2 days", "1 year 1 years", "178956970 years 8 mons", "2147483648 days", "1 day ", " 1 day",
		"01:00:00 01:00:00", "00:60:00", "00:00:60", "00:00:00.", "00:00:00.1234567", "1.5 days", "@ 1 day"} {
		if v, err := ParseInterval([]byte(in)); err == nil {
			t.Errorf("ParseInterval(%q) = %+v, want an error", in, v)
		}
	}
}

package pgtext

import (
	"errors"
	"fmt"
	"strconv"
	"unsafe"
)

// ParseBool parses boolout's form: t or f (in either mode).
func ParseBool(b []byte) (bool, error) {
	if len(b) == 1 {
		switch b[0] {
		case 't':
			return true, nil
		case 'f':
			return false, nil
		}
	}
	return false, fmt.Errorf("boolean %q: want t or f", b)
}

// ParseInt parses an integer that fits bits (16, 32 or 64: int2, int4,
// int8). Exact: an optional '-', then digits without a superfluous leading
// zero, never "-0". Lenient: also a '+' sign and leading zeros.
func ParseInt(b []byte, bits int, m Mode) (int64, error) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+' && m == Lenient) {
		neg, i = b[0] == '-', 1
	}
	digits := b[i:]
	if len(digits) == 0 {
		return 0, fmt.Errorf("integer %q: no digits", b)
	}
	if m == Exact && digits[0] == '0' && (len(digits) > 1 || neg) {
		return 0, fmt.Errorf("integer %q: not in output form", b)
	}
	limit := uint64(1) << (bits - 1) // |min|; max is limit-1
	var u uint64
	for _, c := range digits {
		c -= '0'
		if c > 9 {
			return 0, fmt.Errorf("integer %q: invalid character", b)
		}
		if u > limit/10 { // u*10 > limit, and might not fit a uint64
			return 0, fmt.Errorf("integer %q: %w for %d bits", b, ErrRange, bits)
		}
		u = u*10 + uint64(c)
	}
	if u > limit || u == limit && !neg {
		return 0, fmt.Errorf("integer %q: %w for %d bits", b, ErrRange, bits)
	}
	if neg {
		return -int64(u), nil // -(1<<63) wraps to itself: correct
	}
	return int64(u), nil
}

// ParseFloat parses float4out's or float8out's form (shortest exact digits,
// NaN, Infinity, -Infinity); bits is 32 or 64. It has no Exact mode (no
// encoder needs one): it takes what strconv.ParseFloat takes.
func ParseFloat(b []byte, bits int) (float64, error) {
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

// Numeric is a numeric value as printed: NaN, an infinity, or a sign and the
// digits before and after the decimal point (slices of the parsed text).
type Numeric struct {
	NaN  bool
	Inf  Inf
	Neg  bool
	Int  []byte // digits before the point; may be empty in Lenient mode (".5")
	Frac []byte // digits after the point: the value's display scale in Exact mode
}

// Numeric's limits: digits before and after the decimal point.
const (
	maxNumericInt  = 131072
	maxNumericFrac = 16383
)

// ParseNumeric parses numeric_out's form: NaN, Infinity, -Infinity, or an
// optional '-', digits and an optional fraction. Exact: at least one digit
// before the point and no superfluous leading zero, at least one after a
// point, never a negative zero, within numeric's limits (131072 digits
// before the point, 16383 after). Lenient: also a '+' sign, leading zeros,
// no digits on one side of the point ("1.", ".5") and "-0".
func ParseNumeric(b []byte, m Mode) (Numeric, error) {
	switch string(b) {
	case "NaN":
		return Numeric{NaN: true}, nil
	case "Infinity":
		return Numeric{Inf: Infinity}, nil
	case "-Infinity":
		return Numeric{Inf: NegInfinity}, nil
	}
	var n Numeric
	s := b
	if len(s) > 0 && (s[0] == '-' || s[0] == '+' && m == Lenient) {
		n.Neg, s = s[0] == '-', s[1:]
	}
	i := digitRun(s)
	n.Int, s = s[:i:i], s[i:]
	if len(s) > 0 && s[0] == '.' {
		s = s[1:]
		i = digitRun(s)
		n.Frac, s = s[:i:i], s[i:]
		if m == Exact && i == 0 {
			return Numeric{}, fmt.Errorf("numeric %q: no digits after the point", b)
		}
	}
	switch {
	case len(s) != 0:
		return Numeric{}, fmt.Errorf("numeric %q: invalid character", b)
	case len(n.Int)+len(n.Frac) == 0:
		return Numeric{}, fmt.Errorf("numeric %q: no digits", b)
	case m == Lenient:
		return n, nil
	case len(n.Int) == 0 || n.Int[0] == '0' && len(n.Int) > 1:
		return Numeric{}, fmt.Errorf("numeric %q: not in output form", b)
	case len(n.Int) > maxNumericInt || len(n.Frac) > maxNumericFrac:
		return Numeric{}, fmt.Errorf("numeric %q: %w", b, ErrRange)
	case n.Neg && allZero(n.Int) && allZero(n.Frac):
		return Numeric{}, fmt.Errorf("numeric %q: negative zero is not an output form", b)
	}
	return n, nil
}

// digitRun is the number of decimal digits at the start of b.
func digitRun(b []byte) int {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

package pgtext

import "errors"

// Mode says how much of PostgreSQL's input syntax a parser accepts beyond
// the output form (see the package comment).
type Mode uint8

const (
	// Exact accepts only the output form, within the type's range.
	Exact Mode = iota
	// Lenient also accepts input spellings with the same meaning.
	Lenient
)

// Inf tells a finite date or timestamp from 'infinity' and '-infinity'.
type Inf int8

const (
	Finite      Inf = 0
	Infinity    Inf = 1
	NegInfinity Inf = -1
)

// ErrRange is wrapped by the errors of parsers given a well-formed value that
// does not fit the result (an integer's bits, an int64 of microseconds) or,
// in Exact mode, lies outside the PostgreSQL type's range.
var ErrRange = errors.New("out of range")

// infinity recognises 'infinity' and '-infinity'.
func infinity(b []byte) Inf {
	switch string(b) {
	case "infinity":
		return Infinity
	case "-infinity":
		return NegInfinity
	}
	return Finite
}

// two parses two decimal digits at the start of b.
func two(b []byte) (int64, bool) {
	if len(b) < 2 || b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int64(b[0]-'0')*10 + int64(b[1]-'0'), true
}

// unhex is a hex digit's value; lower reports whether it is not upper case.
func unhex(c byte) (v byte, lower, ok bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, false, true
	}
	return 0, false, false
}

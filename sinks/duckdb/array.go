package duckdb

import (
	"fmt"

	"github.com/walmirror/walmirror/schema"
)

// arrayElem is one element of a parsed array: NULL, or its text.
type arrayElem struct {
	null bool
	val  []byte
}

// errNotOneDimensional: DuckDB LIST columns hold one dimension with the
// default lower bound of 1; other arrays cannot be stored in them.
var errNotOneDimensional = schema.Unstorable("array is not one-dimensional with lower bound 1, so a DuckDB LIST column cannot hold it" + varcharHint)

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// parseArray parses a one-dimensional PostgreSQL array literal as array_out
// prints it ({1,NULL,3}, {"a b","c,d","e\"f"}, {}) with the ',' delimiter
// every built-in type except box uses. Elements are appended to elems; an
// element's text points into src when it needed no unescaping, else into
// buf (returned, possibly grown). Multi-dimensional arrays and arrays with
// explicit bounds ("[0:1]={...}") are refused with errNotOneDimensional.
func parseArray(src []byte, elems []arrayElem, buf []byte) ([]arrayElem, []byte, error) {
	i := 0
	for i < len(src) && isArraySpace(src[i]) {
		i++
	}
	if i < len(src) && src[i] == '[' {
		return elems, buf, errNotOneDimensional
	}
	if i >= len(src) || src[i] != '{' {
		return elems, buf, fmt.Errorf("array %q: does not start with {", src)
	}
	i++
	skip := func() {
		for i < len(src) && isArraySpace(src[i]) {
			i++
		}
	}
	skip()
	if i < len(src) && src[i] == '}' {
		i++
		skip()
		if i != len(src) {
			return elems, buf, fmt.Errorf("array %q: trailing characters", src)
		}
		return elems, buf, nil
	}
	for {
		skip()
		if i >= len(src) {
			return elems, buf, fmt.Errorf("array %q: unterminated", src)
		}
		switch src[i] {
		case '{':
			return elems, buf, errNotOneDimensional
		case '"':
			// Quoted: backslash escapes the next byte.
			i++
			start := i
			for i < len(src) && src[i] != '"' && src[i] != '\\' {
				i++
			}
			if i < len(src) && src[i] == '"' { // no escapes: point into src
				elems = append(elems, arrayElem{val: src[start:i:i]})
				i++
				break
			}
			from := len(buf)
			buf = append(buf, src[start:i]...)
			for {
				if i >= len(src) {
					return elems, buf, fmt.Errorf("array %q: unterminated quoted element", src)
				}
				c := src[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' {
					i++
					if i >= len(src) {
						return elems, buf, fmt.Errorf("array %q: unterminated quoted element", src)
					}
					c = src[i]
				}
				buf = append(buf, c)
				i++
			}
			elems = append(elems, arrayElem{val: buf[from:len(buf):len(buf)]})
		default:
			// Unquoted: up to the delimiter or '}', surrounding whitespace
			// dropped; backslashes escape (array_in accepts them); an
			// unescaped NULL is SQL NULL.
			start := i
			escaped := false
			for i < len(src) && src[i] != ',' && src[i] != '}' {
				switch src[i] {
				case '\\':
					escaped = true
					i++
				case '"', '{':
					return elems, buf, fmt.Errorf("array %q: unexpected %q in an unquoted element", src, src[i])
				}
				i++
			}
			if i > len(src) {
				return elems, buf, fmt.Errorf("array %q: unterminated", src)
			}
			end := i
			for end > start && isArraySpace(src[end-1]) && (end-1 == start || src[end-2] != '\\') {
				end--
			}
			tok := src[start:end:end]
			if len(tok) == 0 {
				return elems, buf, fmt.Errorf("array %q: empty unquoted element", src)
			}
			if !escaped {
				if len(tok) == 4 && (tok[0]|0x20) == 'n' && (tok[1]|0x20) == 'u' && (tok[2]|0x20) == 'l' && (tok[3]|0x20) == 'l' {
					elems = append(elems, arrayElem{null: true})
				} else {
					elems = append(elems, arrayElem{val: tok})
				}
				break
			}
			from := len(buf)
			for j := 0; j < len(tok); j++ {
				if tok[j] == '\\' && j+1 < len(tok) {
					j++
				}
				buf = append(buf, tok[j])
			}
			elems = append(elems, arrayElem{val: buf[from:len(buf):len(buf)]})
		}
		skip()
		if i >= len(src) {
			return elems, buf, fmt.Errorf("array %q: unterminated", src)
		}
		switch src[i] {
		case ',':
			i++
		case '}':
			i++
			skip()
			if i != len(src) {
				return elems, buf, fmt.Errorf("array %q: trailing characters", src)
			}
			return elems, buf, nil
		default:
			return elems, buf, fmt.Errorf("array %q: expected , or } after an element", src)
		}
	}
}

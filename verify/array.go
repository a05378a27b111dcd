package verify

import (
	"bytes"
	"errors"
)

var errArray = errors.New("not an array literal")

// rawArray starts the canonical form of an array kept as its text: one with
// several dimensions or explicit bounds (only text-form targets hold those).
const rawArray = '\x01'

// arrayText puts array_out's text form of a one-dimensional array in
// canonical form: "{" and each element's canonical form quoted (NULL bare),
// separated by commas, "}". Every built-in array type but box[] uses the
// comma as delimiter, and box[] is not read as an array here.
func (c *column) arrayText(dst, b []byte) ([]byte, error) {
	if len(b) > 0 && b[0] == '[' || len(b) > 1 && b[0] == '{' && b[1] == '{' {
		return append(append(dst, rawArray), b...), nil
	}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errArray
	}
	dst = append(dst, '{')
	s := b[1 : len(b)-1]
	if len(s) == 0 {
		return append(dst, '}'), nil
	}
	var elem []byte
	for first := true; ; first = false {
		if !first {
			if len(s) == 0 {
				break
			}
			if s[0] != ',' {
				return nil, errArray
			}
			s = s[1:]
			dst = append(dst, ',')
		}
		if len(s) > 0 && s[0] == '"' {
			elem = elem[:0]
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
					if i == len(s) {
						return nil, errArray
					}
				}
				elem = append(elem, s[i])
			}
			if i == len(s) {
				return nil, errArray
			}
			s = s[i+1:]
			dst = appendQuoted(dst, c.elem.appendText(nil, elem))
			continue
		}
		i := bytes.IndexByte(s, ',')
		if i < 0 {
			i = len(s)
		}
		v := s[:i]
		s = s[i:]
		switch {
		case len(v) == 0 || bytes.ContainsAny(v, `{}"\`):
			return nil, errArray
		case bytes.EqualFold(v, []byte("NULL")):
			dst = append(dst, "NULL"...)
		default:
			dst = appendQuoted(dst, c.elem.appendText(nil, v))
		}
	}
	return append(dst, '}'), nil
}

// appendQuoted writes v in double quotes, with " and \ escaped by a \.
func appendQuoted(dst, v []byte) []byte {
	dst = append(dst, '"')
	for _, c := range v {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return append(dst, '"')
}

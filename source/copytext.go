package source

import (
	"bytes"
	"fmt"

	"github.com/walmirror/walmirror/schema"
)

// copyReader decodes COPY ... TO STDOUT text format into tuples. It is the
// io.Writer pgconn's CopyTo writes CopyData payloads to; a row may in principle
// span writes, so partial lines are kept.
type copyReader struct {
	ncols   int
	fn      func(schema.Tuple) error
	partial []byte
	err     error
}

func (r *copyReader) Write(p []byte) (int, error) {
	n := len(p)
	if r.err != nil {
		return 0, r.err
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.partial = append(r.partial, p...)
			break
		}
		line := p[:i]
		if len(r.partial) > 0 {
			line = append(r.partial, line...)
			r.partial = r.partial[:0]
		}
		p = p[i+1:]
		tup, err := decodeCopyLine(line, r.ncols)
		if err == nil {
			err = r.fn(tup)
		}
		if err != nil {
			r.err = err
			return 0, err
		}
	}
	return n, nil
}

// decodeCopyLine splits one text-format COPY row into a fresh tuple whose data
// lives in a single new buffer.
func decodeCopyLine(line []byte, ncols int) (schema.Tuple, error) {
	tup := make(schema.Tuple, ncols)
	buf := make([]byte, 0, len(line))
	col := 0
	start := 0 // start of the current field in buf
	fieldRaw := 0
	finish := func(rawEnd int) error {
		if col >= ncols {
			return fmt.Errorf("COPY row has more than %d columns", ncols)
		}
		if string(line[fieldRaw:rawEnd]) == `\N` {
			tup[col] = schema.Datum{State: schema.Null}
		} else {
			tup[col] = schema.Datum{State: schema.Text, Data: buf[start:len(buf):len(buf)]}
		}
		col++
		start = len(buf)
		return nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch c {
		case '\t':
			if err := finish(i); err != nil {
				return nil, err
			}
			fieldRaw = i + 1
			continue
		case '\\':
			if i+1 >= len(line) {
				return nil, fmt.Errorf("COPY row ends in a lone backslash")
			}
			i++
			c = line[i]
			switch c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'v':
				c = '\v'
			case 'N':
				// only meaningful as the whole field; checked in finish
			case 'x':
				v, n := 0, 0
				for n < 2 && i+1 < len(line) && isHex(line[i+1]) {
					i++
					v = v*16 + hexVal(line[i])
					n++
				}
				if n > 0 {
					c = byte(v)
				}
			default:
				if c >= '0' && c <= '7' {
					v := int(c - '0')
					for n := 1; n < 3 && i+1 < len(line) && line[i+1] >= '0' && line[i+1] <= '7'; n++ {
						i++
						v = v*8 + int(line[i]-'0')
					}
					c = byte(v)
				}
			}
		}
		buf = append(buf, c)
	}
	if err := finish(len(line)); err != nil {
		return nil, err
	}
	if col != ncols {
		return nil, fmt.Errorf("COPY row has %d columns, want %d", col, ncols)
	}
	return tup, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}

package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

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
	arena   copyArena
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
		tup, err := r.arena.decode(line, r.ncols)
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

// copyArena hands out the memory of decoded rows from slabs, so that a row
// costs no allocation of its own. The slabs are never written again once
// handed out: a row stays valid as long as anyone holds it.
type copyArena struct {
	datums []schema.Datum
	data   []byte
}

const (
	arenaDatums = 4096     // per slab
	arenaBytes  = 64 << 10 // per slab; a longer row gets memory of its own
)

func (a *copyArena) tuple(n int) schema.Tuple {
	if len(a.datums) < n {
		a.datums = make([]schema.Datum, max(n, arenaDatums))
	}
	t := a.datums[:n:n]
	a.datums = a.datums[n:]
	return t
}

// bytes returns an empty buffer with room for n bytes.
func (a *copyArena) bytes(n int) []byte {
	if n > arenaBytes/4 {
		return make([]byte, 0, n)
	}
	if len(a.data) < n {
		a.data = make([]byte, arenaBytes)
	}
	b := a.data[:0:n]
	a.data = a.data[n:]
	return b
}

// decodeCopyLine splits one text-format COPY row into a fresh tuple.
func decodeCopyLine(line []byte, ncols int) (schema.Tuple, error) {
	var a copyArena
	return a.decode(line, ncols)
}

// decode splits one text-format COPY row into a tuple whose values are
// unescaped into one buffer from the arena (an unescaped value is never
// longer than its escaped form). Fields without a backslash, most of them,
// are copied as they are.
func (a *copyArena) decode(line []byte, ncols int) (schema.Tuple, error) {
	tup := a.tuple(ncols)
	buf := a.bytes(len(line))
	col := 0
	for rest, more := line, true; more; {
		field := rest
		if i := bytes.IndexByte(rest, '\t'); i >= 0 {
			field, rest = rest[:i], rest[i+1:]
		} else {
			more = false
		}
		if col >= ncols {
			return nil, fmt.Errorf("COPY row has more than %d columns", ncols)
		}
		start := len(buf)
		switch {
		case bytes.IndexByte(field, '\\') < 0:
			buf = append(buf, field...)
		case len(field) == 2 && field[1] == 'N':
			tup[col] = schema.Datum{State: schema.Null}
			col++
			continue
		default:
			var err error
			if buf, err = unescapeCopy(buf, field); err != nil {
				return nil, err
			}
		}
		tup[col] = schema.Datum{State: schema.Text, Data: buf[start:len(buf):len(buf)]}
		col++
	}
	if col != ncols {
		return nil, fmt.Errorf("COPY row has %d columns, want %d", col, ncols)
	}
	return tup, nil
}

// unescapeCopy appends a text-format COPY field's value (\N inside a longer
// field is taken as N, as before).
func unescapeCopy(buf, field []byte) ([]byte, error) {
	for i := 0; i < len(field); i++ {
		c := field[i]
		if c == '\\' {
			if i+1 >= len(field) {
				return buf, fmt.Errorf("COPY row ends in a lone backslash")
			}
			i++
			c = field[i]
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
			case 'x':
				v, n := 0, 0
				for n < 2 && i+1 < len(field) && isHex(field[i+1]) {
					i++
					v = v*16 + hexVal(field[i])
					n++
				}
				if n > 0 {
					c = byte(v)
				}
			default:
				if c >= '0' && c <= '7' {
					v := int(c - '0')
					for n := 1; n < 3 && i+1 < len(field) && field[i+1] >= '0' && field[i+1] <= '7'; n++ {
						i++
						v = v*8 + int(field[i]-'0')
					}
					c = byte(v)
				}
			}
		}
		buf = append(buf, c)
	}
	return buf, nil
}

// binaryCounter follows a binary COPY stream (a header, rows of a field
// count and length-prefixed fields, a trailer of count -1), passing it on to
// fn with the number of rows complete so far. Its state carries across
// writes, which may split anything.
type binaryCounter struct {
	fn    func(data []byte, rows int64) error
	rows  int64
	state binaryState
	word  [4]byte // a count or length being read
	got   int     // bytes of word (or of the header) read
	skip  int     // bytes of a field or header extension left to skip
	left  int     // fields of the current row left
	err   error
}

type binaryState uint8

const (
	binHeader    binaryState = iota // signature, flags, extension length
	binExtension                    // skip: header extension
	binCount                        // a row's field count (2 bytes)
	binLength                       // a field's length (4 bytes)
	binField                        // skip: a field's value
	binEnded                        // after the trailer
)

// copyBinarySignature starts every binary COPY stream.
const copyBinarySignature = "PGCOPY\n\xff\r\n\x00"

func (c *binaryCounter) ended() bool { return c.state == binEnded }

func (c *binaryCounter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.err = c.follow(p); c.err == nil {
		c.err = c.fn(p, c.rows)
	}
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

func (c *binaryCounter) follow(p []byte) error {
	for len(p) > 0 {
		switch c.state {
		case binHeader:
			// 11 bytes of signature, 4 of flags, 4 of extension length.
			k := min(len(p), 19-c.got)
			for j, b := range p[:k] {
				switch at := c.got + j; {
				case at < 11 && b != copyBinarySignature[at]:
					return fmt.Errorf("binary COPY stream: bad signature")
				case at >= 15:
					c.word[at-15] = b
				}
			}
			c.got += k
			p = p[k:]
			if c.got == 19 {
				c.got = 0
				c.skip, c.state = int(binary.BigEndian.Uint32(c.word[:])), binExtension
				if c.skip == 0 {
					c.state = binCount
				}
			}
		case binExtension, binField:
			k := min(len(p), c.skip)
			c.skip -= k
			p = p[k:]
			if c.skip > 0 {
				break
			}
			if c.state == binExtension {
				c.state = binCount
			} else {
				c.fieldDone()
			}
		case binCount, binLength:
			need := 2
			if c.state == binLength {
				need = 4
			}
			k := min(len(p), need-c.got)
			copy(c.word[c.got:], p[:k])
			c.got += k
			p = p[k:]
			if c.got < need {
				break
			}
			c.got = 0
			if c.state == binCount {
				switch n := int16(binary.BigEndian.Uint16(c.word[:2])); {
				case n == -1:
					c.state = binEnded
				case n < 0:
					return fmt.Errorf("binary COPY stream: field count %d", n)
				case n == 0:
					c.rows++
				default:
					c.left, c.state = int(n), binLength
				}
				break
			}
			switch n := int32(binary.BigEndian.Uint32(c.word[:])); {
			case n < -1:
				return fmt.Errorf("binary COPY stream: field length %d", n)
			case n > 0:
				c.skip, c.state = int(n), binField
			default: // NULL or empty
				c.fieldDone()
			}
		case binEnded:
			return fmt.Errorf("binary COPY stream: data after the trailer")
		}
	}
	return nil
}

// fieldDone moves on after a row's field: to the next one's length, or to
// the next row.
func (c *binaryCounter) fieldDone() {
	c.left--
	c.state = binLength
	if c.left == 0 {
		c.rows++
		c.state = binCount
	}
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

// copyOut runs q, a COPY ... TO STDOUT of t's columns in text form, on conn
// and streams its rows to fn.
func copyOut(ctx context.Context, conn *pgconn.PgConn, t *schema.Table, q string, fn func(schema.Tuple) error) error {
	w := &copyReader{ncols: len(t.Columns), fn: fn}
	if _, err := conn.CopyTo(ctx, w, q); err != nil {
		if w.err != nil {
			return w.err
		}
		return copyError(t, err)
	}
	return w.err
}

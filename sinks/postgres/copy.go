package postgres

import (
	"fmt"
	"io"

	"github.com/walmirror/walmirror/schema"
)

// COPY ... FROM STDIN in text format: columns separated by tab, rows ended by
// newline, NULL as \N, and backslash, tab, newline and carriage return
// escaped with a backslash. The values are already PostgreSQL's text forms,
// so encoding is copying with four escapes; the server's input functions do
// the parsing, exactly as for the source's own COPY or INSERT.

// needsEscape marks the bytes a text-format COPY field must escape.
var needsEscape = [256]bool{'\\': true, '\t': true, '\n': true, '\r': true}

// appendField appends one value as a COPY text field.
func appendField(buf []byte, d schema.Datum) ([]byte, bool) {
	switch d.State {
	case schema.Null:
		return append(buf, '\\', 'N'), true
	case schema.Text:
		return appendEscaped(buf, d.Data), true
	}
	return buf, false
}

func appendEscaped(buf, data []byte) []byte {
	start := 0
	for i, c := range data {
		if !needsEscape[c] {
			continue
		}
		buf = append(buf, data[start:i]...)
		switch c {
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		}
		start = i + 1
	}
	return append(buf, data[start:]...)
}

// rowEncoder appends row i of some source, ended by a newline.
type rowEncoder func(buf []byte, i int) ([]byte, error)

// copyReader streams n rows, encoded on demand into a buffer it reuses, to
// pgconn's CopyFrom (which reads it in its own goroutine until io.EOF).
type copyReader struct {
	buf []byte
	off int
	i   int
	n   int
	enc rowEncoder
	err error // the encoder's error, which aborts the COPY
	// bin: a binary COPY stream, framed by header and trailer, that ends
	// early, after row stop-1, at the first row the encoder refuses with
	// errNotBinary (the rest then goes in text).
	bin     bool
	stop    int
	trailer bool // written
}

// copyChunk is how much is encoded ahead of the reader.
const copyChunk = 64 << 10

func (r *copyReader) reset(n int, enc rowEncoder, bin bool) {
	r.buf, r.off, r.i, r.n, r.enc, r.err = r.buf[:0], 0, 0, n, enc, nil
	r.bin, r.stop, r.trailer = bin, n, false
	if bin {
		r.buf = append(r.buf, copyBinaryHeader...)
	}
}

func (r *copyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.off < len(r.buf) {
			c := copy(p[n:], r.buf[r.off:])
			n += c
			r.off += c
			continue
		}
		r.buf, r.off = r.buf[:0], 0
		if r.i >= r.stop {
			if r.bin && !r.trailer {
				r.buf, r.trailer = append(r.buf, copyBinaryTrailer...), true
				continue
			}
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
		for r.i < r.stop && len(r.buf) < copyChunk {
			mark := len(r.buf)
			var err error
			if r.buf, err = r.enc(r.buf, r.i); err != nil {
				if r.bin && err == errNotBinary {
					r.buf, r.stop = r.buf[:mark], r.i
					break
				}
				r.err = err
				return n, err
			}
			r.i++
		}
	}
	return n, nil
}

// fullRow encodes a complete row of ti's columns.
func fullRow(ti *tableInfo, buf []byte, tup schema.Tuple) ([]byte, error) {
	if len(tup) != len(ti.cols) {
		return buf, fmt.Errorf("row has %d values for %d columns", len(tup), len(ti.cols))
	}
	for i, d := range tup {
		if i > 0 {
			buf = append(buf, '\t')
		}
		var ok bool
		if buf, ok = appendField(buf, d); !ok {
			return buf, fmt.Errorf("column %q: internal error: an unsent (unchanged TOAST) value in a complete row", ti.t.Columns[i].Name)
		}
	}
	return append(buf, '\n'), nil
}

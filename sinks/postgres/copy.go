package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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

// The initial copy of a table from a PostgreSQL source whose column types
// the target table has too (the same built-in types) skips decoding: the
// source's binary COPY stream goes into the target's COPY as it comes, so
// neither server converts values to text and back, and walmirror does not
// look at them. A table the sink created in the open transaction gets its
// primary key after the load: building the index once from sorted keys
// costs the server much less than inserting every key into it.

// CopiesBinary reports whether t's target table takes the rows of t's
// columns in the source's binary COPY format: each column has the source
// column's type, a built-in one whose binary input the target has.
func (s *Sink) CopiesBinary(ctx context.Context, t *schema.Table) (bool, error) {
	if !binaryCopy {
		return false, nil
	}
	if err := s.settle(); err != nil {
		return false, err
	}
	_, cols, _, ok, err := s.inspect(ctx, t)
	if err != nil || !ok {
		return false, err
	}
	oids := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		tc, ok := cols[c.Name]
		if !ok || tc.typeOID != c.TypeID || c.TypeID >= firstGenbkiObjectID || storedAsText[c.TypeID] {
			return false, nil
		}
		oids[i] = strconv.FormatUint(uint64(c.TypeID), 10)
	}
	// Before 17 a target reads the fields PostgreSQL 17+ stores for an
	// infinite interval as a finite one of 178956970 years: intervals go
	// through their text there, which such a target refuses.
	res := s.conn.PgConn().ExecParams(ctx, `SELECT pg_catalog.count(*) FROM pg_catalog.pg_type t
		LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
		WHERE t.oid = ANY ($1::oid[]) AND (t.typreceive = 0 OR e.typreceive = 0
			OR 'interval'::pg_catalog.regtype IN (t.oid, e.oid) AND pg_catalog.current_setting('server_version_num')::int < 170000)`,
		[][]byte{[]byte("{" + strings.Join(oids, ",") + "}")}, nil, nil, nil).Read()
	if res.Err != nil {
		return false, fmt.Errorf("inspect column types of %s: %w", qualified(t), res.Err)
	}
	return string(res.Rows[0][0]) == "0", nil
}

// CopyBinary loads r, a binary COPY stream of t's columns (header, rows,
// trailer) that CopiesBinary accepted, into t's target table, emptied in the
// open transaction, and returns how many rows it loaded.
func (s *Sink) CopyBinary(ctx context.Context, t *schema.Table, r io.Reader) (_ int64, err error) {
	defer s.busy()()
	defer func() { err = lockTableFull(err) }()
	if !s.inTx {
		return 0, errors.New("postgres sink: copy without a transaction")
	}
	if err := s.settle(); err != nil {
		return 0, err
	}
	ti, err := s.info(ctx, t)
	if err != nil {
		return 0, err
	}
	pg := s.conn.PgConn()
	var addKey string
	if s.created[ti.name] {
		res := pg.ExecParams(ctx, `SELECT pg_catalog.quote_ident(conname), pg_catalog.pg_get_constraintdef(oid)
			FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype = 'p'`,
			[][]byte{[]byte(strconv.FormatUint(uint64(ti.oid), 10))}, nil, nil, nil).Read()
		if res.Err != nil {
			return 0, fmt.Errorf("inspect primary key of %s: %w", ti.name, res.Err)
		}
		if len(res.Rows) == 1 {
			name := string(res.Rows[0][0])
			if _, err := pg.Exec(ctx, "ALTER TABLE "+ti.name+" DROP CONSTRAINT "+name).ReadAll(); err != nil {
				return 0, fmt.Errorf("defer primary key of %s: %w", ti.name, err)
			}
			addKey = "ALTER TABLE " + ti.name + " ADD CONSTRAINT " + name + " " + string(res.Rows[0][1])
		}
	}
	tag, err := pg.CopyFrom(ctx, r, ti.copySQL+" (FORMAT binary)")
	if err != nil {
		return 0, fmt.Errorf("copy into %s: %w", ti.name, ti.detail(err))
	}
	if addKey != "" {
		if _, err := pg.Exec(ctx, addKey).ReadAll(); err != nil {
			return 0, fmt.Errorf("add primary key of %s: %w", ti.name, detail(err))
		}
	}
	return tag.RowsAffected(), nil
}

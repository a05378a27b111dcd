package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"strings"
	"unicode/utf8"

	"github.com/walmirror/walmirror/internal/pgtext"
	"github.com/walmirror/walmirror/schema"
)

// Table is a source table as verify compares it: its published columns,
// how each one's values are put in canonical form, and its key.
type Table struct {
	*schema.Table
	cols []*column
	keys []int // key column positions; none: rows are compared as a multiset
	// sorted: every key column sorts the same way in every database, so
	// both sides can be read in key order and merged.
	sorted bool
}

// NewTable prepares t for comparison.
func NewTable(t *schema.Table) *Table {
	vt := &Table{Table: t, keys: t.KeyIndexes()}
	for _, c := range t.Columns {
		vt.cols = append(vt.cols, newColumn(c))
	}
	vt.sorted = len(vt.keys) > 0
	for _, k := range vt.keys {
		if vt.cols[k].order == unordered {
			vt.sorted = false
		}
	}
	return vt
}

// Qualified is schema.table as PostgreSQL would print it: parts quoted only
// where needed.
func (t *Table) Qualified() string { return identifier(t.Schema) + "." + identifier(t.Table.Name) }

func identifier(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			plain = false
		}
	}
	if plain {
		return s
	}
	return quoteIdent(s)
}

// Keyed reports whether rows are identified by key columns (else the table
// is compared as a multiset of whole rows).
func (t *Table) Keyed() bool { return len(t.keys) > 0 }

// Sorted reports whether the table is read in key order on both sides.
func (t *Table) Sorted() bool { return t.sorted }

// KeyColumns are the key columns' names, in key order.
func (t *Table) KeyColumns() []string {
	names := make([]string, len(t.keys))
	for i, k := range t.keys {
		names[i] = t.Columns[k].Name
	}
	return names
}

// Row is one row's values in canonical form, in the table's column order;
// nil stands for NULL (an empty value is a non-nil empty slice).
type Row [][]byte

// rowBuilder assembles rows: values are appended to one buffer and sliced
// once the row is complete, so a row costs two allocations.
type rowBuilder struct {
	buf  []byte
	ends []int // end of each value in buf; -1 for NULL
}

func (b *rowBuilder) reset() { b.buf, b.ends = b.buf[:0], b.ends[:0] }

func (b *rowBuilder) null() { b.ends = append(b.ends, -1) }

func (b *rowBuilder) text(c *column, v []byte) {
	b.buf = c.appendText(b.buf, v)
	b.ends = append(b.ends, len(b.buf))
}

func (b *rowBuilder) value(c *column, v any) {
	if v == nil {
		b.null()
		return
	}
	b.buf = c.appendValue(b.buf, v)
	b.ends = append(b.ends, len(b.buf))
}

// row returns the assembled row, which owns its memory.
func (b *rowBuilder) row() Row {
	data := make([]byte, len(b.buf)+1) // never nil: empty values stay non-nil
	copy(data, b.buf)
	r := make(Row, len(b.ends))
	start := 0
	for i, end := range b.ends {
		if end < 0 {
			continue
		}
		r[i] = data[start:end:end]
		start = end
	}
	if cap(b.buf) > 4<<20 {
		b.buf = nil // don't keep a huge value's buffer
	}
	return r
}

// compareKeys orders two rows by the table's key (sorted tables only).
func (t *Table) compareKeys(a, b Row) int {
	for _, k := range t.keys {
		if c := t.cols[k].compare(a[k], b[k]); c != 0 {
			return c
		}
	}
	return 0
}

// compare orders two canonical values of a key column as the databases
// sort them. Unreadable values sort last, among themselves by their bytes,
// so the order stays total.
func (c *column) compare(a, b []byte) int {
	ia, ib := isInvalid(a), isInvalid(b)
	switch {
	case ia || ib:
		if ia != ib {
			if ia {
				return 1
			}
			return -1
		}
		return bytes.Compare(a, b)
	case c.order == byInteger:
		return compareIntText(a, b)
	case c.order == byDate:
		da, ina, _ := pgtext.ParseDate(a, pgtext.Lenient)
		db, inb, _ := pgtext.ParseDate(b, pgtext.Lenient)
		return compareInf(ina, da, inb, db)
	case c.order == byTimestamp:
		parse := pgtext.ParseTimestamp
		if c.kind == schema.KindTimestampTZ {
			parse = pgtext.ParseTimestampTZ
		}
		ua, ina, _ := parse(a, pgtext.Lenient)
		ub, inb, _ := parse(b, pgtext.Lenient)
		return compareInf(ina, ua, inb, ub)
	}
	return bytes.Compare(a, b)
}

func compareInf(ia pgtext.Inf, a int64, ib pgtext.Inf, b int64) int {
	switch {
	case ia != ib:
		if ia < ib {
			return -1
		}
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareIntText orders canonical integers (no leading zeros, no -0).
func compareIntText(a, b []byte) int {
	na, nb := len(a) > 0 && a[0] == '-', len(b) > 0 && b[0] == '-'
	switch {
	case na && !nb:
		return -1
	case nb && !na:
		return 1
	}
	c := bytes.Compare(a, b)
	switch {
	case len(a) < len(b):
		c = -1
	case len(a) > len(b):
		c = 1
	}
	if na {
		c = -c
	}
	return c
}

// equalRows reports whether two rows hold the same values.
func equalRows(a, b Row) bool {
	for i := range a {
		if !equalValues(a[i], b[i]) {
			return false
		}
	}
	return true
}

func equalValues(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

// changedColumns names the columns whose values differ.
func (t *Table) changedColumns(a, b Row) []string {
	var out []string
	for i := range a {
		if !equalValues(a[i], b[i]) {
			out = append(out, t.Columns[i].Name)
		}
	}
	return out
}

// appendEncoded writes values so that different value lists never encode
// alike: per value a NULL marker, or a length and the bytes.
func appendEncoded(dst []byte, vals ...[]byte) []byte {
	for _, v := range vals {
		if v == nil {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 1)
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// key encodes the row's key values, for a map.
func (t *Table) key(r Row, buf []byte) []byte {
	buf = buf[:0]
	for _, k := range t.keys {
		buf = appendEncoded(buf, r[k])
	}
	return buf
}

// keyValues decodes a key encoded by key.
func (t *Table) keyValues(enc []byte) Row {
	r := make(Row, len(t.Columns))
	for _, k := range t.keys {
		if enc[0] == 0 {
			enc = enc[1:]
			continue
		}
		n, w := binary.Uvarint(enc[1:])
		r[k] = enc[1+w : 1+w+int(n)]
		enc = enc[1+w+int(n):]
	}
	return r
}

// digest is a 128-bit hash of a value list (two independent 64-bit
// hashes): equal lists hash equal, different ones collide with negligible
// probability (2^-128 per pair). Seeds are per process: digests are only
// compared within one run.
type digest [2]uint64

var seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func digestOf(enc []byte) digest {
	return digest{maphash.Bytes(seeds[0], enc), maphash.Bytes(seeds[1], enc)}
}

// valueHash is a 64-bit hash of one value, for telling which columns of a
// changed row differ without keeping the row.
func valueHash(v []byte) uint64 {
	if v == nil {
		return 0x9e3779b97f4a7c15 // NULL: any fixed value
	}
	return maphash.Bytes(seeds[0], v) | 1
}

// display shows a canonical value for a report, shortened to max bytes.
func (c *column) display(v []byte, max int) *string {
	if v == nil {
		return nil
	}
	var s string
	switch {
	case isInvalid(v):
		s = "unreadable: " + string(v[len(invalidMark):])
	case c.kind == schema.KindBytea:
		s = `\x` + hex.EncodeToString(v[:min(len(v), max)])
		if len(v) > max {
			s += "…"
		}
		return &s
	default:
		s = string(v)
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return &s
}

package source

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

func TestDecodeCopyLine(t *testing.T) {
	tup, err := decodeCopyLine([]byte("1\t\\N\ta\\tb\\\\c\\nd\t\t\\x41\\101\\N"), 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state byte
		data  string
	}{{schema.Text, "1"}, {schema.Null, ""}, {schema.Text, "a\tb\\c\nd"}, {schema.Text, ""}, {schema.Text, "AAN"}}
	for i, w := range want {
		if tup[i].State != w.state || string(tup[i].Data) != w.data {
			t.Errorf("col %d = %c %q, want %c %q", i, tup[i].State, tup[i].Data, w.state, w.data)
		}
	}
	for _, bad := range []string{"1\t2", "1\t2\t3\t4\t5\t6", "1\t2\t3\t4\t\\"} {
		if _, err := decodeCopyLine([]byte(bad), 5); err == nil {
			t.Errorf("decodeCopyLine(%q) succeeded", bad)
		}
	}
}

func TestCopyReaderSplitWrites(t *testing.T) {
	var got []string
	r := &copyReader{ncols: 2, fn: func(tp schema.Tuple) error {
		got = append(got, string(tp[0].Data)+"|"+string(tp[1].Data))
		return nil
	}}
	for _, chunk := range []string{"a\tb\nc", "\td\n", "e\tf\n"} {
		if _, err := r.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] != "a|b" || got[1] != "c|d" || got[2] != "e|f" {
		t.Fatalf("got %q", got)
	}
}

func TestParseTableName(t *testing.T) {
	cases := map[string]TableName{
		"t":                 {"public", "t"},
		"Sales.Orders":      {"sales", "orders"},
		`"My Schema"."a.b"`: {"My Schema", "a.b"},
		`s."we""ird"`:       {"s", `we"ird`},
		// A-Z only, as PostgreSQL folds in UTF-8 (helper-141: école).
		"ÉCOLE":     {"public", "École"},
		`"ÉCOLE"`:   {"public", "ÉCOLE"},
		"Größe.ABC": {"größe", "abc"},
		// Cut to 63 bytes at a character boundary.
		strings.Repeat("é", 40): {"public", strings.Repeat("é", 31)},
	}
	for in, want := range cases {
		got, err := ParseTableName(in)
		if err != nil || got != want {
			t.Errorf("ParseTableName(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a.b.c", `"open`, "a.", `"x"y`} {
		if _, err := ParseTableName(bad); err == nil {
			t.Errorf("ParseTableName(%q) succeeded", bad)
		}
	}
}

// binaryStream builds a binary COPY stream of rows whose fields are given
// (nil: NULL), with a header extension of ext bytes.
func binaryStream(ext int, rows ...[][]byte) []byte {
	b := []byte(copyBinarySignature)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(ext))
	b = append(b, make([]byte, ext)...)
	for _, r := range rows {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		for _, f := range r {
			if f == nil {
				b = binary.BigEndian.AppendUint32(b, 0xffffffff)
				continue
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		}
	}
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

func TestBinaryCounter(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 1000)
	stream := binaryStream(3,
		[][]byte{[]byte("1"), nil, {}},
		[][]byte{long, []byte("abc"), nil},
		[][]byte{},
		[][]byte{[]byte("12345678")})
	// Every split into two writes, and byte by byte.
	for cut := 0; cut <= len(stream); cut++ {
		var passed []byte
		c := &binaryCounter{fn: func(d []byte, _ int64) error { passed = append(passed, d...); return nil }}
		for _, part := range [][]byte{stream[:cut], stream[cut:]} {
			if _, err := c.Write(part); err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
		}
		if c.rows != 4 || !c.ended() || !bytes.Equal(passed, stream) {
			t.Fatalf("cut %d: %d rows, ended %v, passed %d of %d bytes", cut, c.rows, c.ended(), len(passed), len(stream))
		}
	}
	c := &binaryCounter{fn: func([]byte, int64) error { return nil }}
	var seen []int64
	c.fn = func(_ []byte, rows int64) error { seen = append(seen, rows); return nil }
	for i := range stream {
		if _, err := c.Write(stream[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if c.rows != 4 || !c.ended() || seen[len(seen)-1] != 4 {
		t.Fatalf("byte by byte: %d rows, ended %v", c.rows, c.ended())
	}
	for name, bad := range map[string][]byte{
		"signature":     append([]byte("PGCOPX"), stream[6:]...),
		"after trailer": append(append([]byte{}, stream...), 0),
		"field length":  append(binaryStream(0)[:19], 0, 1, 0xff, 0xff, 0xff, 0xfe),
	} {
		c := &binaryCounter{fn: func([]byte, int64) error { return nil }}
		if _, err := c.Write(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	empty := &binaryCounter{fn: func([]byte, int64) error { return nil }}
	if _, err := empty.Write(binaryStream(0)[:20]); err != nil || empty.ended() {
		t.Fatalf("a stream without its trailer: err %v, ended %v", err, empty.ended())
	}
}

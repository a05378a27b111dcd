package postgres

import (
	"io"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

func TestAppendField(t *testing.T) {
	for _, c := range []struct {
		d    schema.Datum
		want string
	}{
		{schema.Datum{State: schema.Null}, `\N`},
		{schema.Datum{State: schema.Text, Data: nil}, ``},
		{schema.Datum{State: schema.Text, Data: []byte(`\N`)}, `\\N`},
		{schema.Datum{State: schema.Text, Data: []byte("a\tb\nc\rd\\e")}, `a\tb\nc\rd\\e`},
		{schema.Datum{State: schema.Text, Data: []byte(`\.`)}, `\\.`},
		{schema.Datum{State: schema.Text, Data: []byte("ü 🎉 \x01")}, "ü 🎉 \x01"},
	} {
		got, ok := appendField([]byte("x"), c.d)
		if !ok || string(got) != "x"+c.want {
			t.Errorf("appendField(%q) = %q, %v; want %q", c.d.Data, got, ok, "x"+c.want)
		}
	}
	if _, ok := appendField(nil, schema.Datum{State: schema.Unchanged}); ok {
		t.Error("an unchanged value encoded")
	}
}

// TestCopyReader: the stream is the same whatever the reader's buffer size,
// and an encoding error stops it.
func TestCopyReader(t *testing.T) {
	const n = 5000
	enc := func(buf []byte, i int) ([]byte, error) {
		for range i % 7 {
			buf = append(buf, "value\t"...)
		}
		return append(buf, '\n'), nil
	}
	var want []byte
	for i := range n {
		want, _ = enc(want, i)
	}
	for _, size := range []int{1, 7, 4096, 65531, 1 << 20} {
		r := &copyReader{}
		r.reset(n, enc, false)
		var got []byte
		p := make([]byte, size)
		for {
			k, err := r.Read(p)
			got = append(got, p[:k]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != string(want) {
			t.Errorf("read size %d: %d bytes, want %d", size, len(got), len(want))
		}
	}
	r := &copyReader{}
	r.reset(3, func(buf []byte, i int) ([]byte, error) {
		if i == 2 {
			return buf, io.ErrUnexpectedEOF
		}
		return append(buf, "x\n"...), nil
	}, false)
	if _, err := io.ReadAll(r); err != io.ErrUnexpectedEOF || r.err != io.ErrUnexpectedEOF {
		t.Errorf("encoder error: %v", err)
	}

	// A binary stream ends, well formed, before the first row the encoder
	// refuses, whatever the read size; a refusal is no error.
	for _, size := range []int{1, 3, 64 << 10} {
		r.reset(4, func(buf []byte, i int) ([]byte, error) {
			buf = append(buf, 'r', byte('0'+i))
			if i == 2 {
				return buf, errNotBinary
			}
			return buf, nil
		}, true)
		var got []byte
		p := make([]byte, size)
		for {
			n, err := r.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		want := string(copyBinaryHeader) + "r0r1" + string(copyBinaryTrailer)
		if string(got) != want || r.stop != 2 || r.err != nil {
			t.Errorf("read size %d: %q, stop %d, err %v; want %q, stop 2", size, got, r.stop, r.err, want)
		}
	}
}

package pgoutput

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/walmirror/walmirror/schema"
)

func FuzzDecode(f *testing.F) {
	for _, tc := range sampleMessages() {
		f.Add(tc.src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		m, err := Decode(src)
		if err != nil {
			if m != nil {
				t.Fatalf("message %#v returned with error %v", m, err)
			}
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if m == nil {
			t.Fatal("nil message without error")
		}
		if MessageType(src[0]) != m.Type() {
			t.Fatalf("Type() = %v for type byte %q", m.Type(), src[0])
		}
		var tuples []schema.Tuple
		switch m := m.(type) {
		case *Insert:
			tuples = append(tuples, m.New)
		case *Update:
			tuples = append(tuples, m.Old, m.New)
			if (m.OldKind == 0) != (m.Old == nil) {
				t.Fatalf("OldKind %q with old tuple %v", m.OldKind, m.Old)
			}
		case *Delete:
			tuples = append(tuples, m.Old)
		case *LogicalMessage:
			within(t, src, m.Content)
		}
		for _, tup := range tuples {
			for _, d := range tup {
				switch d.State {
				case schema.Null, schema.Unchanged:
					if d.Data != nil {
						t.Fatalf("state %q with data %q", d.State, d.Data)
					}
				case schema.Text, Binary:
					within(t, src, d.Data)
				default:
					t.Fatalf("unexpected state %q", d.State)
				}
			}
		}
		// What was decoded re-encodes to a prefix of src (only trailing bytes
		// may be ignored).
		if re := encode(m); !bytes.HasPrefix(src, re) {
			t.Fatalf("re-encoding\n%q\nis not a prefix of\n%q", re, src)
		}
	})
}

// within fails unless b lies inside src and cannot grow into the rest of it.
func within(t *testing.T, src, b []byte) {
	t.Helper()
	if cap(b) != len(b) {
		t.Fatalf("slice len %d cap %d: appending would overwrite src", len(b), cap(b))
	}
	if len(b) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p+uintptr(len(b)) > base+uintptr(len(src)) {
		t.Fatalf("slice [%#x,+%d) outside src [%#x,+%d)", p, len(b), base, len(src))
	}
}

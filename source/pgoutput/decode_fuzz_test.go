package pgoutput

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"unsafe"

	"github.com/walmirror/walmirror/schema"
)

// FuzzDecode decodes each input with Decode (v1) and with Decoders of every
// layout-changing configuration: protocol 2 and 4, with and without
// ParallelAbort, outside and inside a stream block.
func FuzzDecode(f *testing.F) {
	for _, tc := range sampleMessages() {
		f.Add(tc.src)
	}
	for _, tc := range streamSamples() {
		f.Add(tc.src)
	}
	configs := []struct {
		opts     DecodeOptions
		inStream bool
	}{
		{DecodeOptions{Protocol: 2}, false},
		{DecodeOptions{Protocol: 4}, false},
		{DecodeOptions{Protocol: 4, ParallelAbort: true}, false},
		{DecodeOptions{Protocol: 3}, true},
		{DecodeOptions{Protocol: 4, ParallelAbort: true}, true},
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		m1, err1 := Decode(src)
		checkDecoded(t, src, m1, err1, false)
		for _, c := range configs {
			d := newTestDecoder(t, c.opts, c.inStream)
			m, err := d.Decode(src)
			checkDecoded(t, src, m, err, c.opts.ParallelAbort)
			xid, in := d.Stream()
			switch {
			case err != nil:
				if in != c.inStream || (in && xid != 1234) {
					t.Fatalf("%+v: Stream() = %d, %v after error %v", c, xid, in, err)
				}
				if !c.inStream && errors.Is(err, ErrSequence) && src[0] != byte(MsgStreamStop) {
					t.Fatalf("%+v: sequence error %v outside a stream block", c, err)
				}
				// Outside a stream block, v1 messages fail as with Decode.
				if !c.inStream && len(src) > 0 && minProtocol(MessageType(src[0])) == 1 && !reflect.DeepEqual(err, err1) {
					t.Fatalf("%+v: error %v, Decode gave %v", c, err, err1)
				}
			case c.inStream:
				if _, stop := m.(*StreamStop); in == stop || (in && xid != 1234) {
					t.Fatalf("%+v: Stream() = %d, %v after %T", c, xid, in, m)
				}
				if x := changeXid(m); x == 0 && withXid(m, 1) != nil {
					t.Fatalf("%+v: %T without xid inside a stream block", c, m)
				}
			default:
				if s, start := m.(*StreamStart); in != start || (start && xid != s.Xid) {
					t.Fatalf("%+v: Stream() = %d, %v after %T", c, xid, in, m)
				}
				if changeXid(m) != 0 {
					t.Fatalf("%+v: %T with an xid outside a stream block", c, m)
				}
				// Outside a stream block, v1 messages decode as Decode does.
				if err1 == nil && minProtocol(m.Type()) == 1 && !reflect.DeepEqual(m, m1) {
					t.Fatalf("%+v: %#v, Decode gave %#v", c, m, m1)
				}
			}
		}
	})
}

// changeXid is the Xid field of a change message, 0 for other messages.
func changeXid(m Message) uint32 {
	switch m := m.(type) {
	case *Relation:
		return m.Xid
	case *TypeMsg:
		return m.Xid
	case *Insert:
		return m.Xid
	case *Update:
		return m.Xid
	case *Delete:
		return m.Xid
	case *Truncate:
		return m.Xid
	case *LogicalMessage:
		return m.Xid
	}
	return 0
}

// checkDecoded checks the invariants of one decoding of src.
func checkDecoded(t *testing.T, src []byte, m Message, err error, parallelAbort bool) {
	t.Helper()
	if err != nil {
		if m != nil {
			t.Fatalf("message %#v returned with error %v", m, err)
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Unwrap() == nil {
			t.Fatalf("error %#v is not a *DecodeError with a cause", err)
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
	if re := encodeWith(m, parallelAbort); !bytes.HasPrefix(src, re) {
		t.Fatalf("re-encoding\n%q\nis not a prefix of\n%q", re, src)
	}
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

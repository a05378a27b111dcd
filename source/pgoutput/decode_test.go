package pgoutput

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/schema"
)

func TestDecodeSamples(t *testing.T) {
	for _, tc := range sampleMessages() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.src)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", got, tc.want)
			}
			if got.Type() != MessageType(tc.src[0]) {
				t.Errorf("Type() = %v, want %q", got.Type(), tc.src[0])
			}
			if re := encode(got); !bytes.Equal(re, tc.src) {
				t.Errorf("re-encoded\n got %q\nwant %q", re, tc.src)
			}
			// Trailing bytes are ignored.
			got2, err := Decode(append(bytes.Clone(tc.src), 0xde, 0xad, 'N', 0))
			if err != nil {
				t.Fatalf("Decode with trailing bytes: %v", err)
			}
			if !reflect.DeepEqual(got2, tc.want) {
				t.Fatalf("Decode with trailing bytes:\n got %#v\nwant %#v", got2, tc.want)
			}
		})
	}
}

// Every strict prefix of a valid message is an ErrTruncated error, never a
// panic or a success.
func TestDecodeTruncatedEveryOffset(t *testing.T) {
	for _, tc := range sampleMessages() {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < len(tc.src); i++ {
				src := bytes.Clone(tc.src[:i]) // exact capacity: no bytes beyond len to read by mistake
				m, err := Decode(src)
				if err == nil {
					t.Fatalf("Decode(src[:%d]) = %#v, want error", i, m)
				}
				if m != nil {
					t.Errorf("Decode(src[:%d]) returned message %#v with error", i, m)
				}
				if !errors.Is(err, ErrTruncated) {
					t.Errorf("Decode(src[:%d]) error %v is not ErrTruncated", i, err)
				}
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("Decode(src[:%d]) error %T is not *DecodeError", i, err)
				}
				if i > 0 && (de.Type != MessageType(tc.src[0]) || de.Offset < 1 || de.Offset > i || de.Field == "") {
					t.Errorf("Decode(src[:%d]) error %+v: want type %q, a field and an offset in [1,%d]", i, de, tc.src[0], i)
				}
			}
		})
	}
}

func TestDecodeAliasesSrc(t *testing.T) {
	src := enc{'U'}.u32(1).u8('K').tuple(schema.Tuple{text("ab")}).u8('N').tuple(schema.Tuple{text("cd"), text("ef")})
	m, err := Decode(src)
	if err != nil {
		t.Fatal(err)
	}
	u := m.(*Update)
	for _, d := range append(u.Old, u.New...) {
		if cap(d.Data) != len(d.Data) {
			t.Errorf("datum %q has cap %d > len: appending would clobber src", d.Data, cap(d.Data))
		}
	}
	i := bytes.Index(src, []byte("cd"))
	src[i] = 'X'
	if string(u.New[0].Data) != "Xd" {
		t.Errorf("New[0] = %q after changing src, want it to alias src", u.New[0].Data)
	}

	src = append(enc{'M'}.u8(0).u64(1).str("p").u32(3), "xyz"...)
	m, err = Decode(src)
	if err != nil {
		t.Fatal(err)
	}
	lm := m.(*LogicalMessage)
	if cap(lm.Content) != 3 || lm.Transactional() {
		t.Errorf("content cap %d, transactional %v", cap(lm.Content), lm.Transactional())
	}
	src[len(src)-1] = 'Z'
	if string(lm.Content) != "xyZ" {
		t.Errorf("Content = %q, want it to alias src", lm.Content)
	}
}

func TestDecodeErrors(t *testing.T) {
	ins := func() enc { return enc{'I'}.u32(5) }
	cases := []struct {
		name  string
		src   []byte
		err   error
		wants []string
	}{
		{"empty", nil, ErrTruncated, []string{"empty"}},
		{"unknown type", []byte("Zxyz"), ErrUnknownType, []string{"'Z'", "0x5a"}},
		{"unknown type nonprintable", []byte{0xff}, ErrUnknownType, []string{"0xff"}},
		{"stream start", []byte("S\x00\x00\x00\x01\x01"), ErrUnsupported,
			[]string{"unsupported pgoutput message 'S' (StreamStart needs protocol v2, v1 negotiated)"}},
		{"stream commit", []byte("c"), ErrUnsupported, []string{"message 'c'"}},
		{"begin prepare", []byte("b"), ErrUnsupported, []string{"message 'b'"}},
		{"begin short", enc{'B'}.u64(1).u64(2).u16(3), ErrTruncated,
			[]string{"Begin message 'B'", "body at offset 1", "need 20 bytes, 18 remain"}},
		{"commit short", enc{'C'}.u8(0).u64(1), ErrTruncated, []string{"Commit", "need 25 bytes"}},
		{"insert bad marker", ins().u8('K').u16(0), ErrInvalid, []string{"Insert", "tuple marker at offset 5", "want 'N'"}},
		{"negative column count", ins().u8('N').u16(0xFFFF), ErrInvalid,
			[]string{"new tuple column count at offset 6", "negative column count -1"}},
		{"column count exceeds bytes", ins().u8('N').u16(0x7FFF).u8('n').u8('n'), ErrTruncated,
			[]string{"new tuple column count", "32767 columns"}},
		{"negative datum length", ins().u8('N').u16(2).u8('n').u8('t').u32(0xFFFFFFFE), ErrInvalid,
			[]string{"new tuple column 1 length at offset 10", "negative length -2"}},
		{"oversized datum length", ins().u8('N').u16(1).u8('t').u32(0x7FFFFFFF).append("abc"), ErrTruncated,
			[]string{"new tuple column 0 data at offset 13", "length 2147483647 exceeds the 3 bytes remaining"}},
		{"bad datum kind", ins().u8('N').u16(2).u8('u').u8('x'), ErrInvalid,
			[]string{"new tuple column 1 kind at offset 9", "'x'"}},
		{"update bad marker", enc{'U'}.u32(1).u8('Q'), ErrInvalid, []string{"Update", "want 'K', 'O' or 'N'"}},
		{"update old without new", enc{'U'}.u32(1).u8('K').tuple(schema.Tuple{null}).u8('K').tuple(schema.Tuple{null}),
			ErrInvalid, []string{"new tuple marker at offset 9", "want 'N'"}},
		{"update bad old tuple", enc{'U'}.u32(1).u8('O').u16(1).u8('t').u32(9), ErrTruncated,
			[]string{"old tuple column 0 data"}},
		{"delete new marker", enc{'D'}.u32(1).u8('N').tuple(schema.Tuple{null}), ErrInvalid,
			[]string{"Delete", "want 'K' or 'O'"}},
		{"truncate negative count", enc{'T'}.u32(0x80000000).u8(0), ErrInvalid,
			[]string{"Truncate", "relation count at offset 1", "negative relation count -2147483648"}},
		{"truncate huge count", enc{'T'}.u32(0x7FFFFFFF).u8(0).u32(1), ErrTruncated,
			[]string{"2147483647 relation ids need 8589934588 bytes, 4 remain"}},
		{"relation negative columns", enc{'R'}.u32(1).str("s").str("t").u8('d').u16(0x8000), ErrInvalid,
			[]string{"Relation", "column count", "negative column count -32768"}},
		{"relation too many columns", enc{'R'}.u32(1).str("s").str("t").u8('d').u16(2).
			u8(1).str("id").u32(20).u32(0), ErrTruncated, []string{"2 columns need at least 20 bytes, 12 remain"}},
		{"relation column name unterminated", enc{'R'}.u32(1).str("s").str("t").u8('d').u16(1).
			u8(1).append("idxxxxxxxxxxxxx"), ErrTruncated,
			[]string{"column 0 name at offset 13", "no NUL terminator"}},
		{"relation column type short", enc{'R'}.u32(1).str("s").str("t").u8('d').u16(2).
			u8(1).str("").u32(20).u32(0).u8(0).str("abcdefgh").u32(1), ErrTruncated,
			[]string{"column 1 type at offset 32", "need 8 bytes, 4 remain"}},
		{"origin no NUL", enc{'O'}.u64(1).append("abc"), ErrTruncated, []string{"Origin", "name at offset 9"}},
		{"message negative length", enc{'M'}.u8(0).u64(1).str("p").u32(0xFFFFFFFF), ErrInvalid,
			[]string{"Message", "content length", "negative length -1"}},
		{"message oversized", enc{'M'}.u8(0).u64(1).str("p").u32(10).append("abc"), ErrTruncated,
			[]string{"content at offset 16", "length 10 exceeds the 3 bytes remaining"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.src)
			if err == nil {
				t.Fatalf("Decode = %#v, want error", m)
			}
			if m != nil {
				t.Errorf("message %#v returned with error", m)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %q is not %v", err, tc.err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMessageTypeString(t *testing.T) {
	for typ, want := range map[MessageType]string{
		MsgBegin: "Begin", MsgCommit: "Commit", MsgOrigin: "Origin", MsgRelation: "Relation",
		MsgType: "Type", MsgInsert: "Insert", MsgUpdate: "Update", MsgDelete: "Delete",
		MsgTruncate: "Truncate", MsgMessage: "Message", MsgStreamStart: "StreamStart",
		MsgStreamPrepare: "StreamPrepare", 'z': "MessageType(0x7a)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%q.String() = %q, want %q", byte(typ), got, want)
		}
	}
}

func TestPgTime(t *testing.T) {
	for us, want := range map[int64]time.Time{
		0:          time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		1:          time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC),
		-1:         time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		-1_000_000: time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC),
	} {
		if got := pgTime(us); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("pgTime(%d) = %v, want %v", us, got, want)
		}
	}
	// Extremes must not panic.
	_ = pgTime(1<<63 - 1)
	_ = pgTime(-1 << 63)
}

func TestRelationColumnIsKey(t *testing.T) {
	if !(RelationColumn{Flags: 1}).IsKey() || (RelationColumn{}).IsKey() {
		t.Error("IsKey wrong")
	}
}

// sixColumnInsert is an Insert of a typical six-column row.
func sixColumnInsert() []byte {
	return enc{'I'}.u32(16384).u8('N').tuple(schema.Tuple{
		text("123456"), text("alice@example.com"), text("Alice"), null,
		text("2024-05-06 07:08:09.123456+00"), text("t"),
	})
}

func TestDecodeInsertAllocs(t *testing.T) {
	src := sixColumnInsert()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := Decode(src); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("Decode(insert) = %v allocs, want <= 2 (message, tuple)", allocs)
	}
}

func BenchmarkDecodeInsert(b *testing.B) {
	src := sixColumnInsert()
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Decode(src)
		if err != nil || len(m.(*Insert).New) != 6 {
			b.Fatal(m, err)
		}
	}
}

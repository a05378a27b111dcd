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

var (
	prepareTS  = time.Date(2024, 5, 6, 7, 8, 1, 500000, time.UTC)
	rollbackTS = time.Date(2024, 5, 6, 7, 9, 0, 1000, time.UTC)
)

// A streamSample is decoded by a Decoder made with opts, after a Stream
// Start of transaction 1234 when inStream is set.
type streamSample struct {
	name     string
	opts     DecodeOptions
	inStream bool
	src      []byte
	want     Message
}

// streamSamples is one valid message of each protocol v2-v4 type and of each
// change inside a stream block, each encoded by hand as proto.c writes it.
func streamSamples() []streamSample {
	v2 := DecodeOptions{Protocol: 2}
	v3 := DecodeOptions{Protocol: 3}
	v4 := DecodeOptions{Protocol: 4}
	v4p := DecodeOptions{Protocol: 4, ParallelAbort: true}
	samples := []streamSample{
		// logicalrep_write_stream_start: xid, first_segment ? 1 : 0.
		{"stream start first", v2, false, enc{'S'}.u32(1234).u8(1), &StreamStart{Xid: 1234, FirstSegment: true}},
		{"stream start next", v4p, false, enc{'S'}.u32(1234).u8(0), &StreamStart{Xid: 1234}},
		// logicalrep_write_stream_stop: the type byte alone.
		{"stream stop", v2, true, enc{'E'}, &StreamStop{}},
		// logicalrep_write_stream_commit: xid, flags, commit LSN, end LSN, commit time.
		{"stream commit", v2, false, enc{'c'}.u32(1234).u8(0).u64(0x16_B374D848).u64(0x16_B374D878).ts(commitTS),
			&StreamCommit{Xid: 1234, CommitLSN: 0x16_B374D848, EndLSN: 0x16_B374D878, CommitTime: commitTS}},
		// logicalrep_write_stream_abort: xid, subxid [, abort LSN, abort time].
		{"stream abort subxact", v2, false, enc{'A'}.u32(1234).u32(1240),
			&StreamAbort{Xid: 1234, SubXid: 1240}},
		{"stream abort top v4 streaming on", v4, false, enc{'A'}.u32(1234).u32(1234),
			&StreamAbort{Xid: 1234, SubXid: 1234}},
		{"stream abort parallel", v4p, false, enc{'A'}.u32(1234).u32(1240).u64(0x16_B374D900).ts(rollbackTS),
			&StreamAbort{Xid: 1234, SubXid: 1240, AbortLSN: 0x16_B374D900, AbortTime: rollbackTS}},
		// logicalrep_write_begin_prepare: prepare LSN, end LSN, prepare time, xid, gid.
		{"begin prepare", v3, false, enc{'b'}.u64(0x17_00000100).u64(0x17_00000180).ts(prepareTS).u32(1300).str("wm-gid-1"),
			&BeginPrepare{PrepareLSN: 0x17_00000100, EndLSN: 0x17_00000180, PrepareTime: prepareTS, Xid: 1300, GID: "wm-gid-1"}},
		// logicalrep_write_prepare_common: flags, prepare LSN, end LSN, prepare time, xid, gid.
		{"prepare", v3, false, enc{'P'}.u8(0).u64(0x17_00000100).u64(0x17_00000180).ts(prepareTS).u32(1300).str("wm-gid-1"),
			&Prepare{PrepareLSN: 0x17_00000100, EndLSN: 0x17_00000180, PrepareTime: prepareTS, Xid: 1300, GID: "wm-gid-1"}},
		{"prepare empty gid", v4, false, enc{'P'}.u8(0).u64(1).u64(2).ts(prepareTS).u32(7).str(""),
			&Prepare{PrepareLSN: 1, EndLSN: 2, PrepareTime: prepareTS, Xid: 7, GID: ""}},
		{"stream prepare", v4p, false, enc{'p'}.u8(0).u64(0x17_00000200).u64(0x17_00000280).ts(prepareTS).u32(1234).str("big one"),
			&StreamPrepare{PrepareLSN: 0x17_00000200, EndLSN: 0x17_00000280, PrepareTime: prepareTS, Xid: 1234, GID: "big one"}},
		// logicalrep_write_commit_prepared: flags, commit LSN, end LSN, commit time, xid, gid.
		{"commit prepared", v3, false, enc{'K'}.u8(0).u64(0x17_00000300).u64(0x17_00000330).ts(commitTS).u32(1300).str("wm-gid-1"),
			&CommitPrepared{CommitLSN: 0x17_00000300, EndLSN: 0x17_00000330, CommitTime: commitTS, Xid: 1300, GID: "wm-gid-1"}},
		// logicalrep_write_rollback_prepared: flags, prepare end LSN, rollback end LSN,
		// prepare time, rollback time, xid, gid.
		{"rollback prepared", v3, false, enc{'r'}.u8(0).u64(0x17_00000180).u64(0x17_00000400).ts(prepareTS).ts(rollbackTS).
			u32(1300).str("wm-gid-1"),
			&RollbackPrepared{PrepareEndLSN: 0x17_00000180, RollbackEndLSN: 0x17_00000400, PrepareTime: prepareTS,
				RollbackTime: rollbackTS, Xid: 1300, GID: "wm-gid-1"}},

		// Inside a stream block the change messages start with the xid of their
		// (sub)transaction (logicalrep_write_rel, _typ, _insert, _update,
		// _delete, _truncate, _message: "if (TransactionIdIsValid(xid))").
		{"streamed relation", v2, true, enc{'R'}.u32(1240).u32(16384).str("public").str("t").u8('f').u16(1).
			u8(1).str("id").u32(23).u32(0xFFFFFFFF),
			&Relation{Xid: 1240, RelationID: 16384, Namespace: "public", Name: "t", ReplicaIdentity: 'f',
				Columns: []RelationColumn{{Flags: 1, Name: "id", TypeID: 23, Typmod: -1}}}},
		{"streamed type", v3, true, enc{'Y'}.u32(1234).u32(90001).str("public").str("mood"),
			&TypeMsg{Xid: 1234, TypeID: 90001, Namespace: "public", Name: "mood"}},
		{"streamed insert", v4p, true, enc{'I'}.u32(1240).u32(16384).u8('N').tuple(schema.Tuple{text("1"), null}),
			&Insert{Xid: 1240, RelationID: 16384, New: schema.Tuple{text("1"), null}}},
		{"streamed update", v4, true, enc{'U'}.u32(1234).u32(16384).u8('O').tuple(schema.Tuple{text("1"), text("a")}).
			u8('N').tuple(schema.Tuple{text("1"), unchanged}),
			&Update{Xid: 1234, RelationID: 16384, OldKind: 'O', Old: schema.Tuple{text("1"), text("a")},
				New: schema.Tuple{text("1"), unchanged}}},
		{"streamed delete", v2, true, enc{'D'}.u32(1240).u32(16384).u8('K').tuple(schema.Tuple{text("1"), null}),
			&Delete{Xid: 1240, RelationID: 16384, OldKind: 'K', Old: schema.Tuple{text("1"), null}}},
		{"streamed truncate", v2, true, enc{'T'}.u32(1234).u32(1).u8(TruncateCascade).u32(16384),
			&Truncate{Xid: 1234, Options: TruncateCascade, RelationIDs: []uint32{16384}}},
		{"streamed message", v2, true, append(enc{'M'}.u32(1234).u8(1).u64(0x2_00000000).str("walmirror").u32(2), "hi"...),
			&LogicalMessage{Xid: 1234, Flags: 1, LSN: 0x2_00000000, Prefix: "walmirror", Content: []byte("hi")}},
		// pgoutput_stream_start sends the Origin after the first Stream Start,
		// with no xid (logicalrep_write_origin).
		{"streamed origin", v2, true, enc{'O'}.u64(0).str("node_a"), &Origin{Name: "node_a"}},
	}
	// Every v1 change sample again, inside a stream block.
	for _, s := range sampleMessages() {
		if want := withXid(s.want, 0x8000_0001); want != nil {
			src := append(enc{s.src[0]}.u32(0x8000_0001), s.src[1:]...)
			samples = append(samples, streamSample{"in stream " + s.name, v4, true, src, want})
		}
	}
	return samples
}

// withXid returns a copy of change message m with Xid x, or nil if m carries
// no xid in a stream block.
func withXid(m Message, x uint32) Message {
	switch m := m.(type) {
	case *Relation:
		c := *m
		c.Xid = x
		return &c
	case *TypeMsg:
		c := *m
		c.Xid = x
		return &c
	case *Insert:
		c := *m
		c.Xid = x
		return &c
	case *Update:
		c := *m
		c.Xid = x
		return &c
	case *Delete:
		c := *m
		c.Xid = x
		return &c
	case *Truncate:
		c := *m
		c.Xid = x
		return &c
	case *LogicalMessage:
		c := *m
		c.Xid = x
		return &c
	}
	return nil
}

// newTestDecoder returns a Decoder for opts, inside the stream block of
// transaction 1234 when inStream is set.
func newTestDecoder(t testing.TB, opts DecodeOptions, inStream bool) *Decoder {
	t.Helper()
	d, err := NewDecoder(opts)
	if err != nil {
		t.Fatal(err)
	}
	if inStream {
		if _, err := d.Decode(enc{'S'}.u32(1234).u8(1)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestDecoderSamples(t *testing.T) {
	for _, tc := range streamSamples() {
		t.Run(tc.name, func(t *testing.T) {
			for _, trailing := range [][]byte{nil, {0xde, 0xad, 'N', 0}} {
				d := newTestDecoder(t, tc.opts, tc.inStream)
				got, err := d.Decode(append(bytes.Clone(tc.src), trailing...))
				if err != nil {
					t.Fatalf("Decode (trailing %q): %v", trailing, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Decode (trailing %q):\n got %#v\nwant %#v", trailing, got, tc.want)
				}
				if got.Type() != MessageType(tc.src[0]) {
					t.Errorf("Type() = %v, want %q", got.Type(), tc.src[0])
				}
				if re := encodeWith(got, tc.opts.ParallelAbort); !bytes.Equal(re, tc.src) {
					t.Errorf("re-encoded\n got %q\nwant %q", re, tc.src)
				}
				wantXid, wantIn := uint32(1234), tc.inStream
				switch m := got.(type) {
				case *StreamStart:
					wantXid, wantIn = m.Xid, true
				case *StreamStop:
					wantXid, wantIn = 0, false
				}
				if !wantIn {
					wantXid = 0
				}
				if xid, in := d.Stream(); xid != wantXid || in != wantIn {
					t.Errorf("Stream() = %d, %v after %T, want %d, %v", xid, in, got, wantXid, wantIn)
				}
			}
		})
	}
}

// Every strict prefix of a valid message is an ErrTruncated error that
// leaves the Decoder's state as it was.
func TestDecoderTruncatedEveryOffset(t *testing.T) {
	for _, tc := range streamSamples() {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDecoder(t, tc.opts, tc.inStream)
			xid0, in0 := d.Stream()
			for i := 0; i < len(tc.src); i++ {
				m, err := d.Decode(bytes.Clone(tc.src[:i]))
				if err == nil || m != nil {
					t.Fatalf("Decode(src[:%d]) = %#v, %v; want nil and an error", i, m, err)
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
				if xid, in := d.Stream(); xid != xid0 || in != in0 {
					t.Fatalf("Stream() = %d, %v after an error, was %d, %v", xid, in, xid0, in0)
				}
			}
		})
	}
}

// Outside stream blocks every protocol decodes v1 messages as Decode does.
func TestDecoderV1MessagesEveryProtocol(t *testing.T) {
	for p := 0; p <= MaxProtocol; p++ {
		for _, tc := range sampleMessages() {
			d := newTestDecoder(t, DecodeOptions{Protocol: p, ParallelAbort: p == 4}, false)
			got, err := d.Decode(tc.src)
			if err != nil {
				t.Fatalf("protocol %d, %s: %v", p, tc.name, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("protocol %d, %s:\n got %#v\nwant %#v", p, tc.name, got, tc.want)
			}
		}
	}
}

// A session as pgoutput sends it with streaming on: a large transaction in
// two stream blocks, with a subtransaction, interleaved with a small
// transaction that commits in between, a subtransaction abort, then the
// stream commit; and a two-phase transaction.
func TestDecoderSession(t *testing.T) {
	d := newTestDecoder(t, DecodeOptions{Protocol: 4}, false)
	row := func(id string) schema.Tuple { return schema.Tuple{text(id)} }
	steps := []struct {
		src    []byte
		want   Message
		stream uint32 // open stream block after the message, 0 for none
	}{
		{enc{'S'}.u32(900).u8(1), &StreamStart{Xid: 900, FirstSegment: true}, 900},
		{enc{'R'}.u32(900).u32(16384).str("public").str("t").u8('d').u16(1).u8(1).str("id").u32(23).u32(0xFFFFFFFF),
			&Relation{Xid: 900, RelationID: 16384, Namespace: "public", Name: "t", ReplicaIdentity: 'd',
				Columns: []RelationColumn{{Flags: 1, Name: "id", TypeID: 23, Typmod: -1}}}, 900},
		{enc{'I'}.u32(900).u32(16384).u8('N').tuple(row("1")), &Insert{Xid: 900, RelationID: 16384, New: row("1")}, 900},
		{enc{'I'}.u32(901).u32(16384).u8('N').tuple(row("2")), &Insert{Xid: 901, RelationID: 16384, New: row("2")}, 900},
		{enc{'E'}, &StreamStop{}, 0},
		// A small transaction commits while the large one is in progress.
		{enc{'B'}.u64(0x500).ts(commitTS).u32(950), &Begin{FinalLSN: 0x500, CommitTime: commitTS, Xid: 950}, 0},
		{enc{'I'}.u32(16384).u8('N').tuple(row("3")), &Insert{RelationID: 16384, New: row("3")}, 0},
		{enc{'C'}.u8(0).u64(0x500).u64(0x530).ts(commitTS), &Commit{CommitLSN: 0x500, EndLSN: 0x530, CommitTime: commitTS}, 0},
		{enc{'S'}.u32(900).u8(0), &StreamStart{Xid: 900}, 900},
		{enc{'D'}.u32(901).u32(16384).u8('K').tuple(row("1")), &Delete{Xid: 901, RelationID: 16384, OldKind: 'K', Old: row("1")}, 900},
		{enc{'E'}, &StreamStop{}, 0},
		{enc{'A'}.u32(900).u32(901), &StreamAbort{Xid: 900, SubXid: 901}, 0},
		{enc{'c'}.u32(900).u8(0).u64(0x600).u64(0x630).ts(commitTS),
			&StreamCommit{Xid: 900, CommitLSN: 0x600, EndLSN: 0x630, CommitTime: commitTS}, 0},
		// Two-phase: begin prepare, a change without xid, prepare, commit prepared.
		{enc{'b'}.u64(0x700).u64(0x730).ts(prepareTS).u32(960).str("g"),
			&BeginPrepare{PrepareLSN: 0x700, EndLSN: 0x730, PrepareTime: prepareTS, Xid: 960, GID: "g"}, 0},
		{enc{'I'}.u32(16384).u8('N').tuple(row("4")), &Insert{RelationID: 16384, New: row("4")}, 0},
		{enc{'P'}.u8(0).u64(0x700).u64(0x730).ts(prepareTS).u32(960).str("g"),
			&Prepare{PrepareLSN: 0x700, EndLSN: 0x730, PrepareTime: prepareTS, Xid: 960, GID: "g"}, 0},
		{enc{'K'}.u8(0).u64(0x800).u64(0x830).ts(commitTS).u32(960).str("g"),
			&CommitPrepared{CommitLSN: 0x800, EndLSN: 0x830, CommitTime: commitTS, Xid: 960, GID: "g"}, 0},
	}
	for i, s := range steps {
		got, err := d.Decode(s.src)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("step %d:\n got %#v\nwant %#v", i, got, s.want)
		}
		if xid, in := d.Stream(); xid != s.stream || in != (s.stream != 0) {
			t.Fatalf("step %d: Stream() = %d, %v, want %d", i, xid, in, s.stream)
		}
	}
	// Reset forgets an open stream block.
	if _, err := d.Decode(enc{'S'}.u32(1000).u8(1)); err != nil {
		t.Fatal(err)
	}
	d.Reset()
	if xid, in := d.Stream(); xid != 0 || in {
		t.Fatalf("Stream() = %d, %v after Reset", xid, in)
	}
	if m, err := d.Decode(enc{'I'}.u32(16384).u8('N').tuple(row("5"))); err != nil || m.(*Insert).Xid != 0 {
		t.Fatalf("insert after Reset: %#v, %v", m, err)
	}
}

func TestDecoderErrors(t *testing.T) {
	v1, v2, v3, v4 := DecodeOptions{Protocol: 1}, DecodeOptions{Protocol: 2}, DecodeOptions{Protocol: 3}, DecodeOptions{Protocol: 4}
	v4p := DecodeOptions{Protocol: 4, ParallelAbort: true}
	cases := []struct {
		name     string
		opts     DecodeOptions
		inStream bool
		src      []byte
		err      error
		wants    []string
	}{
		{"v1 stream start", v1, false, enc{'S'}.u32(1).u8(1), ErrUnsupported,
			[]string{"'S' (StreamStart needs protocol v2, v1 negotiated)"}},
		{"v1 stream commit", v1, false, enc{'c'}.u32(1).u8(0).u64(1).u64(2).u64(3), ErrUnsupported, []string{"needs protocol v2"}},
		{"v1 stream abort truncated", v1, false, enc{'A'}.u32(1), ErrTruncated, []string{"xid and subxid"}},
		{"v2 begin prepare", v2, false, []byte("b"), ErrUnsupported, []string{"'b' (BeginPrepare needs protocol v3, v2 negotiated)"}},
		{"v2 prepare", v2, false, []byte("P"), ErrUnsupported, []string{"Prepare needs protocol v3"}},
		{"v2 commit prepared", v2, false, []byte("K"), ErrUnsupported, []string{"CommitPrepared needs protocol v3"}},
		{"v2 rollback prepared", v2, false, []byte("r"), ErrUnsupported, []string{"RollbackPrepared needs protocol v3"}},
		{"v2 stream prepare", v2, false, []byte("p"), ErrUnsupported, []string{"StreamPrepare needs protocol v3"}},
		{"unknown type", v4, false, []byte("Z"), ErrUnknownType, []string{"'Z'"}},
		{"unknown type in stream", v4, true, []byte{0xff}, ErrUnknownType, []string{"0xff"}},
		{"stream stop outside", v4, false, enc{'E'}, ErrSequence, []string{"StreamStop message 'E' outside a stream block"}},
		{"stream start inside", v4, true, enc{'S'}.u32(5).u8(1), ErrSequence,
			[]string{"StreamStart message 'S' inside the stream block of transaction 1234"}},
		{"begin inside", v4, true, enc{'B'}.u64(1).u64(2).u32(3), ErrSequence, []string{"Begin message 'B' inside"}},
		{"commit inside", v4, true, enc{'C'}.u8(0).u64(1).u64(2).u64(3), ErrSequence, []string{"Commit"}},
		{"stream commit inside", v4, true, enc{'c'}.u32(1234).u8(0).u64(1).u64(2).u64(3), ErrSequence, []string{"StreamCommit"}},
		{"stream abort inside", v4, true, enc{'A'}.u32(1234).u32(1234), ErrSequence, []string{"StreamAbort"}},
		{"stream prepare inside", v3, true, []byte("p"), ErrSequence, []string{"StreamPrepare"}},
		{"begin prepare inside", v3, true, []byte("b"), ErrSequence, []string{"BeginPrepare"}},
		{"stream start xid 0", v2, false, enc{'S'}.u32(0).u8(1), ErrInvalid,
			[]string{"StreamStart message 'S': xid at offset 1: invalid transaction id 0"}},
		{"stream start flag 2", v2, false, enc{'S'}.u32(7).u8(2), ErrInvalid,
			[]string{"first segment flag at offset 5: got 2, want 0 or 1"}},
		{"stream start short", v2, false, enc{'S'}.u32(7), ErrTruncated, []string{"body at offset 1: need 5 bytes, 4 remain"}},
		{"streamed insert xid 0", v2, true, enc{'I'}.u32(0).u32(1).u8('N').u16(0), ErrInvalid,
			[]string{"Insert message 'I': xid at offset 1: invalid transaction id 0 inside a stream block"}},
		{"streamed insert without xid", v2, true, enc{'I'}.u32(16384).u8('N').u16(0), ErrTruncated,
			[]string{"relation id at offset 5: need 4 bytes, 3 remain"}},
		{"streamed message bad length", v2, true, enc{'M'}.u32(9).u8(0).u64(1).str("p").u32(0xFFFFFFFF), ErrInvalid,
			[]string{"content length at offset 16", "negative length -1"}},
		{"parallel abort without info", v4p, false, enc{'A'}.u32(1).u32(1), ErrTruncated,
			[]string{"abort LSN and time at offset 9: need 16 bytes, 0 remain"}},
		{"commit prepared short", v3, false, enc{'K'}.u8(0).u64(1).u64(2).u64(3), ErrTruncated,
			[]string{"CommitPrepared", "body at offset 1: need 29 bytes, 25 remain"}},
		{"rollback prepared no gid NUL", v3, false, enc{'r'}.u8(0).u64(1).u64(2).u64(3).u64(4).u32(5).append("gid"),
			ErrTruncated, []string{"RollbackPrepared", "gid at offset 38", "no NUL terminator"}},
		{"begin prepare no gid NUL", v3, false, enc{'b'}.u64(1).u64(2).u64(3).u32(5), ErrTruncated,
			[]string{"gid at offset 29", "no NUL terminator in the 0 bytes remaining"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDecoder(t, tc.opts, tc.inStream)
			xid0, in0 := d.Stream()
			m, err := d.Decode(tc.src)
			if err == nil || m != nil {
				t.Fatalf("Decode = %#v, %v; want nil and an error", m, err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %q is not %v", err, tc.err)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Type != MessageType(tc.src[0]) {
				t.Errorf("error %#v is not a *DecodeError of type %q", err, tc.src[0])
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if xid, in := d.Stream(); xid != xid0 || in != in0 {
				t.Errorf("Stream() = %d, %v after an error, was %d, %v", xid, in, xid0, in0)
			}
		})
	}
}

func TestDecoderZeroValueIsV1(t *testing.T) {
	var d Decoder
	if _, err := d.Decode(enc{'S'}.u32(1).u8(1)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("zero Decoder, Stream Start: %v, want ErrUnsupported", err)
	}
	if m, err := d.Decode(sixColumnInsert()); err != nil || len(m.(*Insert).New) != 6 {
		t.Fatalf("zero Decoder, Insert: %#v, %v", m, err)
	}
}

func TestDecodeOptionsValidate(t *testing.T) {
	for _, o := range []DecodeOptions{{}, {Protocol: 1}, {Protocol: 2}, {Protocol: 3}, {Protocol: 4}, {Protocol: 4, ParallelAbort: true}} {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for o, want := range map[DecodeOptions]string{
		{Protocol: -1}:                      "Protocol -1",
		{Protocol: 5}:                       "Protocol 5: want 1 to 4",
		{Protocol: 3, ParallelAbort: true}:  "ParallelAbort needs Protocol 4",
		{Protocol: 0, ParallelAbort: true}:  "ParallelAbort needs Protocol 4",
		{Protocol: 99, ParallelAbort: true}: "Protocol 99",
	} {
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: Validate() = %v, want %q", o, err, want)
		}
		if d, err2 := NewDecoder(o); d != nil || err2 == nil {
			t.Errorf("%+v: NewDecoder = %v, %v; want an error", o, d, err2)
		}
	}
}

func TestStreamAbortIsTopLevel(t *testing.T) {
	if !(&StreamAbort{Xid: 5, SubXid: 5}).IsTopLevel() || (&StreamAbort{Xid: 5, SubXid: 6}).IsTopLevel() {
		t.Error("IsTopLevel wrong")
	}
}

func TestMessageTypeStringAll(t *testing.T) {
	for typ, want := range map[MessageType]string{
		MsgStreamStop: "StreamStop", MsgStreamCommit: "StreamCommit", MsgStreamAbort: "StreamAbort",
		MsgBeginPrepare: "BeginPrepare", MsgPrepare: "Prepare", MsgCommitPrepared: "CommitPrepared",
		MsgRollbackPrepared: "RollbackPrepared",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%q.String() = %q, want %q", byte(typ), got, want)
		}
	}
}

// streamedInsert is sixColumnInsert inside a stream block.
func streamedInsert() []byte {
	src := sixColumnInsert()
	return append(enc{src[0]}.u32(1240), src[1:]...)
}

func TestDecoderAllocs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inStream bool
		src      []byte
		max      float64
	}{
		{"insert", false, sixColumnInsert(), 2},
		{"streamed insert", true, streamedInsert(), 2},
		{"stream abort", false, enc{'A'}.u32(1).u32(2), 1},
		{"stream prepare", false, enc{'p'}.u8(0).u64(1).u64(2).u64(3).u32(4).str("g"), 2}, // message, GID
	} {
		d := newTestDecoder(t, DecodeOptions{Protocol: 4}, tc.inStream)
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := d.Decode(tc.src); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > tc.max {
			t.Errorf("Decoder.Decode(%s) = %v allocs, want <= %v", tc.name, allocs, tc.max)
		}
	}
	// Opening and closing a stream block allocates only the StreamStart.
	d := newTestDecoder(t, DecodeOptions{Protocol: 4}, false)
	start, stop := enc{'S'}.u32(1234).u8(0), enc{'E'}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := d.Decode(start); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Decode(stop); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Stream Start + Stop = %v allocs, want <= 1", allocs)
	}
}

func BenchmarkDecoderInsert(b *testing.B) {
	d := newTestDecoder(b, DecodeOptions{Protocol: 4, ParallelAbort: true}, false)
	src := sixColumnInsert()
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := d.Decode(src)
		if err != nil || len(m.(*Insert).New) != 6 {
			b.Fatal(m, err)
		}
	}
}

func BenchmarkDecoderInsertStreamed(b *testing.B) {
	d := newTestDecoder(b, DecodeOptions{Protocol: 4, ParallelAbort: true}, true)
	src := streamedInsert()
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := d.Decode(src)
		if err != nil || m.(*Insert).Xid != 1240 {
			b.Fatal(m, err)
		}
	}
}

// TestStrayStreamAbortV1: PostgreSQL 18 sends a Stream Abort, unasked, to
// a protocol 1 session (helper-106: `--protocol 1` runs stopped with
// "StreamAbort needs protocol v2, v1 negotiated"); it decodes, in the
// layout without abort LSN and time, for the stream to skip.
func TestStrayStreamAbortV1(t *testing.T) {
	src := enc{'A'}.u32(900).u32(901)
	for _, decode := range []func([]byte) (Message, error){
		Decode,
		func(b []byte) (Message, error) { return newTestDecoder(t, DecodeOptions{Protocol: 1}, false).Decode(b) },
	} {
		m, err := decode(src)
		if err != nil {
			t.Fatalf("a Stream Abort on a protocol 1 stream: %v", err)
		}
		if a, ok := m.(*StreamAbort); !ok || a.Xid != 900 || a.SubXid != 901 {
			t.Errorf("decoded %#v, want the StreamAbort of 900/901", m)
		}
	}
}

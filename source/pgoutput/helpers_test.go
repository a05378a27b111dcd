package pgoutput

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/walmirror/walmirror/schema"
)

// enc builds pgoutput messages byte by byte for tests.
type enc []byte

func (e enc) u8(v uint8) enc   { return append(e, v) }
func (e enc) u16(v uint16) enc { return binary.BigEndian.AppendUint16(e, v) }
func (e enc) u32(v uint32) enc { return binary.BigEndian.AppendUint32(e, v) }
func (e enc) u64(v uint64) enc { return binary.BigEndian.AppendUint64(e, v) }
func (e enc) str(s string) enc { return append(append(e, s...), 0) }
func (e enc) ts(t time.Time) enc {
	return e.u64(uint64((t.Unix()-pgEpochUnix)*1_000_000 + int64(t.Nanosecond()/1000)))
}

func (e enc) tuple(t schema.Tuple) enc {
	e = e.u16(uint16(len(t)))
	for _, d := range t {
		e = e.u8(d.State)
		if d.State == schema.Text || d.State == Binary {
			e = append(e.u32(uint32(len(d.Data))), d.Data...)
		}
	}
	return e
}

// xid writes the transaction id a change carries inside a stream block
// (Xid != 0) and nothing outside one, as proto.c does.
func (e enc) xid(x uint32) enc {
	if x == 0 {
		return e
	}
	return e.u32(x)
}

// encode is the inverse of Decode, for round-trip tests.
func encode(m Message) []byte { return encodeWith(m, false) }

// encodeWith is the inverse of Decoder.Decode; parallelAbort is
// DecodeOptions.ParallelAbort.
func encodeWith(m Message, parallelAbort bool) []byte {
	e := enc{byte(m.Type())}
	switch m := m.(type) {
	case *Begin:
		e = e.u64(uint64(m.FinalLSN)).ts(m.CommitTime).u32(m.Xid)
	case *Commit:
		e = e.u8(m.Flags).u64(uint64(m.CommitLSN)).u64(uint64(m.EndLSN)).ts(m.CommitTime)
	case *Origin:
		e = e.u64(uint64(m.CommitLSN)).str(m.Name)
	case *Relation:
		e = e.xid(m.Xid).u32(m.RelationID).str(m.Namespace).str(m.Name).u8(m.ReplicaIdentity).u16(uint16(len(m.Columns)))
		for _, c := range m.Columns {
			e = e.u8(c.Flags).str(c.Name).u32(c.TypeID).u32(uint32(c.Typmod))
		}
	case *TypeMsg:
		e = e.xid(m.Xid).u32(m.TypeID).str(m.Namespace).str(m.Name)
	case *Insert:
		e = e.xid(m.Xid).u32(m.RelationID).u8('N').tuple(m.New)
	case *Update:
		e = e.xid(m.Xid).u32(m.RelationID)
		if m.OldKind != 0 {
			e = e.u8(m.OldKind).tuple(m.Old)
		}
		e = e.u8('N').tuple(m.New)
	case *Delete:
		e = e.xid(m.Xid).u32(m.RelationID).u8(m.OldKind).tuple(m.Old)
	case *Truncate:
		e = e.xid(m.Xid).u32(uint32(len(m.RelationIDs))).u8(m.Options)
		for _, id := range m.RelationIDs {
			e = e.u32(id)
		}
	case *LogicalMessage:
		e = e.xid(m.Xid).u8(m.Flags).u64(uint64(m.LSN)).str(m.Prefix).u32(uint32(len(m.Content)))
		e = append(e, m.Content...)
	case *StreamStart:
		e = e.u32(m.Xid)
		if m.FirstSegment {
			e = e.u8(1)
		} else {
			e = e.u8(0)
		}
	case *StreamStop:
	case *StreamCommit:
		e = e.u32(m.Xid).u8(m.Flags).u64(uint64(m.CommitLSN)).u64(uint64(m.EndLSN)).ts(m.CommitTime)
	case *StreamAbort:
		e = e.u32(m.Xid).u32(m.SubXid)
		if parallelAbort {
			e = e.u64(uint64(m.AbortLSN)).ts(m.AbortTime)
		}
	case *BeginPrepare:
		e = e.u64(uint64(m.PrepareLSN)).u64(uint64(m.EndLSN)).ts(m.PrepareTime).u32(m.Xid).str(m.GID)
	case *Prepare:
		e = e.u8(m.Flags).u64(uint64(m.PrepareLSN)).u64(uint64(m.EndLSN)).ts(m.PrepareTime).u32(m.Xid).str(m.GID)
	case *StreamPrepare:
		e = e.u8(m.Flags).u64(uint64(m.PrepareLSN)).u64(uint64(m.EndLSN)).ts(m.PrepareTime).u32(m.Xid).str(m.GID)
	case *CommitPrepared:
		e = e.u8(m.Flags).u64(uint64(m.CommitLSN)).u64(uint64(m.EndLSN)).ts(m.CommitTime).u32(m.Xid).str(m.GID)
	case *RollbackPrepared:
		e = e.u8(m.Flags).u64(uint64(m.PrepareEndLSN)).u64(uint64(m.RollbackEndLSN)).
			ts(m.PrepareTime).ts(m.RollbackTime).u32(m.Xid).str(m.GID)
	default:
		panic(fmt.Sprintf("encode: unexpected %T", m))
	}
	return e
}

func text(s string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(s)} }

var (
	null      = schema.Datum{State: schema.Null}
	unchanged = schema.Datum{State: schema.Unchanged}
	commitTS  = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
)

// sampleMessages is one valid message of each type (and the interesting
// variants), each with its encoding built by hand.
func sampleMessages() []struct {
	name string
	src  []byte
	want Message
} {
	return []struct {
		name string
		src  []byte
		want Message
	}{
		{"begin", enc{'B'}.u64(0x16_B374D848).ts(commitTS).u32(771),
			&Begin{FinalLSN: 0x16_B374D848, CommitTime: commitTS, Xid: 771}},
		{"commit", enc{'C'}.u8(0).u64(0x16_B374D848).u64(0x16_B374D878).ts(commitTS),
			&Commit{CommitLSN: 0x16_B374D848, EndLSN: 0x16_B374D878, CommitTime: commitTS}},
		{"origin", enc{'O'}.u64(0x1_00000010).str("node_a"),
			&Origin{CommitLSN: 0x1_00000010, Name: "node_a"}},
		{"relation", enc{'R'}.u32(16384).str("public").str("accounts").u8('d').u16(3).
			u8(1).str("id").u32(20).u32(0xFFFFFFFF).
			u8(0).str("name").u32(1043).u32(68).
			u8(0).str("note").u32(25).u32(0xFFFFFFFF),
			&Relation{RelationID: 16384, Namespace: "public", Name: "accounts", ReplicaIdentity: 'd',
				Columns: []RelationColumn{
					{Flags: 1, Name: "id", TypeID: 20, Typmod: -1},
					{Name: "name", TypeID: 1043, Typmod: 68},
					{Name: "note", TypeID: 25, Typmod: -1},
				}}},
		{"relation no columns", enc{'R'}.u32(7).str("s").str("t").u8('n').u16(0),
			&Relation{RelationID: 7, Namespace: "s", Name: "t", ReplicaIdentity: 'n', Columns: []RelationColumn{}}},
		{"type", enc{'Y'}.u32(90001).str("public").str("mood"),
			&TypeMsg{TypeID: 90001, Namespace: "public", Name: "mood"}},
		{"insert n/u/t", enc{'I'}.u32(16384).u8('N').u16(4).
			u8('t').u32(2).append("42").
			u8('n').
			u8('u').
			u8('t').u32(0),
			&Insert{RelationID: 16384, New: schema.Tuple{text("42"), null, unchanged, text("")}}},
		{"insert binary", enc{'I'}.u32(1).u8('N').u16(1).u8('b').u32(4).u32(42),
			&Insert{RelationID: 1, New: schema.Tuple{{State: Binary, Data: []byte{0, 0, 0, 42}}}}},
		{"update no old", enc{'U'}.u32(16384).u8('N').tuple(schema.Tuple{text("1"), text("bob")}),
			&Update{RelationID: 16384, New: schema.Tuple{text("1"), text("bob")}}},
		{"update K", enc{'U'}.u32(16384).u8('K').tuple(schema.Tuple{text("1"), null}).
			u8('N').tuple(schema.Tuple{text("2"), text("bob")}),
			&Update{RelationID: 16384, OldKind: 'K', Old: schema.Tuple{text("1"), null},
				New: schema.Tuple{text("2"), text("bob")}}},
		{"update O", enc{'U'}.u32(16384).u8('O').tuple(schema.Tuple{text("1"), text("al"), text("x")}).
			u8('N').tuple(schema.Tuple{text("1"), text("bob"), unchanged}),
			&Update{RelationID: 16384, OldKind: 'O', Old: schema.Tuple{text("1"), text("al"), text("x")},
				New: schema.Tuple{text("1"), text("bob"), unchanged}}},
		{"delete K", enc{'D'}.u32(16384).u8('K').tuple(schema.Tuple{text("1"), null}),
			&Delete{RelationID: 16384, OldKind: 'K', Old: schema.Tuple{text("1"), null}}},
		{"delete O", enc{'D'}.u32(16384).u8('O').tuple(schema.Tuple{text("1"), text("al")}),
			&Delete{RelationID: 16384, OldKind: 'O', Old: schema.Tuple{text("1"), text("al")}}},
		{"truncate two", enc{'T'}.u32(2).u8(TruncateCascade | TruncateRestartIdentity).u32(16384).u32(16390),
			&Truncate{Options: 3, RelationIDs: []uint32{16384, 16390}}},
		{"message", append(enc{'M'}.u8(1).u64(0x2_00000000).str("walmirror").u32(5), "hello"...),
			&LogicalMessage{Flags: 1, LSN: 0x2_00000000, Prefix: "walmirror", Content: []byte("hello")}},
	}
}

func (e enc) append(s string) enc { return append(e, s...) }

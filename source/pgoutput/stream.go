package pgoutput

import (
	"fmt"
	"time"

	"github.com/walmirror/walmirror/lsn"
)

// StreamStart opens a stream block: a chunk of the in-progress transaction
// Xid (protocol v2+, slot started with streaming on or parallel). Until the
// matching StreamStop, Relation, Type, Insert, Update, Delete, Truncate and
// Message carry the xid of the (sub)transaction that made each change.
type StreamStart struct {
	Xid          uint32 // top-level transaction
	FirstSegment bool   // the first block of Xid: discard nothing staged before
}

// StreamStop closes the current stream block.
type StreamStop struct{}

// StreamCommit commits a streamed transaction (sent outside stream blocks).
type StreamCommit struct {
	Xid        uint32
	Flags      uint8 // currently unused (0)
	CommitLSN  lsn.LSN
	EndLSN     lsn.LSN // end of the commit record: where to resume from
	CommitTime time.Time
}

// StreamAbort aborts a streamed transaction (SubXid == Xid) or one of its
// subtransactions (SubXid != Xid); sent outside stream blocks.
//
// AbortLSN and AbortTime are only sent when the slot was started with
// streaming 'parallel' (protocol v4+, DecodeOptions.ParallelAbort); otherwise
// they are zero.
type StreamAbort struct {
	Xid       uint32 // top-level transaction
	SubXid    uint32 // the aborted (sub)transaction
	AbortLSN  lsn.LSN
	AbortTime time.Time
}

// IsTopLevel reports whether the whole transaction aborted, not only one of
// its subtransactions.
func (m *StreamAbort) IsTopLevel() bool { return m.Xid == m.SubXid }

func (*StreamStart) Type() MessageType  { return MsgStreamStart }
func (*StreamStop) Type() MessageType   { return MsgStreamStop }
func (*StreamCommit) Type() MessageType { return MsgStreamCommit }
func (*StreamAbort) Type() MessageType  { return MsgStreamAbort }

func (r *reader) streamStart() (Message, error) {
	if err := r.need("body", 5); err != nil {
		return nil, err
	}
	m := &StreamStart{Xid: r.u32()}
	if m.Xid == 0 {
		return nil, r.fail("xid", 1, ErrInvalid, "invalid transaction id 0")
	}
	switch f := r.u8(); f {
	case 0:
	case 1:
		m.FirstSegment = true
	default:
		return nil, r.fail("first segment flag", r.off-1, ErrInvalid, fmt.Sprintf("got %d, want 0 or 1", f))
	}
	return m, nil
}

func (r *reader) streamCommit() (Message, error) {
	if err := r.need("body", 29); err != nil {
		return nil, err
	}
	m := &StreamCommit{}
	m.Xid = r.u32()
	m.Flags = r.u8()
	m.CommitLSN = lsn.LSN(r.u64())
	m.EndLSN = lsn.LSN(r.u64())
	m.CommitTime = pgTime(int64(r.u64()))
	return m, nil
}

func (r *reader) streamAbort(parallel bool) (Message, error) {
	if err := r.need("xid and subxid", 8); err != nil {
		return nil, err
	}
	m := &StreamAbort{Xid: r.u32(), SubXid: r.u32()}
	if parallel {
		if err := r.need("abort LSN and time", 16); err != nil {
			return nil, err
		}
		m.AbortLSN = lsn.LSN(r.u64())
		m.AbortTime = pgTime(int64(r.u64()))
	}
	return m, nil
}

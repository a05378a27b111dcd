package pgoutput

import (
	"time"

	"github.com/walmirror/walmirror/lsn"
)

// BeginPrepare starts a transaction that is being prepared for two-phase
// commit (protocol v3+, slot started with two_phase). Its changes follow
// without an xid, then a Prepare.
type BeginPrepare struct {
	PrepareLSN  lsn.LSN // LSN of the PREPARE TRANSACTION record
	EndLSN      lsn.LSN // end of that record
	PrepareTime time.Time
	Xid         uint32
	GID         string // the global transaction identifier
}

// Prepare ends the changes of a transaction prepared with PREPARE
// TRANSACTION. It is decided later by CommitPrepared or RollbackPrepared.
type Prepare struct {
	Flags       uint8 // currently unused (0)
	PrepareLSN  lsn.LSN
	EndLSN      lsn.LSN
	PrepareTime time.Time
	Xid         uint32
	GID         string
}

// StreamPrepare prepares a streamed transaction: its changes were sent in
// stream blocks, with no BeginPrepare (protocol v3+, streaming and
// two_phase). The fields are those of Prepare.
type StreamPrepare struct {
	Flags       uint8 // currently unused (0)
	PrepareLSN  lsn.LSN
	EndLSN      lsn.LSN
	PrepareTime time.Time
	Xid         uint32
	GID         string
}

// CommitPrepared is COMMIT PREPARED of a transaction sent earlier with
// Prepare or StreamPrepare.
type CommitPrepared struct {
	Flags      uint8 // currently unused (0)
	CommitLSN  lsn.LSN
	EndLSN     lsn.LSN // end of the commit record: where to resume from
	CommitTime time.Time
	Xid        uint32
	GID        string
}

// RollbackPrepared is ROLLBACK PREPARED of a transaction sent earlier with
// Prepare or StreamPrepare.
type RollbackPrepared struct {
	Flags          uint8   // currently unused (0)
	PrepareEndLSN  lsn.LSN // end of the prepared transaction's PREPARE record
	RollbackEndLSN lsn.LSN // end of the rollback record
	PrepareTime    time.Time
	RollbackTime   time.Time
	Xid            uint32
	GID            string
}

func (*BeginPrepare) Type() MessageType     { return MsgBeginPrepare }
func (*Prepare) Type() MessageType          { return MsgPrepare }
func (*StreamPrepare) Type() MessageType    { return MsgStreamPrepare }
func (*CommitPrepared) Type() MessageType   { return MsgCommitPrepared }
func (*RollbackPrepared) Type() MessageType { return MsgRollbackPrepared }

func (r *reader) beginPrepare() (Message, error) {
	if err := r.need("body", 28); err != nil {
		return nil, err
	}
	m := &BeginPrepare{}
	m.PrepareLSN = lsn.LSN(r.u64())
	m.EndLSN = lsn.LSN(r.u64())
	m.PrepareTime = pgTime(int64(r.u64()))
	m.Xid = r.u32()
	var err error
	if m.GID, err = r.str("gid"); err != nil {
		return nil, err
	}
	return m, nil
}

// prepare decodes Prepare and StreamPrepare, which proto.c writes with the
// same function (logicalrep_write_prepare_common).
func (r *reader) prepare() (Message, error) {
	if err := r.need("body", 29); err != nil {
		return nil, err
	}
	var p Prepare
	p.Flags = r.u8()
	p.PrepareLSN = lsn.LSN(r.u64())
	p.EndLSN = lsn.LSN(r.u64())
	p.PrepareTime = pgTime(int64(r.u64()))
	p.Xid = r.u32()
	var err error
	if p.GID, err = r.str("gid"); err != nil {
		return nil, err
	}
	if r.typ == MsgStreamPrepare {
		m := StreamPrepare(p)
		return &m, nil
	}
	m := p
	return &m, nil
}

func (r *reader) commitPrepared() (Message, error) {
	if err := r.need("body", 29); err != nil {
		return nil, err
	}
	m := &CommitPrepared{}
	m.Flags = r.u8()
	m.CommitLSN = lsn.LSN(r.u64())
	m.EndLSN = lsn.LSN(r.u64())
	m.CommitTime = pgTime(int64(r.u64()))
	m.Xid = r.u32()
	var err error
	if m.GID, err = r.str("gid"); err != nil {
		return nil, err
	}
	return m, nil
}

func (r *reader) rollbackPrepared() (Message, error) {
	if err := r.need("body", 37); err != nil {
		return nil, err
	}
	m := &RollbackPrepared{}
	m.Flags = r.u8()
	m.PrepareEndLSN = lsn.LSN(r.u64())
	m.RollbackEndLSN = lsn.LSN(r.u64())
	m.PrepareTime = pgTime(int64(r.u64()))
	m.RollbackTime = pgTime(int64(r.u64()))
	m.Xid = r.u32()
	var err error
	if m.GID, err = r.str("gid"); err != nil {
		return nil, err
	}
	return m, nil
}

package source

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/walmirror/walmirror/internal/faultpoint"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// Streamed transactions (protocol v2+, streaming 'on' or 'parallel'): the
// server sends a transaction larger than logical_decoding_work_mem while it
// is still in progress, in stream blocks, instead of spilling it to disk on
// the source until it commits. The consumer (the apply engine) sees none of
// this: the changes go to a spill file (spill.go) as they arrive, and at
// Stream Commit they are handed over as one ordinary transaction, Begin,
// changes and Commit, exactly as protocol 1 would have sent it at that
// point of the stream. Relation and Type messages sent inside a block are
// replayed in their place too. Transactions that are not streamed, sent
// between stream blocks, are handed over as they arrive.

// initStreaming sets up the decoder and the spill directory for a stream
// of protocol v2+. START_REPLICATION has succeeded, so the slot is this
// process's: whatever an earlier run left in the directory is removed.
func (st *Stream) initStreaming(s *Source) error {
	opts := pgoutput.DecodeOptions{Protocol: s.protocol, ParallelAbort: s.protocol >= 4}
	var err error
	if st.dec, err = pgoutput.NewDecoder(opts); err != nil {
		return permanent("start replication", "", err)
	}
	st.replayDec, _ = pgoutput.NewDecoder(opts)
	st.spill, err = openSpill(spillDirName(s.cfg.SpillDir, s.systemID, s.dbName, s.cfg.Slot))
	if err != nil {
		return permanent("start replication", "set TMPDIR (or Config.SpillDir) to a writable directory", err)
	}
	return nil
}

// streamed handles one message of a protocol v2+ stream.
func (st *Stream) streamed(ctx context.Context, xld pglogrepl.XLogData, status *statusReporter, out *handover) (Event, bool, error) {
	wal := xld.WALData
	if xid, open := st.dec.Stream(); open {
		if subxid, ok := spilledXid(wal, xid); ok {
			// Written as received: decoded once, at commit, if it commits.
			if err := st.spill.write(xid, subxid, wal); err != nil {
				return Event{}, false, permanent("spill streamed transaction", "", err)
			}
			return Event{}, false, nil
		}
	}
	data := st.carve(len(wal))
	copy(data, wal)
	dm, err := st.dec.Decode(data)
	if err != nil {
		return Event{}, false, permanent("decode pgoutput message", "", fmt.Errorf("at %s: %w", lsn.LSN(xld.WALStart), err))
	}
	switch m := dm.(type) {
	case *pgoutput.StreamStart:
		if err := st.spill.start(m.Xid, m.FirstSegment, lsn.LSN(xld.WALStart)); err != nil {
			return Event{}, false, permanent("spill streamed transaction", "", err)
		}
		st.floor.Store(uint64(st.spill.oldest()))
	case *pgoutput.StreamStop:
		faultpoint.Hit("source.stream-stop")
	case *pgoutput.StreamAbort:
		st.spill.abort(m.Xid, m.SubXid)
		st.floor.Store(uint64(st.spill.oldest()))
	case *pgoutput.StreamCommit:
		// Where the time after a large transaction's commit goes: until
		// this message, the server's; from it, walmirror's.
		st.log.Debug("streamed transaction committed", "xid", m.Xid, "commit_lsn", m.CommitLSN)
		began := time.Now()
		n, err := st.replay(ctx, m, status, out)
		st.floor.Store(uint64(st.spill.oldest()))
		if err != nil {
			return Event{}, false, err
		}
		st.log.Debug("streamed transaction handed over", "xid", m.Xid, "messages", n, "took", time.Since(began).Round(time.Millisecond))
		faultpoint.Hit("source.stream-replayed")
	case *pgoutput.BeginPrepare, *pgoutput.Prepare, *pgoutput.CommitPrepared,
		*pgoutput.RollbackPrepared, *pgoutput.StreamPrepare:
		// walmirror never asks for two_phase.
		return Event{}, false, permanent("replication stream", "", fmt.Errorf("unexpected two-phase message %s at %s", dm.Type(), lsn.LSN(xld.WALStart)))
	default:
		return Event{Msg: dm}, true, nil
	}
	return Event{}, false, nil
}

// spilledXid reports whether msg, received inside the stream block of
// transaction xid, is a change to spill, and the (sub)transaction it
// belongs to. Anything else (Stream Stop, or a message out of place, whose
// error the decoder gives) is decoded as it comes.
func spilledXid(msg []byte, xid uint32) (uint32, bool) {
	if len(msg) == 0 {
		return 0, false
	}
	switch pgoutput.MessageType(msg[0]) {
	case pgoutput.MsgRelation, pgoutput.MsgType, pgoutput.MsgInsert, pgoutput.MsgUpdate,
		pgoutput.MsgDelete, pgoutput.MsgTruncate, pgoutput.MsgMessage:
		if len(msg) < 5 {
			return 0, false
		}
		return binary.BigEndian.Uint32(msg[1:5]), true
	case pgoutput.MsgOrigin: // no xid of its own: the transaction's
		return xid, true
	}
	return 0, false
}

// replay hands the streamed transaction m commits over as an ordinary one:
// Begin, every change not in an aborted subtransaction, in order, Commit.
// Status updates keep going out while a long file is read back and while
// the consumer is busy.
func (st *Stream) replay(ctx context.Context, m *pgoutput.StreamCommit, status *statusReporter, out *handover) (messages int, err error) {
	emit := func(msg pgoutput.Message) error {
		out.batch = append(out.batch, Event{Msg: msg})
		if len(out.batch) == eventBatch {
			return out.flush(ctx)
		}
		return nil
	}
	if err := emit(&pgoutput.Begin{FinalLSN: m.CommitLSN, CommitTime: m.CommitTime, Xid: m.Xid}); err != nil {
		return 0, err
	}
	// The replay decoder is in a stream block of m.Xid: the changes carry
	// their xid, as they did when received.
	st.replayDec.Reset()
	var start [6]byte
	start[0] = byte(pgoutput.MsgStreamStart)
	binary.BigEndian.PutUint32(start[1:5], m.Xid)
	if _, err := st.replayDec.Decode(start[:]); err != nil {
		return 0, permanent("replay streamed transaction", "", err)
	}
	err = st.spill.replay(m.Xid, st.carve, func(raw []byte) error {
		// raw is carved for this message alone: the decoded message may
		// alias it.
		dm, err := st.replayDec.Decode(raw)
		if err != nil {
			return permanent("decode pgoutput message", "", fmt.Errorf("streamed transaction %d committed at %s: %w", m.Xid, m.CommitLSN, err))
		}
		if err := status.maybe(false, false); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		messages++
		return emit(dm)
	})
	if err != nil {
		var se *Error
		if !errors.As(err, &se) && ctx.Err() == nil {
			err = permanent("replay streamed transaction", "", err)
		}
		return messages, err
	}
	return messages, emit(&pgoutput.Commit{CommitLSN: m.CommitLSN, EndLSN: m.EndLSN, CommitTime: m.CommitTime})
}

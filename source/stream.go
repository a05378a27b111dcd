package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walmirror/walmirror/internal/faultpoint"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// Event is one item of the replication stream, in server order: a decoded
// pgoutput message, or (Msg nil) a keepalive carrying the position the
// server's decoder has reached.
type Event struct {
	Msg    pgoutput.Message
	WALEnd lsn.LSN // keepalives: everything before it has been sent
}

// Status updates keep the server from timing out (wal_sender_timeout defaults
// to 60s); an advanced flush position is reported promptly.
const (
	statusInterval = 10 * time.Second
	statusMinGap   = 200 * time.Millisecond
	receiveWake    = time.Second
	// replyPace spaces the keepalives walmirror asks for. Waiting for a
	// stop position, the engine asks again after every keepalive; unpaced,
	// that was a ping-pong that kept a core busy on each side (205,006
	// keepalives in the 8.7 s an idle server took to flush its last WAL).
	replyPace = 10 * time.Millisecond
)

// Stream receives the replication stream on its own goroutine and delivers it
// on Events, in batches. Its owner calls Confirm with durably applied
// positions and Close when done.
type Stream struct {
	conn    *pgconn.PgConn
	events  chan []Event
	flushed atomic.Uint64 // durably applied in the target
	// floor caps what Confirm records while transactions stream: where the
	// oldest of them started (0: none). See Confirm.
	floor atomic.Uint64
	reply atomic.Bool // a status with reply-requested is wanted
	// asked is when the last status with reply-requested went out (unix
	// nanoseconds): requests are paced (replyPace).
	asked   atomic.Int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	err     error         // set before events is closed
	done    chan struct{} // closed when the receive goroutine ends, before events
	backlog atomic.Int64  // events received and waiting for room in events
	written lsn.LSN
	arena   []byte        // current block for message copies (receive goroutine only)
	carved  int64         // bytes carved so far (receive goroutine only)
	timeout time.Duration // silence after which the connection is presumed dead

	// Protocol v2+ (receive goroutine only): dec tracks stream blocks,
	// spill holds the streamed transactions until they end, replayDec
	// decodes their changes at commit.
	dec       *pgoutput.Decoder
	replayDec *pgoutput.Decoder
	spill     *spill
	log       *slog.Logger
}

// SlotAheadError: the slot was confirmed past the position a guarded
// stream was to start from. The copy confirms only what it stored, so
// someone else moved the slot (dropped it and made one of the same name,
// or advanced it): the server would start at the slot's position and skip
// the changes between, which the copy does not have.
type SlotAheadError struct {
	Slot            string
	From, Confirmed lsn.LSN
}

func (e *SlotAheadError) Error() string {
	return fmt.Sprintf("replication slot %q is confirmed up to %s, past the copy's position %s, and this copy never confirmed more than it stored: the slot was dropped and made again (another copy using the same --slot?) or advanced (pg_replication_slot_advance), and the changes between are not in the copy",
		e.Slot, e.Confirmed, e.From)
}

// Start begins streaming from the slot at from (the target's stored
// position). With guard (schema.State.SlotGuard) the slot must not be
// confirmed past from: that is checked on the replication connection just
// before the stream starts and holds the slot (*SlotAheadError).
func (s *Source) Start(ctx context.Context, from lsn.LSN, guard bool) (*Stream, error) {
	sctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	conn, err := s.replicationConn(sctx)
	if err != nil {
		return nil, timeoutCause(sctx, err)
	}
	if guard {
		if err := s.checkSlotAt(sctx, conn, from); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	err = pglogrepl.StartReplication(sctx, conn, s.cfg.Slot, pglogrepl.LSN(from),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: s.pluginArgs()})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, classify("start replication from slot "+s.cfg.Slot, timeoutCause(sctx, err))
	}
	st := &Stream{conn: conn, events: make(chan []Event, eventBuffer/eventBatch), done: make(chan struct{}), written: from, timeout: s.cfg.timeout(), log: s.log}
	if s.protocol >= 2 {
		if err := st.initStreaming(s); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	st.flushed.Store(uint64(from))
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.cancel = cancel
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		st.err = st.receive(lctx)
		close(st.done)
		close(st.events)
	}()
	return st, nil
}

// checkSlotAt fails with *SlotAheadError when the slot is confirmed past
// from. A missing or busy slot is left to START_REPLICATION's own error.
func (s *Source) checkSlotAt(ctx context.Context, conn *pgconn.PgConn, from lsn.LSN) error {
	// A slot another connection holds is START_REPLICATION's to refuse
	// (busy): its holder may confirm more at any moment.
	res, err := conn.Exec(ctx, "SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_catalog.pg_replication_slots WHERE NOT active AND slot_name = "+quoteLiteral(s.cfg.Slot)).ReadAll()
	if err != nil {
		return classify("check replication slot "+s.cfg.Slot, timeoutCause(ctx, err))
	}
	if len(res) == 0 || len(res[0].Rows) == 0 || len(res[0].Rows[0][0]) == 0 {
		return nil
	}
	confirmed, err := lsn.Parse(string(res[0].Rows[0][0]))
	if err != nil {
		return fmt.Errorf("check replication slot %s: %w", s.cfg.Slot, err)
	}
	if confirmed > from {
		return &SlotAheadError{Slot: s.cfg.Slot, From: from, Confirmed: confirmed}
	}
	return nil
}

// Events delivers the stream in batches of events, in order; it is closed
// when the stream ends (see Err). A batch holds what was received without
// waiting (at most eventBatch events): it is handed over before any read
// that may block, so nothing waits in it while the server is silent. The
// receiver owns each batch it takes.
func (st *Stream) Events() <-chan []Event { return st.events }

// A channel operation per message was a tenth of walmirror's CPU; one per
// batch is not. eventBuffer events may wait for the consumer.
const (
	eventBatch  = 128
	eventBuffer = 2048
)

// Err is why the stream ended; valid once Events is closed.
func (st *Stream) Err() error { return st.err }

// Done is closed when the stream has ended (Err is then valid), while
// events may still wait in Events: the consumer's calls to the source
// (a publication listing, a chunk) end with it rather than wait out their
// own deadline on a network the stream found dead.
func (st *Stream) Done() <-chan struct{} { return st.done }

// Backlog is how many received events wait for room in Events: a consumer
// that finds Events empty while some do is not caught up.
func (st *Stream) Backlog() int { return int(st.backlog.Load()) }

// Confirm records that everything before l is durably applied in the target.
// Only such positions are ever reported to the server as flushed.
//
// While a transaction streams (protocol v2+), positions past where it
// started are recorded as that start: after a restart the server streams a
// transaction only from its start position on, and would spill on the
// source the part of one that began before it.
func (st *Stream) Confirm(l lsn.LSN) {
	if f := lsn.LSN(st.floor.Load()); f != 0 && l > f {
		l = f
	}
	for {
		cur := st.flushed.Load()
		if uint64(l) <= cur || st.flushed.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// Floor is where the oldest transaction streaming now started (protocol
// v2+), 0 when none: Confirm records no position past it, and a copy that
// stores one past it makes the server spill that transaction at the next
// start (it streams one only from the start position on).
func (st *Stream) Floor() lsn.LSN { return lsn.LSN(st.floor.Load()) }

// RequestReply asks the server for a keepalive soon (used while waiting for
// the decoder position to pass a stop LSN).
func (st *Stream) RequestReply() {
	if st.reply.Swap(true) {
		return
	}
	// Wake the receive loop from its read, so the request goes out as soon
	// as the pace allows rather than at its next wake (a second at most); a
	// wake lost to the loop re-arming its deadline is only that delay.
	if nc := st.conn.Conn(); nc != nil {
		_ = nc.SetReadDeadline(st.replyDue()) // in the past: at once
	}
}

// replyDue is when a requested keepalive may be asked for: replyPace after
// the last request.
func (st *Stream) replyDue() time.Time {
	return time.Unix(0, st.asked.Load()).Add(replyPace)
}

// Close stops receiving, sends a last status update with the confirmed
// position and closes the connection.
func (st *Stream) Close(ctx context.Context) error {
	st.cancel()
	st.wg.Wait()
	if st.spill != nil {
		// Nothing in it is needed any more: the server sends every
		// transaction not confirmed again.
		_ = st.spill.close()
	}
	if st.conn.IsClosed() {
		// A failed read already closed it, and pgconn is still sending
		// Terminate on a goroutine of its own: writing now would race with it.
		return nil
	}
	err := st.sendStatus(false)
	if cerr := st.conn.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// carve returns n bytes for one message. Blocks are never reused: a block
// lives until every message carved from it has been applied and dropped.
func (st *Stream) carve(n int) []byte {
	const block = 64 << 10
	if n > block/4 {
		st.carved += int64(n)
		return make([]byte, n)
	}
	if cap(st.arena)-len(st.arena) < n {
		st.arena = make([]byte, 0, block)
	}
	st.carved += int64(n)
	b := st.arena[len(st.arena) : len(st.arena)+n : len(st.arena)+n]
	st.arena = st.arena[:len(st.arena)+n]
	return b
}

func (st *Stream) sendStatus(replyRequested bool) error {
	f := lsn.LSN(st.flushed.Load())
	w := max(st.written, f)
	return pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(w),
		WALFlushPosition: pglogrepl.LSN(f), // explicit: the library would default it to the write position
		WALApplyPosition: pglogrepl.LSN(f),
		ReplyRequested:   replyRequested,
	})
}

// receive is the stream's goroutine: it reads the server's messages, hands
// their events over in batches and reports the confirmed position, until
// ctx is done or the stream fails.
func (st *Stream) receive(ctx context.Context) error {
	status := statusReporter{st: st}
	tick := time.NewTicker(statusMinGap)
	defer tick.Stop()
	quiet := st.watchSilence(ctx)
	defer quiet.stop()
	out := handover{st: st, status: &status, tick: tick, quiet: quiet, batch: make([]Event, 0, eventBatch)}
	if err := quiet.start(); err != nil {
		return err
	}
	woke := true
	for {
		if err := status.maybe(false, woke); err != nil {
			return err
		}
		woke = false
		if out.due() {
			if err := out.flush(ctx); err != nil {
				return err
			}
		} else if len(out.pending) > 0 {
			out.offer()
		}
		msg, err := st.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !pgconn.Timeout(err) {
				return classify("receive replication stream", err)
			}
			if err := quiet.woke(len(out.pending) > 0); err != nil {
				return err
			}
			woke = true
			continue
		}
		ev, ok, err := st.event(ctx, msg, &status, &out)
		if err != nil {
			return err
		}
		if ok {
			out.batch = append(out.batch, ev)
		}
		// A flag, not a clock read per message; the next wake turns it into a
		// time, so waiting for the engine to take events is not the server's
		// silence either.
		quiet.heard = true
	}
}

// statusReporter decides when the receive loop sends a standby status
// update: when forced or asked for, every statusInterval, and statusMinGap
// after the confirmed position moved.
type statusReporter struct {
	st                      *Stream
	lastSent                time.Time
	lastFlush, lastFlushHit uint64
	// Reading the clock for every message was 5% of walmirror's CPU: while
	// messages stream in, it is read every 64th call (forced and requested
	// statuses, the ticker and wakes from silence read it at once).
	calls uint32
}

// maybe sends a status update if one is due; clock says to look at the
// clock now rather than on the 64th call.
func (r *statusReporter) maybe(force, clock bool) error {
	st := r.st
	reply := st.reply.Load()
	if reply && !force && time.Now().Before(st.replyDue()) {
		reply = false // paced: the wake RequestReply armed sends it
	}
	reply = reply && st.reply.Swap(false)
	r.calls++
	if !force && !reply && !clock && r.calls%64 != 0 {
		return nil
	}
	f := st.flushed.Load()
	if force || reply || time.Since(r.lastSent) >= statusInterval || (f != r.lastFlush && time.Since(r.lastSent) >= statusMinGap) {
		if err := st.sendStatus(reply); err != nil {
			return classify("send standby status", err)
		}
		if reply {
			st.asked.Store(time.Now().UnixNano())
		}
		r.lastSent, r.lastFlush = time.Now(), f
		if f != r.lastFlushHit {
			r.lastFlushHit = f
			faultpoint.Hit("source.flush-reported")
		}
	}
	return nil
}

// handover collects events into batches and hands them to the consumer.
// Batches the consumer has had no room for during pendingAfter wait in
// pending while the loop goes on reading (up to pendingEvents events or
// pendingBytes of messages), so that a consumer busy with something else (a publication listing, a
// chunk of an online copy) does not stop the loop from measuring the
// server's silence: a network black hole then went unnoticed until the
// consumer's own call timed out, 10 times --source-timeout later.
type handover struct {
	st     *Stream
	status *statusReporter
	tick   *time.Ticker // wakes a blocked handover to report status meanwhile
	quiet  *silence
	batch  []Event
	// pending batches wait for room in events, oldest first; their
	// events and bytes are counted.
	pending      []queued
	pendingN     int
	pendingBytes int64
	carvedAt     int64 // st.carved when the last batch was taken
}

// queued is a batch in handover.pending and the bytes its messages hold.
type queued struct {
	events []Event
	size   int64
}

const (
	pendingEvents = 4096
	pendingBytes  = 8 << 20
	// pendingWake is how soon the loop offers waiting batches again when
	// the server is silent.
	pendingWake = 2 * time.Millisecond
	// pendingAfter is how long a batch waits for the consumer before the
	// loop reads on (rounded up to statusMinGap ticks).
	pendingAfter = 300 * time.Millisecond
)

// due reports whether the batch goes to the consumer before the next read:
// it is full, or that read may block (no whole message header is buffered).
// (A batch cut like a transaction's commit would make the consumer think it
// had caught up after every transaction, and commit each one on its own.)
func (h *handover) due() bool {
	return len(h.batch) == eventBatch || len(h.batch) > 0 && h.st.conn.Frontend().ReadBufferLen() < 5
}

// flush hands the batch over, or queues it behind the batches already
// waiting, and starts a new one. Over the bounds it waits for the
// consumer, sending status updates meanwhile.
func (h *handover) flush(ctx context.Context) error {
	if len(h.batch) == 0 {
		return nil
	}
	b := h.batch
	h.batch = make([]Event, 0, eventBatch)
	size := h.st.carved - h.carvedAt
	h.carvedAt = h.st.carved
	if len(h.pending) == 0 {
		select {
		case h.st.events <- b: // the common case, without a timer in the select
			return nil
		default:
		}
		// The consumer is busy. Applying what came before (catching up),
		// it takes the batch soon: wait, so the server is held back by
		// the network rather than decoding ahead for a consumer that
		// cannot keep up (on a machine short of CPU, reading ahead at once
		// made DuckDB's lag about three times longer). Busy with
		// something else for longer, it gets the batch later: reading on.
		blocked := time.Now()
		// Time spent waiting for the consumer is not the server's silence
		// (also when a wake had cut a message short just before).
		defer func() { h.quiet.heard = true }()
		for waiting := true; waiting; {
			select {
			case h.st.events <- b:
				return nil
			case <-h.tick.C:
				if err := h.status.maybe(false, true); err != nil {
					return err
				}
				waiting = time.Since(blocked) < pendingAfter
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Wake soon to offer it again, also when the server says nothing.
		if err := h.quiet.arm(pendingWake); err != nil {
			return err
		}
	}
	if n := len(h.pending); n > 0 && len(h.pending[n-1].events)+len(b) <= eventBatch {
		// Small batches (one per read while the server trickles) are
		// joined: fewer, fuller batches for the consumer.
		last := &h.pending[n-1]
		last.events, last.size = append(last.events, b...), last.size+size
	} else {
		h.pending = append(h.pending, queued{b, size})
	}
	h.pendingN += len(b)
	h.pendingBytes += size
	h.st.backlog.Store(int64(h.pendingN))
	h.offer()
	if h.pendingN > pendingEvents || h.pendingBytes > pendingBytes {
		defer func() { h.quiet.heard = true }() // waiting is not silence
	}
	for h.pendingN > pendingEvents || h.pendingBytes > pendingBytes {
		n := int64(len(h.pending[0].events))
		h.st.backlog.Add(-n) // before the consumer can take the batch
		select {
		case h.st.events <- h.pending[0].events:
			h.shift()
		case <-h.tick.C: // the consumer is busy: keep the server informed meanwhile
			h.st.backlog.Add(n)
			if err := h.status.maybe(false, true); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// offer hands waiting batches over while the consumer has room.
func (h *handover) offer() {
	for len(h.pending) > 0 {
		// Counted out before the consumer can take the batch: one that
		// finds the count above zero after taking the last is not idle,
		// and would leave its target transaction open until the next
		// message.
		n := int64(len(h.pending[0].events))
		h.st.backlog.Add(-n)
		select {
		case h.st.events <- h.pending[0].events:
			h.shift()
		default:
			h.st.backlog.Add(n)
			return
		}
	}
}

func (h *handover) shift() {
	h.pendingN -= len(h.pending[0].events)
	h.pendingBytes -= h.pending[0].size
	h.pending[0] = queued{}
	h.pending = h.pending[1:]
	if len(h.pending) == 0 {
		h.pending = nil // let the backing array go
	}
}

// silence wakes the receive loop by read deadlines on the socket, to send
// status updates, and tells from them how long the server has said nothing.
// Like PostgreSQL's walreceiver: after half the timeout without a word from
// the server, it asks for a keepalive; after the whole timeout, the
// connection is presumed dead (a network black hole gives no error).
// A per-message context would cost a timer and a watcher per message;
// pgconn keeps the connection (and any partly read message) on a timeout.
type silence struct {
	st        *Stream
	netConn   net.Conn
	stopWatch func() bool
	lastHeard time.Time
	heard     bool // messages came since the last wake
	pinged    bool // a keepalive was asked for in this silence
}

// watchSilence makes the end of ctx wake a blocked read; stop undoes it.
func (st *Stream) watchSilence(ctx context.Context) *silence {
	netConn := st.conn.Conn()
	return &silence{
		st:        st,
		netConn:   netConn,
		stopWatch: context.AfterFunc(ctx, func() { _ = netConn.SetReadDeadline(time.Now()) }),
	}
}

// start arms the first wake; the silence starts now.
func (q *silence) start() error {
	if err := q.arm(receiveWake); err != nil {
		return err
	}
	q.lastHeard = time.Now()
	return nil
}

func (q *silence) stop() {
	_ = q.netConn.SetReadDeadline(time.Time{})
	q.stopWatch()
}

// arm sets the next wake, d from now.
func (q *silence) arm(d time.Duration) error {
	if err := q.netConn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return classify("receive replication stream", err)
	}
	return nil
}

// woke handles a read that timed out: it measures the silence, asks for a
// keepalive or gives the connection up, and arms the next wake (soon, when
// batches wait for the consumer).
func (q *silence) woke(soon bool) error {
	now := time.Now()
	if q.heard { // messages came since the last wake: silence starts now
		q.lastHeard, q.heard, q.pinged = now, false, false
	}
	silent := now.Sub(q.lastHeard)
	timeout := q.st.timeout
	if silent >= timeout {
		return classify("receive replication stream", &timeoutError{err: fmt.Errorf("no message from the server for %s", silent.Round(time.Second))})
	}
	if silent >= timeout/2 && !q.pinged {
		q.st.reply.Store(true)
		q.pinged = true
	}
	d := min(receiveWake, timeout/4)
	if soon {
		d = pendingWake
	}
	if q.st.reply.Load() { // a paced request waits
		d = min(d, max(time.Until(q.st.replyDue()), 0))
	}
	return q.arm(d)
}

// event turns one message from the server into an event; ok is false for
// a message that carries none. A keepalive that asks for a reply gets its
// status update first. The messages of streamed transactions (protocol v2+)
// are spilled, and at their commit handed over, through out, as a
// transaction like any other (see streamed).
func (st *Stream) event(ctx context.Context, msg pgproto3.BackendMessage, status *statusReporter, out *handover) (ev Event, ok bool, err error) {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return ev, false, classify("receive replication stream", errors.New("empty CopyData message"))
		}
		switch m.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return ev, false, permanent("parse keepalive", "", err)
			}
			if ka.ReplyRequested {
				if err := status.maybe(true, true); err != nil {
					return ev, false, err
				}
			}
			return Event{WALEnd: lsn.LSN(ka.ServerWALEnd)}, true, nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return ev, false, permanent("parse XLogData", "", err)
			}
			st.written = max(st.written, lsn.LSN(xld.WALStart))
			if st.dec != nil {
				return st.streamed(ctx, xld, status, out)
			}
			// pgconn reuses its read buffer: the decoded message aliases this
			// copy, carved from a shared block to spare an allocation per message.
			data := st.carve(len(xld.WALData))
			copy(data, xld.WALData)
			dm, err := pgoutput.Decode(data)
			if err != nil {
				return ev, false, permanent("decode pgoutput message", "", fmt.Errorf("at %s: %w", lsn.LSN(xld.WALStart), err))
			}
			if m, ok := dm.(*pgoutput.StreamAbort); ok {
				// PostgreSQL 18 sends these unasked (see pgoutput's
				// decode); protocol 1 sent nothing of the transaction.
				st.log.Debug("ignoring a Stream Abort on a protocol 1 stream", "xid", m.Xid, "subxid", m.SubXid, "at", lsn.LSN(xld.WALStart))
				return ev, false, nil
			}
			return Event{Msg: dm}, true, nil
		}
	case *pgproto3.ErrorResponse:
		err := classify("replication stream", pgconn.ErrorResponseToPgError(m))
		if m.Code == "XX000" && st.dec != nil {
			// PostgreSQL 14-18 fail to decode some transactions while they
			// stream, in every later try: a large one that adds a column,
			// drops another in a savepoint it rolls back and changes the
			// table after ("pg_attribute catalog is missing 1 attribute(s)").
			// Decoded at commit (protocol 1) the same WAL goes through.
			var se *Error
			if errors.As(err, &se) && se.Hint == "" {
				se.undecodable = true
				se.Hint = "PostgreSQL could not decode a transaction while it streamed (protocol 2+), and will fail the same way at every try; run walmirror with --protocol 1 until it is past this point, which decodes each transaction at its commit instead (see README, Large transactions)"
			}
		}
		if m.Code == "42704" && strings.HasPrefix(m.Message, "publication ") {
			// PostgreSQL 14-17 look the publication up as of each change
			// they decode: a change made while it was dropped (recreated
			// since or not; run recreates a missing one) fails at every try.
			var se *Error
			if errors.As(err, &se) && se.Hint == "" {
				se.Hint = "the publication was dropped, or renamed (ALTER PUBLICATION ... RENAME TO), while this slot still had changes to decode after that point, which PostgreSQL before 18 cannot get past (also once it exists again under this name); " +
					"changes made meanwhile are not decoded under this name, so the copy must be made afresh from a new slot: walmirror drop --source ... --target ..., then walmirror run --resync"
			}
		}
		return ev, false, err
	case *pgproto3.CopyDone:
		return ev, false, classify("replication stream", errors.New("server ended the stream (CopyDone)"))
	}
	return ev, false, nil
}

package source_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/source/pgoutput"
	"github.com/walmirror/walmirror/testenv"
)

// TestFlushIsOnlyWhatWasConfirmed streams transactions without confirming
// them: the slot must not move, whatever was received. Then a confirmed
// position is reported.
func TestFlushIsOnlyWhatWasConfirmed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv, src, start := newSlot(t, "flushcheck")
	for _, q := range []string{`INSERT INTO t VALUES (1, 'a')`, `INSERT INTO t VALUES (2, 'b')`} {
		if err := srv.Exec(ctx, "postgres", q); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := src.Start(ctx, start, false)
	if err != nil {
		t.Fatal(err)
	}
	var commits []lsn.LSN
	deadline := time.After(30 * time.Second)
	for len(commits) < 2 {
		select {
		case batch, ok := <-stream.Events():
			if !ok {
				t.Fatalf("stream ended: %v", stream.Err())
			}
			for _, ev := range batch {
				if c, ok := ev.Msg.(*pgoutput.Commit); ok {
					commits = append(commits, c.EndLSN)
				}
			}
		case <-deadline:
			t.Fatal("no commits received")
		}
	}
	time.Sleep(1500 * time.Millisecond) // several status intervals
	if err := stream.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := confirmedFlush(t, srv); got > start {
		t.Fatalf("slot confirmed %s although nothing was confirmed (start %s)", got, start)
	}

	stream, err = src.Start(ctx, start, false)
	if err != nil {
		t.Fatal(err)
	}
	stream.Confirm(commits[0])
	time.Sleep(500 * time.Millisecond)
	if err := stream.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := confirmedFlush(t, srv); got != commits[0] {
		t.Fatalf("slot confirmed %s, want %s", got, commits[0])
	}
}

// newSlot starts a server with table t, opens a source on it and creates
// slot; start is the slot's consistent point.
func newSlot(t *testing.T, slot string) (*testenv.Server, *source.Source, lsn.LSN) {
	t.Helper()
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	src, err := source.Open(ctx, source.Config{DSN: srv.DSN("postgres"), Slot: slot, Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close(ctx) })
	snap, err := src.CreateSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return srv, src, snap.ConsistentPoint
}

func confirmedFlush(t *testing.T, srv *testenv.Server) lsn.LSN {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The last status update of a closed stream is read by the walsender
	// after Close returned: once the slot is released, it has been.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var active bool
		if err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = 'flushcheck'`).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot is still active 10 s after the stream closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var text string
	if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'flushcheck'`).Scan(&text); err != nil {
		t.Fatal(err)
	}
	l, err := lsn.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestBatchesSpanTransactions: events received together are delivered
// together, whatever transaction they belong to, up to the batch limit. (A
// batch cut at every commit made the engine see the end of its input after
// each transaction and commit each alone.)
func TestBatchesSpanTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv, src, start := newSlot(t, "batches")
	const txs = 2000
	if err := srv.Exec(ctx, "postgres", `DO $$ BEGIN FOR i IN 1..2000 LOOP INSERT INTO t VALUES (i, 'v'); COMMIT; END LOOP; END $$`); err != nil {
		t.Fatal(err)
	}
	stream, err := src.Start(ctx, start, false)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close(ctx)
	// A batch is cut when the socket holds nothing more: on a loaded
	// machine the server may send more slowly than the receiver reads, and
	// every batch held one transaction (seen once in a PG18 CI run). A
	// consumer that starts late lets the backlog wait in the socket, as a
	// busy engine does.
	time.Sleep(500 * time.Millisecond)
	commits, most := 0, 0
	deadline := time.After(60 * time.Second)
	for commits < txs {
		select {
		case batch, ok := <-stream.Events():
			if !ok {
				t.Fatalf("stream ended: %v", stream.Err())
			}
			if len(batch) == 0 || len(batch) > 128 {
				t.Fatalf("a batch of %d events", len(batch))
			}
			n := 0
			for _, ev := range batch {
				if _, ok := ev.Msg.(*pgoutput.Commit); ok {
					n++
				}
			}
			commits += n
			most = max(most, n)
		case <-deadline:
			t.Fatalf("%d of %d commits received", commits, txs)
		}
	}
	t.Logf("%d transactions, at most %d in one batch", txs, most)
	if most < 2 {
		t.Fatalf("no batch held more than %d transactions of a %d-transaction backlog", most, txs)
	}
}

// TestRequestedKeepalivesArePaced asks for a keepalive after every one, as
// the engine does while it waits for a stop position on an idle source:
// each request is answered, at most one per replyPace (10 ms). Unpaced,
// this was tens of thousands a second.
func TestRequestedKeepalivesArePaced(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	_, src, start := newSlot(t, "paced")
	stream, err := src.Start(ctx, start, false)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close(ctx)
	const window = 2 * time.Second
	stream.RequestReply()
	keepalives := 0
	end := time.After(window)
	for done := false; !done; {
		select {
		case batch, ok := <-stream.Events():
			if !ok {
				t.Fatalf("stream ended: %v", stream.Err())
			}
			for _, ev := range batch {
				if ev.Msg == nil {
					keepalives++
					stream.RequestReply()
				}
			}
		case <-end:
			done = true
		}
	}
	t.Logf("%d keepalives in %v", keepalives, window)
	if keepalives < 3 {
		t.Fatalf("%d keepalives in %v: requests went unanswered", keepalives, window)
	}
	if most := int(window/(10*time.Millisecond)) + 50; keepalives > most {
		t.Fatalf("%d keepalives in %v: more than one per 10 ms", keepalives, window)
	}
}

// TestCurrentLSNIsFlushed: WAL that commits nothing waits for the WAL
// writer, and the stream only carries flushed WAL; CurrentLSN has the
// server flush up to the position it returns, so a run to it need not wait.
func TestCurrentLSNIsFlushed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv, src, _ := newSlot(t, "flushnow")
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A non-transactional message is WAL that commits nothing.
	var before, flushedBefore string
	if err := conn.QueryRow(ctx, `SELECT pg_logical_emit_message(false, 'test', 'x')::text, pg_current_wal_flush_lsn()::text`).Scan(&before, &flushedBefore); err != nil {
		t.Fatal(err)
	}
	at, err := src.CurrentLSN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var flushed string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	f, err := lsn.Parse(flushed)
	if err != nil {
		t.Fatal(err)
	}
	if f < at {
		t.Fatalf("WAL flushed to %s after CurrentLSN returned %s (message at %s, flushed to %s before)", f, at, before, flushedBefore)
	}
}

// TestSilenceWhileConsumerBusy: a consumer busy with something else (here:
// not reading at all) while more events arrived than it has room for must
// not stop the stream from noticing a silent network. The receive loop
// stopped reading once the consumer's buffer was full, measured no silence
// meanwhile, and a black hole went unnoticed until the consumer's own call
// timed out (TestNetworkFaults failed about one run in six).
func TestSilenceWhileConsumerBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv, _, start := newSlot(t, "busyconsumer")
	// More events than the consumer's buffer holds (16 batches of at most
	// 128), fewer than it and the receive loop's own (4,096) do.
	if err := srv.Exec(ctx, "postgres", `INSERT INTO t SELECT g, 'a' FROM generate_series(1, 3000) g`); err != nil {
		t.Fatal(err)
	}
	proxy, err := testenv.StartProxy(fmt.Sprintf("%s:%d", srv.Host(), srv.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	via := strings.Replace(srv.DSN("postgres"), fmt.Sprintf(":%d/", srv.Port()), fmt.Sprintf(":%d/", proxy.Port()), 1)
	viaSrc, err := source.Open(ctx, source.Config{DSN: via, Slot: "busyconsumer", Publication: "p", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer viaSrc.Close(ctx)
	stream, err := viaSrc.Start(ctx, start, false)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close(ctx)
	time.Sleep(2 * time.Second) // everything received, the consumer's buffer full
	proxy.Blackhole()
	select {
	case <-stream.Done():
		if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "no message from the server") {
			t.Errorf("stream ended with %v, want the silence named", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not notice 10 s of silence (timeout 1 s) while its consumer was busy")
	}
}

package apply

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/walmirror/walmirror/source"
)

// snapCatalog is a Catalog whose snapshots show transaction shownFrom on
// from the call numbered showAt (1-based; 0: never).
type snapCatalog struct {
	showAt, calls int
	syncSelf      bool
	syncAsked     int
}

func (c *snapCatalog) Attributes(context.Context, uint32) ([]source.Attribute, error) {
	return nil, nil
}

func (c *snapCatalog) Snapshot(context.Context) (source.XidSnapshot, error) {
	c.calls++
	if c.showAt != 0 && c.calls >= c.showAt {
		return source.ParseXidSnapshot("101:101:")
	}
	return source.ParseXidSnapshot("90:101:100") // 100 still in progress
}

func (c *snapCatalog) SlotSyncStandby(context.Context) (bool, error) {
	c.syncAsked++
	return c.syncSelf, nil
}

// TestSeeTransaction: a Relation message waits until the catalog's
// snapshots show its transaction, asks once per transaction, and asks
// nothing for a transaction the last snapshot already showed.
func TestSeeTransaction(t *testing.T) {
	cat := &snapCatalog{showAt: 3}
	e := &engine{log: slog.New(slog.DiscardHandler), catalog: cat, inTx: true, xid: 100}
	if err := e.seeTransaction(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cat.calls != 3 || e.seen.xid != 100 {
		t.Fatalf("snapshots read %d (want 3), seen %d", cat.calls, e.seen.xid)
	}
	if err := e.seeTransaction(t.Context()); err != nil || cat.calls != 3 {
		t.Fatalf("the same transaction again: %v, %d snapshots read", err, cat.calls)
	}
	e.xid = 95 // older: the last snapshot shows it
	if err := e.seeTransaction(t.Context()); err != nil || cat.calls != 3 || e.seen.xid != 95 {
		t.Fatalf("an older transaction: %v, %d snapshots read, seen %d", err, cat.calls, e.seen.xid)
	}
	if cat.syncAsked != 0 {
		t.Errorf("asked about synchronous standbys %d times before a second passed", cat.syncAsked)
	}
	e.inTx, e.xid = false, 200 // between transactions (a copy's shape): nothing to wait for
	if err := e.seeTransaction(t.Context()); err != nil || cat.calls != 3 {
		t.Fatalf("outside a transaction: %v, %d snapshots read", err, cat.calls)
	}
}

// TestSeeTransactionSyncSelf: a session that is itself a synchronous
// standby stops waiting (the commit waits for walmirror) and does not wait
// again; one that is not keeps waiting until its context ends, having
// asked once.
func TestSeeTransactionSyncSelf(t *testing.T) {
	cat := &snapCatalog{syncSelf: true}
	e := &engine{log: slog.New(slog.DiscardHandler), catalog: cat, inTx: true, xid: 100}
	if err := e.seeTransaction(t.Context()); err != nil || !e.seen.syncSelf || cat.syncAsked != 1 {
		t.Fatalf("synchronous standby itself: %v, syncSelf %v, asked %d", err, e.seen.syncSelf, cat.syncAsked)
	}
	calls := cat.calls
	e.xid = 101
	if err := e.seeTransaction(t.Context()); err != nil || cat.calls != calls {
		t.Fatalf("after: %v, %d more snapshots read", err, cat.calls-calls)
	}

	other := &snapCatalog{}
	e = &engine{log: slog.New(slog.DiscardHandler), catalog: other, inTx: true, xid: 100}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := e.seeTransaction(ctx); err == nil || e.seen.syncSelf || other.syncAsked > 1 {
		t.Fatalf("not a standby: %v, syncSelf %v, asked %d", err, e.seen.syncSelf, other.syncAsked)
	}
}

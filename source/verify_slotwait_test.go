package source

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/testenv"
)

// TestComparisonSaysWhatItWaitsFor: walmirror verify's temporary slot
// waits, like walmirror's own, for every transaction open on the source; a
// forgotten prepared transaction held verify forever with nothing logged
// but "taking a snapshot". It must name what it waits for.
func TestComparisonSaysWhatItWaitsFor(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_prepared_transactions": "4"}})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES`); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "postgres", `BEGIN; INSERT INTO t VALUES (2); PREPARE TRANSACTION 'forgotten_by_verify'`); err != nil {
		t.Fatal(err)
	}
	defer srv.Exec(ctx, "postgres", `ROLLBACK PREPARED 'forgotten_by_verify'`)
	defer func(n, r time.Duration) { slotWaitNotice, slotWaitRepeat = n, r }(slotWaitNotice, slotWaitRepeat)
	slotWaitNotice, slotWaitRepeat = 200*time.Millisecond, time.Hour
	var logs lockedBuffer
	type opened struct {
		sn  *Snapshot
		err error
	}
	done := make(chan opened, 1)
	go func() {
		sn, err := OpenComparison(ctx, Config{DSN: srv.DSN("postgres"), Publication: "p", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		done <- opened{sn, err}
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "forgotten_by_verify"); time.Sleep(50 * time.Millisecond) {
		select {
		case o := <-done:
			t.Fatalf("the comparison's slot was created (err %v) while a prepared transaction was open:\n%s", o.err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating the comparison's slot waited 30 s without naming the prepared transaction:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "slot=walmirror_verify_") {
		t.Errorf("the notice does not name the temporary slot:\n%s", logs.String())
	}
	if err := srv.Exec(ctx, "postgres", `ROLLBACK PREPARED 'forgotten_by_verify'`); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatal(o.err)
		}
		o.sn.Close(ctx)
	case <-time.After(60 * time.Second):
		t.Fatal("the comparison's slot was not created within 60 s of the transaction ending")
	}
}

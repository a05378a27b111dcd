package source

import (
	"context"
	"testing"

	"github.com/walmirror/walmirror/testenv"
)

// TestDropSlotAlreadyGone: redoing an interrupted initial snapshot drops
// the slot it saw; a slot whose creation a kill -9 interrupted is
// ephemeral and goes with its walsender, possibly in between. Dropping a
// slot already gone must succeed: before, the run exited 1 with "drop
// replication slot ...: replication slot ... does not exist (SQLSTATE
// 42704)" (seen under kill -9 chaos, PG18, SQLite target).
func TestDropSlotAlreadyGone(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	src, err := Open(ctx, Config{DSN: srv.DSN("postgres"), Slot: "gone_already", Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	if err := src.DropSlot(ctx); err != nil {
		t.Fatalf("dropping a slot that is gone: %v", err)
	}
	if err := srv.Exec(ctx, "postgres", `SELECT pg_create_logical_replication_slot('gone_already', 'pgoutput')`); err != nil {
		t.Fatal(err)
	}
	if err := src.DropSlot(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := src.Slot(ctx); err != nil || info.Exists {
		t.Fatalf("the slot is still there (%v)", err)
	}
}

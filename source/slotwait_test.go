package source

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// lockedBuffer is a log destination safe for the notice goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCreateSlotSaysWhatItWaitsFor: PostgreSQL creates a slot only once
// every transaction running when it began has ended, so a session idle in
// a transaction or a forgotten prepared transaction holds walmirror's first
// run for as long as it lives. The run must say so, naming them, instead
// of waiting silently; and once they end the slot is created.
func TestCreateSlotSaysWhatItWaitsFor(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_prepared_transactions": "4"}})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// A session idle in a transaction that wrote, and a prepared transaction.
	idle, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	var idlePID int
	if err := idle.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&idlePID); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Exec(ctx, `BEGIN; INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "postgres", `BEGIN; INSERT INTO t VALUES (2); PREPARE TRANSACTION 'forgotten_gid'`); err != nil {
		t.Fatal(err)
	}
	defer srv.Exec(ctx, "postgres", `ROLLBACK PREPARED 'forgotten_gid'`)

	defer func(n, r time.Duration) { slotWaitNotice, slotWaitRepeat = n, r }(slotWaitNotice, slotWaitRepeat)
	slotWaitNotice, slotWaitRepeat = 200*time.Millisecond, time.Hour
	var logs lockedBuffer
	src, err := Open(ctx, Config{DSN: srv.DSN("postgres"), Slot: "waits", Publication: "p",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	type created struct {
		sn  *Snapshot
		err error
	}
	done := make(chan created, 1)
	go func() {
		sn, err := src.CreateSlot(ctx)
		done <- created{sn, err}
	}()

	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := logs.String()
		if strings.Contains(out, "forgotten_gid") && strings.Contains(out, "PID "+strconv.Itoa(idlePID)) {
			if !strings.Contains(out, "waits for transactions open on the source") {
				t.Errorf("the notice does not say what the wait is:\n%s", out)
			}
			break
		}
		select {
		case c := <-done:
			t.Fatalf("the slot was created (err %v) while transactions it must wait for were open:\n%s", c.err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating the slot waited 60 s without naming the transactions it waits for:\n%s", out)
		}
	}
	if _, err := idle.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "postgres", `COMMIT PREPARED 'forgotten_gid'`); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-done:
		if c.err != nil {
			t.Fatal(c.err)
		}
		if err := c.sn.Close(ctx); err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the slot was not created within 60 s of the transactions ending")
	}
}

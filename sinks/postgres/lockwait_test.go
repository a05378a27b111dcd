package postgres_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
)

// TestLockWaitWarned: a write that waits for a lock another session holds
// on the target stalls the copy; past a while the sink warns, naming the
// holder, and the write goes on once the lock is released. Before, nothing
// said why the copy stood still (helper-110).
func TestLockWaitWarned(t *testing.T) {
	dsn := newDB(t, "lockwait")
	restore := postgres.SetLockWatch(time.Second, time.Minute, 100*time.Millisecond)
	defer restore()
	var mu sync.Mutex
	var logs strings.Builder
	s, err := postgres.Open(context.Background(), dsn, slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil)), postgres.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tb := schema.NewTable(1, "public", "locked", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tb) })

	holder := connect(t, dsn)
	exec(t, holder, `SET application_name = 'the_reader'; BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE`)
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		if err := s.Begin(ctx); err != nil {
			done <- err
			return
		}
		row := schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Text, Data: []byte("a")}}
		if err := s.Write(ctx, &schema.Batch{Table: tb, Inserts: []schema.Tuple{row}}); err != nil {
			done <- err
			return
		}
		done <- s.Commit(ctx, schema.State{Slot: "s", Phase: schema.PhaseStreaming, LSN: 1})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		out := logs.String()
		mu.Unlock()
		if strings.Contains(out, "the target has waited for a lock") {
			if !strings.Contains(out, "the_reader") || !strings.Contains(out, "LOCK TABLE") {
				t.Errorf("the warning does not name the holder and its statement:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning 20 s into the wait:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the write ended while the lock was held: %v", err)
	default:
	}
	exec(t, holder, `COMMIT`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the write did not end after the lock was released")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

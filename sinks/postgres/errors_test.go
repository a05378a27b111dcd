package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
)

// TestDiskFull: the target server's disk_full, however wrapped, is what
// apply.Run marks ErrTargetFull (a real one: TestTargetDiskFull in
// cmd/walmirror); other errors are not.
func TestDiskFull(t *testing.T) {
	var s *Sink
	full := fmt.Errorf("write public.t: %w", &pgconn.PgError{Code: "53100", Message: `could not extend file "pg_tblspc/16384/PG_15/16385/16386": No space left on device`})
	if !s.DiskFull(full) {
		t.Fatal("disk_full not recognised")
	}
	if err := schema.TargetFull(full); !errors.Is(err, apply.ErrTargetFull) || !errors.As(err, new(*pgconn.PgError)) {
		t.Fatalf("marked: %v", err)
	}
	for _, err := range []error{nil, errors.New("no space"), &pgconn.PgError{Code: "53200"}} {
		if s.DiskFull(err) {
			t.Errorf("DiskFull(%v) = true", err)
		}
	}
}

// TestLockTableFull: the target's "out of shared memory" (a one-transaction
// copy of thousands of tables) says what to do, and stays the server's
// error underneath; other errors pass as they are.
func TestLockTableFull(t *testing.T) {
	full := fmt.Errorf("add primary key of t: %w", &pgconn.PgError{Code: "53200", Message: "out of shared memory"})
	err := lockTableFull(full)
	var pgErr *pgconn.PgError
	if !strings.Contains(err.Error(), "max_locks_per_transaction on the target") || !strings.Contains(err.Error(), "--initial-copy auto or chunked") || !errors.As(err, &pgErr) {
		t.Errorf("lock table full: %v", err)
	}
	other := &pgconn.PgError{Code: "23505"}
	if got := lockTableFull(other); got != error(other) {
		t.Errorf("another error changed: %v", got)
	}
	if lockTableFull(nil) != nil {
		t.Error("nil changed")
	}
}

package postgres

import (
	"errors"
	"fmt"
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

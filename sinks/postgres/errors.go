package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// explain adds what to do to target errors an operator can fix.
func explain(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53100" { // disk_full
		return fmt.Errorf("%w (the target's disk is full: free space, then run walmirror again; the transaction was not stored nor confirmed to the source, so nothing is lost)", err)
	}
	return err
}

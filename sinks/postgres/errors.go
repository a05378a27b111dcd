package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DiskFull says whether err is the target server's disk_full (SQLSTATE
// 53100): apply.Run marks it with apply.ErrTargetFull.
func (s *Sink) DiskFull(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "53100"
}

// lockTableFull adds what to do to the target's "out of shared memory"
// (SQLSTATE 53200), its lock table full: a one-transaction initial copy of
// thousands of tables failed there with the server's hint only (3,000
// tables at the default max_locks_per_transaction of 64).
func lockTableFull(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53200" {
		return fmt.Errorf("%w (the target's lock table is full: an initial copy in one target transaction holds locks on every table it creates and loads, "+
			"about four a table with its key and TOAST table; raise max_locks_per_transaction on the target and restart it, or copy with --initial-copy auto or chunked, "+
			"which copy the tables past what the lock table holds one by one)", err)
	}
	return err
}

// TablesPerTransaction bounds the tables one target transaction should
// create and load (apply's initial copy): each holds about four locks (the
// table, its key, its TOAST table and that one's index) until the commit,
// in the lock table of max_locks_per_transaction × (max_connections +
// max_prepared_transactions) slots every session shares. Half of it at
// four a table: 800 tables at the defaults (TestTargetLockTableSmall: in
// a lock table of 120 slots a one-transaction copy failed at its 134th).
func (s *Sink) TablesPerTransaction(ctx context.Context) (int, error) {
	var n int
	err := s.idle(ctx, func() error {
		res := s.conn.PgConn().ExecParams(ctx, `SELECT pg_catalog.current_setting('max_locks_per_transaction')::int *
			(pg_catalog.current_setting('max_connections')::int + pg_catalog.current_setting('max_prepared_transactions')::int)`, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return res.Err
		}
		slots, err := strconv.Atoi(string(res.Rows[0][0]))
		n = max(slots/8, 1)
		return err
	})
	return n, err
}

// connectError says what to do about a failed connection to the target, as
// the source's errors do for --source (helper-86: the target's said
// nothing, behind pgconn's list of every attempt, a refused TLS try first).
func connectError(err error) error {
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	answered := errors.As(err, &pgErr)
	if answered && errors.As(err, &connErr) {
		err = pgErr // the server's word; the caller names the server
	}
	hint := ""
	switch {
	case answered && pgErr.Code == "28P01":
		hint = "check the user name and password in the target's URL"
	case answered && pgErr.Code == "28000":
		hint = "no such role, or pg_hba.conf refuses this user from this host: check the user name in the target's URL and the target's pg_hba.conf"
	case answered && pgErr.Code == "3D000":
		hint = "the database named in the target's URL does not exist: create it (CREATE DATABASE ...) or name another"
	case answered && pgErr.Code == "53300":
		hint = "the target accepts no more connections: raise its max_connections or close others"
	case answered:
	default:
		var netErr net.Error
		if errors.As(err, &netErr) {
			hint = "cannot reach the target server: is it running, and are the host and port in the target's URL right?"
		}
	}
	if !answered {
		// pgconn lists each address tried on a line of its own.
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), ":\n\t", ": "), "\n\t", "; ")
		err = &redactedError{msg, err} // a text of its own, unwrapping to the cause
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

package source

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/schema"
)

// Error is a source failure with an operator hint. Permanent errors will not go
// away by retrying (bad credentials, wal_level, a lost slot); others are
// connection trouble worth a reconnect.
type Error struct {
	Op        string // what walmirror was doing
	Err       error
	Hint      string // what to do about it
	Permanent bool
	// undecodable: the server failed to decode a transaction while it
	// streamed (protocol 2+), which decoding at commit gets past.
	undecodable bool
}

func (e *Error) Error() string {
	msg := e.Op + ": " + e.Err.Error()
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a source error that retrying cannot fix.
// Errors that are not source errors are treated as permanent.
func IsPermanent(err error) bool {
	var se *Error
	if errors.As(err, &se) {
		return se.Permanent
	}
	return !isTransient(err)
}

// IsStreamUndecodable reports whether err is the server failing to decode
// a transaction while it streamed it (protocol 2+); protocol 1, which
// decodes each transaction at its commit, gets past it.
func IsStreamUndecodable(err error) bool {
	var se *Error
	return errors.As(err, &se) && se.undecodable
}

func permanent(op, hint string, err error) error {
	return &Error{Op: op, Err: err, Hint: hint, Permanent: true}
}

// copyError classifies err from copying t. A table that changed after the
// copy's snapshot was taken (a migration dropped a column or the table, or
// changed a column's type: the snapshot's rows are read through today's
// catalog) fails the copy, but a new one, from a new snapshot, succeeds:
// such an error is worth retrying, and says why.
func copyError(t *schema.Table, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "42703", "42P01", "42804": // undefined_column, undefined_table, datatype_mismatch
			return &Error{Op: "copy " + t.QualifiedName(), Err: err,
				Hint: "the table changed after the copy's snapshot was taken (a migration dropped a column or the table, or changed a type): the copy starts again"}
		}
	}
	return classify("copy "+t.QualifiedName(), err)
}

// classify wraps err from talking to the server, deciding whether it is worth
// retrying and what the operator should do.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	e := &Error{Op: op, Err: err, Permanent: !isTransient(err)}
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	if errors.As(err, &pgErr) && errors.As(err, &connErr) {
		// The server answered: its word is the error. pgconn's text lists
		// every attempt first (a refused TLS try before the plain one),
		// and the operation already names the server.
		e.Err = pgErr
	}
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			e.Hint = "check the user name and password in --source"
		case "28000":
			if strings.HasPrefix(pgErr.Message, "role ") && strings.HasSuffix(pgErr.Message, "does not exist") {
				e.Hint = "no role of that name on the source: check the user name in --source (or create the role: CREATE ROLE ... LOGIN REPLICATION)"
			} else if strings.Contains(pgErr.Message, "replication") {
				e.Hint = "pg_hba.conf must allow a replication connection for this user (a line with database 'replication' or 'all', depending on the server version)"
			} else {
				e.Hint = "pg_hba.conf refuses this user from this host"
			}
		case "53300":
			if strings.Contains(pgErr.Message, "max_wal_senders") {
				e.Hint = "every WAL sender on the source is in use: stop a replication client no longer needed (SELECT pid, application_name FROM pg_stat_replication) or raise max_wal_senders (needs a restart)"
			}
		case "53400":
			if strings.Contains(pgErr.Message, "replication slots") {
				e.Hint = "every replication slot on the source is taken: drop one no longer used (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('name')) or raise max_replication_slots (needs a restart)"
			}
		case "3D000":
			e.Hint = "the database named in --source does not exist"
		case "42710":
			if strings.Contains(pgErr.Message, "replication slot") {
				// Two runs with one --slot started at once: the other made it
				// between this one's look and its create (helper-110).
				e.Hint = "another process created this slot a moment ago: is another walmirror running with this --slot? Two copies need a slot each; " +
					"if it is the same copy, let the other run go on, or stop it and start again"
			}
		case "53200": // out_of_memory: "out of shared memory", the lock table
			e.Hint = "the source's lock table is full (max_locks_per_transaction × (max_connections + max_prepared_transactions), shared by every session; " +
				"walmirror's copy holds one table's locks at a time, a partitioned table's with all its partitions and their indexes): " +
				"raise max_locks_per_transaction on the source and restart it"
		case "55P03": // lock_not_available: lock_timeout
			e.Hint = "another session holds a lock on a table this needs to read (a schema migration left open, a prepared transaction: " +
				"SELECT gid FROM pg_prepared_xacts; pg_locks names the others): wait for it to end, or commit or roll it back"
		case "22021", "22P05":
			// walmirror's sessions ask for UTF-8 (sessionSettings): a
			// SQL_ASCII database's non-ASCII bytes, or a character the
			// database's encoding has and Unicode lacks, cannot be sent.
			e.Hint = "a value in the source cannot be sent as UTF-8, which every copy holds (a SQL_ASCII database holding other bytes than ASCII?): " +
				"correct the value in the source (convert_from(convert_to(col, 'SQL_ASCII'), 'LATIN1') reads LATIN1 bytes), or leave the table out of the publication"
		case "42501":
			if strings.Contains(pgErr.Message, "row-level security") {
				e.Hint = "row-level security would hide some of this table's rows from the role in --source, while the stream carries them all: " +
					"give the role BYPASSRLS (ALTER ROLE ... BYPASSRLS, as a superuser), connect as the table's owner, or disable the table's row-level security"
				break
			}
			e.Hint = "the role lacks a privilege walmirror needs: REPLICATION, and SELECT on the published tables (see README, Prerequisites)"
		case "55000":
			if strings.Contains(pgErr.Message, "wal_level") {
				e.Hint = "set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
			} else if strings.Contains(pgErr.Message, "invalidated") || strings.Contains(pgErr.Message, "can no longer get changes") {
				e.Hint = "the slot lost WAL it needed (max_slot_wal_keep_size?); the copy must be rebuilt from a new slot and snapshot"
			} else if strings.Contains(pgErr.Message, "recovery is in progress") {
				e.Hint = standbyHint
			}
		}
		return e
	}
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var badCert x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		e.Hint = "the server's certificate is not signed by a CA walmirror trusts: point sslrootcert in --source at the CA's certificate file"
		return e
	case errors.As(err, &badHost):
		e.Hint = "the host name in --source is not one the server's certificate names: connect by a name the certificate lists, or fix the certificate"
		return e
	case errors.As(err, &badCert):
		e.Hint = "the server's certificate is invalid (expired, or not for server use)"
		return e
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) && netErr.Op == "dial" {
		e.Hint = "cannot reach the server: is it running, and are the host and port in --source right?"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		e.Hint = "the host name in --source does not resolve"
	}
	return e
}

// timeoutCause names a setup step's deadline as the cause of err, so the
// operator reads "no answer within 60s" rather than "context deadline
// exceeded"; the result stays transient.
func timeoutCause(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &timeoutError{err: err}
	}
	return err
}

type timeoutError struct{ err error }

func (e *timeoutError) Error() string {
	return "the server did not answer in time (network trouble? see --source-timeout): " + e.err.Error()
}
func (e *timeoutError) Unwrap() error { return e.err }
func (e *timeoutError) Timeout() bool { return true }

// isTransient reports errors a reconnect may cure: lost connections, server
// restarts, a slot briefly held by a previous walmirror process.
func isTransient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var te *timeoutError
	if errors.As(err, &te) {
		return true
	}
	// A target's own word that a try later may succeed (SQLite's file
	// locked by another writer: sinks/sqlite).
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) && tmp.Temporary() {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "57P"), // shutdown, cannot connect now
			pgErr.Code == "53300",                // too many connections
			pgErr.Code == "55006":                // slot active for another PID
			return true
		}
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var cerr *pgconn.ConnectError
	if errors.As(err, &cerr) {
		return !errors.As(err, &pgErr)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	return false
}

// standbyHint is what to do when --source is a standby (in recovery).
const standbyHint = "--source is a standby (in recovery): point it at the primary. walmirror writes to the source's WAL " +
	"(an online copy's watermarks, resync requests) and reads its current WAL position, which a standby cannot; " +
	"a logical slot made on a standby also waits for the primary's activity"

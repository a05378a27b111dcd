package source

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestClassifyAuthHints: a login refused for a role that does not exist
// (a server that says so: trust or peer authentication) is not blamed on
// pg_hba.conf, which the hint for a refused host gives.
func TestClassifyAuthHints(t *testing.T) {
	for _, c := range []struct{ msg, want string }{
		{`role "nosuchuser" does not exist`, "no role of that name"},
		{`no pg_hba.conf entry for host "10.0.0.1", user "u", database "d", no encryption`, "pg_hba.conf refuses"},
		{`no pg_hba.conf entry for replication connection from host "10.0.0.1", user "u"`, "replication connection"},
	} {
		var e *Error
		if !errors.As(classify("connect", &pgconn.PgError{Code: "28000", Message: c.msg}), &e) || !strings.Contains(e.Hint, c.want) {
			t.Errorf("%s: hint %q, want one saying %q", c.msg, e.Hint, c.want)
		}
	}
}

// TestClassifySlotRace: the loser of two runs creating one slot at once is
// told what happened (helper-110: the server's bare "already exists").
func TestClassifySlotRace(t *testing.T) {
	var e *Error
	err := classify("create replication slot walmirror", &pgconn.PgError{Code: "42710", Message: `replication slot "walmirror" already exists`})
	if !errors.As(err, &e) || !strings.Contains(e.Hint, "another walmirror running with this --slot") || !e.Permanent {
		t.Fatalf("slot race: %v", err)
	}
}

// TestUnparsableDSNReason: a connection string that cannot be parsed and
// may hold a password is not echoed, but pgconn's reason is kept
// (helper-139: a bad sslmode gave no reason at all).
func TestUnparsableDSNReason(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret@host/db?sslmode=sometimes",
		"host=h user=u password=s3cret sslmode=sometimes",
		"postgres://u:s3cret@host:notaport/db",
	} {
		c := Config{DSN: dsn, Slot: "s"}
		err := c.Validate()
		if err == nil {
			t.Errorf("%q: no error", dsn)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "s3cret") || !strings.Contains(msg, "contents not shown") {
			t.Errorf("%q: %s", dsn, msg)
		}
		if strings.Contains(dsn, "sslmode") && !strings.Contains(msg, "sslmode") {
			t.Errorf("%q: the reason is not in %q", dsn, msg)
		}
	}
}

package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// Config says what to replicate and from where.
type Config struct {
	DSN         string   // libpq URL or keyword string
	Slot        string   // replication slot name
	Publication string   // publication name
	Tables      []string // tables for a new publication (schema.table); empty: all tables
	// Timeout is how long the server may stay silent (connecting, answering a
	// setup query, or streaming) before the connection is given up and
	// reconnected, like wal_receiver_timeout. Zero means DefaultTimeout.
	Timeout time.Duration
	// Protocol is the pgoutput protocol version to ask for: 0 is the highest
	// the server speaks (PostgreSQL 14: 2, 15: 3, 16 and later: 4), with
	// in-progress transactions streamed; 1 has the server send each
	// transaction only after it commits (spilling large ones on the source).
	Protocol int
	// SpillDir is where the changes of streamed transactions wait for their
	// commit, in a directory of walmirror's own (walmirror-spill-SLOT-...)
	// emptied at every start; empty means os.TempDir().
	SpillDir string
	// ExpectSystemID, when set, is the cluster the copy was made from
	// (IDENTIFY_SYSTEM's systemid): Open refuses another with a
	// *SystemMismatchError before it creates anything on it. apply.Run
	// sets it from the target's state.
	ExpectSystemID string
	Logger         *slog.Logger
}

// DefaultTimeout matches PostgreSQL's wal_receiver_timeout.
const DefaultTimeout = 60 * time.Second

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// FieldError is a Config field Validate refuses: Field names it (DSN,
// Slot, Publication, Tables[i], Protocol), Value is what it held (a DSN is not
// repeated: it may hold a password) and Reason says what is wrong, for a
// library caller (apply.ConfigError shows those); the message names the
// command-line flag that sets it, for the operator.
type FieldError struct {
	Field  string
	Value  any
	Reason string
	Err    error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// notShown stands for a value an error must not repeat (a DSN may hold a
// password).
type notShown struct{}

func (notShown) String() string { return "(not shown: it may hold a password)" }

// fieldError is field's error: reason for a library caller, cli (which
// wraps cause, if any, with %w) for the operator.
func fieldError(field string, value any, reason, cli string, cause error) error {
	if cause == nil {
		return &FieldError{Field: field, Value: value, Reason: reason, Err: errors.New(cli)}
	}
	return &FieldError{Field: field, Value: value, Reason: reason + ": " + cause.Error(), Err: fmt.Errorf(cli, cause)}
}

// Validate checks the configuration without touching the network. Its
// errors are *FieldError.
func (c *Config) Validate() error {
	const dsnForm = "a PostgreSQL URL or keyword string, e.g. postgres://user:pass@host:5432/db"
	if c.DSN == "" {
		return fieldError("DSN", "", "required: "+dsnForm, "--source is required: "+dsnForm, nil)
	}
	if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		return fieldError("DSN", notShown{}, "not a valid PostgreSQL connection string", "--source is not a valid PostgreSQL connection string: %w", redactErr(err, c.DSN))
	}
	const slotForm = "a slot name is 1-63 characters of a-z, 0-9 and _"
	if !slotName.MatchString(c.Slot) {
		return fieldError("Slot", c.Slot, slotForm, fmt.Sprintf("--slot %q: %s", c.Slot, slotForm), nil)
	}
	if c.Publication == "" || len(c.Publication) > 63 {
		return fieldError("Publication", c.Publication, "a publication name is 1-63 bytes", fmt.Sprintf("--publication %q: a publication name is 1-63 bytes", c.Publication), nil)
	}
	for i, t := range c.Tables {
		if _, err := ParseTableName(t); err != nil {
			return fieldError(fmt.Sprintf("Tables[%d]", i), t, "not a table name", "--tables: %w", err)
		}
	}
	if c.Protocol < 0 || c.Protocol > maxProtocol {
		want := fmt.Sprintf("want 1 to %d (or 0: the highest the server speaks)", maxProtocol)
		return fieldError("Protocol", c.Protocol, want, fmt.Sprintf("--protocol %d: %s", c.Protocol, want), nil)
	}
	return nil
}

// sessionSettings fix the text form of values on both the replication and the
// snapshot connection, so a row copied and a row streamed read the same; they
// match what PostgreSQL's own subscriber asks for, plus UTC.
//
// row_security off: the stream carries every row whatever the role may read,
// so a copy (initial, online, resync) or a verify that row-level security
// filters would silently hold fewer rows than the source (a role that is not
// the table's owner, without BYPASSRLS, on a table with a policy). With it off,
// PostgreSQL refuses such a read with an error instead, as pg_dump does.
//
// The timeouts: a role's own settings (ALTER ROLE mirror SET statement_timeout
// = '1s', ...) would cancel the initial copy's COPY, end a verify's snapshot
// transaction between tables, or close the catalog connection while the
// stream is idle, at every start alike; walmirror bounds its own waits (the
// context deadlines of --source-timeout). transaction_timeout (PostgreSQL 17+)
// is set after connecting (unknown to older servers).
//
// jit off: on a server built with LLVM, the publication listing (identity,
// storage, enum and composite signatures per table, run at startup and at
// every publication poll) is costly enough to be JIT-compiled: measured on
// Debian's PostgreSQL 15 with two small partitioned tables, 21 s of the
// source's CPU per listing (365 functions compiled) where it executes in
// 0.12 s without. walmirror's catalog queries and COPY reads gain nothing
// from JIT.
//
// search_path pg_catalog and quote_all_identifiers off: the text of a
// regclass, regtype, regproc... value names what it refers to relative to
// the session's search_path (app.orders prints as orders when app is on
// it), so a database or role that set another path gave the copy names
// that resolve to another object, or several spellings of one (exit 0;
// verify, reading under the same path, agreed). Outside pg_catalog every
// name is now schema-qualified, as pg_dump and PostgreSQL's own
// subscriber (an empty search_path) have it. lc_monetary C: money's text
// follows it ("1.234,56 €" under de_DE), and a PostgreSQL target cannot
// read one locale's text under another.
//
// standard_conforming_strings on: literals walmirror writes (quoteLiteral:
// keys of rows copied again, a chunk's last key) double quotes only; with a
// role's or database's "off", a backslash in one was an escape, and a key
// holding one read another row or none.
//
// client_encoding UTF8: every target holds UTF-8, and pgoutput, COPY (text
// and binary) and query results are sent in the client's encoding. Left
// unset it is the database's: a LATIN1 database's rows reached SQLite as
// LATIN1 bytes, DuckDB as NULLs, and a PostgreSQL copy not at all.
var sessionSettings = map[string]string{
	"client_encoding":                     "UTF8",
	"row_security":                        "off",
	"jit":                                 "off",
	"statement_timeout":                   "0",
	"lock_timeout":                        "0",
	"idle_in_transaction_session_timeout": "0",
	"idle_session_timeout":                "0",
	"DateStyle":                           "ISO",
	"IntervalStyle":                       "postgres",
	"extra_float_digits":                  "3",
	"TimeZone":                            "UTC",
	"application_name":                    "walmirror",
	"bytea_output":                        "hex",
	"search_path":                         "pg_catalog",
	"quote_all_identifiers":               "off",
	"lc_monetary":                         "C",
	"standard_conforming_strings":         "on",
}

func connConfig(c *Config, replication bool) (*pgconn.Config, error) {
	dsn := c.DSN
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse --source: %w", redactErr(err, dsn))
	}
	if cfg.ConnectTimeout == 0 {
		// Without one, a connect into a network black hole waits for the
		// kernel's TCP retries (minutes); connect_timeout in the DSN wins.
		cfg.ConnectTimeout = c.timeout()
	}
	for k, v := range sessionSettings {
		if _, set := cfg.RuntimeParams[k]; !set || k != "application_name" {
			cfg.RuntimeParams[k] = v
		}
	}
	if replication {
		cfg.RuntimeParams["replication"] = "database"
	}
	cfg.AfterConnect = noTransactionTimeout
	return cfg, nil
}

// noTransactionTimeout turns off transaction_timeout (PostgreSQL 17+) on a
// new connection: set for the role, it would end the initial copy's
// snapshot transaction at every start.
func noTransactionTimeout(ctx context.Context, conn *pgconn.PgConn) error {
	v := conn.ParameterStatus("server_version") // "17.2", "18beta1", "16.4 (Debian ...)"
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	major, _ := strconv.Atoi(v)
	if major < 17 {
		return nil
	}
	return conn.Exec(ctx, "SET transaction_timeout = 0").Close()
}

// Describe names the server without credentials, for logs and errors.
func Describe(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// redactErr keeps a password that pgconn may echo from a bad DSN out of errors.
func redactErr(err error, dsn string) error {
	cfg, perr := pgconn.ParseConfig(dsn)
	msg := err.Error()
	if perr == nil && cfg.Password != "" {
		msg = strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	} else if strings.Contains(msg, "://") || strings.Contains(msg, "password") {
		// Unparsable: we cannot know the password, so drop the echoed input
		// and keep pgconn's own reason, which follows it (helper-139: a bad
		// sslmode was reported with no reason at all).
		reason := ""
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) {
			full, why := pe.Error(), ""
			if inner := pe.Unwrap(); inner != nil {
				full = strings.TrimSuffix(full, " ("+inner.Error()+")")
				// Kept unless it may echo the input (url.Parse's does).
				if w := inner.Error(); !strings.ContainsAny(w, "@:=") && !strings.Contains(w, "password") {
					why = " (" + w + ")"
				}
			}
			if i := strings.LastIndex(full, "`: "); i >= 0 {
				reason = ": " + full[i+3:] + why
			}
		}
		return fmt.Errorf("cannot parse the connection string%s (contents not shown, it may hold a password)", reason)
	}
	return errors.New(msg)
}

// TableName is a schema-qualified table name.
type TableName struct{ Schema, Name string }

func (t TableName) String() string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }

// SplitTableNames splits a comma-separated list of table names; a comma
// inside a double-quoted identifier ("S p"."x,y") belongs to the name.
// Each name is for ParseTableName.
func SplitTableNames(s string) []string {
	var out []string
	if s == "" {
		return nil
	}
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted // "" inside a quoted name toggles twice
		case ',':
			if !quoted {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// ParseTableName reads schema.table, where either part may be double-quoted
// ("My Schema"."a.b" keeps the dot); an unqualified name is in public.
// As PostgreSQL does (in a UTF-8 database), unquoted parts have their
// letters A-Z folded to lower case (no other letter: ÉCOLE is École), and
// parts are cut to 63 bytes at a character boundary.
func ParseTableName(s string) (TableName, error) {
	var parts []string
	rest := strings.TrimSpace(s)
	for {
		var part string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for {
				j := strings.IndexByte(rest[i:], '"')
				if j < 0 {
					return TableName{}, fmt.Errorf("table %q: unterminated quoted identifier", s)
				}
				b.WriteString(rest[i : i+j])
				i += j + 1
				if i < len(rest) && rest[i] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				break
			}
			part, rest = b.String(), rest[i:]
		} else {
			j := strings.IndexByte(rest, '.')
			if j < 0 {
				j = len(rest)
			}
			part, rest = asciiLower(strings.TrimSpace(rest[:j])), rest[j:]
		}
		if part == "" {
			return TableName{}, fmt.Errorf("table %q: empty name", s)
		}
		for len(part) > 63 {
			_, size := utf8.DecodeLastRuneInString(part)
			part = part[:len(part)-size]
		}
		parts = append(parts, part)
		if rest == "" {
			break
		}
		if rest[0] != '.' || len(parts) == 2 {
			return TableName{}, fmt.Errorf("table %q: want schema.table", s)
		}
		rest = rest[1:]
	}
	if len(parts) == 1 {
		return TableName{Schema: "public", Name: parts[0]}, nil
	}
	return TableName{Schema: parts[0], Name: parts[1]}, nil
}

// asciiLower folds A-Z only, as PostgreSQL folds unquoted identifiers in
// a multi-byte encoding (helper-141: strings.ToLower made ÉCOLE école).
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

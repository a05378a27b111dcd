// Command walmirror keeps a live, exactly-once copy of a PostgreSQL
// publication in a local database file (or another PostgreSQL).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

const usage = `walmirror keeps an exactly-once copy of a PostgreSQL database (or the tables
of one publication) in DuckDB, SQLite or another PostgreSQL, from logical
replication.

Usage:
  walmirror run    --source DSN --target TARGET [flags]   replicate (until stopped, or --stop-at-lsn)
  walmirror status --target TARGET [--source DSN] [--json]
                                                          how far a target is; with --source also
                                                          its lag and the slot's health
  walmirror check  --source DSN --target TARGET            preflight: every check run makes, creating
                                                          nothing; one line per finding
  walmirror drop   --source DSN [--slot S] [--publication P]
                                                          retire a copy: drop its slot (and the
                                                          publication walmirror created)
  walmirror resync --source DSN --table schema.t [--table ...]
                                                          copy tables again online while the rest
                                                          streams (the running walmirror does it)
  walmirror verify --source DSN --target TARGET            compare the copy with its source at one
                                                          position: exit 0 equal, 1 different
  walmirror demo   [--target TARGET]                      try it on a throwaway PostgreSQL
  walmirror version                                       print the version (also --version)
  walmirror help                                          this text (also --help)

  DSN      postgres://user@host:5432/db?sslmode=require, or a keyword string
           (host=... user=... dbname=...); the password may come from PGPASSWORD
           or ~/.pgpass instead of the command line
  TARGET   duckdb:PATH      a DuckDB file
           sqlite:PATH      an SQLite file
           postgres://user@host:5432/db (or postgresql://)   a PostgreSQL database

Run 'walmirror COMMAND --help' for a command's flags. Each flag can also be set
with an environment variable: --source is WALMIRROR_SOURCE, --stop-at-lsn is
WALMIRROR_STOP_AT_LSN, and so on.
`

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// commands are the subcommands the usage lists (the help test checks it).
var commands = []string{"run", "status", "resync", "verify", "check", "drop", "demo", "version", "help"}

// errUsage marks errors already explained by a usage message.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:])
	case "status":
		err = cmdStatus(ctx, args[1:])
	case "check":
		err = cmdCheck(ctx, args[1:])
	case "drop":
		err = cmdDrop(ctx, args[1:])
	case "resync":
		err = cmdResync(ctx, args[1:])
	case "verify":
		return cmdVerify(ctx, args[1:])
	case "demo":
		err = cmdDemo(ctx, args[1:])
	case "version", "--version", "-version", "-v":
		printVersion()
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "walmirror: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		msg := errorLine(err)
		fmt.Fprintf(os.Stderr, "walmirror: %s\n", msg)
		return 1
	}
}

// errorLine is err as the one line walmirror prints: with the server's own
// hint, which its error text leaves out, unless walmirror's says as much
// ("You might need to increase max_locks_per_transaction" for a full lock
// table); drivers' line breaks (several addresses tried) made spaces.
func errorLine(err error) string {
	msg := err.Error()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Hint != "" && !strings.Contains(msg, pgErr.Hint) {
		msg += " (server hint: " + pgErr.Hint + ")"
	}
	return strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\t' }), " ")
}

// tuneGC trades memory for CPU: the apply path allocates per message, and a
// collection every time the small live heap doubles costs more CPU than the
// replication itself. A soft limit keeps the process well under 256 MB.
// GOGC and GOMEMLIMIT in the environment win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(192 << 20)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/sinks/sqlite"
)

// targetForms and sourceHelp describe --target and --source in every command's help.
const (
	targetForms = "duckdb:PATH, sqlite:PATH or postgres://user@host/db"
	sourceHelp  = "source PostgreSQL: URL or keyword string (sslmode, SCRAM etc. as libpq; the password may come from PGPASSWORD or ~/.pgpass)"
)

// targetOptions are the flags that tune one kind of target.
type targetOptions struct {
	pg              postgres.Options
	duckMemoryLimit string // DuckDB memory_limit, "" for DuckDB's default
	duckIndexRows   int64  // DuckDB Sink.KeyIndexRows, 0 for never (--duckdb-index-rows)
	adopt           bool   // take over existing empty tables (--adopt-tables)
	dropColumns     bool   // drop target columns the source dropped (--drop-columns)
}

func defaultTargetOptions() targetOptions {
	return targetOptions{pg: postgres.DefaultOptions(), duckIndexRows: duckdb.DefaultKeyIndexRows}
}

// openTarget opens the sink a TARGET string names.
func openTarget(ctx context.Context, target string, log *slog.Logger, mustExist bool, opts targetOptions) (apply.Sink, error) {
	kind, path, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if kind == "postgres" {
		s, err := postgres.Open(ctx, target, log, opts.pg)
		if err != nil {
			return nil, err
		}
		s.Adopt, s.DropColumns = opts.adopt, opts.dropColumns
		return s, nil
	}
	if mustExist {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("--target %q: %w", target, err)
		}
	}
	if err := fileKindMismatch(kind, path); err != nil {
		return nil, err
	}
	if kind == "duckdb" {
		s, err := duckdb.Open(ctx, path, log)
		if err == nil && opts.duckMemoryLimit != "" {
			// A global setting of the DuckDB instance, so any connection will do.
			if _, err = s.DB().ExecContext(ctx, "SET memory_limit = '"+strings.ReplaceAll(opts.duckMemoryLimit, "'", "''")+"'"); err != nil {
				s.Close()
				err = fmt.Errorf("--duckdb-memory-limit %q: %w", opts.duckMemoryLimit, err)
			}
		}
		if err != nil {
			return nil, err
		}
		s.Adopt, s.DropColumns = opts.adopt, opts.dropColumns
		s.KeyIndexRows = opts.duckIndexRows
		if s.KeyIndexRows <= 0 {
			s.KeyIndexRows = -1 // the flag's 0: never
		}
		// No other code queries this process's DuckDB instance.
		s.SerialSmallWrites = true
		return s, nil
	}
	s, err := sqlite.Open(ctx, path, log)
	if err != nil {
		return nil, err
	}
	s.Adopt, s.DropColumns = opts.adopt, opts.dropColumns
	return s, nil
}

// fileKindMismatch refuses a file target that exists and is not the kind
// of database the target names: the databases' own errors sent users to
// the directory's permissions, and DuckDB, given an SQLite file, fetched
// its SQLite extension to read it (helper-122). An empty file is taken as
// new.
func fileKindMismatch(kind, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // opening it says what is wrong
	}
	defer f.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	if n == 0 {
		return nil
	}
	head = head[:n]
	sqliteFile := bytes.Equal(head, []byte("SQLite format 3\x00"))
	duckFile := n >= 12 && string(head[8:12]) == "DUCK" // after the header's checksum
	switch {
	case kind == "duckdb" && sqliteFile:
		return fmt.Errorf("--target duckdb:%s: the file is an SQLite database, not a DuckDB one: name it sqlite:%s", path, path)
	case kind == "sqlite" && duckFile:
		return fmt.Errorf("--target sqlite:%s: the file is a DuckDB database, not an SQLite one: name it duckdb:%s", path, path)
	case kind == "duckdb" && !duckFile, kind == "sqlite" && !sqliteFile:
		return fmt.Errorf("--target %s:%s: the file exists and is not a database of that kind (nor of the other one walmirror writes): check the path (walmirror makes a new file only where none is)", kind, path)
	}
	return nil
}

// newTargetFile returns the path of a file target that does not exist yet
// ("" for PostgreSQL targets and existing files).
func newTargetFile(target string) string {
	kind, path, err := parseTarget(target)
	if err != nil || kind == "postgres" {
		return ""
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return path
}

// removeTargetFile removes a file target walmirror created and the files
// its database keeps beside it.
func removeTargetFile(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal", ".wal"} {
		_ = os.Remove(path + suffix)
	}
}

// passwordSetting is password=VALUE (or sslpassword=) in a URL's query or
// a keyword string; VALUE may be single-quoted or hold backslash escapes.
var passwordSetting = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^\s&\\]|\\.?)*)`)

// redactTarget keeps a password in a target out of messages: a URL's user
// info, and password settings in its query or in a keyword string (which
// is not a valid target, but users pass one, as --source accepts them).
func redactTarget(t string) string {
	if scheme, rest, ok := strings.Cut(t, "://"); ok {
		// The last @: an unescaped @ in the password must not end the user
		// info early. Hiding part of a query that holds an @ is harmless.
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			t = scheme + "://…@" + rest[at+1:]
		}
	}
	return passwordSetting.ReplaceAllString(t, "${1}xxxxx")
}

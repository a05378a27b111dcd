package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/sinks/sqlite"
)

// openTarget opens the sink a TARGET string names.
func openTarget(ctx context.Context, target string, log *slog.Logger, mustExist bool) (apply.Sink, error) {
	kind, path, ok := strings.Cut(target, ":")
	switch {
	case target == "":
		return nil, fmt.Errorf("--target is required: sqlite:PATH")
	case ok && kind == "sqlite":
		if path == "" {
			return nil, fmt.Errorf("--target %q: give a file path after sqlite:", target)
		}
		if mustExist {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("--target %q: %w", target, err)
			}
		}
		return sqlite.Open(ctx, path, log)
	case ok && kind == "duckdb", strings.HasPrefix(target, "postgres://"), strings.HasPrefix(target, "postgresql://"):
		return nil, fmt.Errorf("--target %q: this build supports only sqlite:PATH targets (DuckDB and PostgreSQL targets are not built yet)", redactTarget(target))
	}
	return nil, fmt.Errorf("--target %q: want sqlite:PATH", redactTarget(target))
}

// redactTarget keeps a password in a postgres:// target out of messages.
func redactTarget(t string) string {
	if strings.Contains(t, "://") && strings.Contains(t, "@") {
		scheme, rest, _ := strings.Cut(t, "://")
		_, host, _ := strings.Cut(rest, "@")
		return scheme + "://…@" + host
	}
	return t
}

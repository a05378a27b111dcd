package main

import (
	"errors"
	"fmt"

	"github.com/walmirror/walmirror/apply"
)

// configFlags names the run flag that sets each apply.Config field.
var configFlags = map[string]string{
	"Limits.CommitRows":     "--commit-rows",
	"Limits.CommitBytes":    "--commit-bytes",
	"Limits.CommitInterval": "--commit-interval",
	"Limits.ChunkRows":      "--chunk-rows",
	"Limits.ChunkBytes":     "--chunk-bytes",
	"MaxBackoff":            "--max-backoff",
	"SlotBusyWait":          "--slot-busy-wait",
	"Source.Timeout":        "--source-timeout",
	"InitialCopy":           "--initial-copy",
	"CopyChunkRows":         "--copy-chunk-rows",
	"StopAt":                "--stop-at-lsn",
	"StopAtNow":             "--stop-at-lsn",
}

// validateConfig runs the library's validation (apply.Config.Validate, the
// one apply.Run applies) and says what is wrong in terms of flags.
func validateConfig(cfg *apply.Config) error {
	err := cfg.Validate()
	var ce *apply.ConfigError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	if ce.Err != nil { // the source's own message names its flags
		return ce.Err
	}
	if flag, ok := configFlags[ce.Field]; ok {
		return fmt.Errorf("%s %v: %s", flag, ce.Value, ce.Reason)
	}
	return err
}

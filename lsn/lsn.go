// Package lsn is the PostgreSQL write-ahead-log position shared by every layer:
// the source reports it, apply orders by it and sinks store it.
package lsn

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// LSN is a position in the source's write-ahead log.
type LSN uint64

// String formats the position the way PostgreSQL does: X/XXXXXXXX.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%08X", uint32(l>>32), uint32(l))
}

// LogValue logs the position as String does, in JSON logs too (which
// would print the number).
func (l LSN) LogValue() slog.Value { return slog.StringValue(l.String()) }

// Parse reads an LSN written as X/X (hexadecimal halves, as pg_current_wal_lsn prints).
func Parse(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("parse LSN %q: want the form X/XXXXXXXX", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: high half: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: low half: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

package duckdb

import "time"

// SetSerialSettle changes how long SerialSmallWrites keeps the instance's
// threads after a statement that needed them (serialSettle).
func SetSerialSettle(s *Sink, d time.Duration) { s.serialSettle = d }

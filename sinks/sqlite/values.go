package sqlite

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/walmirror/walmirror/schema"
)

// value converts a text-form datum to what SQLite stores for its kind, so that
// values read back equal the source: integers as INTEGER, bool as 0/1, bytea
// as BLOB, timestamps as ISO-8601 text with microseconds (UTC for
// timestamptz, suffixed Z), everything else as PostgreSQL's text form.
// A string it returns may share d.Data's memory: it is only for binding
// (the driver copies what it binds), valid while d.Data is.
func value(k schema.Kind, d schema.Datum) (any, error) {
	if d.State == schema.Null {
		return nil, nil
	}
	if d.State == schema.Unchanged {
		return nil, fmt.Errorf("internal error: unchanged TOAST value reached the writer")
	}
	b := d.Data
	text := unsafe.String(unsafe.SliceData(b), len(b))
	switch k {
	case schema.KindInt:
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer %q: %w", b, err)
		}
		return v, nil
	case schema.KindBool:
		if len(b) == 1 && b[0] == 't' {
			return int64(1), nil
		}
		return int64(0), nil
	case schema.KindFloat:
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("float %q: %w", b, err)
		}
		if v != v {
			return "NaN", nil // SQLite would store NaN as NULL
		}
		return v, nil
	case schema.KindBytea:
		if len(b) >= 2 && b[0] == '\\' && b[1] == 'x' {
			out := make([]byte, hex.DecodedLen(len(b)-2))
			if _, err := hex.Decode(out, b[2:]); err != nil {
				return nil, fmt.Errorf("bytea: %w", err)
			}
			return out, nil
		}
		return nil, fmt.Errorf("bytea not in hex format (bytea_output must be hex)")
	case schema.KindTimestampTZ:
		return isoTimestamp(text, true), nil
	case schema.KindTimestamp:
		return isoTimestamp(text, false), nil
	}
	return text, nil
}

// isoTimestamp turns PostgreSQL's ISO output ("2024-01-02 03:04:05.5+00"
// with TimeZone=UTC) into "2024-01-02T03:04:05.500000Z". Values ISO-8601 has
// no plain form for (infinity, BC dates) keep their PostgreSQL text.
func isoTimestamp(s string, tz bool) string {
	if tz {
		if !strings.HasSuffix(s, "+00") {
			return s
		}
		s = s[:len(s)-3]
	}
	date, clock, ok := strings.Cut(s, " ")
	if !ok || strings.Contains(clock, " ") { // "infinity", or a " BC" suffix
		return s
	}
	secs, frac, _ := strings.Cut(clock, ".")
	var sb strings.Builder
	sb.Grow(len(date) + 17)
	sb.WriteString(date)
	sb.WriteByte('T')
	sb.WriteString(secs)
	sb.WriteByte('.')
	sb.WriteString(frac)
	for range 6 - len(frac) {
		sb.WriteByte('0')
	}
	if tz {
		sb.WriteByte('Z')
	}
	return sb.String()
}

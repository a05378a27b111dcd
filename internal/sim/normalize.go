package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Normalize turns a value as one side shows it into the canonical form the
// comparison uses. The sides differ only in representation, never in value:
// PostgreSQL prints "t" where SQLite stores 1 and DuckDB casts to "true";
// timestamptz is "2024-01-02 03:04:05.5+00" in PostgreSQL and DuckDB but
// "2024-01-02T03:04:05.500000Z" in SQLite; jsonb's key order and spacing are
// PostgreSQL's; DuckDB prints DECIMAL 0.5 as ".5" in some versions; floats
// have several exact spellings. Anything else must match byte for byte.
func Normalize(k Kind, s string) (string, error) {
	switch k {
	case Int:
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return "", fmt.Errorf("integer %q: %w", s, err)
		}
		return s, nil
	case Numeric:
		if rest, ok := strings.CutPrefix(s, "-."); ok {
			return "-0." + rest, nil
		}
		if strings.HasPrefix(s, ".") {
			return "0" + s, nil
		}
		return s, nil
	case Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", fmt.Errorf("float %q: %w", s, err)
		}
		return formatFloat(f), nil
	case Bool:
		switch s {
		case "t", "true", "1":
			return "t", nil
		case "f", "false", "0":
			return "f", nil
		}
		return "", fmt.Errorf("bool %q", s)
	case TimestampTZ:
		if s == "infinity" || s == "-infinity" {
			return s, nil
		}
		for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00", time.RFC3339Nano} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC().Format(time.RFC3339Nano), nil
			}
		}
		return "", fmt.Errorf("timestamptz %q: unknown form", s)
	case JSON:
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return "", fmt.Errorf("json %q: %w", s, err)
		}
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		e.SetEscapeHTML(false)
		if err := e.Encode(v); err != nil { // map keys come out sorted
			return "", fmt.Errorf("json %q: %w", s, err)
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	case Bytea, UUID:
		return strings.ToLower(s), nil
	}
	return s, nil
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

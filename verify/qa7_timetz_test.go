package verify

import (
	"fmt"
	"testing"
)

// TestChecksumTimeTZOffsetSeconds: DuckDB keeps a timetz offset to the
// second, but its VARCHAR cast prints an offset of whole hours plus seconds
// wrongly ('00:00:00-00:00:01' as '00:00:00-00:01'), so an equal DuckDB copy
// verified different. A copy whose offset differs by a second must still be
// found.
func TestChecksumTimeTZOffsetSeconds(t *testing.T) {
	e := newChecksumEnv(t, `CREATE TABLE tz (id int8 PRIMARY KEY, a timetz, d timetz[])`, `
		INSERT INTO tz VALUES (1, '00:00:00-00:00:01', '{"24:00:00-15:59:59","12:00:00+01:00:30"}'),
			(2, '12:34:56.789+05:30:15', '{NULL}'), (3, '23:59:59.999999+00', '{}'), (4, NULL, NULL)`, "tz")
	e.targets = []string{"postgres", "sqlite", "duckdb"}
	e.rowsOK = true // a LIST of TIMETZ has no hash code: compared row by row
	for tb, r := range e.compare() {
		if r.Different() {
			t.Fatalf("%s: an equal copy: %+v", tb, r)
		}
	}
	for _, m := range []struct{ sql, want string }{
		{"UPDATE tz SET a = '00:00:00-00:00:02' WHERE id = 1", "0 missing, 0 extra, 1 changed"},
		{`UPDATE tz SET d = '{"24:00:00-15:59:58","12:00:00+01:00:30"}' WHERE id = 1`, "0 missing, 0 extra, 1 changed"},
	} {
		e.exec(e.dst, m.sql)
		r := e.compare()["tz"]
		if got := fmt.Sprintf("%d missing, %d extra, %d changed", r.Missing, r.Extra, r.Changed); got != m.want {
			t.Errorf("%s: %s, want %s (%s)", m.sql, got, m.want, r.Note)
		}
		e.restore("tz")
	}
}

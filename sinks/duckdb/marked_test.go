package duckdb_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// TestErrorTextNotTrusted: DuckDB's errors quote names and values, which
// may hold the text the sink's own checks raise: a table named like that
// check's message made an unstorable value a divergence (copy the table
// again, then fail the same way), and a json value holding "source column
// c0" made the error name the key column (helper-141).
func TestErrorTextNotTrusted(t *testing.T) {
	s := openSink(t, filepath.Join(t.TempDir(), "marked.duckdb"))
	tbl := schema.NewTable(1, "public", "walmirror: a row updated at the source is missing from x", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "ts", TypeID: schema.OIDTimestamp, Typmod: -1},
		{Name: "j", TypeID: schema.OIDJSON, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	write := func(row schema.Tuple) error {
		t.Helper()
		ctx := t.Context()
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		defer s.Rollback(ctx)
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{row}})
	}
	err := write(text("1", "300000-01-01 00:00:00", "1"))
	if err == nil || errors.Is(err, schema.ErrDiverged) {
		t.Errorf("an unstorable timestamp into a table named like the check's message: %v, want an error that is no divergence", err)
	}
	for _, v := range []string{`{"x": "source column c0 "`, "{\n  \"x\": \"source column c0 \"\n"} {
		err = write(text("2", "2000-01-01 00:00:00", v))
		if err == nil || !strings.Contains(err.Error(), `column "j"`) || errors.Is(err, schema.ErrDiverged) {
			t.Errorf("malformed json %q naming another column in its text: %v, want an error naming column \"j\"", v, err)
		}
	}
}

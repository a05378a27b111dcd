package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
)

// TestKeylessPartitionedTarget: one change of a keyless table (REPLICA
// IDENTITY FULL) changes exactly one row also when the target table,
// adopted, is partitioned: a ctid names a row in every partition, and
// the change went to the row at that place in each (helper-141).
func TestKeylessPartitionedTarget(t *testing.T) {
	dsn := newDB(t, "keylesspart")
	conn := connect(t, dsn)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE TABLE public.kp (a int, b text) PARTITION BY RANGE (a);
		CREATE TABLE public.kp1 PARTITION OF public.kp FOR VALUES FROM (0) TO (500);
		CREATE TABLE public.kp2 PARTITION OF public.kp FOR VALUES FROM (500) TO (1000)`); err != nil {
		t.Fatal(err)
	}
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	s.Adopt = true
	tbl := schema.NewTable(1, "public", "kp", schema.IdentityFull, []schema.Column{
		{Name: "a", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "b", TypeID: schema.OIDText, Typmod: -1},
	})
	tup := func(a, b string) schema.Tuple {
		return schema.Tuple{{State: schema.Text, Data: []byte(a)}, {State: schema.Text, Data: []byte(b)}}
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{tup("1", "x1"), tup("500", "x500"), tup("2", "x2"), tup("501", "x501")}})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Rows: []schema.RowChange{{Op: schema.Update, Old: tup("1", "x1"), New: tup("1", "y1")}}})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Rows: []schema.RowChange{{Op: schema.Delete, Old: tup("501", "x501")}}})
	})
	var got []string
	for _, r := range readRows(t, dsn, tbl) {
		got = append(got, strings.Join(r, ":"))
	}
	slices.Sort(got)
	if j := strings.Join(got, ","); j != "1:y1,2:x2,500:x500" {
		t.Fatalf("rows %s, want 1:y1,2:x2,500:x500", j)
	}
}

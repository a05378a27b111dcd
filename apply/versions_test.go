package apply_test

import (
	"context"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/testenv"
)

// Publication features that exist only from some PostgreSQL version on: each
// test runs where the version has the feature and is skipped elsewhere.

// TestRowFilterAndColumnList: a publication with a row filter and a column
// list (PostgreSQL 15) gives the copy the filtered rows and listed columns,
// from the initial snapshot and from the stream alike, including rows an
// update moves into or out of the filter (pgoutput sends those as an insert
// or a delete).
func TestRowFilterAndColumnList(t *testing.T) {
	m := newMirror(t)
	testenv.SkipBelow(t, server, 15, "a publication row filter and column list")
	m.exec(`
		CREATE TABLE orders (id int PRIMARY KEY, region text, amount int, secret text);
		CREATE PUBLICATION walmirror FOR TABLE orders (id, region, amount) WHERE (id % 2 = 0);
		INSERT INTO orders SELECT i, 'r' || (i % 3), i * 10, 'hidden ' || i FROM generate_series(1, 20) i;`)
	m.catchUp(apply.DefaultLimits())
	m.sameFiltered()

	m.exec(`
		INSERT INTO orders SELECT i, 'r' || (i % 3), i * 10, 'hidden ' || i FROM generate_series(21, 40) i;
		UPDATE orders SET amount = amount + 1, secret = 'changed' WHERE id % 4 = 0;
		UPDATE orders SET secret = 'only a column outside the list' WHERE id = 6;
		DELETE FROM orders WHERE id IN (2, 3, 10);
		UPDATE orders SET id = 1001 WHERE id = 5;  -- into the filter: an insert
		UPDATE orders SET id = 1003 WHERE id = 8;  -- out of it: a delete
		UPDATE orders SET id = 1000 WHERE id = 12; -- within it`)
	m.catchUp(apply.DefaultLimits())
	m.sameFiltered()

	if _, err := mirrortest.SQLiteRows(context.Background(), m.path, "SELECT secret FROM orders"); err == nil {
		t.Error("the copy has the column the publication's column list leaves out")
	}
}

// sameFiltered compares the copy of orders with the rows and columns the
// publication of TestRowFilterAndColumnList selects.
func (m *mirror) sameFiltered() {
	m.t.Helper()
	ctx := context.Background()
	want, err := mirrortest.SourceRows(ctx, m.dsn, "SELECT id, region, amount FROM orders WHERE id % 2 = 0")
	if err != nil {
		m.t.Fatal(err)
	}
	got, err := mirrortest.SQLiteRows(ctx, m.path, "SELECT id, region, amount FROM orders")
	if err != nil {
		m.t.Fatal(err)
	}
	if d := mirrortest.Diff(want, got); d != "" {
		m.t.Errorf("orders: %s", d)
	}
}

// TestGeneratedColumns: a stored generated column is in the copy exactly when
// the publication publishes it, in the initial snapshot and in the stream
// alike. Publications publish them from PostgreSQL 18 on
// (publish_generated_columns = stored, or a column list naming one), and the
// publication walmirror creates does there; before 18 none does.
func TestGeneratedColumns(t *testing.T) {
	const table = `CREATE TABLE lines (id int PRIMARY KEY, qty int, price int, total int GENERATED ALWAYS AS (qty * price) STORED);`
	for _, c := range []struct {
		name        string
		since       int    // PostgreSQL major with the publication feature
		publication string // "" for the one walmirror creates
		cols        string // what the copy has
	}{
		{"walmirror's publication", 0, "", "id, qty, price"}, // and total on 18
		{"not published", 0, "CREATE PUBLICATION walmirror FOR ALL TABLES", "id, qty, price"},
		{"publish_generated_columns", 18, "CREATE PUBLICATION walmirror FOR TABLE lines WITH (publish_generated_columns = stored)", "id, qty, price, total"},
		{"column list", 18, "CREATE PUBLICATION walmirror FOR TABLE lines (id, qty, total)", "id, qty, total"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMirror(t)
			if c.since > 0 {
				testenv.SkipBelow(t, server, c.since, "a published generated column")
			}
			if c.publication == "" && server.Major() >= 18 {
				c.cols += ", total"
			}
			m.exec(table + c.publication + `;
				INSERT INTO lines (id, qty, price) SELECT i, i, 3 FROM generate_series(1, 10) i;`)
			m.catchUp(apply.DefaultLimits())
			m.exec(`INSERT INTO lines (id, qty, price) SELECT i, i, 5 FROM generate_series(11, 20) i;
				UPDATE lines SET qty = qty + 1 WHERE id % 3 = 0;`)
			m.catchUp(apply.DefaultLimits())
			m.same("lines", "lines", c.cols)
			for _, col := range []string{"price", "total"} {
				if strings.Contains(c.cols, col) {
					continue
				}
				if _, err := mirrortest.SQLiteRows(context.Background(), m.path, "SELECT "+col+" FROM lines"); err == nil {
					t.Errorf("the copy has column %s, which the publication does not publish", col)
				}
			}
		})
	}
}

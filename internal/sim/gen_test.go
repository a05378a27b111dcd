package sim

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The whole point of a seed: the same seed, the same transactions.
func TestSameSeedSameTransactions(t *testing.T) {
	a, b := NewGen(42, 200), NewGen(42, 200)
	a.DDL, b.DDL = 10, 10
	if a.Initial().SQL() != b.Initial().SQL() {
		t.Fatal("initial transactions differ")
	}
	for i := range 300 {
		if i%50 == 0 {
			a.Round()
			b.Round()
		}
		if x, y := a.Next().SQL(), b.Next().SQL(); x != y {
			t.Fatalf("transaction %d differs:\n%.300s\n%.300s", i, x, y)
		}
	}
	for ti := range a.M.Tables {
		if !slices.Equal(a.M.Rows(ti), b.M.Rows(ti)) {
			t.Fatalf("models differ for %s", a.M.Tables[ti].Name)
		}
	}
	c := NewGen(43, 200)
	c.Initial()
	if c.Next().SQL() == NewGen(42, 200).Next().SQL() {
		t.Error("different seeds gave the same transaction")
	}
}

// A rolled-back transaction leaves the model as it was, and the generator
// produces every kind of statement the simulation promises.
func TestGeneratorCoverage(t *testing.T) {
	g := NewGen(8, 300)
	g.DDL = 8
	g.Initial()
	// Table and column names change: match what the statements do.
	want := map[string]bool{}
	for _, k := range []string{
		`ROLLBACK;`, `ROLLBACK TO SAVEPOINT`, `RELEASE SAVEPOINT`, `TRUNCATE`,
		`UPDATE "accounts[^"]*" SET "[^"]+" = "[^"]+" \+`, `UPDATE "accounts[^"]*" AS t SET`,
		`DELETE FROM "accounts[^"]*" WHERE "[^"]+" BETWEEN`,
		`DELETE FROM "events[^"]*" WHERE ctid`, `UPDATE "events[^"]*" SET`,
		`DELETE FROM "items[^"]*" WHERE \("[^"]+", "[^"]+"\) IN`,
		`ADD COLUMN "[^"]+" \S+ DEFAULT`, `ADD COLUMN "[^"]+" \S+;`, `DROP COLUMN`,
		`RENAME COLUMN`, `RENAME TO`, `TYPE bigint`, `TYPE numeric\(`, `TYPE varchar\(`,
		`PARTITION OF`, `ATTACH PARTITION`,
	} {
		want[k] = false
	}
	bigSeen := false
	for i := range 1500 {
		if i%100 == 0 {
			g.Round()
		}
		before := g.M.Snapshot()
		tx := g.Next()
		if !tx.Commit && !before.Equal(g.M.Snapshot()) {
			t.Fatal("a rolled-back transaction changed the model")
		}
		sql := tx.SQL()
		for k := range want {
			if regexp.MustCompile(k).MatchString(sql) {
				want[k] = true
			}
		}
		bigSeen = bigSeen || tx.Rows >= 150
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("never generated %q", k)
		}
	}
	if !bigSeen {
		t.Error("never generated a big transaction")
	}
	t.Logf("schema changes: %v", g.DDLCount)
	for ti, tb := range g.M.Tables {
		// Every row has a value per column.
		ts := g.M.state[ti]
		for _, r := range slices.Concat(ts.bag, slices.Collect(maps.Values(ts.rows))) {
			if len(r) != len(tb.Cols) {
				t.Fatalf("%s: row %s for %d columns", tb.Name, r.Encode(), len(tb.Cols))
			}
		}
		if tb.Key == 0 {
			continue
		}
		// Keys must stay unique and key columns non-NULL.
		for k, r := range ts.rows {
			if r.key(tb.Key) != k {
				t.Fatalf("%s: row %s filed under key %q", tb.Name, r.Encode(), k)
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		k       Kind
		in, out string
	}{
		{Bool, "true", "t"}, {Bool, "1", "t"}, {Bool, "f", "f"}, {Bool, "0", "f"},
		{Numeric, "-.50", "-0.50"}, {Numeric, ".5", "0.5"}, {Numeric, "12.50", "12.50"},
		{Float, "1e+06", "1e+06"}, {Float, "1000000", "1e+06"}, {Float, "inf", "Infinity"}, {Float, "-Infinity", "-Infinity"}, {Float, "nan", "NaN"},
		{TimestampTZ, "2024-01-02 03:04:05.5+00", "2024-01-02T03:04:05.5Z"},
		{TimestampTZ, "2024-01-02T03:04:05.500000Z", "2024-01-02T03:04:05.5Z"},
		{TimestampTZ, "2024-01-02 05:04:05+02", "2024-01-02T03:04:05Z"},
		{TimestampTZ, "infinity", "infinity"},
		{JSON, `{"b": [1, 2.50], "a": "✓<"}`, `{"a":"✓<","b":[1,2.50]}`},
		{Bytea, `\xDEAD`, `\xdead`},
	} {
		got, err := Normalize(c.k, c.in)
		if err != nil || got != c.out {
			t.Errorf("Normalize(%d, %q) = %q, %v; want %q", c.k, c.in, got, err, c.out)
		}
	}
}

// Online-copy events: tables join a listed publication (and a rolled-back
// add leaves them out), resync requests name published tables for the
// slots, and a table added is written to by the next transaction.
func TestGeneratorCopies(t *testing.T) {
	g := NewGen(11, 200)
	g.DDL = 5
	g.Copies = CopyGen{List: true, AddEvery: 20, ResyncPct: 10, Slots: []string{"s_a", "s_b"}}
	pub := g.PublicationSQL()
	if !strings.HasPrefix(pub, "CREATE PUBLICATION walmirror") || !slices.Contains(g.M.Published, false) {
		t.Fatalf("%s: want a publication that lists some tables, published %v", pub, g.M.Published)
	}
	g.Initial()
	adds, resyncs := 0, 0
	for i := range 600 {
		if i%100 == 0 {
			g.Round()
		}
		before := slices.Clone(g.M.Published)
		tx := g.Next()
		sql := tx.SQL()
		if strings.Contains(sql, "ADD TABLE") {
			adds++
		}
		if strings.Contains(sql, "'walmirror.resync'") {
			resyncs++
			if !strings.Contains(sql, "'slot', 's_") || !strings.Contains(sql, "::regclass::oid::bigint") {
				t.Fatalf("resync request without a slot or relids:\n%s", sql)
			}
		}
		if !tx.Commit && !slices.Equal(before, g.M.Published) {
			t.Fatal("a rolled-back transaction changed the publication")
		}
		for ti, p := range g.M.Published {
			if p && !before[ti] && !slices.Contains(g.needWrite, ti) {
				t.Fatalf("table %s added without a write to come", g.M.Tables[ti].Name)
			}
		}
	}
	if adds == 0 || resyncs == 0 {
		t.Errorf("%d transactions add tables, %d request resyncs: want some of each", adds, resyncs)
	}
	if slices.Contains(g.M.Published, false) {
		t.Errorf("tables still unpublished after 600 transactions: %v", g.M.Published)
	}
}

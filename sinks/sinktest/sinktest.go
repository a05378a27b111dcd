// Package sinktest is the contract every walmirror sink must pass: one
// table-driven suite that drives a sink through the calls the apply engine
// makes and checks what lands in the target. A sink's own test supplies a
// Target (how to open it and how to read a table back) and calls Run.
//
// The suite imports neither apply nor source: Sink below has the method set
// of apply.Sink, so any apply.Sink satisfies it. Some cases write 150,000
// rows (ManyRows): a sink that finds rows by scanning takes minutes there
// (448 s for a map sink with linear lookups), so index rows by
// key; run the suite with a -timeout to match.
package sinktest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// Sink has the methods of apply.Sink (see there for what each promises).
type Sink interface {
	ReadState(ctx context.Context) (st schema.State, ok bool, err error)
	Begin(ctx context.Context) error
	EnsureTable(ctx context.Context, t *schema.Table) error
	Write(ctx context.Context, b *schema.Batch) error
	Truncate(ctx context.Context, tables []*schema.Table) error
	Commit(ctx context.Context, st schema.State) error
	Rollback(ctx context.Context) error
	Close() error
}

// Target is what a sink's test provides.
type Target struct {
	Name string
	// Open returns a fresh, empty sink (each call a new target, e.g. a new
	// file in t.TempDir()). The suite closes it.
	Open func(t *testing.T) Sink
	// Reopen opens the same target again, given the sink Open (or an earlier
	// Reopen) returned, after the suite has closed that sink: committed state
	// must still be there. The suite closes the new sink.
	Reopen func(t *testing.T, s Sink) Sink
	// Rows returns the committed rows of the target table for table, each row
	// one string per column of table.Columns (in that order): "NULL" for
	// NULL, otherwise the value in PostgreSQL text form as the sink promises
	// to preserve it (the sink's test supplies this rendering, since each
	// target stores values its own way). Order does not matter (the suite
	// sorts). A table that does not exist has no rows. The suite calls Rows
	// only while s has no transaction open.
	Rows func(t *testing.T, s Sink, table *schema.Table) [][]string
}

// Run runs the contract suite against tg, each case as a subtest on a fresh
// target.
func Run(t *testing.T, tg Target) {
	t.Helper()
	if tg.Open == nil || tg.Reopen == nil || tg.Rows == nil {
		t.Fatalf("sinktest: target %q must set Open, Reopen and Rows", tg.Name)
	}
	cases := []struct {
		name string
		fn   func(h *harness)
	}{
		{"State", testState},
		{"Rollback", testRollback},
		{"KeyedBatch", testKeyedBatch},
		{"Inserts", testInserts},
		{"KeyedRows", testKeyedRows},
		{"Keyless", testKeyless},
		{"KeylessSets", testKeylessSets},
		{"KeylessBigValues", testKeylessBigValues},
		{"Truncate", testTruncate},
		{"SchemaEvolution", testSchemaEvolution},
		{"HostileIdentifiers", testHostileIdentifiers},
		{"Values", testValues},
		{"NoRetain", testNoRetain},
		{"ManyRows", testManyRows},
		{"Namespaces", testNamespaces},
		{"EqualKeys", testEqualKeys},
		{"LooselyEqualValues", testLooselyEqualValues},
		{"MissingRows", testMissingRows},
		{"Shapes", testShapes},
		{"MoveTable", testMoveTable},
		{"MoveLookupTable", testMoveLookupTable},
		{"RenameOntoTaken", testRenameOntoTaken},
		{"RenameOntoVacated", testRenameOntoVacated},
		{"MoveOntoVacatedSchema", testMoveOntoVacatedSchema},
		{"RekeyReplacing", testRekeyReplacing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &harness{t: t, tg: tg, s: tg.Open(t)}
			t.Cleanup(func() {
				if h.s != nil {
					if err := h.s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				}
			})
			c.fn(h)
		})
	}
}

// ---- building tables and tuples ----

type unsentMarker struct{}

// unsent marks a column the source did not send (an unchanged TOASTed value).
var unsent = unsentMarker{}

// row builds a tuple: a string is a text value, nil is NULL, unsent is an
// unchanged TOASTed value.
func row(vals ...any) schema.Tuple {
	tup := make(schema.Tuple, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			tup[i] = schema.Datum{State: schema.Null}
		case string:
			tup[i] = schema.Datum{State: schema.Text, Data: []byte(v)}
		case unsentMarker:
			tup[i] = schema.Datum{State: schema.Unchanged}
		default:
			panic(fmt.Sprintf("sinktest: row value %#v", v))
		}
	}
	return tup
}

// rows is a list of tuples, for batch literals.
func rows(ts ...schema.Tuple) []schema.Tuple { return ts }

func ins(n schema.Tuple) schema.RowChange { return schema.RowChange{Op: schema.Insert, New: n} }
func upd(o, n schema.Tuple) schema.RowChange {
	return schema.RowChange{Op: schema.Update, Old: o, New: n}
}
func del(o schema.Tuple) schema.RowChange { return schema.RowChange{Op: schema.Delete, Old: o} }

// r is an expected row, rendered as Target.Rows renders it.
func r(vals ...string) []string { return vals }

func col(name string, oid uint32, key bool) schema.Column {
	return schema.Column{Name: name, TypeID: oid, Typmod: -1, Key: key}
}

// relID hands out relation ids (pg_class OIDs); targets may run in parallel.
var relID atomic.Uint32

func newRelID() uint32 { return 16384 + relID.Add(1) }

func keyed(schemaName, name string, cols ...schema.Column) *schema.Table {
	return schema.NewTable(newRelID(), schemaName, name, schema.IdentityDefault, cols)
}

// keyless builds a REPLICA IDENTITY FULL table: pgoutput flags every column
// as key, and NewTable treats it as matched by whole rows.
func keyless(schemaName, name string, cols ...schema.Column) *schema.Table {
	for i := range cols {
		cols[i].Key = true
	}
	return schema.NewTable(newRelID(), schemaName, name, schema.IdentityFull, cols)
}

// reshape is a new description of the same source table (same relation id),
// as the source sends after ALTER TABLE.
func reshape(t *schema.Table, cols ...schema.Column) *schema.Table {
	return schema.NewTable(t.ID, t.Schema, t.Name, t.Identity, cols)
}

// ---- driving a sink ----

type harness struct {
	t   *testing.T
	tg  Target
	s   Sink
	lsn lsn.LSN
}

func (h *harness) ctx() context.Context { return h.t.Context() }

func (h *harness) check(err error, format string, args ...any) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

func (h *harness) begin() {
	h.t.Helper()
	h.check(h.s.Begin(h.ctx()), "Begin")
}

func (h *harness) ensure(tables ...*schema.Table) {
	h.t.Helper()
	for _, t := range tables {
		h.check(h.s.EnsureTable(h.ctx(), t), "EnsureTable(%s)", t.QualifiedName())
	}
}

func (h *harness) write(b *schema.Batch) {
	h.t.Helper()
	h.check(h.s.Write(h.ctx(), b), "Write(%s, %d changes)", b.Table.QualifiedName(), b.Len())
}

func (h *harness) truncate(tables ...*schema.Table) {
	h.t.Helper()
	h.check(h.s.Truncate(h.ctx(), tables), "Truncate")
}

func (h *harness) rollback() {
	h.t.Helper()
	h.check(h.s.Rollback(h.ctx()), "Rollback")
}

// nextState is the state the next commit stores: a later LSN each time.
func (h *harness) nextState() schema.State {
	h.lsn += 0x1000
	st := schema.State{LSN: h.lsn, Slot: "walmirror_test", SystemID: "7412345678901234567", Phase: schema.PhaseStreaming}
	if h.lsn&0x1000 != 0 {
		// Every other commit stores online-copy progress (with awkward keys),
		// the next one none: both must read back as written.
		st.Copies = []schema.TableCopy{
			{RelID: 16384, Table: `public."we'ird"`, After: []string{"42", `it's "q" ✓`}, Rows: 42, Chunks: 1, Estimate: -1, Reason: "resync"},
			{RelID: 16385, Table: "public.t2", Estimate: 1e6},
		}
	}
	return st
}

// commit commits with a new state and checks ReadState returns it.
func (h *harness) commit() schema.State {
	h.t.Helper()
	st := h.nextState()
	h.check(h.s.Commit(h.ctx(), st), "Commit")
	h.wantState(st)
	return st
}

// tx runs fn in a target transaction and commits it.
func (h *harness) tx(fn func()) schema.State {
	h.t.Helper()
	h.begin()
	fn()
	return h.commit()
}

func (h *harness) wantState(want schema.State) {
	h.t.Helper()
	got, ok, err := h.s.ReadState(h.ctx())
	h.check(err, "ReadState")
	if !ok {
		h.t.Fatalf("ReadState: ok = false, want state %+v", want)
	}
	if !reflect.DeepEqual(got, want) {
		h.t.Fatalf("ReadState = %+v, want %+v", got, want)
	}
}

// reopen closes the sink and opens the same target again.
func (h *harness) reopen() {
	h.t.Helper()
	old := h.s
	h.s = nil
	h.check(old.Close(), "Close")
	h.s = h.tg.Reopen(h.t, old)
}

func (h *harness) rows(t *schema.Table) [][]string {
	h.t.Helper()
	got := h.tg.Rows(h.t, h.s, t)
	for _, g := range got {
		if len(g) != len(t.Columns) {
			h.t.Fatalf("Rows(%s): row %q has %d values, want one per column (%d)", t.QualifiedName(), g, len(g), len(t.Columns))
		}
	}
	slices.SortFunc(got, slices.Compare)
	return got
}

// want checks the committed rows of t, in any order.
func (h *harness) want(t *schema.Table, want ...[]string) {
	h.t.Helper()
	got := h.rows(t)
	want = slices.Clone(want)
	slices.SortFunc(want, slices.Compare)
	if slices.EqualFunc(got, want, slices.Equal) {
		return
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "rows of %s (columns %s):\n", t.QualifiedName(), colNames(t))
	for _, g := range got {
		mark := "+"
		if slices.ContainsFunc(want, func(w []string) bool { return slices.Equal(w, g) }) {
			mark = " "
		}
		fmt.Fprintf(&sb, "  %s %q\n", mark, g)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g []string) bool { return slices.Equal(w, g) }) {
			fmt.Fprintf(&sb, "  - %q\n", w)
		}
	}
	sb.WriteString("(+ unexpected, - missing)")
	h.t.Fatal(sb.String())
}

func colNames(t *schema.Table) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return fmt.Sprintf("%q", names)
}

func (h *harness) wantCount(t *schema.Table, n int) [][]string {
	h.t.Helper()
	got := h.rows(t)
	if len(got) != n {
		h.t.Fatalf("%s has %d rows, want %d", t.QualifiedName(), len(got), n)
	}
	return got
}

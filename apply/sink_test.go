package apply_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/source"
)

// plainSink has apply.Sink's methods only, as a sink written from that
// interface alone would.
type plainSink struct{ apply.Sink }

// TestRunRefusesSinkWithoutShapes: Run refuses a sink without the shape
// store at once, naming apply.ShapeStore, before touching the source.
// Before, it ran, and a table that joined the publication got only its
// rows changed afterwards (1 of 101 in a run), silently.
func TestRunRefusesSinkWithoutShapes(t *testing.T) {
	s, err := memory.New().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var _ apply.ShapeStore = s
	err = apply.Run(context.Background(), plainSink{s}, apply.Config{Source: source.Config{DSN: "postgres://nobody@127.0.0.1:1/none"}})
	if err == nil || !strings.Contains(err.Error(), "apply.ShapeStore") {
		t.Fatalf("Run with a sink without the shape store = %v, want an error naming apply.ShapeStore", err)
	}
}

// unmovableSink has apply.Sink and apply.ShapeStore only: no MoveTable.
type unmovableSink struct {
	apply.Sink
	apply.ShapeStore
}

// TestSwapWithoutMoveTableStops: two tables swapping names, with a sink
// that cannot move a table's copy aside, stop the run with an error
// naming MoveTable. Before, the engine went on and the memory sink wrote
// the renamed table's rows into the other table's copy (helper-82: exit
// nil, items empty, items_old holding both tables' rows).
func TestSwapWithoutMoveTableStops(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE items_new (id int PRIMARY KEY, v text);
		INSERT INTO items VALUES (1, 'old'); INSERT INTO items_new VALUES (2, 'new')`)
	db := memory.New()
	run := func() error {
		s, err := db.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return apply.Run(ctx, unmovableSink{s, s}, apply.Config{
			Source:    source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
			StopAtNow: true,
			Logger:    slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	m.exec(`ALTER TABLE items RENAME TO items_old; ALTER TABLE items_new RENAME TO items`)
	// items_old is not seen under its new name before items takes it.
	m.exec(`INSERT INTO items VALUES (3, 'after')`)
	err := run()
	if err == nil || !strings.Contains(err.Error(), "MoveTable") {
		t.Fatalf("run after a swap with a sink without MoveTable = %v, want an error naming MoveTable", err)
	}
}

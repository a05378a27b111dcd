package apply_test

import (
	"context"
	"strings"
	"testing"

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

package apply_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/source"
)

// TestDivergedError: a row deleted from a PostgreSQL copy by hand, then
// updated at the source: Run stops with an error errors.Is finds
// ErrDiverged in (before, only its text said so).
func TestDivergedError(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE dv (id int PRIMARY KEY, v text); INSERT INTO dv SELECT g, 'v' FROM generate_series(1, 10) g`)
	ctx := context.Background()
	tdb, err := server.CreateDatabase(ctx, "dv_target")
	if err != nil {
		t.Fatal(err)
	}
	run := func() error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		sink, err := postgres.Open(ctx, server.DSN(tdb), nil, postgres.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		return apply.Run(ctx, sink, apply.Config{Source: source.Config{DSN: m.dsn, Slot: m.slot}, StopAtNow: true})
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if err := server.Exec(ctx, tdb, `DELETE FROM public.dv WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	m.exec(`UPDATE dv SET v = 'changed' WHERE id = 3`)
	err = run()
	if !errors.Is(err, apply.ErrDiverged) {
		t.Fatalf("Run after the copy lost a row the source updated = %v, want ErrDiverged", err)
	}
	t.Log(err)
}

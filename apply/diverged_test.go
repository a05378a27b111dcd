package apply_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/source"
)

// TestDivergedError: a row deleted from a PostgreSQL copy by hand, then
// updated at the source: with StopOnDivergence, Run stops with an error
// errors.Is finds ErrDiverged in (before, only its text said so) and
// errors.As a *schema.DivergedError naming the table; without it, Run
// copies the table again and the row is back, updated.
func TestDivergedError(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE dv (id int PRIMARY KEY, v text); INSERT INTO dv SELECT g, 'v' FROM generate_series(1, 10) g`)
	ctx := context.Background()
	tdb, err := server.CreateDatabase(ctx, "dv_target")
	if err != nil {
		t.Fatal(err)
	}
	run := func(stop bool) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		sink, err := postgres.Open(ctx, server.DSN(tdb), nil, postgres.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		return apply.Run(ctx, sink, apply.Config{Source: source.Config{DSN: m.dsn, Slot: m.slot}, StopAtNow: true, StopOnDivergence: stop})
	}
	if err := run(false); err != nil {
		t.Fatal(err)
	}
	if err := server.Exec(ctx, tdb, `DELETE FROM public.dv WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	m.exec(`UPDATE dv SET v = 'changed' WHERE id = 3`)
	err = run(true)
	var de *schema.DivergedError
	if !errors.Is(err, apply.ErrDiverged) || !errors.As(err, &de) || de.Table != "public.dv" {
		t.Fatalf("Run after the copy lost a row the source updated = %v, want ErrDiverged naming public.dv", err)
	}
	t.Log(err)
	if err := run(false); err != nil {
		t.Fatalf("Run copying the table again: %v", err)
	}
	conn, err := pgx.Connect(ctx, server.DSN(tdb))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM public.dv WHERE id = 3`).Scan(&v); err != nil || v != "changed" {
		t.Fatalf("row 3 in the copy: %q, %v; want it back as changed", v, err)
	}
}

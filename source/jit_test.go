package source

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walmirror/walmirror/testenv"
)

// TestSessionsWithoutJIT: every source session runs with jit off, whatever
// the database or role says. On a server built with LLVM the publication
// listing was JIT-compiled at every start and every publication poll (21 s
// of the source's CPU per listing with two small partitioned tables, 0.12 s
// without).
func TestSessionsWithoutJIT(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	for _, q := range []string{`ALTER DATABASE postgres SET jit = on`, `ALTER DATABASE postgres SET jit_above_cost = 0`} {
		if err := srv.Exec(ctx, "postgres", q); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{DSN: srv.DSN("postgres"), Slot: "jit_slot", Publication: "p"}
	src, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	adm, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close(ctx)
	var jit string
	for name, q := range map[string]func() error{
		"catalog session": func() error { return src.conn.QueryRow(ctx, `SHOW jit`).Scan(&jit) },
		"admin session":   func() error { return adm.conn.QueryRow(ctx, `SHOW jit`).Scan(&jit) },
	} {
		if err := q(); err != nil {
			t.Fatal(err)
		}
		if jit != "off" {
			t.Errorf("%s: jit = %s, want off", name, jit)
		}
	}
	rcfg, err := connConfig(&cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	rconn, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close(ctx)
	res, err := rconn.Exec(ctx, `SHOW jit`).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[0].Rows[0][0]); got != "off" {
		t.Errorf("replication session: jit = %s, want off", got)
	}
}

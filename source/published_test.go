package source

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// TestPublishedWhileTablesDropped: the publication poll lists
// pg_publication_tables, which opens every table it lists; a table dropped
// between the view's catalog scan and that open made the listing fail with
// "could not open relation with OID" (XX000), and the run stopped with exit
// 1 while an application swapped tables (rename, then drop the old one).
// The listing is taken again instead.
func TestPublishedWhileTablesDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	if err := srv.Exec(ctx, "postgres", `CREATE PUBLICATION p FOR ALL TABLES; CREATE TABLE keep (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	c := &Copier{conn: conn, publication: "p", version: srv.VersionNum()}

	ddl, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer ddl.Close(ctx)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			// Two transactions: the table must be visible before its drop.
			for _, q := range []string{`CREATE TABLE churn_%d (id int PRIMARY KEY)`, `DROP TABLE churn_%d`} {
				if _, err := ddl.Exec(ctx, fmt.Sprintf(q, i)); err != nil {
					done <- err
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for i := 0; i < 1500; i++ {
		l, err := c.Published(ctx)
		if err != nil {
			t.Fatalf("listing %d: %v", i, err)
		}
		found := false
		for _, p := range l.Tables {
			found = found || p.Name == "public.keep"
		}
		if !found {
			t.Fatalf("listing %d lacks public.keep: %+v", i, l.Tables)
		}
	}
}

package main

import (
	"context"
	"testing"
)

// A primary key stored out of line (a text key of 2,560 random hex
// characters: TOASTed, not compressed) is sent as "unchanged" ('u') in the
// new tuple of an UPDATE that leaves it alone; PostgreSQL logs the old key
// tuple for it. Every target stopped for good at such an update ("patch of
// ... key column k not sent", "unchanged TOAST value reached the writer").
func TestToastedKeyUnchanged(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE tk (k text PRIMARY KEY, v int, big text);
				INSERT INTO tk SELECT (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 80) i), g, NULL
					FROM generate_series(1, 5) g;
				CREATE TABLE tkf (k text, v int); ALTER TABLE tkf REPLICA IDENTITY FULL; INSERT INTO tkf SELECT k, v FROM tk;`)
			target, _ := c.make(t)
			runNow(t, dsn, target, "s_toastkey_"+c.name)
			if err := server.Exec(context.Background(), db, `UPDATE tk SET v = v + 10; UPDATE tkf SET v = v + 10;
				BEGIN; UPDATE tk SET v = 100 WHERE v = 12; UPDATE tk SET v = 200 WHERE v = 13; DELETE FROM tk WHERE v = 14; COMMIT;`); err != nil {
				t.Fatal(err)
			}
			runNow(t, dsn, target, "s_toastkey_"+c.name)
			mustVerify(t, dsn, target)
		})
	}
}

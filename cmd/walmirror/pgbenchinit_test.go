package main

import (
	"os/exec"
	"testing"

	"github.com/walmirror/walmirror/testenv"
)

// TestPgbenchInitWhileFollowing: `pgbench -i` run twice into a FOR ALL
// TABLES publication that walmirror follows, then pgbench: its tables are
// dropped and made again (new oids, the same names), filled by TRUNCATE and
// COPY FREEZE in one transaction while they have no key, given primary keys
// afterwards, then updated. The copy ends equal, every target, streaming.
func TestPgbenchInitWhileFollowing(t *testing.T) {
	needServer(t)
	pgbench := testenv.Tool("pgbench")
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE keep (id int PRIMARY KEY, v text); INSERT INTO keep VALUES (1, 'a');
				CREATE PUBLICATION p FOR ALL TABLES`)
			target, rows := tg.new(t)
			f := &follower{t: t, dsn: dsn, db: db, slot: "s_" + db, target: target, streaming: true, extra: []string{"--publication", "p", "--poll-interval", "200ms"}}
			dropSlotAtEnd(t, db, f.slot)
			f.catchUp()
			for range 2 {
				if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
					t.Fatalf("pgbench -i: %v\n%s", err, out)
				}
				f.catchUp()
				if out, err := exec.Command(pgbench, "-c", "2", "-t", "200", "-n", dsn).CombinedOutput(); err != nil {
					t.Fatalf("pgbench: %v\n%s", err, out)
				}
				f.catchUp()
				compareRows(t, dsn, rows, "SELECT aid, bid, abalance, filler FROM pgbench_accounts",
					"SELECT bid, bbalance FROM pgbench_branches",
					"SELECT tid, bid, tbalance FROM pgbench_tellers",
					"SELECT tid, bid, aid, delta FROM pgbench_history", "SELECT id, v FROM keep")
			}
		})
	}
}

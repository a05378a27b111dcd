package sim

import (
	"slices"
	"strings"
)

// Online copies in the generator: a publication that lists tables (some
// of them at first) and gains the others mid-stream by ALTER PUBLICATION
// ... ADD TABLE, whatever rows they hold by then; and resync requests, the
// transactional message `walmirror resync --table` writes into the WAL
// (source.(*Admin).ResyncTables, apply.EncodeResync), for the slots the
// simulation's targets follow, in a transaction of their own or inside a
// generated one (where a ROLLBACK or ROLLBACK TO SAVEPOINT discards them).
//
// A table added to the publication is written to in the next transaction
// (always committed): walmirror notices a table that joined at its first
// change or at a poll of the publication, and a bounded run that ends
// before the poll would rightly leave a table without changes out.

// CopyGen configures the online-copy events; the zero value makes none.
type CopyGen struct {
	// List: the publication lists tables (ListPublication picks the first
	// ones) and one is added about every AddEvery transactions.
	List     bool
	AddEvery int
	// ResyncPct is the percentage of transactions that request a resync
	// (half of them in a transaction of their own) for some of Slots.
	ResyncPct int
	Slots     []string
}

// Publication is the name of the simulation's publication.
const Publication = "walmirror"

// PublicationSQL creates the publication: FOR ALL TABLES, or (Copies.List)
// for a random proper subset of the tables, possibly none. As walmirror
// creates it, a partitioned table is one table in the copy.
func (g *Gen) PublicationSQL() string {
	const with = " WITH (publish_via_partition_root = true);"
	if !g.Copies.List {
		return "CREATE PUBLICATION " + Publication + " FOR ALL TABLES" + with
	}
	var names []string
	for ti, t := range g.M.Tables {
		g.M.Published[ti] = g.rng.IntN(2) == 0
		if g.M.Published[ti] {
			names = append(names, t.Q())
		}
	}
	if len(names) == len(g.M.Tables) {
		ti := g.rng.IntN(len(g.M.Tables))
		g.M.Published[ti] = false
		names = slices.DeleteFunc(names, func(n string) bool { return n == g.M.Tables[ti].Q() })
	}
	if len(names) == 0 {
		return "CREATE PUBLICATION " + Publication + with
	}
	return "CREATE PUBLICATION " + Publication + " FOR TABLE " + strings.Join(names, ", ") + with
}

// copyEvents says before which of a transaction's n statements tables are
// added to the publication and a resync is requested (-1: none).
func (g *Gen) copyEvents(n int) (addAt, resyncAt int) {
	addAt, resyncAt = -1, -1
	if g.Copies.List && g.Copies.AddEvery > 0 && slices.Contains(g.M.Published, false) && g.rng.IntN(g.Copies.AddEvery) == 0 {
		addAt = g.rng.IntN(n)
	}
	if g.Copies.ResyncPct > 0 && len(g.Copies.Slots) > 0 && g.rng.IntN(200) < g.Copies.ResyncPct {
		resyncAt = g.rng.IntN(n)
	}
	return addAt, resyncAt
}

// addTables adds one or two unpublished tables to the publication.
func (g *Gen) addTables() (string, []int) {
	var cand []int
	for ti, p := range g.M.Published {
		if !p {
			cand = append(cand, ti)
		}
	}
	n := 1
	if len(cand) > 1 && g.rng.IntN(4) == 0 {
		n = 2
	}
	var names []string
	var added []int
	for range n {
		i := g.rng.IntN(len(cand))
		ti := cand[i]
		cand = slices.Delete(cand, i, i+1)
		g.M.Publish(ti)
		names = append(names, g.M.Tables[ti].Q())
		added = append(added, ti)
	}
	g.DDLCount["add table to publication"]++
	return "ALTER PUBLICATION " + Publication + " ADD TABLE " + strings.Join(names, ", "), added
}

// resyncStmt requests a resync of one or two published tables for some of
// the slots ("" when no table is published).
func (g *Gen) resyncStmt() string {
	var cand []int
	for ti, p := range g.M.Published {
		if p {
			cand = append(cand, ti)
		}
	}
	if len(cand) == 0 {
		return ""
	}
	n := 1
	if len(cand) > 1 && g.rng.IntN(3) == 0 {
		n = 2
	}
	var relids, names []string
	for range n {
		i := g.rng.IntN(len(cand))
		t := g.M.Tables[cand[i]]
		cand = slices.Delete(cand, i, i+1)
		// The table's oid, as its current name resolves in the transaction.
		relids = append(relids, quoteLit("public."+t.Q())+"::regclass::oid::bigint")
		names = append(names, quoteLit("public."+t.Name))
	}
	var slots []string
	for _, s := range g.Copies.Slots {
		if g.rng.IntN(3) > 0 {
			slots = append(slots, s)
		}
	}
	if len(slots) == 0 {
		slots = []string{g.Copies.Slots[g.rng.IntN(len(g.Copies.Slots))]}
	}
	var emits []string
	for _, s := range slots {
		emits = append(emits, "pg_logical_emit_message(true, 'walmirror.resync', json_build_object('slot', "+quoteLit(s)+
			", 'relids', json_build_array("+strings.Join(relids, ", ")+"), 'tables', json_build_array("+strings.Join(names, ", ")+"))::text)")
	}
	g.DDLCount["resync request"]++
	return "SELECT " + strings.Join(emits, ", ")
}

// resyncTxn is, now and then, a transaction that only requests a resync.
func (g *Gen) resyncTxn() (Txn, bool) {
	if g.Copies.ResyncPct == 0 || len(g.Copies.Slots) == 0 || len(g.needWrite) > 0 || g.rng.IntN(200) >= g.Copies.ResyncPct {
		return Txn{}, false
	}
	stmt := g.resyncStmt()
	if stmt == "" {
		return Txn{}, false
	}
	return Txn{Stmts: []string{stmt}, Commit: g.rng.IntN(10) > 0}, true
}

// Pending returns the transaction that writes to tables added to the
// publication by the last one, if any (a round ends with it).
func (g *Gen) Pending() (Txn, bool) {
	if len(g.needWrite) == 0 {
		return Txn{}, false
	}
	var tx Txn
	for _, ti := range g.needWrite {
		tx.Stmts = append(tx.Stmts, g.insert(ti, 1)...)
		tx.Rows++
	}
	g.needWrite = nil
	tx.Commit = true
	g.M.Commit()
	g.resetHot()
	return tx, true
}

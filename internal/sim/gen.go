package sim

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Txn is one generated source transaction.
type Txn struct {
	Stmts  []string
	Commit bool // false: it ends in ROLLBACK and the model is unchanged
	Rows   int  // row changes it makes (before any rollback), for logs
}

// SQL is the transaction as one simple-protocol query string.
func (t Txn) SQL() string {
	end := "COMMIT;"
	if !t.Commit {
		end = "ROLLBACK;"
	}
	return "BEGIN;\n" + strings.Join(t.Stmts, ";\n") + ";\n" + end
}

// Gen generates transactions and applies them to its model as it goes. The
// seed and BigRows fully determine the sequence.
type Gen struct {
	M       *Model
	BigRows int // rows a big transaction changes
	// DDL is the percentage of transactions that change a table's shape
	// (see ddl); 0 makes none.
	DDL int
	// DDLCount counts the schema changes generated, by kind (rolled-back
	// ones included), for logs and tests.
	DDLCount map[string]int
	// Avoid names walmirror bugs the generator steers clear of (see
	// KnownBugs), so that a run can find others.
	Avoid map[string]bool
	rng   *rand.Rand
	// Fresh keys: accounts.id, docs.id, ledger.id and meas.id count up;
	// items codes are drawn from a sparse space.
	nextAcct, nextDoc, nextLedger, nextMeas int64
	// Keys touched by the current transaction, per table: picking them again
	// makes insert-update-delete chains on one key, key reuse after a delete
	// and chained key changes, which net-effect compaction must get right.
	hot [][]Row

	nextID  int        // column IDs and name suffixes
	dropped [][]Column // per table, columns dropped so far
	newPart int        // a partition just attached: the next meas key goes there (-1: none)
	// Online copies (copy.go).
	Copies    CopyGen
	needWrite []int // tables added to the publication, to write to next
	// What this round changed (see Round).
	touched    map[int]bool      // column IDs
	roundNames []map[string]bool // per table, every column name it had
	defaulted  []bool            // per table, a column added with a default
}

// NewGen returns a generator for seed over Tables(). It makes no schema
// changes until DDL is set.
func NewGen(seed uint64, bigRows int) *Gen {
	tables := Tables()
	g := &Gen{
		M: NewModel(tables), BigRows: max(bigRows, 10),
		DDLCount: map[string]int{},
		rng:      rand.New(rand.NewPCG(seed, 0x5eed)),
		nextAcct: 1, nextDoc: 1, nextLedger: 1, nextMeas: 1,
		hot:     make([][]Row, len(tables)),
		dropped: make([][]Column, len(tables)),
		newPart: -1,
	}
	for _, t := range tables {
		for _, c := range t.Cols {
			g.nextID = max(g.nextID, c.ID)
		}
	}
	g.Round()
	return g
}

const (
	tAccounts = iota
	tItems
	tEvents
	tDocs
	tLedger
	tMeas
	tTags
)

// Initial is the first transaction: a few hundred rows, so the initial
// snapshot has something to copy.
func (g *Gen) Initial() Txn {
	var tx Txn
	for ti := range g.M.Tables {
		n := 50 + g.rng.IntN(100)
		if ti == tDocs {
			n = 20
		}
		tx.Stmts = append(tx.Stmts, g.insert(ti, n)...)
		tx.Rows += n
	}
	tx.Commit = true
	g.M.Commit()
	g.resetHot()
	return tx
}

func (g *Gen) resetHot() {
	for i := range g.hot {
		g.hot[i] = g.hot[i][:0]
	}
}

// Next generates the next transaction.
func (g *Gen) Next() Txn {
	if tx, ok := g.resyncTxn(); ok {
		return tx
	}
	var tx Txn
	// A table added to the publication is written to in the next
	// transaction, committed, so walmirror notices it at a change even
	// without polling the publication.
	written := g.needWrite
	g.needWrite = nil
	for _, ti := range written {
		tx.Stmts = append(tx.Stmts, g.insert(ti, 1)...)
		tx.Rows++
	}
	big := g.rng.IntN(100) < 4
	var n int
	switch p := g.rng.IntN(100); {
	case big:
		n = 1 + g.rng.IntN(3)
	case p < 75:
		n = 1 + g.rng.IntN(4)
	default:
		n = 5 + g.rng.IntN(40)
	}
	ddlAt := -1
	if g.DDL > 0 && g.rng.IntN(100) < g.DDL {
		ddlAt = g.rng.IntN(n)
	}
	addAt, resyncAt := g.copyEvents(n)
	var added []int
	spMark, spOpen := 0, false
	for i := range n {
		if !spOpen && g.rng.IntN(100) < 8 {
			tx.Stmts = append(tx.Stmts, "SAVEPOINT sp")
			spMark, spOpen = g.M.Mark(), true
		}
		if i == addAt {
			stmt, tables := g.addTables()
			tx.Stmts = append(tx.Stmts, stmt)
			added = append(added, tables...)
		}
		if i == resyncAt {
			if stmt := g.resyncStmt(); stmt != "" {
				tx.Stmts = append(tx.Stmts, stmt)
			}
		}
		var stmts []string
		var rows int
		if i == ddlAt {
			stmts, rows = g.ddl()
		} else {
			stmts, rows = g.statement(big)
		}
		tx.Stmts = append(tx.Stmts, stmts...)
		tx.Rows += rows
		if spOpen && (i == n-1 || g.rng.IntN(3) == 0) {
			if g.rng.IntN(2) == 0 {
				tx.Stmts = append(tx.Stmts, "ROLLBACK TO SAVEPOINT sp")
				g.M.RollbackTo(spMark)
			} else {
				tx.Stmts = append(tx.Stmts, "RELEASE SAVEPOINT sp")
			}
			spOpen = false
		}
	}
	tx.Commit = g.rng.IntN(100) >= 8 || len(written) > 0
	if tx.Commit {
		g.M.Commit()
		for _, ti := range added {
			if g.M.Published[ti] { // not undone by a ROLLBACK TO SAVEPOINT
				g.needWrite = append(g.needWrite, ti)
			}
		}
	} else {
		g.M.RollbackTo(0)
	}
	g.resetHot()
	return tx
}

// statement picks a table and an operation and returns its SQL (one or more
// statements) and how many row changes it makes.
func (g *Gen) statement(big bool) ([]string, int) {
	ti := []int{tAccounts, tAccounts, tAccounts, tItems, tItems, tEvents, tEvents, tDocs, tDocs, tLedger, tMeas, tMeas, tTags, tTags}[g.rng.IntN(14)]
	if g.rng.IntN(200) == 0 {
		return g.truncate(), 0
	}
	n := 1 + g.rng.IntN(3)
	if big {
		n = g.BigRows/2 + g.rng.IntN(g.BigRows/2+1)
		if ti == tDocs {
			n = max(1, n/20) // bodies are kilobytes each
		}
	}
	if g.M.Tables[ti].Key == 0 {
		return g.keylessOp(ti, n, big)
	}
	size := g.M.state[ti].size()
	switch p := g.rng.IntN(100); {
	case p < 30 || size == 0:
		return g.insert(ti, n), n
	case p < 60:
		return g.update(ti, n)
	case p < 75:
		return g.updateKey(ti, n, big)
	default:
		return g.delete(ti, n)
	}
}

func (g *Gen) truncate() []string {
	var names []string
	for ti, t := range g.M.Tables {
		if g.rng.IntN(2) == 0 || (ti == len(g.M.Tables)-1 && len(names) == 0) {
			names = append(names, t.Q())
			g.M.truncate(ti)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return []string{"TRUNCATE " + strings.Join(names, ", ")}
}

// freshKey returns a key absent from the model: often one deleted or moved
// away earlier in this transaction, otherwise a new one.
func (g *Gen) freshKey(ti int) Row {
	t := g.M.Tables[ti]
	if g.newPart < 0 && g.rng.IntN(3) == 0 {
		for _, k := range g.hot[ti] {
			if !g.M.has(ti, k.key(t.Key)) && g.inPartition(t, k) {
				return slices.Clone(k)
			}
		}
	}
	for {
		var k Row
		switch ti {
		case tAccounts:
			if g.rng.IntN(5) == 0 && g.nextAcct > 1 { // an old, maybe deleted key
				k = Row{intVal(1 + g.rng.Int64N(g.nextAcct-1))}
			} else {
				k = Row{intVal(g.nextAcct)}
				g.nextAcct++
			}
		case tItems:
			regions := []string{"eu", "us", "ap", "süd", "o'hara", `q"x`, "a|b", ""}
			k = Row{{S: regions[g.rng.IntN(len(regions))]}, intVal(int64(g.rng.IntN(1 << 20)))}
		case tDocs:
			k = Row{intVal(g.nextDoc)}
			g.nextDoc++
		case tTags:
			k = Row{g.uuid()}
		case tLedger:
			k = Row{intVal(g.nextLedger)}
			g.nextLedger++
		case tMeas:
			if g.rng.IntN(5) == 0 && g.nextMeas > 1 { // an old id, maybe in another partition
				k = Row{intVal(1 + g.rng.Int64N(g.nextMeas-1))}
			} else {
				k = Row{intVal(g.nextMeas)}
				g.nextMeas++
			}
			part := g.rng.IntN(t.Parts)
			if g.newPart >= 0 {
				part, g.newPart = g.newPart, -1
			}
			k = append(k, intVal(int64(part*PartWidth+g.rng.IntN(PartWidth))))
		}
		if !g.M.has(ti, k.key(t.Key)) {
			return k
		}
	}
}

// inPartition says whether key k has a partition to go to (one created in
// a rolled-back savepoint is gone again).
func (g *Gen) inPartition(t *Table, k Row) bool {
	if !t.Partitioned {
		return true
	}
	p, _ := strconv.Atoi(k[1].S)
	return p < t.Parts*PartWidth
}

// existing picks n distinct existing keys, preferring ones this
// transaction touched.
func (g *Gen) existing(ti, n int) []Row {
	t, ts := g.M.Tables[ti], g.M.state[ti]
	seen := map[string]bool{}
	var out []Row
	for _, k := range g.hot[ti] {
		ks := k.key(t.Key)
		if len(out) < n && g.rng.IntN(2) == 0 && g.M.has(ti, ks) && !seen[ks] {
			seen[ks] = true
			out = append(out, slices.Clone(k))
		}
	}
	for tries := 0; len(out) < n && tries < 3*n; tries++ {
		ks := ts.keys[g.rng.IntN(len(ts.keys))]
		if !seen[ks] {
			seen[ks] = true
			out = append(out, ts.rows[ks][:t.Key:t.Key])
		}
	}
	return out
}

func (g *Gen) touch(ti int, k Row) {
	if len(g.hot[ti]) < 64 {
		g.hot[ti] = append(g.hot[ti], slices.Clone(k))
	}
}

func (g *Gen) insert(ti, n int) []string {
	t := g.M.Tables[ti]
	var stmts []string
	var vals []string
	flush := func() {
		if len(vals) > 0 {
			stmts = append(stmts, "INSERT INTO "+t.Q()+" ("+t.Shape().ColList()+") VALUES "+strings.Join(vals, ", "))
			vals = vals[:0]
		}
	}
	for range n {
		var r Row
		if t.Key == 0 {
			r = g.keylessRow(ti)
		} else {
			r = g.row(ti, g.freshKey(ti))
			g.touch(ti, r[:t.Key])
		}
		g.M.insert(ti, r)
		vals = append(vals, "("+g.literals(t, r, 0)+")")
		if len(vals) == 500 {
			flush()
		}
	}
	flush()
	return stmts
}

// update changes non-key columns of n existing rows: one UPDATE per row for
// a few, one UPDATE ... FROM (VALUES ...) for many.
func (g *Gen) update(ti, n int) ([]string, int) {
	t := g.M.Tables[ti]
	keys := g.existing(ti, n)
	cols := g.someColumns(t)
	var stmts, vals []string
	for _, k := range keys {
		old := g.M.get(ti, k.key(t.Key))
		r := slices.Clone(old)
		fresh := g.row(ti, k)
		for _, c := range cols {
			r[c] = fresh[c]
		}
		g.M.replace(ti, r)
		g.touch(ti, k)
		if len(keys) <= 3 {
			stmts = append(stmts, "UPDATE "+t.Q()+" SET "+g.assignments(t, cols, r)+" WHERE "+g.keyPred(t, k))
		} else {
			vals = append(vals, "("+g.literalsOf(t, r, slices.Concat(keyIdx(t), cols))+")")
		}
	}
	if len(vals) > 0 {
		names := make([]string, 0, len(cols)+t.Key)
		for _, c := range slices.Concat(keyIdx(t), cols) {
			names = append(names, t.Cols[c].Quoted())
		}
		var set, where []string
		for _, c := range cols {
			set = append(set, t.Cols[c].Quoted()+" = v."+t.Cols[c].Quoted())
		}
		for c := range t.Key {
			where = append(where, "t."+t.Cols[c].Quoted()+" = v."+t.Cols[c].Quoted())
		}
		stmts = append(stmts, "UPDATE "+t.Q()+" AS t SET "+strings.Join(set, ", ")+" FROM (VALUES "+
			strings.Join(vals, ", ")+") AS v("+strings.Join(names, ", ")+") WHERE "+strings.Join(where, " AND "))
	}
	return stmts, len(keys)
}

// updateKey moves rows to new keys, sometimes changing other columns too.
// In a big transaction, accounts shift a whole id range at once.
func (g *Gen) updateKey(ti, n int, big bool) ([]string, int) {
	t := g.M.Tables[ti]
	if big && ti == tAccounts {
		ts := g.M.state[ti]
		lo := g.rng.Int64N(g.nextAcct)
		hi := lo + int64(n)
		shift := g.nextAcct + 1000 - lo
		var moved []Row
		for _, ks := range slices.Clone(ts.keys) {
			r := ts.rows[ks]
			id, _ := strconv.ParseInt(r[0].S, 10, 64)
			if id >= lo && id <= hi {
				moved = append(moved, r)
				g.M.remove(ti, ks)
			}
		}
		for _, r := range moved {
			id, _ := strconv.ParseInt(r[0].S, 10, 64)
			nr := slices.Clone(r)
			nr[0] = intVal(id + shift)
			g.M.insert(ti, nr)
		}
		g.nextAcct = hi + shift + 1
		id := t.Cols[0].Quoted()
		return []string{fmt.Sprintf("UPDATE %s SET %s = %s + %d WHERE %s BETWEEN %d AND %d", t.Q(), id, id, shift, id, lo, hi)}, len(moved)
	}
	var stmts []string
	keys := g.existing(ti, n)
	for _, k := range keys {
		old := g.M.get(ti, k.key(t.Key))
		g.M.remove(ti, k.key(t.Key))
		nk := g.freshKey(ti)
		if (ti == tItems || ti == tMeas) && g.rng.IntN(2) == 0 {
			// Change only part of the composite key (meas: only the
			// partition key, so the row often moves to another partition).
			nk[0] = old[0]
			if g.M.has(ti, nk.key(t.Key)) {
				nk = g.freshKey(ti)
			}
		}
		r := slices.Clone(old)
		copy(r, nk)
		cols := keyIdx(t)
		if g.rng.IntN(2) == 0 {
			fresh := g.row(ti, nk)
			for _, c := range g.someColumns(t) {
				r[c] = fresh[c]
				cols = append(cols, c)
			}
		}
		g.M.insert(ti, r)
		g.touch(ti, k)
		g.touch(ti, nk)
		stmts = append(stmts, "UPDATE "+t.Q()+" SET "+g.assignments(t, cols, r)+" WHERE "+g.keyPred(t, k))
	}
	return stmts, len(keys)
}

func (g *Gen) delete(ti, n int) ([]string, int) {
	t := g.M.Tables[ti]
	if ti == tAccounts && g.rng.IntN(3) == 0 {
		ts := g.M.state[ti]
		lo := g.rng.Int64N(g.nextAcct)
		hi := lo + int64(n)
		count := 0
		for _, ks := range slices.Clone(ts.keys) {
			id, _ := strconv.ParseInt(ts.rows[ks][0].S, 10, 64)
			if id >= lo && id <= hi {
				g.M.remove(ti, ks)
				count++
			}
		}
		return []string{fmt.Sprintf("DELETE FROM %s WHERE %s BETWEEN %d AND %d", t.Q(), t.Cols[0].Quoted(), lo, hi)}, count
	}
	keys := g.existing(ti, n)
	preds := make([]string, len(keys))
	for i, k := range keys {
		g.M.remove(ti, k.key(t.Key))
		g.touch(ti, k)
		preds[i] = "(" + g.literalsOf(t, k, keyIdx(t)) + ")"
	}
	if len(keys) == 0 {
		return nil, 0
	}
	return []string{"DELETE FROM " + t.Q() + " WHERE (" + t.keyList("") + ") IN (" + strings.Join(preds, ", ") + ")"}, len(keys)
}

// keylessOp changes the keyless table: by a predicate on its group column
// (every matching row) or exactly one of a set of identical rows (by ctid).
func (g *Gen) keylessOp(ti, n int, big bool) ([]string, int) {
	t := g.M.Tables[ti]
	ts := g.M.state[ti]
	p := g.rng.IntN(100)
	if p < 40 || len(ts.bag) == 0 {
		if big {
			n = g.BigRows / 4
		}
		return g.insert(ti, n), n
	}
	gi := t.Col("g") // never dropped
	grp := g.rng.IntN(20)
	matches := func(r Row) bool { return !r[gi].Null && r[gi].S == strconv.Itoa(grp) }
	where := fmt.Sprintf(" WHERE %s = %d", t.Cols[gi].Quoted(), grp)
	var others []int // the columns besides the group
	for c := range t.Cols {
		if c != gi {
			others = append(others, c)
		}
	}
	switch {
	case p < 55: // delete every row of a group
		var keep []Row
		for _, r := range ts.bag {
			if !matches(r) {
				keep = append(keep, r)
			}
		}
		n := len(ts.bag) - len(keep)
		g.M.setBag(ti, keep)
		return []string{"DELETE FROM " + t.Q() + where}, n
	case p < 70: // update every row of a group
		fresh := g.keylessRow(ti)
		var cols []int
		for _, c := range others {
			if g.rng.IntN(2) == 0 {
				cols = append(cols, c)
			}
		}
		if len(cols) == 0 {
			cols = others[:1]
		}
		var rows []Row
		n := 0
		for _, r := range ts.bag {
			if matches(r) {
				r = slices.Clone(r)
				for _, c := range cols {
					r[c] = fresh[c]
				}
				n++
			}
			rows = append(rows, r)
		}
		g.M.setBag(ti, rows)
		return []string{"UPDATE " + t.Q() + " SET " + g.assignments(t, cols, fresh) + where}, n
	default: // delete or update exactly one of the rows equal to a chosen one
		victim := ts.bag[g.rng.IntN(len(ts.bag))]
		var conds []string
		for c := range t.Cols {
			conds = append(conds, t.Cols[c].Quoted()+" IS NOT DISTINCT FROM "+g.literal(t.Cols[c], victim[c]))
		}
		sub := "ctid = (SELECT ctid FROM " + t.Q() + " WHERE " + strings.Join(conds, " AND ") + " LIMIT 1)"
		i := slices.IndexFunc(ts.bag, victim.equal)
		rows := slices.Clone(ts.bag)
		if g.rng.IntN(2) == 0 {
			g.M.setBag(ti, slices.Delete(rows, i, i+1))
			return []string{"DELETE FROM " + t.Q() + " WHERE " + sub}, 1
		}
		fresh := g.keylessRow(ti)
		c := others[g.rng.IntN(len(others))]
		r := slices.Clone(victim)
		r[c] = fresh[c]
		rows[i] = r
		g.M.setBag(ti, rows)
		return []string{"UPDATE " + t.Q() + " SET " + g.assignments(t, []int{c}, r) + " WHERE " + sub}, 1
	}
}

// keylessRow is a new events row, often a copy of an existing one so the
// table holds duplicates.
func (g *Gen) keylessRow(ti int) Row {
	ts := g.M.state[ti]
	if len(ts.bag) > 0 && g.rng.IntN(100) < 35 {
		return slices.Clone(ts.bag[g.rng.IntN(len(ts.bag))])
	}
	r := g.row(ti, nil)
	gi := ts.t.Col("g")
	r[gi] = intVal(int64(g.rng.IntN(20)))
	if g.rng.IntN(20) == 0 {
		r[gi] = Val{Null: true}
	}
	return r
}

// row returns a row with key k and random other values.
func (g *Gen) row(ti int, k Row) Row {
	t := g.M.Tables[ti]
	r := make(Row, len(t.Cols))
	copy(r, k)
	for c := len(k); c < len(t.Cols); c++ {
		col := t.Cols[c]
		if g.rng.IntN(10) == 0 {
			r[c] = Val{Null: true}
			continue
		}
		if isBody(t, col) {
			r[c] = Val{S: g.bigText()}
			continue
		}
		r[c] = g.value(col)
	}
	return r
}

// isBody says whether c is docs' TOASTed body (never dropped).
func isBody(t *Table, c Column) bool { return t.Orig == "docs" && c.Orig == "body" }

// someColumns picks a non-empty set of non-key columns; for docs it leaves
// the TOASTed body out half the time so the update carries it unchanged.
func (g *Gen) someColumns(t *Table) []int {
	var cols []int
	for c := t.Key; c < len(t.Cols); c++ {
		if g.rng.IntN(2) == 0 {
			cols = append(cols, c)
		}
	}
	if t.Orig == "docs" && g.rng.IntN(2) == 0 {
		cols = slices.DeleteFunc(cols, func(c int) bool { return isBody(t, t.Cols[c]) })
	}
	if len(cols) == 0 {
		cols = []int{t.Key + g.rng.IntN(len(t.Cols)-t.Key)}
		if isBody(t, t.Cols[cols[0]]) {
			// Another column (docs always keeps one besides the body).
			cols[0] = t.Key + (cols[0]-t.Key+1)%(len(t.Cols)-t.Key)
		}
	}
	return cols
}

func keyIdx(t *Table) []int {
	out := make([]int, t.Key)
	for i := range out {
		out[i] = i
	}
	return out
}

// --- values and literals ---

func intVal(i int64) Val { return Val{S: strconv.FormatInt(i, 10)} }

var textPieces = []string{
	"alpha", "beta", "it's", `say "hi"`, "ünïcødé ✓", "日本語", "emoji 🎉", "tab\there", "new\nline",
	`back\slash`, " | ", "NULL", "", "  spaced  ", "O''Brien", "\\x00", "{}", "[1,2]", "ß", "😀😀",
}

func (g *Gen) text() string {
	n := g.rng.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = textPieces[g.rng.IntN(len(textPieces))]
	}
	return strings.Join(parts, " ")
}

// bigText is 2.5-9 kB of mostly incompressible text (it is stored
// externally anyway), sometimes with multi-byte characters.
func (g *Gen) bigText() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '\"\\"
	n := 2500 + g.rng.IntN(6500)
	var b strings.Builder
	b.Grow(n + 8)
	for b.Len() < n {
		if g.rng.IntN(500) == 0 {
			b.WriteString("✓é")
		} else {
			b.WriteByte(alphabet[g.rng.IntN(len(alphabet))])
		}
	}
	return b.String()
}

func (g *Gen) value(c Column) Val {
	switch c.Kind {
	case Int:
		if c.Type == "bigint" && g.rng.IntN(4) == 0 { // beyond int's range
			return intVal(g.rng.Int64N(1<<62) - 1<<61)
		}
		return intVal(g.rng.Int64N(2_000_001) - 1_000_000)
	case Text:
		s := g.text()
		if _, args := typeArgs(c.Type); len(args) == 1 { // varchar(n)
			if r := []rune(s); len(r) > args[0] {
				s = string(r[:args[0]])
			}
		}
		return Val{S: s}
	case Numeric:
		return Val{S: g.numeric(c.Type)}
	case Float:
		return Val{S: g.float()}
	case Bool:
		if g.rng.IntN(2) == 0 {
			return Val{S: "t"}
		}
		return Val{S: "f"}
	case TimestampTZ:
		switch g.rng.IntN(40) {
		case 0:
			return Val{S: "infinity"}
		case 1:
			return Val{S: "-infinity"}
		}
		us := g.rng.Int64N(130 * 365 * 24 * 3600 * 1_000_000)
		if g.rng.IntN(3) == 0 {
			us -= us % 1_000_000 // whole seconds print without a fraction
		}
		return Val{S: time.UnixMicro(us).UTC().Format(time.RFC3339Nano)}
	case JSON:
		b, err := json.Marshal(g.jsonValue(2))
		if err != nil {
			panic(err)
		}
		s, err := Normalize(JSON, string(b))
		if err != nil {
			panic(err)
		}
		return Val{S: s}
	case UUID:
		return g.uuid()
	case Bytea:
		b := make([]byte, g.rng.IntN(40))
		for i := range b {
			b[i] = byte(g.rng.IntN(256))
		}
		return Val{S: `\x` + hex.EncodeToString(b)}
	}
	panic("sim: unknown kind")
}

// uuid is a random uuid in PostgreSQL's text form (lower case).
func (g *Gen) uuid() Val {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.rng.IntN(256))
	}
	h := hex.EncodeToString(b[:])
	return Val{S: h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]}
}

// numeric returns a value PostgreSQL prints back exactly as generated: the
// scale a typmod fixes, or any scale for unconstrained numeric.
func (g *Gen) numeric(typ string) string {
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + g.rng.IntN(10))
		}
		return string(b)
	}
	var intDigits, scale int
	if _, args := typeArgs(typ); len(args) == 2 { // numeric(p,s)
		intDigits, scale = 1+g.rng.IntN(args[0]-args[1]), args[1]
	} else {
		if g.rng.IntN(30) == 0 {
			return "NaN"
		}
		intDigits, scale = 1+g.rng.IntN(30), g.rng.IntN(12)
	}
	ip := strings.TrimLeft(digits(intDigits), "0")
	if ip == "" {
		ip = "0"
	}
	s := ip
	if scale > 0 {
		s += "." + digits(scale)
	}
	if g.rng.IntN(3) == 0 && strings.Trim(s, "0.") != "" { // PostgreSQL prints -0 as 0
		s = "-" + s
	}
	return s
}

func (g *Gen) float() string {
	switch g.rng.IntN(20) {
	case 0:
		return "Infinity"
	case 1:
		return "-Infinity"
	case 2:
		return "NaN"
	case 3:
		return formatFloat(math.SmallestNonzeroFloat64 * float64(1+g.rng.IntN(1000)))
	case 4:
		return formatFloat(g.rng.Float64() * 1e300)
	case 5:
		return "0.1"
	case 6:
		return formatFloat(float64(g.rng.IntN(1_000_000_000)))
	}
	f := g.rng.NormFloat64() * 1000
	if f == 0 {
		f = 1 // SQLite keeps no negative zero; avoid ±0 altogether
	}
	return formatFloat(f)
}

func (g *Gen) jsonValue(depth int) any {
	switch p := g.rng.IntN(10); {
	case depth > 0 && p < 3:
		m := map[string]any{}
		for range g.rng.IntN(4) {
			keys := []string{"a", "b", "name", "ключ", "k'ey", `q"k`, "n", "nested"}
			m[keys[g.rng.IntN(len(keys))]] = g.jsonValue(depth - 1)
		}
		return m
	case depth > 0 && p < 5:
		a := make([]any, g.rng.IntN(4))
		for i := range a {
			a[i] = g.jsonValue(depth - 1)
		}
		return a
	case p < 6:
		return json.Number(strconv.Itoa(g.rng.IntN(100000) - 50000))
	case p < 7:
		return json.Number(fmt.Sprintf("%d.%d", g.rng.IntN(1000), 1+g.rng.IntN(9)))
	case p < 8:
		return g.rng.IntN(2) == 0
	case p < 9:
		return nil
	}
	return g.text()
}

// literal is v as a SQL literal cast to c's type, so it also works where
// the type cannot be inferred (VALUES lists of an UPDATE ... FROM).
func (g *Gen) literal(c Column, v Val) string {
	if v.Null {
		return "NULL::" + c.Type
	}
	switch c.Kind {
	case Int:
		return v.S
	case Bool:
		if v.S == "t" {
			return "true"
		}
		return "false"
	case Text:
		return quoteLit(v.S)
	}
	return quoteLit(v.S) + "::" + c.Type
}

func quoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// literals renders r's columns from first on.
func (g *Gen) literals(t *Table, r Row, first int) string {
	idx := make([]int, 0, len(t.Cols))
	for c := first; c < len(t.Cols); c++ {
		idx = append(idx, c)
	}
	return g.literalsOf(t, r, idx)
}

// literalsOf renders the columns idx of r (r may be only a key prefix when
// idx are key columns).
func (g *Gen) literalsOf(t *Table, r Row, idx []int) string {
	parts := make([]string, len(idx))
	for i, c := range idx {
		parts[i] = g.literal(t.Cols[c], r[c])
	}
	return strings.Join(parts, ", ")
}

func (g *Gen) assignments(t *Table, cols []int, r Row) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = t.Cols[c].Quoted() + " = " + g.literal(t.Cols[c], r[c])
	}
	return strings.Join(parts, ", ")
}

func (g *Gen) keyPred(t *Table, k Row) string {
	parts := make([]string, t.Key)
	for c := range t.Key {
		parts[c] = t.Cols[c].Quoted() + " = " + g.literal(t.Cols[c], k[c])
	}
	return strings.Join(parts, " AND ")
}

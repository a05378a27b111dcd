package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// Snapshot is a new slot's exported snapshot, open for copying: what it shows
// is exactly what precedes the slot's consistent point. It stays valid while
// the replication connection that created the slot stays idle, so Close it
// before streaming.
type Snapshot struct {
	ConsistentPoint lsn.LSN
	repl            *pgconn.PgConn
	conn            *pgx.Conn
	tx              pgx.Tx
	queries         map[uint32]string // COPY statement per table
	froms           map[uint32]string // the table each statement reads, as listed
	direct          map[uint32]string // tables copied by name (directCopy): their column lists
	binary          map[uint32]bool   // tables CopyBinary can copy
	publication     string
	// Estimates are the source's row estimates per table (from Tables;
	// -1: never analyzed).
	Estimates map[uint32]int64
	// Partitioned are the partitioned tables among them, whose estimates
	// count only the partitions ever analyzed.
	Partitioned map[uint32]bool
}

// CreateSlot creates the replication slot with an exported snapshot and opens
// a repeatable-read transaction on that snapshot for the initial copy.
func (s *Source) CreateSlot(ctx context.Context) (_ *Snapshot, err error) {
	repl, err := s.replicationConn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			repl.Close(context.WithoutCancel(ctx))
		}
	}()
	stopNotice := s.noticeSlotWait(ctx)
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	stopNotice()
	if err != nil {
		return nil, classify("create replication slot "+s.cfg.Slot, err)
	}
	point, err := lsn.Parse(res.ConsistentPoint)
	if err != nil {
		return nil, fmt.Errorf("create replication slot: consistent point: %w", err)
	}
	s.log.Info("created replication slot", "slot", s.cfg.Slot, "consistent_point", point)

	pcfg, err := connConfig(&s.cfg, false)
	if err != nil {
		return nil, err
	}
	ccfg, _ := pgx.ParseConfig("")
	ccfg.Config = *pcfg
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, classify("connect for snapshot", err)
	}
	sn := &Snapshot{ConsistentPoint: point, repl: repl, conn: conn, publication: s.cfg.Publication}
	sn.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		_, err = sn.tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(res.SnapshotName))
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, classify("open snapshot transaction", err)
	}
	return sn, nil
}

// Close ends the snapshot transaction and the connection that created the slot.
func (sn *Snapshot) Close(ctx context.Context) error {
	err := sn.tx.Rollback(ctx)
	err = errors.Join(err, sn.conn.Close(ctx), sn.repl.Close(ctx))
	return err
}

// Tables describes every published table as pgoutput would (same columns,
// types, typmods and key flags), honouring PostgreSQL 15 column lists and row
// filters.
func (sn *Snapshot) Tables(ctx context.Context) ([]*schema.Table, error) {
	pts, err := publishedTables(ctx, sn.tx, sn.publication, 0)
	if err != nil {
		return nil, err
	}
	sn.queries = make(map[uint32]string, len(pts))
	sn.froms = make(map[uint32]string, len(pts))
	sn.direct = make(map[uint32]string, len(pts))
	sn.Estimates = make(map[uint32]int64, len(pts))
	sn.Partitioned = make(map[uint32]bool)
	tables := make([]*schema.Table, 0, len(pts))
	for _, p := range pts {
		t, err := p.describe(ctx, sn.tx)
		if err != nil {
			return nil, err
		}
		sn.queries[t.ID] = "COPY (" + p.query(t, "") + ") TO STDOUT"
		sn.froms[t.ID] = quoteIdent(p.nsp) + "." + quoteIdent(p.name)
		if p.directCopy() {
			names := make([]string, len(t.Columns))
			for i, c := range t.Columns {
				names[i] = quoteIdent(c.Name)
			}
			sn.direct[t.ID] = strings.Join(names, ", ")
		}
		sn.Estimates[t.ID] = p.estimate
		if p.root {
			sn.Partitioned[t.ID] = true
		}
		tables = append(tables, t)
	}
	if sn.binary, err = binarySendable(ctx, sn.tx, tables); err != nil {
		return nil, err
	}
	return tables, nil
}

// binarySendable lists the tables whose every column has a type with a
// binary output function (and an element type with one), which a binary
// COPY needs.
func binarySendable(ctx context.Context, tx pgx.Tx, tables []*schema.Table) (map[uint32]bool, error) {
	var oids []uint32
	for _, t := range tables {
		for _, c := range t.Columns {
			oids = append(oids, c.TypeID)
		}
	}
	rows, err := tx.Query(ctx, `SELECT t.oid FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
		WHERE t.oid = ANY ($1::oid[]) AND (t.typsend = 0 OR e.typsend = 0)`, oids)
	if err != nil {
		return nil, classify("inspect column types", err)
	}
	unsendable := map[uint32]bool{}
	var oid uint32
	if _, err := pgx.ForEachRow(rows, []any{&oid}, func() error { unsendable[oid] = true; return nil }); err != nil {
		return nil, classify("inspect column types", err)
	}
	out := make(map[uint32]bool, len(tables))
	for _, t := range tables {
		ok := true
		for _, c := range t.Columns {
			ok = ok && !unsendable[c.TypeID]
		}
		out[t.ID] = ok
	}
	return out, nil
}

// pubTable is one table of a publication, as the publication shows it.
type pubTable struct {
	oid       uint32
	nsp, name string
	ident     string
	root      bool // a partitioned table: its rows are its partitions'
	cols      []string
	filter    *string
	estimate  int64  // reltuples (-1: never analyzed)
	storage   string // schema.Table.Storage
	xmin      uint32 // PublishedTable.StorageXmin
	genCols   bool   // the publication publishes stored generated columns (PostgreSQL 18)
	genListed bool   // PostgreSQL 18: a column list may name generated columns too
	generated bool   // a published column is generated (describe)
}

// directCopy says whether the initial copy reads p by name (COPY t (cols)
// TO) rather than through a query (COPY (SELECT ...) TO): a plain table
// with no row filter and no generated column published, which COPY's
// column list refuses. The query's planning locks every index of the table
// until the copy's transaction ends; a one-transaction copy of a database
// whose tables have several indexes each filled the source's shared lock
// table (max_locks_per_transaction), and the application's sessions then
// failed with "out of shared memory" too. By name, only the table is locked.
func (p *pubTable) directCopy() bool {
	return !p.root && p.filter == nil && !p.generated
}

// estimateExpr is the row estimate of pg_class row c: reltuples, or the
// live rows the statistics system counted since (inserts less deletes) if
// more: a table analyzed small and bulk-loaded since, or restored and never
// analyzed, would otherwise count as small (the automatic initial copy's
// choices, atOnce). No size function: pg_relation_size locks the table,
// and a catalog read must not wait on the source's DDL. -1: never analyzed
// and nothing counted. A partitioned table sums its leaves (or -1).
const estimateExpr = `CASE WHEN c.relkind = 'p' THEN coalesce((SELECT sum(greatest(l.reltuples::int8, pg_catalog.pg_stat_get_live_tuples(l.oid), 0)) FROM ` + leavesOf + ` t
		JOIN pg_catalog.pg_class l ON l.oid = t.relid), -1)::int8
	WHEN c.reltuples < 0 AND pg_catalog.pg_stat_get_live_tuples(c.oid) = 0 THEN -1
	ELSE greatest(c.reltuples::int8, pg_catalog.pg_stat_get_live_tuples(c.oid)) END`

// publishedTables lists the publication's tables (only relid's when not 0)
// in the transaction's snapshot.
func publishedTables(ctx context.Context, tx pgx.Tx, publication string, relid uint32) ([]pubTable, error) {
	// PostgreSQL 18 publications may publish stored generated columns.
	var genCols bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute
		WHERE attrelid = 'pg_catalog.pg_publication'::regclass AND attname = 'pubgencols')`).Scan(&genCols); err != nil {
		return nil, classify("inspect pg_publication", err)
	}
	genListed := genCols
	if genCols {
		err := tx.QueryRow(ctx, `SELECT pubgencols::text = 's' FROM pg_publication WHERE pubname = $1`, publication).Scan(&genCols)
		if errors.Is(err, pgx.ErrNoRows) {
			// Dropped: it publishes nothing now, as before PostgreSQL 18
			// (where the stream fails at a change made meanwhile; 18 skips
			// such changes, and its tables are copied again if they join
			// again, as the poll sees them leave).
			return nil, nil
		} else if err != nil {
			return nil, classify("inspect publication", err)
		}
	}
	var hasLists bool
	if err := tx.QueryRow(ctx, `SELECT count(*) = 2 FROM pg_attribute
		WHERE attrelid = 'pg_catalog.pg_publication_tables'::regclass AND attname IN ('attnames', 'rowfilter')`).Scan(&hasLists); err != nil {
		return nil, classify("inspect pg_publication_tables", err)
	}
	// The published tables first, then their signatures: in one query
	// the planner computed the signatures for every relation of the
	// database (indexes, sequences, unpublished tables) before the join
	// dropped them (3,000 tables in 300 schemas: a listing of 1.4 s, 0.3 s
	// with this and nestedTypes' far starting from ty).
	q := `WITH p AS MATERIALIZED (SELECT c.oid, p.schemaname, p.tablename, NULL::text[] AS attnames, NULL::text AS rowfilter
			FROM pg_publication_tables p
			JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
			WHERE p.pubname = $1 AND ($2 = 0 OR c.oid = $2))
		SELECT c.oid, p.schemaname, p.tablename, ` + identityExpr + `, c.relkind = 'p', p.attnames, p.rowfilter,
			` + estimateExpr + `,
			` + storageExpr + `, CASE WHEN c.relkind = 'p' THEN 0 ELSE c.xmin::text::int8 END
		FROM p JOIN pg_catalog.pg_class c ON c.oid = p.oid ORDER BY 2, 3`
	member := ""
	if hasLists {
		q = strings.Replace(q, "NULL::text[] AS attnames, NULL::text AS rowfilter", "p.attnames, p.rowfilter", 1)
		member = memberExpr15 // PostgreSQL 15: FOR TABLES IN SCHEMA
	}
	q = strings.Replace(q, "MEMBER15", member, 1)
	list := func(tx pgx.Tx) ([]pubTable, error) {
		rows, err := tx.Query(ctx, q, publication, int64(relid))
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pubTable, error) {
			p := pubTable{genCols: genCols, genListed: genListed}
			var xmin int64
			err := r.Scan(&p.oid, &p.nsp, &p.name, &p.ident, &p.root, &p.cols, &p.filter, &p.estimate, &p.storage, &xmin)
			p.xmin = uint32(xmin)
			return p, err
		})
	}
	// Under a savepoint, taken again when any table of the database was
	// dropped while the view listed it (droppedMeanwhile): the caller's
	// transaction holds a snapshot it must keep (a chunk's, the initial
	// copy's), and a listing narrowed to one table still opens them all.
	// Before, an online copy stopped the run (exit 1) whenever an
	// application dropped any table meanwhile (helper-64).
	pts, err := retryDropped(func() ([]pubTable, error) {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return nil, err
		}
		pts, err := list(sp)
		if err != nil {
			return nil, errors.Join(err, sp.Rollback(ctx))
		}
		return pts, sp.Commit(ctx)
	})
	if err != nil {
		return nil, classify("list published tables", err)
	}
	return pts, nil
}

// query selects t's published rows; cond, when not empty, narrows them
// further.
func (p *pubTable) query(t *schema.Table, cond string) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = quoteIdent(c.Name)
	}
	// ONLY: a table's inheritance children are published (or not) on
	// their own; a partitioned root published via its root
	// (publish_via_partition_root) holds its partitions' rows.
	only := " ONLY "
	if p.root {
		only = " "
	}
	q := "SELECT " + strings.Join(names, ", ") + " FROM" + only + quoteIdent(p.nsp) + "." + quoteIdent(p.name)
	switch {
	case p.filter != nil && cond != "":
		q += " WHERE (" + *p.filter + ") AND " + cond
	case p.filter != nil:
		q += " WHERE " + *p.filter
	case cond != "":
		q += " WHERE " + cond
	}
	return q
}

// publishes says whether the publication carries p's column name, whose
// pg_attribute.attgenerated is generated: the test describe's query makes.
func (p *pubTable) publishes(name, generated string) bool {
	if p.cols != nil && !slices.Contains(p.cols, name) {
		return false
	}
	return generated == "" || generated == "s" && (p.genCols || p.genListed && p.cols != nil)
}

func (p *pubTable) describe(ctx context.Context, tx pgx.Tx) (*schema.Table, error) {
	oid, nsp, name, ident, only := p.oid, p.nsp, p.name, p.ident[0], p.cols
	// Types outside the built-in range are named as pgoutput's Type messages
	// name them, so a table looks the same whether first seen here or streamed.
	rows, err := tx.Query(ctx, `SELECT a.attnum, a.attname, a.atttypid, a.atttypmod,
			EXISTS (SELECT FROM generate_series(0, i.indnkeyatts - 1) k WHERE i.indkey[k] = a.attnum), -- not INCLUDE columns
			CASE WHEN a.atttypid >= 10000 THEN tn.nspname || '.' || t.typname END,
			(SELECT max(m.attnum) FROM pg_attribute m WHERE m.attrelid = a.attrelid),
			coalesce(a.attgenerated = '' OR a.attgenerated = 's' AND ($3 OR $4 AND a.attname = ANY ($5::text[])), false),
			`+primaryColumn+`, a.attgenerated <> ''
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		JOIN pg_namespace tn ON tn.oid = t.typnamespace
		-- PostgreSQL's replica identity index is valid (not a partitioned root's key
		-- added ONLY) and not DEFERRABLE: the stream names no other key. A root
		-- whose REPLICA IDENTITY FULL its partitions lack (identityExpr: 'd') has
		-- none, as the stream takes it (Attribute.PartialOld).
		LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND
			i.indisvalid AND i.indimmediate AND CASE $2
				WHEN 'd' THEN i.indisprimary AND (SELECT relreplident FROM pg_class WHERE oid = $1) = 'd' WHEN 'i' THEN i.indisreplident ELSE false END
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, oid, string(ident), p.genCols, p.genListed, only)
	if err != nil {
		return nil, classify("describe table", err)
	}
	typeNames := map[uint32]string{}
	var nums []int16
	var maxNum int16
	// A key column left out (by a column list, or a generated column the
	// publication does not publish) makes the table keyless, as the stream
	// takes it (untrustedKey): the rest of the key may repeat.
	unlisted := false
	var cols []schema.Column
	var lookup []int
	for rows.Next() {
		var c schema.Column
		var typeName *string
		var num int16
		var published, primary, generated bool
		if err := rows.Scan(&num, &c.Name, &c.TypeID, &c.Typmod, &c.Key, &typeName, &maxNum, &published, &primary, &generated); err != nil {
			rows.Close()
			return nil, classify("describe table", err)
		}
		if !published || only != nil && !slices.Contains(only, c.Name) {
			unlisted = unlisted || c.Key
			continue
		}
		if primary {
			lookup = append(lookup, len(cols))
		}
		p.generated = p.generated || generated
		cols, nums = append(cols, c), append(nums, num)
		if typeName != nil {
			typeNames[c.TypeID] = *typeName
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify("describe table", err)
	}
	for i := range cols {
		cols[i].Key = cols[i].Key && !unlisted
	}
	if ident == schema.IdentityFull {
		for i := range cols {
			cols[i].Key = true
		}
	}
	t := schema.NewTable(oid, nsp, name, ident, cols)
	if ident == schema.IdentityFull {
		t.Lookup = lookup
	}
	t.Nums = nums
	t.MaxNum = maxNum
	t.Storage = p.storage
	if len(typeNames) > 0 {
		t.TypeNames = typeNames
	}
	return t, nil
}

// BinaryCopyable reports whether CopyBinary can copy t (from Tables): every
// column's type has a binary output function.
func (sn *Snapshot) BinaryCopyable(t *schema.Table) bool { return sn.binary[t.ID] }

// CopyBinary passes the rows of a table (from Tables) in the snapshot to fn
// in PostgreSQL's binary COPY format (header, rows, trailer), the columns as
// Tables describes them, and returns how many rows it copied. fn gets the
// stream in pieces that may end inside a row, each with the number of rows
// complete so far; a piece is only valid during the call. Only for a table
// BinaryCopyable takes.
func (sn *Snapshot) CopyBinary(ctx context.Context, t *schema.Table, fn func(data []byte, rows int64) error) (int64, error) {
	if !sn.binary[t.ID] {
		return 0, fmt.Errorf("copy %s in binary: table not listed by Tables, or a column type has no binary output", t.QualifiedName())
	}
	var n int64
	err := sn.Released(ctx, func() error {
		q, err := sn.statement(ctx, t)
		if err != nil {
			return err
		}
		n, err = copyOutBinary(ctx, sn.tx.Conn().PgConn(), t, q+" (FORMAT binary)", fn)
		return err
	})
	return n, err
}

// copyOutBinary runs q, a COPY ... TO STDOUT (FORMAT binary) of t's columns,
// on conn and passes the stream to fn in pieces, each with the number of
// rows complete so far; it returns how many rows it copied.
func copyOutBinary(ctx context.Context, conn *pgconn.PgConn, t *schema.Table, q string, fn func(data []byte, rows int64) error) (int64, error) {
	w := &binaryCounter{fn: fn}
	tag, err := conn.CopyTo(ctx, w, q)
	switch {
	case w.err != nil:
		return 0, w.err
	case err != nil:
		return 0, copyError(t, err)
	case !w.ended() || w.rows != tag.RowsAffected():
		return 0, fmt.Errorf("copy %s in binary: the stream does not end after its %d rows (the server counted %d)", t.QualifiedName(), w.rows, tag.RowsAffected())
	}
	return w.rows, nil
}

// Copy streams the rows of a table (from Tables) in the snapshot to fn. The
// tuple passed to fn is fn's to keep.
func (sn *Snapshot) Copy(ctx context.Context, t *schema.Table, fn func(schema.Tuple) error) error {
	return sn.Released(ctx, func() error {
		q, err := sn.statement(ctx, t)
		if err != nil {
			return err
		}
		return copyOut(ctx, sn.tx.Conn().PgConn(), t, q, fn)
	})
}

// Released runs read, the reads of one table, under a savepoint it then
// rolls back: the locks the reads took go with it. A one-transaction initial copy
// otherwise held each table's lock (and its TOAST table's, and through a
// query its indexes' and partitions') until it committed, in the source's
// lock table that every session shares (see directCopy), and kept the
// application's DDL on tables it had finished with waiting meanwhile. The
// snapshot is the transaction's and stays. What a released table may
// undergo after its read is what it may undergo right after the copy
// commits: a TRUNCATE streams, a rewrite is found by the listings.
// The savepoint is released after the rollback, so reads do not nest a
// subtransaction each. verify reads thousands of tables under one snapshot
// too, and a read that fails leaves the transaction usable for the next.
func (sn *Snapshot) Released(ctx context.Context, read func() error) error {
	pg := sn.tx.Conn().PgConn()
	if _, err := pg.Exec(ctx, "SAVEPOINT walmirror_read").ReadAll(); err != nil {
		return classify("open a savepoint for the copy", err)
	}
	err := read()
	if _, rerr := pg.Exec(ctx, "ROLLBACK TO SAVEPOINT walmirror_read; RELEASE SAVEPOINT walmirror_read").ReadAll(); rerr != nil && err == nil {
		err = classify("roll back the copy's savepoint", rerr)
	}
	return err
}

// statement is t's COPY statement for the initial copy, naming t as the
// catalog names it now (named): by name where directCopy allows it.
func (sn *Snapshot) statement(ctx context.Context, t *schema.Table) (string, error) {
	q, ok := sn.queries[t.ID]
	if !ok {
		return "", fmt.Errorf("copy %s: table not listed by Tables", t.QualifiedName())
	}
	name, err := sn.nameNow(ctx, t)
	if err != nil {
		return "", err
	}
	if cols, ok := sn.direct[t.ID]; ok {
		return "COPY " + name + " (" + cols + ") TO STDOUT", nil
	}
	return sn.renamed(t, q, name), nil
}

// named is q, t's COPY statement, naming t as the catalog names it now.
// PostgreSQL reads rows as of the snapshot but resolves a name in its latest
// catalog: a table renamed or moved to another schema since the snapshot
// was listed was not found (the whole initial copy failed, exit 1), and a
// name another table took meanwhile (a swap by rename during the copy) had
// that table's rows copied as t's, which later changes to t then built on
// (rows missing, exit 0). t's own oid names it now; a table dropped since
// keeps the name it was listed by.
func (sn *Snapshot) named(ctx context.Context, t *schema.Table, q string) (string, error) {
	name, err := sn.nameNow(ctx, t)
	if err != nil {
		return "", err
	}
	return sn.renamed(t, q, name), nil
}

// nameNow is t's qualified name in the catalog now (see named).
func (sn *Snapshot) nameNow(ctx context.Context, t *schema.Table) (string, error) {
	from := sn.froms[t.ID]
	// Opening the table by oid (pg_relation_size) takes its lock, as the
	// COPY would, and makes this session see catalog changes committed
	// since it last took a lock: without it, names resolve as they were.
	if _, err := sn.tx.Exec(ctx, `SELECT pg_catalog.pg_relation_size($1::oid)`, int64(t.ID)); err != nil {
		return "", classify("look up "+t.QualifiedName(), err)
	}
	var now string
	var same bool
	err := sn.tx.QueryRow(ctx, `SELECT $1::oid::regclass::text, coalesce(to_regclass($2) = $1::oid, false)`, int64(t.ID), from).Scan(&now, &same)
	if err != nil {
		return "", classify("look up "+t.QualifiedName(), err)
	}
	if same || strings.Trim(now, "0123456789") == "" {
		return from, nil // unchanged, or dropped (regclass then prints the oid)
	}
	return now, nil
}

// renamed is q, t's query, reading the table named name.
func (sn *Snapshot) renamed(t *schema.Table, q, name string) string {
	from := sn.froms[t.ID]
	if name == from {
		return q
	}
	for _, only := range []string{" FROM ONLY ", " FROM "} {
		if strings.Contains(q, only+from) {
			return strings.Replace(q, only+from, only+name, 1)
		}
	}
	return q
}

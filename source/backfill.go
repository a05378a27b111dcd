package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// WatermarkPrefix is the pg_logical_emit_message prefix of the watermarks an
// online copy writes into the WAL after reading each chunk.
const WatermarkPrefix = "walmirror.watermark"

// ResyncPrefix is the prefix of the transactional message `walmirror resync`
// writes: the walmirror following the named slot copies the tables again
// from the position of that message.
const ResyncPrefix = "walmirror.resync"

// FlushPrefix is the prefix of the message walmirror writes to make the
// server flush idle WAL (flushWAL). Before PostgreSQL 17 it is a
// transaction of its own, which the copy does not count as a source
// transaction.
const FlushPrefix = "walmirror.flush"

// Copier reads chunks of published tables for online copies, on its own
// ordinary connection, while the replication stream keeps flowing.
type Copier struct {
	conn        *pgx.Conn
	publication string
	version     int // server_version_num
	log         *slog.Logger
	// ops is what the last listing found the publication leaves out
	// ("delete, truncate"); nil before the first listing.
	ops *string
	// stepAside is the lock_timeout of a chunk's start, while it holds its
	// table's lock: below the server's deadlock_timeout (see beginChunk;
	// "": the session's).
	stepAside string
}

// copierLockTimeout: a chunk read waits for no DDL for long, the stream
// waiting meanwhile.
const copierLockTimeout = "5s"

// OpenCopier opens the connection online copies read through.
func (s *Source) OpenCopier(ctx context.Context) (*Copier, error) {
	pcfg, err := connConfig(&s.cfg, false)
	if err != nil {
		return nil, err
	}
	ccfg, _ := pgx.ParseConfig("")
	ccfg.Config = *pcfg
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, classify("connect for online copy", timeoutCause(ctx, err))
	}
	var stepAside int64
	err = conn.QueryRow(ctx, `SELECT least(greatest(setting::int8 / 4, 10), 200) FROM pg_catalog.pg_settings WHERE name = 'deadlock_timeout'`).Scan(&stepAside)
	if err == nil {
		_, err = conn.Exec(ctx, `SET lock_timeout = '`+copierLockTimeout+`'`)
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, classify("set up the online copy session", err)
	}
	return &Copier{conn: conn, publication: s.cfg.Publication, version: s.version, log: s.log, ops: s.pubOps,
		stepAside: strconv.FormatInt(stepAside, 10) + "ms"}, nil
}

// Close ends the copier's connection.
func (c *Copier) Close(ctx context.Context) error { return c.conn.Close(ctx) }

// PublishedTable is a table of the publication with its row estimate.
type PublishedTable struct {
	RelID    uint32
	Name     string // schema.DisplayName
	Schema   string
	Table    string
	Estimate int64  // -1: never analyzed
	Storage  string // schema.Table.Storage now
	// StorageXmin is the transaction that last changed a plain table's
	// pg_class row (a TRUNCATE, a rewrite, DDL); 0 for a partitioned one.
	StorageXmin uint32
	// Columns are the table's live columns as the catalog has them, in
	// attnum order (published or not).
	Columns []ColumnSig
}

// ColumnSig is what a Relation message says of a column, with its attnum.
type ColumnSig struct {
	Num    int16
	Name   string
	TypeID uint32
	Typmod int32
	// Published says a Relation message would carry it: in the table's
	// column list (if any), and not generated unless the publication
	// publishes that generated column (PostgreSQL 18).
	Published bool
}

// Listing is the publication's tables as one snapshot of the source's
// catalog saw them.
type Listing struct {
	Tables []PublishedTable
	// At is the WAL position when the snapshot was taken: once the stream
	// has passed it, it has delivered every change the listing reflects.
	// A transaction whose commit is before At can still be one the
	// snapshot does not see (its commit record written, its end not yet
	// visible to others): Snapshot tells.
	At       lsn.LSN
	Snapshot XidSnapshot
}

// Published lists the publication's tables now (Listing).
func (c *Copier) Published(ctx context.Context) (Listing, error) {
	for attempt := 1; ; attempt++ {
		out, unflushed, err := c.published(ctx)
		if err == nil && unflushed {
			// The stream carries flushed WAL only, and an idle server's
			// tail (the background writer's snapshot of running
			// transactions) can wait for a flush until the next write:
			// the stream would not pass at, and the poll would wait for
			// it (before, a table that joined an idle publication was not
			// copied until the source wrote again).
			if err := flushWAL(ctx, c.conn, c.version); err != nil && c.log != nil {
				c.log.Debug("could not make the source flush its WAL: waiting for it to do so", "err", err)
			}
		}
		if err == nil || attempt == 20 || !droppedMeanwhile(err) {
			return out, err
		}
	}
}

// checkOperations warns when the publication's operations changed since the
// last listing (the start warns of those it leaves out): an ALTER
// PUBLICATION ... SET (publish = 'insert, update') while walmirror runs
// leaves deleted and truncated rows in the copy, and a later insert of such
// a key stops the run at a collision that does not name the cause.
func (c *Copier) checkOperations(ctx context.Context, tx pgx.Tx) error {
	var p PublicationInfo
	err := tx.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_catalog.pg_publication WHERE pubname = $1`,
		c.publication).Scan(&p.Insert, &p.Update, &p.Delete, &p.Truncate)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // the stream says so
	}
	if err != nil {
		return classify("look up the publication's operations", err)
	}
	left := strings.Join(p.Unpublished(), ", ")
	if c.ops != nil && *c.ops != left && c.log != nil {
		if left != "" {
			c.log.Warn("the publication no longer publishes every operation: from now on the copy keeps what those change at the source and will differ from it; "+
				"to mirror, run ALTER PUBLICATION "+quoteIdent(c.publication)+" SET (publish = 'insert, update, delete, truncate'): walmirror then copies its tables again online",
				"publication", c.publication, "not_published", left)
		} else {
			c.log.Info("the publication publishes every operation again: its tables are copied again online, which brings back what the copy missed meanwhile",
				"publication", c.publication)
		}
	}
	c.ops = &left
	return nil
}

// droppedMeanwhile says err is PostgreSQL failing to open a table its
// catalog scan had just listed: a DROP TABLE committed in between (the
// pg_publication_tables view opens each table it lists). A listing taken
// again no longer holds the table; before, a poll that met it stopped the
// run (exit 1) while an application dropped a table, as the swap of a
// table by rename and drop does.
func droppedMeanwhile(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "XX000" && strings.HasPrefix(pgErr.Message, "could not open relation with OID")
}

// retryDropped runs a listing (in a transaction: under a savepoint) again
// while it fails with droppedMeanwhile.
func retryDropped[T any](list func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := list()
		if err == nil || attempt == 20 || !droppedMeanwhile(err) {
			return v, err
		}
	}
}

func (c *Copier) published(ctx context.Context) (_ Listing, unflushed bool, _ error) {
	// One snapshot for the whole listing, taken by its first statement,
	// which reads the WAL position with it: every commit the listing shows
	// is before that position, and every commit before it is in the
	// listing unless it was not yet visible to others (Listing.Snapshot
	// tells which). Read after the listing in another snapshot (as before), the
	// position could pass a table created meanwhile, which the poll then
	// took for one that left the publication, and copied it again when
	// the next listing showed it (TestNoNeedlessCopies, a CI rehearsal).
	tx, err := c.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return Listing{}, false, classify("list published tables", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var text, snap string
	if err := tx.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn(), pg_current_snapshot()::text`).Scan(&text, &unflushed, &snap); err != nil {
		return Listing{}, false, classify("read current WAL position", err)
	}
	pts, err := publishedTables(ctx, tx, c.publication, 0)
	if err != nil {
		return Listing{}, false, err
	}
	if err := c.checkOperations(ctx, tx); err != nil {
		return Listing{}, false, err
	}
	at, err := lsn.Parse(text)
	if err != nil {
		return Listing{}, false, err
	}
	xs, err := ParseXidSnapshot(snap)
	if err != nil {
		return Listing{}, false, err
	}
	// A position just past a page header is where an idle decoder stops
	// short of (see Source.CurrentLSN).
	if off := uint64(at) % 8192; off == 24 || off == 40 {
		at -= lsn.LSN(off)
	}
	out := make([]PublishedTable, len(pts))
	index := make(map[uint32]int, len(pts))
	ids := make([]string, len(pts))
	for i, p := range pts {
		out[i] = PublishedTable{RelID: p.oid, Name: schema.DisplayName(p.nsp, p.name), Schema: p.nsp, Table: p.name, Estimate: p.estimate, Storage: p.storage, StorageXmin: p.xmin}
		index[p.oid] = i
		ids[i] = strconv.FormatUint(uint64(p.oid), 10)
	}
	// In the listing's snapshot: a column renamed or retyped with no row
	// changed since shows in no Relation message.
	rows, err := tx.Query(ctx, `SELECT attrelid::int8, attnum, attname, atttypid::int8, atttypmod, attgenerated::text FROM pg_catalog.pg_attribute
		WHERE attrelid = ANY($1::text::oid[]) AND attnum > 0 AND NOT attisdropped ORDER BY attrelid, attnum`, "{"+strings.Join(ids, ",")+"}")
	if err != nil {
		return Listing{}, false, classify("list published tables' columns", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rel, typ int64
		var c ColumnSig
		var generated string
		if err := rows.Scan(&rel, &c.Num, &c.Name, &typ, &c.Typmod, &generated); err != nil {
			return Listing{}, false, classify("list published tables' columns", err)
		}
		c.TypeID = uint32(typ)
		if i, ok := index[uint32(rel)]; ok {
			c.Published = pts[i].publishes(c.Name, generated)
			out[i].Columns = append(out[i].Columns, c)
		}
	}
	if err := rows.Err(); err != nil {
		return Listing{}, false, classify("list published tables' columns", err)
	}
	return Listing{Tables: out, At: at, Snapshot: xs}, unflushed, nil
}

// WALPosition is where the source's WAL ends now (pg_current_wal_insert_lsn).
func (c *Copier) WALPosition(ctx context.Context) (lsn.LSN, error) {
	var text string
	if err := c.conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return 0, classify("read current WAL position", err)
	}
	return lsn.Parse(text)
}

// Storage is relid's storage signature now (PublishedTable.Storage), read
// in one query; "" when no such table exists.
func (c *Copier) Storage(ctx context.Context, relid uint32) (string, error) {
	return storageOf(ctx, c.conn, c.version, c.publication, relid)
}

// ColumnsRewritten reports whether the transaction that last wrote relid's
// pg_class row (a rewrite writes its relfilenode) also rewrote the
// pg_attribute row of one of the columns attnums (columns the table had
// before): ALTER COLUMN ... TYPE ... USING and SET EXPRESSION do, which
// change values; VACUUM FULL, CLUSTER and TRUNCATE, which replace the data
// files alone, do not, nor does a later ADD COLUMN (a new column's row;
// helper-137).
func (c *Copier) ColumnsRewritten(ctx context.Context, relid uint32, attnums []int16) (bool, error) {
	if len(attnums) == 0 {
		return false, nil
	}
	var yes bool
	err := c.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		WHERE c.oid = $1 AND a.attnum = ANY($2) AND NOT a.attisdropped AND a.xmin = c.xmin)`, int64(relid), attnums).Scan(&yes)
	if err != nil {
		return false, classify("read a table's catalog rows", err)
	}
	return yes, nil
}

// storageOf is relid's storage signature as conn sees it, in publication.
func storageOf(ctx context.Context, conn *pgx.Conn, version int, publication string, relid uint32) (string, error) {
	member := ""
	if version >= 150000 {
		member = memberExpr15
	}
	q := strings.Replace(`SELECT `+storageExpr+` FROM pg_catalog.pg_class c WHERE c.oid = $2`, "MEMBER15", member, 1)
	var sig string
	err := conn.QueryRow(ctx, q, publication, int64(relid)).Scan(&sig)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", classify("read a table's storage", err)
	}
	return sig, nil
}

// LinksWithout is relid's partition links part of its storage signature
// (partitionLinks: ";inh:" and a hash, or "") read now, leaving out the
// links of the partitions given and of the partitioned tables under relid
// whose every leaf is one of them (or that have none): what the links
// were before those partitions were added, if nothing else changed.
func (c *Copier) LinksWithout(ctx context.Context, relid uint32, partitions []uint32) (string, error) {
	excl := make([]int64, len(partitions))
	for i, p := range partitions {
		excl[i] = int64(p)
	}
	keep := `EXISTS (WITH RECURSIVE sub(relid) AS (SELECT i.inhrelid UNION ALL SELECT j.inhrelid FROM pg_catalog.pg_inherits j JOIN sub ON j.inhparent = sub.relid)
		SELECT FROM sub JOIN pg_catalog.pg_class k ON k.oid = sub.relid WHERE k.relkind <> 'p' AND NOT k.oid = ANY($2::oid[])) AND `
	q := `SELECT ` + strings.Replace(partitionLinks, "WHERE i.inhrelid IN", "WHERE "+keep+"i.inhrelid IN", 1) + ` FROM pg_catalog.pg_class c WHERE c.oid = $1`
	var links string
	err := c.conn.QueryRow(ctx, q, int64(relid), excl).Scan(&links)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", classify("read a partitioned table's links", err)
	}
	return links, nil
}

// Chunk is one read of an online copy: a repeatable-read transaction whose
// snapshot says exactly which source transactions its rows reflect.
type Chunk struct {
	c        *Copier
	tx       pgx.Tx
	pub      pubTable
	Table    *schema.Table // the table as published in the chunk's snapshot
	Snapshot XidSnapshot
	// Published is false when the table is not (or no longer) in the
	// publication in this snapshot, or not in it at all (Snapshot is then
	// the one its look-up saw): Table is nil then.
	Published bool
	Estimate  int64
	// TextKeysBytewise says every text or varchar column of Table's key
	// sorts by its bytes (textKeysBytewise), as the chunk's catalog shows
	// it under the table's lock.
	TextKeysBytewise bool
}

// XidNow assigns the source a transaction id in a transaction of its own
// and returns it (full, epoch-qualified): every transaction running now
// that has an id has a smaller one, and a snapshot whose xmin is past it
// sees them all ended. A snapshot's list of running transactions does not
// do: it leaves out those whose ids are at or past its xmax (one past the
// newest to have ended), which a quiet source's newest are.
func (c *Copier) XidNow(ctx context.Context) (uint64, error) {
	var x uint64
	if err := c.conn.QueryRow(ctx, `SELECT pg_catalog.pg_current_xact_id()::text::int8`).Scan(&x); err != nil {
		return 0, classify("take a transaction id", err)
	}
	return x, nil
}

// BeginChunk opens a chunk of relid's rows.
func (c *Copier) BeginChunk(ctx context.Context, relid uint32) (*Chunk, error) {
	for attempt := 1; ; attempt++ {
		ch, err := c.beginChunk(ctx, relid)
		if attempt == 3 || !isUndefinedTable(err) {
			return ch, err
		}
		// Dropped or renamed between looking its name up and locking it
		// (an application's staging table, dropped moments after it was
		// filled): look again. Before, the run stopped ("lock table to
		// copy: relation ... does not exist").
	}
}

// isUndefinedTable says err is PostgreSQL naming a table that does not exist.
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

func (c *Copier) beginChunk(ctx context.Context, relid uint32) (_ *Chunk, err error) {
	// The table is locked (ACCESS SHARE, partitions too) before the
	// snapshot is taken, so no DDL commits between describing it and
	// reading its rows: catalog lookups see the latest catalog, not the
	// transaction's snapshot.
	// With the snapshot the look-up saw: a table missing from it can be one
	// whose creating transaction the stream has delivered and other
	// sessions do not see yet (its commit in the WAL, not yet visible),
	// which the engine tells by that snapshot and reads again. Before, the
	// copy of such a table was dropped as if the table were.
	var name *string
	var snap string
	err = c.conn.QueryRow(ctx, `SELECT (SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1), pg_current_snapshot()::text`, int64(relid)).Scan(&name, &snap)
	if err != nil {
		return nil, classify("look up table to copy", err)
	}
	if name == nil {
		gone := &Chunk{c: c, tx: nil} // dropped: not published
		if gone.Snapshot, err = ParseXidSnapshot(snap); err != nil {
			return nil, err
		}
		return gone, nil
	}
	tx, err := c.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, classify("begin chunk", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	ch := &Chunk{c: c, tx: tx}
	// Until the table is described, the chunk waits for a lock only
	// briefly, then lets go of its own and is read later (IsLockTimeout):
	// holding the table's lock, it waits for others while listing the
	// publication (PostgreSQL 16+ opens every published table to list
	// them), and an application that locked them in another order (the
	// swap of two tables by renames) met it in a deadlock the server broke
	// by cancelling one, the application's transaction or the run
	// (helper-100). Released before the server looks for deadlocks, it
	// makes the application wait a moment instead. SET takes no snapshot.
	if c.stepAside != "" {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+c.stepAside+"'"); err != nil {
			return nil, classify("begin chunk", err)
		}
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+*name+" IN ACCESS SHARE MODE"); err != nil {
		return nil, classify("lock table to copy", err)
	}
	// The first query takes the transaction's snapshot: this is it.
	if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
		return nil, classify("take chunk snapshot", err)
	}
	if ch.Snapshot, err = ParseXidSnapshot(snap); err != nil {
		return nil, err
	}
	pts, err := publishedTables(ctx, tx, c.publication, relid)
	if err != nil {
		return nil, err
	}
	if len(pts) == 0 {
		return ch, nil
	}
	ch.pub, ch.Published, ch.Estimate = pts[0], true, pts[0].estimate
	if ch.Table, err = ch.pub.describe(ctx, tx); err != nil {
		return nil, err
	}
	if ch.TextKeysBytewise, err = textKeysBytewise(ctx, tx, relid, ch.Table); err != nil {
		return nil, err
	}
	if c.stepAside != "" {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+copierLockTimeout+"'"); err != nil {
			return nil, classify("begin chunk", err)
		}
	}
	return ch, nil
}

// textKeysBytewise says whether every text or varchar key column of t
// (relid) sorts by its bytes, so that keys compare in Go as in the source
// (apply's keyOrder): a collation whose order is the bytes' (C, POSIX, and
// C.UTF-8, libc's or the builtin provider's: code point order, which UTF-8
// keeps), in a UTF-8 database. true when t's key has no such column.
// Other collations (en_US, ICU) order by rules Go does not follow.
func textKeysBytewise(ctx context.Context, tx pgx.Tx, relid uint32, t *schema.Table) (bool, error) {
	var cols []string
	for _, c := range t.Columns {
		if c.Key && (c.TypeID == schema.OIDText || c.TypeID == schema.OIDVarchar) {
			cols = append(cols, c.Name)
		}
	}
	if len(cols) == 0 {
		return true, nil
	}
	// to_jsonb reads columns some versions lack: datlocprovider (15+),
	// collcollate (NULL for other providers).
	var ok bool
	err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_encoding_to_char(d.encoding) = 'UTF8' AND count(*) = cardinality($2::text[]) AND pg_catalog.bool_and(
			CASE WHEN a.attcollation = 100 THEN
				CASE coalesce(pg_catalog.to_jsonb(d) ->> 'datlocprovider', 'c')
					WHEN 'b' THEN true
					WHEN 'c' THEN d.datcollate::text IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8')
					ELSE false END
			ELSE co.collisdeterministic AND (co.collprovider = 'b'
				OR co.collprovider = 'c' AND (pg_catalog.to_jsonb(co) ->> 'collcollate') IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8'))
			END)
		FROM pg_catalog.pg_attribute a
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
		CROSS JOIN pg_catalog.pg_database d
		WHERE d.datname = pg_catalog.current_database() AND a.attrelid = $1 AND a.attname = ANY ($2::text[])
			AND a.attnum > 0 AND NOT a.attisdropped
		GROUP BY d.encoding`, int64(relid), cols).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, classify("look up the collations of the key of "+t.QualifiedName(), err)
	}
	return ok, nil
}

// Rows streams up to limit rows (all when limit is 0) of t, in key order,
// whose key is greater than after (from the start when after is nil). t
// must have Table's columns, and a key unless limit is 0. It returns how
// many rows were read and the key of the last one.
func (ch *Chunk) Rows(ctx context.Context, t *schema.Table, after []string, limit int, fn func(schema.Tuple) error) (n int, last []string, err error) {
	if !ch.Published {
		return 0, nil, errors.New("copy rows: the table is not published")
	}
	var keys []string
	var keyIdx []int
	for i, col := range t.Columns {
		if col.Key {
			keys, keyIdx = append(keys, quoteIdent(col.Name)), append(keyIdx, i)
		}
	}
	cond, tail := "", ""
	if limit > 0 {
		if len(keys) == 0 {
			return 0, nil, fmt.Errorf("copy %s in chunks: the table has no key", t.QualifiedName())
		}
		if after != nil {
			if len(after) != len(keys) {
				return 0, nil, fmt.Errorf("copy %s: stored key has %d columns, the table's key %d", t.QualifiedName(), len(after), len(keys))
			}
			lits := make([]string, len(after))
			for i, v := range after {
				lits[i] = quoteLiteral(v)
			}
			cond = "(" + strings.Join(keys, ", ") + ") > (" + strings.Join(lits, ", ") + ")"
		}
		tail = " ORDER BY " + strings.Join(keys, ", ") + " LIMIT " + strconv.Itoa(limit)
	}
	var lastRow schema.Tuple
	n, err = ch.copyRows(ctx, t, cond, tail, func(row schema.Tuple) error {
		lastRow = row
		return fn(row)
	})
	if err != nil {
		return n, nil, err
	}
	if lastRow != nil && len(keyIdx) > 0 {
		last = make([]string, len(keyIdx))
		for i, k := range keyIdx {
			last[i] = string(lastRow[k].Data)
		}
	}
	return n, last, nil
}

// keyColumns are t's key columns, quoted, in key order.
func keyColumns(t *schema.Table) []string {
	var keys []string
	for _, col := range t.Columns {
		if col.Key {
			keys = append(keys, quoteIdent(col.Name))
		}
	}
	return keys
}

// keyCompare is the condition "t's key op key" (a row comparison).
func keyCompare(t *schema.Table, keys []string, op string, key []string) (string, error) {
	if len(key) != len(keys) {
		return "", fmt.Errorf("copy %s: stored key has %d columns, the table's key %d", t.QualifiedName(), len(key), len(keys))
	}
	lits := make([]string, len(key))
	for i, v := range key {
		lits[i] = quoteLiteral(v)
	}
	return "(" + strings.Join(keys, ", ") + ") " + op + " (" + strings.Join(lits, ", ") + ")", nil
}

// BinaryCopyable reports whether RowsBinary can copy t: every column's
// type has a binary output function.
func (ch *Chunk) BinaryCopyable(ctx context.Context, t *schema.Table) (bool, error) {
	if !ch.Published {
		return false, nil
	}
	ok, err := binarySendable(ctx, ch.tx, []*schema.Table{t})
	return ok[t.ID], err
}

// Upper returns the key (the key columns' text, in key order) of the
// limit-th row of t, in key order, whose key is greater than after (from
// the start when after is nil): the last row of a chunk of limit rows. It
// returns nil when fewer rows are left. t must have a key.
func (ch *Chunk) Upper(ctx context.Context, t *schema.Table, after []string, limit int) ([]string, error) {
	if !ch.Published {
		return nil, errors.New("copy rows: the table is not published")
	}
	keys := keyColumns(t)
	if len(keys) == 0 || limit <= 0 {
		return nil, fmt.Errorf("copy %s in chunks: the table has no key", t.QualifiedName())
	}
	cond := ""
	if after != nil {
		var err error
		if cond, err = keyCompare(t, keys, ">", after); err != nil {
			return nil, err
		}
	}
	cols := make([]schema.Column, 0, len(keys))
	for _, c := range t.Columns {
		if c.Key {
			cols = append(cols, c)
		}
	}
	texts := make([]string, len(keys))
	for i, k := range keys {
		texts[i] = k + "::text"
	}
	// The key columns' text output is what the text COPY of Rows gives.
	q := "SELECT " + strings.Join(texts, ", ") + " FROM (" + ch.pub.query(&schema.Table{Columns: cols}, cond) +
		" ORDER BY " + strings.Join(keys, ", ") + " OFFSET " + strconv.Itoa(limit-1) + " LIMIT 1) k"
	res := ch.tx.Conn().PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, classify("find the end of a chunk of "+t.QualifiedName(), res.Err)
	}
	if len(res.Rows) == 0 {
		return nil, nil
	}
	out := make([]string, len(keys))
	for i, v := range res.Rows[0] {
		if v == nil {
			return nil, fmt.Errorf("copy %s in chunks: a key column is null", t.QualifiedName())
		}
		out[i] = string(v)
	}
	return out, nil
}

// RowsBinary passes the rows of t whose key is greater than after (nil:
// from the start) and at most upto (nil: to the end) to fn in PostgreSQL's
// binary COPY format (header, rows, trailer), the columns as t has them,
// in no order, and returns how many rows it copied. fn gets the stream in
// pieces that may end inside a row, each with the number of rows complete
// so far; a piece is only valid during the call. Only for a table
// BinaryCopyable takes.
func (ch *Chunk) RowsBinary(ctx context.Context, t *schema.Table, after, upto []string, fn func(data []byte, rows int64) error) (int64, error) {
	if !ch.Published {
		return 0, errors.New("copy rows: the table is not published")
	}
	keys := keyColumns(t)
	var conds []string
	for _, b := range []struct {
		op  string
		key []string
	}{{">", after}, {"<=", upto}} {
		if b.key == nil {
			continue
		}
		c, err := keyCompare(t, keys, b.op, b.key)
		if err != nil {
			return 0, err
		}
		conds = append(conds, c)
	}
	q := "COPY (" + ch.pub.query(t, strings.Join(conds, " AND ")) + ") TO STDOUT (FORMAT binary)"
	return copyOutBinary(ctx, ch.tx.Conn().PgConn(), t, q, fn)
}

// PartitionKeys returns the keys (as Upper gives them) of the rows the
// partitions given (leaves of the chunk's partitioned table, at any depth)
// hold in the chunk's snapshot, at most limit of them: ok is false when
// they hold more, the table has no key, or a key is null. The rows are
// read through the published table, narrowed by each partition's
// constraint: a role may read the table and not its partitions (CREATE
// TABLE ... PARTITION OF grants nothing), and the publication's row filter
// applies.
func (ch *Chunk) PartitionKeys(ctx context.Context, partitions []uint32, limit int) (keys [][]string, ok bool, err error) {
	if !ch.Published || len(keyColumns(ch.Table)) == 0 {
		return nil, false, nil
	}
	var cols []schema.Column
	var texts []string
	for _, c := range ch.Table.Columns {
		if c.Key {
			cols = append(cols, c)
			texts = append(texts, quoteIdent(c.Name)+"::text")
		}
	}
	for _, p := range partitions {
		var cond *string
		err := ch.tx.QueryRow(ctx, `SELECT pg_catalog.pg_get_partition_constraintdef(c.oid) FROM pg_catalog.pg_class c WHERE c.oid = $1 AND c.relispartition`, int64(p)).Scan(&cond)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // dropped or detached since: it holds none of the table's rows
		}
		if err != nil {
			return nil, false, classify(fmt.Sprintf("look up partition %d of %s", p, ch.Table.QualifiedName()), err)
		}
		where := ""
		if cond != nil {
			where = "(" + *cond + ")"
		}
		q := "SELECT " + strings.Join(texts, ", ") + " FROM (" + ch.pub.query(&schema.Table{Columns: cols}, where) + " LIMIT " + strconv.Itoa(limit-len(keys)+1) + ") k"
		res := ch.tx.Conn().PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return nil, false, classify(fmt.Sprintf("read the keys of partition %d of %s", p, ch.Table.QualifiedName()), res.Err)
		}
		for _, r := range res.Rows {
			k := make([]string, len(r))
			for i, v := range r {
				if v == nil {
					return nil, false, nil // a null key column: copy the table
				}
				k[i] = string(v)
			}
			keys = append(keys, k)
		}
		if len(keys) > limit {
			return nil, false, nil
		}
	}
	return keys, true, nil
}

// MissingKeys returns those of keys (each the key columns' values as text,
// in key column order) that no row of the chunk's table has in the chunk's
// snapshot, in the order given.
func (ch *Chunk) MissingKeys(ctx context.Context, keys [][]string) ([][]string, error) {
	if !ch.Published {
		return nil, errors.New("look up rows: the table is not published")
	}
	var cols []schema.Column
	var names, texts []string
	for _, c := range ch.Table.Columns {
		if c.Key {
			cols = append(cols, c)
			names = append(names, c.Name)
			texts = append(texts, quoteIdent(c.Name)+"::text")
		}
	}
	if len(cols) == 0 || len(keys) == 0 {
		return nil, nil
	}
	cond, err := ch.keysIn(ctx, names, keys)
	if err != nil {
		return nil, fmt.Errorf("look up rows of %s: %w", ch.Table.QualifiedName(), err)
	}
	q := "SELECT " + strings.Join(texts, ", ") + " FROM (" + ch.pub.query(&schema.Table{Columns: cols}, cond) + ") k"
	res := ch.tx.Conn().PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, classify("look up rows of "+ch.Table.QualifiedName(), res.Err)
	}
	present := make(map[string]bool, len(res.Rows))
	for _, r := range res.Rows {
		parts := make([]string, len(r))
		for i, v := range r {
			parts[i] = string(v)
		}
		present[strings.Join(parts, "\x00")] = true
	}
	var missing [][]string
	for _, k := range keys {
		if !present[strings.Join(k, "\x00")] {
			missing = append(missing, k)
		}
	}
	return missing, nil
}

// RowsWithKeys streams the rows of t whose key is one of keys (each the
// key columns' values in text form, in key column order), in no order.
func (ch *Chunk) RowsWithKeys(ctx context.Context, t *schema.Table, keys [][]string, fn func(schema.Tuple) error) (int, error) {
	if !ch.Published {
		return 0, errors.New("copy rows: the table is not published")
	}
	var cols []string
	for _, col := range t.Columns {
		if col.Key {
			cols = append(cols, col.Name)
		}
	}
	if len(cols) == 0 || len(keys) == 0 {
		return 0, fmt.Errorf("copy rows of %s by key: no key", t.QualifiedName())
	}
	cond, err := ch.keysIn(ctx, cols, keys)
	if err != nil {
		return 0, fmt.Errorf("copy rows of %s: %w", t.QualifiedName(), err)
	}
	return ch.copyRows(ctx, t, cond, "", fn)
}

// keysIn is the condition "(names) IN (keys)" on the chunk's table, each
// key the columns' values in text form: the keys go as one text array per
// column, cast to the column's type. A list of row
// literals, "(a, b) IN (('1', 'x'), ...)", took PostgreSQL 45 s to plan for
// 4,000 keys of a partitioned table (5 s for a plain table), the table
// locked all along: DDL on it waited, and the application's writes behind
// that DDL (helper-102).
func (ch *Chunk) keysIn(ctx context.Context, names []string, keys [][]string) (string, error) {
	cols := make([]string, len(names))
	for i, n := range names {
		cols[i] = quoteIdent(n)
	}
	for _, k := range keys {
		if len(k) != len(cols) {
			return "", fmt.Errorf("a key has %d columns, the table's key %d", len(k), len(cols))
		}
	}
	rows, err := ch.tx.Query(ctx, `SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)
		FROM unnest($2::text[]) WITH ORDINALITY AS n(name, i)
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = n.name AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY n.i`, ch.pub.oid, names)
	if err != nil {
		return "", classify("describe key columns", err)
	}
	types, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return "", classify("describe key columns", err)
	}
	var arrays, vals []string
	var b strings.Builder
	for i := range cols {
		if i >= len(types) || types[i] == nil {
			return "", fmt.Errorf("key column %s is not in the table", cols[i])
		}
		b.Reset()
		b.WriteByte('{')
		for j, k := range keys {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			for _, r := range []byte(k[i]) {
				if r == '"' || r == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(r)
			}
			b.WriteByte('"')
		}
		b.WriteByte('}')
		arrays = append(arrays, quoteLiteral(b.String())+"::text[]")
		vals = append(vals, "k.k"+strconv.Itoa(i)+"::"+*types[i])
	}
	ks := make([]string, len(cols))
	for i := range ks {
		ks[i] = "k" + strconv.Itoa(i)
	}
	return "(" + strings.Join(cols, ", ") + ") IN (SELECT " + strings.Join(vals, ", ") + " FROM unnest(" + strings.Join(arrays, ", ") +
		") AS k(" + strings.Join(ks, ", ") + "))", nil
}

// copyRows streams the rows of t matching cond ("" for all), then tail.
func (ch *Chunk) copyRows(ctx context.Context, t *schema.Table, cond, tail string, fn func(schema.Tuple) error) (int, error) {
	n := 0
	err := copyOut(ctx, ch.tx.Conn().PgConn(), t, "COPY ("+ch.pub.query(t, cond)+tail+") TO STDOUT", func(row schema.Tuple) error {
		n++
		return fn(row)
	})
	return n, err
}

// End writes a watermark carrying token into the WAL and closes the chunk's
// transaction: every source transaction whose commit the stream delivers
// after the watermark began after the chunk's snapshot. The watermark is
// written while the transaction still holds the table's lock, so no DDL
// on the table commits between the snapshot and the watermark: when the
// stream delivers it, it has passed exactly the schema changes the
// snapshot shows (Table is the table's shape there).
func (ch *Chunk) End(ctx context.Context, token string) (lsn.LSN, error) {
	// The stream only carries flushed WAL, and a non-transactional message
	// alone waits for the WAL writer (wal_writer_delay, 200ms by default):
	// flush it now, with the function's flush argument (17) or by
	// committing a transaction that writes WAL after it.
	var text string
	var err error
	if ch.c.version >= 170000 {
		err = ch.tx.QueryRow(ctx, `SELECT pg_logical_emit_message(false, $1, $2, true)::text`, WatermarkPrefix, token).Scan(&text)
	} else {
		err = ch.tx.QueryRow(ctx, `SELECT pg_logical_emit_message(false, $1, $2)::text`, WatermarkPrefix, token).Scan(&text)
	}
	if err != nil {
		return 0, classify("write watermark", err)
	}
	if err := ch.tx.Commit(ctx); err != nil {
		return 0, classify("end chunk", err)
	}
	if ch.c.version < 170000 {
		if err := flushWAL(ctx, ch.c.conn, ch.c.version); err != nil {
			return 0, classify("flush watermark", err)
		}
	}
	return lsn.Parse(text)
}

// flushWAL makes the server flush the WAL written so far, which the stream
// only carries once flushed, by writing a message walmirror ignores: with
// the function's flush argument (17), or in a transaction that commits
// synchronously (a transaction flushes its commit only if it wrote WAL
// before it: a transactional message does). Locally: with on, a
// synchronous standby that does not answer held every chunk, and the
// stream with it (helper-124).
func flushWAL(ctx context.Context, conn *pgx.Conn, version int) error {
	q := `SELECT pg_logical_emit_message(false, '` + FlushPrefix + `', '', true)`
	if version < 170000 {
		q = `BEGIN; SET LOCAL synchronous_commit = local; SELECT pg_logical_emit_message(true, '` + FlushPrefix + `', ''); COMMIT`
	}
	_, err := conn.Exec(ctx, q)
	if err != nil && version < 170000 {
		// A failure inside the string leaves its transaction block open
		// and aborted.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}

// LockHolders names the sessions and prepared transactions holding a lock
// on relid that a chunk's read waits for ("" when none now), for the
// operator: a migration left open, a prepared transaction; or a session
// whose request for such a lock is queued (DDL, which the chunk's request
// queues behind), with the sessions it waits for in turn (a long query,
// another tool's copy). relid 0: such locks on any table of the
// database, each named after its table.
func (c *Copier) LockHolders(ctx context.Context, relid uint32) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var holders *string
	err := c.conn.QueryRow(ctx, `SELECT string_agg(CASE WHEN $1 = 0 THEN l.relation::pg_catalog.regclass::text || ': ' ELSE '' END || CASE WHEN l.pid IS NOT NULL
			THEN format('server process %s (%s, %s, %s)', l.pid, coalesce(nullif(a.application_name, ''), 'no application name'), a.state, left(a.query, 80)) ||
				CASE WHEN NOT l.granted THEN ' waiting for it behind ' || coalesce((SELECT string_agg(format('server process %s (%s, %s, %s)', b.pid,
					coalesce(nullif(b.application_name, ''), 'no application name'), b.state, left(b.query, 80)), ', ')
					FROM pg_catalog.pg_stat_activity b WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(l.pid))), 'a prepared transaction (pg_prepared_xacts)') ELSE '' END
			ELSE format('prepared transaction %L (COMMIT PREPARED or ROLLBACK PREPARED it)', p.gid) END, '; ' ORDER BY l.granted DESC)
		FROM pg_catalog.pg_locks l
		LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
		LEFT JOIN pg_catalog.pg_locks x ON l.pid IS NULL AND x.locktype = 'transactionid' AND x.virtualtransaction = l.virtualtransaction
		LEFT JOIN pg_catalog.pg_prepared_xacts p ON p.transaction = x.transactionid
		WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock' AND (l.relation = $1
			OR $1 = 0 AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
				AND EXISTS (SELECT FROM pg_catalog.pg_class r WHERE r.oid = l.relation AND r.relkind IN ('r', 'p')))`, int64(relid)).Scan(&holders)
	if err != nil || holders == nil {
		return "", err
	}
	return *holders, nil
}

// IsLockTimeout reports whether err is a lock_timeout (the online copy's
// session waits at most 5s for a lock DDL holds).
func IsLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// Abort abandons the chunk.
func (ch *Chunk) Abort(ctx context.Context) {
	if ch.tx != nil {
		_ = ch.tx.Rollback(ctx)
	}
}

// XidSnapshot is pg_current_snapshot(): which transactions a snapshot sees.
type XidSnapshot struct {
	Xmin, Xmax uint64   // full (epoch-qualified) transaction ids
	Xip        []uint64 // in progress when it was taken, sorted
}

// ParseXidSnapshot reads pg_snapshot's text form "xmin:xmax:xip,xip".
func ParseXidSnapshot(s string) (XidSnapshot, error) {
	var x XidSnapshot
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return x, fmt.Errorf("snapshot %q: want xmin:xmax:xip", s)
	}
	var err error
	if x.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return x, fmt.Errorf("snapshot %q: %w", s, err)
	}
	if x.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return x, fmt.Errorf("snapshot %q: %w", s, err)
	}
	if parts[2] != "" {
		for _, f := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return x, fmt.Errorf("snapshot %q: %w", s, err)
			}
			x.Xip = append(x.Xip, v)
		}
	}
	slices.Sort(x.Xip)
	if x.Xmin > x.Xmax {
		return x, fmt.Errorf("snapshot %q: xmin after xmax", s)
	}
	return x, nil
}

// full widens a 32-bit xid (as pgoutput's Begin carries it) to the full id
// nearest xmax: the transactions the stream delivers are recent, far within
// 2^31 of the snapshot, before or after it.
func (x XidSnapshot) full(xid uint32) uint64 {
	const half = 1 << 31
	f := x.Xmax&^0xffffffff | uint64(xid)
	switch {
	case f > x.Xmax+half:
		f -= 1 << 32
	case f+half < x.Xmax:
		f += 1 << 32
	}
	return f
}

// Sees reports whether the snapshot sees the committed transaction xid.
func (x XidSnapshot) Sees(xid uint32) bool {
	f := x.full(xid)
	if f < x.Xmin {
		return true
	}
	if f >= x.Xmax {
		return false
	}
	_, found := slices.BinarySearch(x.Xip, f)
	return !found
}

// Settled reports whether xid had ended before the snapshot was taken, so
// every later snapshot sees it too.
func (x XidSnapshot) Settled(xid uint32) bool { return x.full(xid) < x.Xmin }

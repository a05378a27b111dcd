package source

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Attribute is one column of a source table as the catalog (pg_attribute)
// describes it now: pgoutput's Relation messages say what the columns are,
// not what old rows hold or what happened to them.
type Attribute struct {
	Num     int16 // attnum: survives a rename, a new column gets a new one
	Name    string
	TypeID  uint32
	Typmod  int32
	Dropped bool
	// HasMissing says rows that existed when the column was added carry
	// Missing (ADD COLUMN ... DEFAULT with a non-volatile default: PostgreSQL
	// stores the value once instead of writing the rows, so no WAL says so).
	HasMissing bool
	Missing    string // the value's text form, as pgoutput would print it
	HasDefault bool
	Generated  bool
	// Key: a key column of the replica identity index (primary key or
	// REPLICA IDENTITY USING INDEX), not its INCLUDE columns (which
	// pgoutput does not flag either).
	Key bool
	// InvalidKey: a key column of an identity index PostgreSQL does not
	// take as the replica identity: not valid (a partitioned root's primary
	// key added ONLY, until every partition has one; PostgreSQL 18's
	// Relation messages flag it) or DEFERRABLE (unique only at commit).
	// Key is false.
	InvalidKey bool
	// Primary: a key column of the table's valid primary key, whatever
	// its replica identity (the index walmirror has a REPLICA IDENTITY
	// FULL table's copy look rows up by: schema.Table.Lookup).
	Primary bool
	// PartialOld, the same in every attribute of a relation: it is a
	// partitioned table with REPLICA IDENTITY FULL some of whose
	// partitions have another identity (their own key). pgoutput sends
	// those partitions' old rows under it (publish_via_partition_root)
	// holding only that key, the other columns NULL, in the form of a
	// whole old row: matched as one, they would change nothing.
	PartialOld bool
	// TypeName is "schema.name" of a type outside the built-in range, as
	// the snapshot's describe names it: a domain by its own name, where
	// pgoutput's Type message names its base type.
	TypeName string
}

// Attributes returns the columns of relation relid, dropped ones included, in
// attnum order. It uses the catalog session, whose settings match the
// replication session's, so text forms agree with the stream's.
func (s *Source) Attributes(ctx context.Context, relid uint32) ([]Attribute, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	// attmissingval is an array of one element of the column's type: through
	// text[] its element comes out in the type's own text form.
	rows, err := s.conn.Query(ctx, `SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attisdropped,
			a.atthasmissing, CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END,
			a.atthasdef OR a.attidentity <> '', a.attgenerated <> '', -- an identity column's values come from a sequence, as a default's
			EXISTS (SELECT FROM generate_series(0, i.indnkeyatts - 1) k WHERE i.indkey[k] = a.attnum),
			EXISTS (SELECT FROM pg_catalog.pg_index j, generate_series(0, j.indnkeyatts - 1) k WHERE j.indrelid = a.attrelid
				AND NOT (j.indisvalid AND j.indimmediate) AND j.indkey[k] = a.attnum
				AND CASE c.relreplident WHEN 'd' THEN j.indisprimary WHEN 'i' THEN j.indisreplident ELSE false END),
			`+identityExpr+` <> c.relreplident,
			`+primaryColumn+`,
			CASE WHEN a.atttypid >= 10000 THEN (SELECT tn.nspname || '.' || t.typname FROM pg_catalog.pg_type t
				JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace WHERE t.oid = a.atttypid) END
		FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND
			i.indisvalid AND i.indimmediate AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END
		WHERE a.attrelid = $1 AND a.attnum > 0
		ORDER BY a.attnum`, relid)
	if err != nil {
		return nil, classify("read the source catalog", timeoutCause(ctx, err))
	}
	attrs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attribute, error) {
		var a Attribute
		var missing, typeName *string
		err := r.Scan(&a.Num, &a.Name, &a.TypeID, &a.Typmod, &a.Dropped, &a.HasMissing, &missing, &a.HasDefault, &a.Generated, &a.Key, &a.InvalidKey, &a.PartialOld, &a.Primary, &typeName)
		if missing != nil {
			a.Missing = *missing
		}
		if typeName != nil {
			a.TypeName = *typeName
		}
		return a, err
	})
	if err != nil {
		return nil, classify("read the source catalog", timeoutCause(ctx, err))
	}
	for _, a := range attrs {
		if !a.Dropped && a.HasDefault && !a.HasMissing {
			// Maybe a partitioned table, whose partitions hold the value.
			if err := s.partitionMissing(ctx, relid, attrs); err != nil {
				return nil, err
			}
			break
		}
	}
	return attrs, nil
}

// primaryColumn says whether pg_attribute row a is a key column of its
// table's valid primary key (Attribute.Primary, schema.Table.Lookup).
const primaryColumn = `EXISTS (SELECT FROM pg_catalog.pg_index p, generate_series(0, p.indnkeyatts - 1) k WHERE p.indrelid = a.attrelid
	AND p.indisprimary AND p.indisvalid AND p.indkey[k] = a.attnum)`

// leavesOf lists the leaf partitions (relid) under pg_class row c from
// pg_inherits: pg_partition_tree would lock every table of the tree, and a
// catalog read must not take part in lock cycles with the source's DDL.
const leavesOf = `(WITH RECURSIVE tree(relid) AS (SELECT i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid
		UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid)
	SELECT tree.relid FROM tree JOIN pg_catalog.pg_class k ON k.oid = tree.relid WHERE k.relkind <> 'p')`

// identityExpr is the replica identity of pg_class row c as walmirror
// treats it: a partitioned table with REPLICA IDENTITY FULL some of whose
// partitions have another has none (Attribute.PartialOld), else its own.
const identityExpr = `(CASE WHEN c.relkind = 'p' AND c.relreplident = 'f' AND
		EXISTS (SELECT FROM pg_catalog.pg_class l WHERE l.oid IN ` + leavesOf + ` AND l.relreplident <> 'f')
	THEN 'd' ELSE c.relreplident END)`

// storageExpr is schema.Table.Storage for pg_class row c: each leaf's
// relfilenode (a plain table is its own leaf), then what makes it a member
// of publication $1 (its own or its nearest ancestor's pg_publication_rel
// row, as a partition published as its own table is a member through its
// root's, or "all" and the publication's oid): a table that left the
// publication and joined again is
// a member anew, and its changes meanwhile were not streamed, also when the
// whole publication was dropped and created again (PostgreSQL 18 skips a
// missing publication silently); then its schema and name (a rename shows in
// no Relation message until a row changes). The membership ends with the
// publication row's transaction (";pub:"): options changed and changed
// back (publish, publish_via_partition_root) between two polls left changes
// unpublished meanwhile. memberExpr15 adds FOR TABLES IN SCHEMA. The data files are followed by enumLabels: renaming an enum
// value changes what stored rows read as, with no WAL for them either.
const storageExpr = `CASE WHEN c.relkind = 'p' THEN coalesce((SELECT string_agg(p.relid::text || ':' || l.relfilenode::text, ',' ORDER BY p.relid)
		FROM ` + leavesOf + ` p JOIN pg_catalog.pg_class l ON l.oid = p.relid), '') ELSE c.oid::text || ':' || c.relfilenode::text END
	|| ` + columnRows + ` || ` + enumLabels + ` || ` + compositeAttrs + ` || ` + nestedTypes + ` || ` + partitionLinks + ` || '|' || coalesce((SELECT 'r' || pr.oid::text
		FROM ` + selfAndAncestors + ` a
		JOIN pg_catalog.pg_publication_rel pr ON pr.prrelid = a.relid
		JOIN pg_catalog.pg_publication pb ON pb.oid = pr.prpubid WHERE pb.pubname = $1 ORDER BY a.n LIMIT 1), MEMBER15
		(SELECT 'all' || pb.oid::text FROM pg_catalog.pg_publication pb WHERE pb.pubname = $1), 'none')
	|| coalesce((SELECT ';pub:' || pb.xmin::text FROM pg_catalog.pg_publication pb WHERE pb.pubname = $1), '')
	|| '|' || c.relnamespace::text || '.' || c.relname`

// columnRows is "" unless pg_class row c is a table that is no partition,
// in a publication that publishes partitions through their root: then
// ";att:", the version (xmin) of the table's pg_class row, "/" and each
// live column's attnum and pg_attribute row version. ATTACH PARTITION and
// DETACH PARTITION rewrite the pg_class row (relispartition) and every
// column's row (attinhcount), and while it was attached the table's changes were
// published as the partitioned table's: a table attached, written and
// detached again between two polls, or while walmirror was stopped,
// changes nothing else of its signature (helper-126: its own copy missed
// those changes, exit 0). Other DDL rewrites the rows of the columns it
// names, and the pg_class row or not, which the engine tells apart
// (attachedMeanwhile): a key added to a table of two columns rewrites both
// (attnotnull), but not the pg_class row (helper-132). Raw xmin
// survives freezing. It follows the data files, and upgradeSig takes it
// as now's where a stored signature lacks it.
const columnRows = `CASE WHEN c.relkind IN ('r', 'p') AND NOT c.relispartition
		AND EXISTS (SELECT FROM pg_catalog.pg_publication pb WHERE pb.pubname = $1 AND pb.pubviaroot)
	THEN coalesce((SELECT ';att:' || c.xmin::text || '/' || string_agg(a.attnum::text || '@' || a.xmin::text, ',' ORDER BY a.attnum)
		FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') ELSE '' END`

// partitionLinks is "" for a table that is neither partitioned nor a
// partition, else ";inh:" and a hash of the pg_inherits rows (and the
// transactions that wrote them) linking it, its partitions at every level
// and its ancestors. A partition detached, changed and attached again between two polls
// leaves the same leaves and data files, but its changes while detached
// were not published as the partitioned table's (nor, published through its
// root, as its own): its link is a new row. Raw xmin survives freezing.
const partitionLinks = `CASE WHEN c.relkind = 'p' OR c.relispartition THEN coalesce((WITH RECURSIVE tree(relid) AS (SELECT c.oid
		UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree ON i.inhparent = tree.relid)
	SELECT ';inh:' || md5(string_agg(i.inhrelid::text || '=' || i.inhparent::text || '@' || i.xmin::text, ',' ORDER BY i.inhrelid, i.inhparent))
	FROM pg_catalog.pg_inherits i WHERE i.inhrelid IN (SELECT relid FROM tree UNION SELECT relid FROM pg_catalog.pg_partition_ancestors(c.oid))), '') ELSE '' END`

// enumLabels is "" for a table whose columns use no enum type, else
// ";enums:" and a hash of every label (with its pg_enum oid) of the enum
// types its columns use: directly, as array elements, under a domain (of
// the enum or of an array of it) and as arrays of such domains. ALTER TYPE
// ... RENAME VALUE changes it (rows keep the value's oid and read back as
// the new label: the copy's text must change too), and so does ADD VALUE,
// which costs a needless copy but changes no row. Enums deeper down (in
// ranges, in composites) are compositeAttrs' and nestedTypes'.
const enumLabels = `coalesce((SELECT ';enums:' || md5(string_agg(e.oid::text || '=' || e.enumlabel, ',' ORDER BY e.oid))
	FROM pg_catalog.pg_enum e WHERE e.enumtypid IN (SELECT v.x FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
		LEFT JOIN pg_catalog.pg_type el ON el.oid = t.typelem
		CROSS JOIN LATERAL (VALUES (t.oid), (b.oid), (b.typelem), (el.oid), (el.typbasetype)) v(x)
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)), '')`

// compositeAttrs is "" for a table whose columns use no composite type,
// else ";composites:" and a hash of the live attributes (number, type,
// typmod) of the composite types (CREATE TYPE ... AS) its columns use,
// reached as enumLabels reaches enums. ALTER TYPE ... ADD ATTRIBUTE and
// DROP ATTRIBUTE change what stored rows read as, '(Main,123)' becoming
// '(Main,123,)' or '(Main)', with no WAL for them: the poll then copies the
// table again. RENAME ATTRIBUTE changes no text and is not in the hash.
// The labels of an enum attribute are in it too (RENAME VALUE of an enum a
// composite holds changes the composite's text alike).
// Composites nested in composites or ranges, enum arrays inside
// composites, and tables' row types used as column types are nestedTypes'.
const compositeAttrs = `coalesce((SELECT ';composites:' || md5(string_agg(ct.oid::text || '=' || ca.attnum::text || ':' || ca.atttypid::text || ':' || ca.atttypmod::text
		|| coalesce((SELECT ':' || string_agg(e.oid::text || '=' || e.enumlabel, ',' ORDER BY e.oid) FROM pg_catalog.pg_enum e WHERE e.enumtypid = ca.atttypid), ''), ',' ORDER BY ct.oid, ca.attnum))
	FROM pg_catalog.pg_type ct JOIN pg_catalog.pg_class cr ON cr.oid = ct.typrelid AND cr.relkind = 'c'
		JOIN pg_catalog.pg_attribute ca ON ca.attrelid = ct.typrelid AND ca.attnum > 0 AND NOT ca.attisdropped
	WHERE ct.oid IN (SELECT v.x FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
		LEFT JOIN pg_catalog.pg_type el ON el.oid = t.typelem
		CROSS JOIN LATERAL (VALUES (t.oid), (b.oid), (b.typelem), (el.oid), (el.typbasetype)) v(x)
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)), '')`

// nestedTypes is "" for a table whose columns reach no enum or composite
// type beyond those enumLabels and compositeAttrs follow, else ";nested:"
// and a hash of the labels of those enums and the live attributes of those
// composites: types reached, at any depth, through composite attributes,
// array elements, domains, range subtypes and multiranges' ranges (a
// composite nested in a composite, an enum array inside a composite, a
// range over an enum), and the columns of a table whose row type a column
// has, at any level (ALTER TABLE ... ADD or DROP COLUMN on it). ALTER TYPE
// on them changes what stored rows read as with no WAL either
// (helper-97's class, one level down). It comes before
// partitionLinks (";inh:", which must stay last) and is empty for every
// table the two above cover, so signatures stored before it stay as they
// are; upgradeSig takes it as now's where a stored one lacks it. Sessions
// run with jit off, so the recursive query's cost estimate costs nothing;
// it follows only types that can hold others (composites, domains,
// arrays, ranges, multiranges) and enums, so a table of base types costs
// one look at its columns (0.1 ms a table, against 0.5 following every
// type: 272 tables on PostgreSQL 15). far starts from ty, which is empty
// for most tables: starting from pg_type, as it did, it read every type
// (each table has its row type) for each table, a listing growing with the
// square of the tables (3,000 tables: most of a listing's time).
const nestedTypes = `coalesce((WITH RECURSIVE ty(oid) AS (
		SELECT a.atttypid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND (t.typtype IN ('c', 'd', 'e', 'r', 'm') OR t.typcategory = 'A')
		UNION
		SELECT x.oid FROM ty JOIN pg_catalog.pg_type t ON t.oid = ty.oid
			CROSS JOIN LATERAL (SELECT t.typbasetype UNION ALL SELECT t.typelem
				UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid
				UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r WHERE r.rngmultitypid = t.oid
				UNION ALL SELECT ca.atttypid FROM pg_catalog.pg_attribute ca
					WHERE ca.attrelid = t.typrelid AND ca.attnum > 0 AND NOT ca.attisdropped) x(oid)
			JOIN pg_catalog.pg_type xt ON xt.oid = x.oid AND (xt.typtype IN ('c', 'd', 'e', 'r', 'm') OR xt.typcategory = 'A')),
	near(oid) AS (SELECT v.x FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
		LEFT JOIN pg_catalog.pg_type el ON el.oid = t.typelem
		CROSS JOIN LATERAL (VALUES (t.oid), (b.oid), (b.typelem), (el.oid), (el.typbasetype)) v(x)
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND v.x IS NOT NULL),
	far(part) AS (SELECT e.enumtypid::text || '=' || e.oid::text || '=' || e.enumlabel
			FROM ty JOIN pg_catalog.pg_enum e ON e.enumtypid = ty.oid WHERE ty.oid NOT IN (SELECT oid FROM near)
		UNION ALL SELECT ct.oid::text || ':' || ca.attnum::text || ':' || ca.atttypid::text || ':' || ca.atttypmod::text
			FROM ty JOIN pg_catalog.pg_type ct ON ct.oid = ty.oid JOIN pg_catalog.pg_class cr ON cr.oid = ct.typrelid
			JOIN pg_catalog.pg_attribute ca ON ca.attrelid = ct.typrelid AND ca.attnum > 0 AND NOT ca.attisdropped
			WHERE ty.oid NOT IN (SELECT oid FROM near) OR cr.relkind <> 'c')
	SELECT ';nested:' || md5(string_agg(part, ',' ORDER BY part)) FROM far HAVING count(*) > 0), '')`

// selfAndAncestors is pg_class row c's oid (n = 0) and, for a partition,
// its ancestors' (nearest first; pg_partition_ancestors lists nothing for
// a table that is not in a partition tree).
const selfAndAncestors = `(SELECT c.oid AS relid, 0::int8 AS n
		UNION ALL SELECT p.relid, p.n FROM pg_catalog.pg_partition_ancestors(c.oid) WITH ORDINALITY p(relid, n))`

// memberExpr15 is a FOR TABLES IN SCHEMA membership (the table's own
// schema's, else its nearest ancestor's: a partition in another schema is
// published as its own table through its root's schema): the
// pg_publication_namespace row, then "@" and the transaction that last
// wrote that table's dependency on its schema. A table moved out of the
// schema, changed and moved back (ALTER TABLE ... SET SCHEMA, twice)
// between two polls leaves the same schema and publication rows, but its
// changes meanwhile were not published; each move rewrites that pg_depend
// row (raw xmin survives freezing).
const memberExpr15 = `(SELECT 's' || pn.oid::text || coalesce((SELECT '@' || d.xmin::text FROM pg_catalog.pg_depend d
			WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = k.oid AND d.objsubid = 0
				AND d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.refobjid = k.relnamespace LIMIT 1), '')
		FROM ` + selfAndAncestors + ` a
		JOIN pg_catalog.pg_class k ON k.oid = a.relid
		JOIN pg_catalog.pg_publication_namespace pn ON pn.pnnspid = k.relnamespace
		JOIN pg_catalog.pg_publication pb ON pb.oid = pn.pnpubid WHERE pb.pubname = $1 ORDER BY a.n LIMIT 1),`

// RelName returns relid's schema and name now, and whether it is a
// partitioned table ("" names when it no longer exists).
func (s *Source) RelName(ctx context.Context, relid uint32) (nsp, name string, partitioned bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	err = s.conn.QueryRow(ctx, `SELECT n.nspname, c.relname, c.relkind = 'p' FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`, int64(relid)).Scan(&nsp, &name, &partitioned)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, classify("read the source catalog", timeoutCause(ctx, err))
	}
	return nsp, name, partitioned, nil
}

// LeftTable is what the source's catalog holds now for a table that left
// the publication (Source.LeftTable).
type LeftTable struct {
	Exists   bool // the table is still there, under any name
	Unlogged bool // ... and UNLOGGED: its changes are in no WAL
	// Partition: ... and a partition now of a table the publication lists
	// (published through its root); a partition whose ancestors the
	// publication does not list has no copy following it (helper-108: the
	// log said its rows were in the root's copy).
	Partition bool
	// Replaced: another table has the name it had and is not published
	// (a table swapped in by renames, or dropped and created again).
	Replaced bool
}

// LeftTable says what became of relid, which the publication no longer
// lists and which was nsp.name, so the log can say whether its copy, kept
// as it was, still has a source table changing behind it.
func (s *Source) LeftTable(ctx context.Context, relid uint32, nsp, name string) (LeftTable, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var l LeftTable
	err := s.conn.QueryRow(ctx, `SELECT c.oid IS NOT NULL, coalesce(c.relpersistence = 'u', false),
			coalesce(c.relispartition, false) AND EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors($1::oid::regclass) a
				JOIN pg_catalog.pg_class ac ON ac.oid = a.relid JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace
				JOIN pg_catalog.pg_publication_tables pt ON pt.pubname = $4 AND pt.schemaname = an.nspname AND pt.tablename = ac.relname
				WHERE a.relid <> $1::oid),
			EXISTS (SELECT FROM pg_catalog.pg_class o JOIN pg_catalog.pg_namespace n ON n.oid = o.relnamespace
				WHERE n.nspname = $2 AND o.relname = $3 AND o.oid <> $1 AND o.relkind IN ('r', 'p'))
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_publication_tables pt WHERE pt.pubname = $4 AND pt.schemaname = $2 AND pt.tablename = $3)
		FROM (SELECT) one LEFT JOIN pg_catalog.pg_class c ON c.oid = $1`, int64(relid), nsp, name, s.cfg.Publication).Scan(&l.Exists, &l.Unlogged, &l.Partition, &l.Replaced)
	if err != nil {
		return l, classify("read the source catalog", timeoutCause(ctx, err))
	}
	return l, nil
}

// partitionMissing fills in, for a partitioned table, the missing values
// its partitions hold: PostgreSQL stores ADD COLUMN ... DEFAULT's value on
// each partition (the root has no rows), so the root's attribute shows a
// default and no value. A column gets one when every partition that has one
// agrees and every other partition that got the column from the same
// ADD COLUMN was never rewritten. A partition whose column comes from
// another statement than the root's (its pg_attribute row has another
// xmin: created, or attached, after the column was added) holds it in
// every row it ever had, so it says nothing about older rows, whatever
// happened to its data files since (a TRUNCATE).
func (s *Source) partitionMissing(ctx context.Context, relid uint32, attrs []Attribute) error {
	rows, err := s.conn.Query(ctx, `SELECT a.attname, a.atthasmissing,
			CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END, c.relfilenode = c.oid,
			a.xmin = ra.xmin
		FROM pg_catalog.pg_partition_tree($1) p
		JOIN pg_catalog.pg_class c ON c.oid = p.relid
		JOIN pg_catalog.pg_attribute a ON a.attrelid = p.relid AND a.attnum > 0 AND NOT a.attisdropped
		JOIN pg_catalog.pg_attribute ra ON ra.attrelid = $1 AND ra.attname = a.attname
		WHERE p.isleaf AND p.relid <> $1`, relid)
	if err != nil {
		return classify("read the source catalog", timeoutCause(ctx, err))
	}
	type leafValue struct {
		value      string
		conflict   bool
		unrewrites bool // a partition without a value that was rewritten
		seen       bool
	}
	byName := map[string]*leafValue{}
	for rows.Next() {
		var name string
		var has, pristine, fromRoot bool
		var missing *string
		if err := rows.Scan(&name, &has, &missing, &pristine, &fromRoot); err != nil {
			rows.Close()
			return classify("read the source catalog", err)
		}
		if !has && !fromRoot {
			continue
		}
		lv := byName[name]
		if lv == nil {
			lv = &leafValue{}
			byName[name] = lv
		}
		switch {
		case has && missing != nil:
			if lv.seen && lv.value != *missing {
				lv.conflict = true
			}
			lv.value, lv.seen = *missing, true
		case !pristine:
			lv.unrewrites = true
		}
	}
	if err := rows.Err(); err != nil {
		return classify("read the source catalog", timeoutCause(ctx, err))
	}
	for i := range attrs {
		a := &attrs[i]
		if a.Dropped || a.HasMissing || !a.HasDefault {
			continue
		}
		if lv := byName[a.Name]; lv != nil && lv.seen && !lv.conflict && !lv.unrewrites {
			a.HasMissing, a.Missing = true, lv.value
		}
	}
	return nil
}

// Snapshot is the source's pg_current_snapshot() now: which committed
// transactions a catalog read from now on sees.
func (s *Source) Snapshot(ctx context.Context) (XidSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var text string
	if err := s.conn.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&text); err != nil {
		return XidSnapshot{}, classify("read the source's snapshot", timeoutCause(ctx, err))
	}
	return ParseXidSnapshot(text)
}

// SlotSyncStandby reports whether the session streaming from the slot is
// one of the source's synchronous standbys (synchronous_standby_names names
// it, or '*'): commits then wait for walmirror to confirm them, and stay
// invisible to other sessions until it has.
func (s *Source) SlotSyncStandby(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var sync bool
	err := s.conn.QueryRow(ctx, `SELECT coalesce(bool_or(r.sync_state IN ('sync', 'quorum')), false)
		FROM pg_catalog.pg_stat_replication r JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid
		WHERE s.slot_name = $1`, s.cfg.Slot).Scan(&sync)
	if err != nil {
		return false, classify("read the source's synchronous standbys", timeoutCause(ctx, err))
	}
	return sync, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/schema"
)

// metaSchema holds walmirror's own tables; a source schema of that name is refused.
const metaSchema = "_walmirror"

// firstGenbkiObjectID: pg_type OIDs below it are assigned by hand in
// PostgreSQL's catalog sources and mean the same type in every cluster.
// (OIDs from 10000 to 16383 are assigned at initdb and may differ between
// versions; 16384 and up are user objects.)
const firstGenbkiObjectID = 10000

// storedAsText are built-in types whose text form does not read back in
// another cluster: reg* types name the source's objects by name, aclitem
// names its roles, and the statistics and node-tree types have no input.
var storedAsText = map[uint32]bool{
	24: true, 1008: true, // regproc
	2202: true, 2207: true, // regprocedure
	2203: true, 2208: true, // regoper
	2204: true, 2209: true, // regoperator
	2205: true, 2210: true, // regclass
	2206: true, 2211: true, // regtype
	3734: true, 3735: true, // regconfig
	3769: true, 3770: true, // regdictionary
	4089: true, 4090: true, // regnamespace
	4096: true, 4097: true, // regrole
	4191: true, 4192: true, // regcollation
	1033: true, 1034: true, // aclitem
	194: true, 3361: true, 3402: true, 5017: true, 4600: true, 4601: true, // pg_node_tree, pg_ndistinct, pg_dependencies, pg_mcv_list, BRIN summaries
	705: true, // unknown
}

// oddNumericScale reports whether a numeric typmod has a scale below zero
// or above its precision (PostgreSQL 15's typmod: the scale is the low 11
// bits, signed).
func oddNumericScale(typmod int32) bool {
	if typmod < 4 {
		return false
	}
	v := typmod - 4
	prec, scale := (v>>16)&0xffff, v&0x7ff
	if scale&0x400 != 0 {
		scale -= 0x800
	}
	return scale < 0 || scale > prec
}

type typeKey struct {
	oid    uint32
	typmod int32
	name   string // the source's schema.name for a non-built-in type
}

// columnType returns the target column type for a source column: the
// target's format_type for a built-in type, the same-named type if the
// target has one for a non-built-in type, else text.
func (s *Sink) columnType(ctx context.Context, t *schema.Table, c schema.Column) (string, error) {
	k := typeKey{oid: c.TypeID, typmod: c.Typmod}
	if c.TypeID >= firstGenbkiObjectID {
		k.name = t.TypeNames[c.TypeID]
	}
	if typ, ok := s.types[k]; ok {
		return typ, nil
	}
	typ := "text"
	mod := []byte(strconv.FormatInt(int64(c.Typmod), 10))
	pg := s.conn.PgConn()
	switch {
	case c.TypeID < firstGenbkiObjectID && !storedAsText[c.TypeID]:
		// numeric(p,s) with s < 0 or s > p is new in PostgreSQL 15: an older
		// target reads its typmod as another scale and refuses it, so it
		// gets plain numeric, which holds every such value.
		odd := []byte(strconv.FormatBool(c.TypeID == schema.OIDNumeric && oddNumericScale(c.Typmod)))
		res := pg.ExecParams(ctx, `SELECT pg_catalog.format_type(oid, CASE WHEN $3 AND pg_catalog.current_setting('server_version_num')::int < 150000 THEN -1 ELSE $2 END)
			FROM pg_catalog.pg_type WHERE oid = $1`,
			[][]byte{[]byte(strconv.FormatUint(uint64(c.TypeID), 10)), mod, odd}, []uint32{26, 23, 16}, nil, nil).Read()
		if res.Err != nil {
			return "", fmt.Errorf("look up type %d: %w", c.TypeID, res.Err)
		}
		if len(res.Rows) == 1 {
			typ = string(res.Rows[0][0])
		} else {
			s.log.Warn("source type unknown to the target PostgreSQL (an older version?): stored as text", "oid", c.TypeID, "column", c.Name)
		}
	case k.name != "":
		// The Type message names the type "schema.name" (either part may
		// hold dots): use the target's type only if exactly one matches.
		// Not a table's row type (or an array of one): a source column of
		// a table's row type would get the target table's, which is what
		// walmirror made of that table (columns the source dropped kept,
		// added ones only once a row changes), so values would not fit.
		res := pg.ExecParams(ctx, `SELECT pg_catalog.format_type(t.oid, $2) FROM pg_catalog.pg_type t
			JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
			LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
			WHERE n.nspname || '.' || t.typname = $1 AND NOT EXISTS (SELECT FROM pg_catalog.pg_class r
				WHERE r.oid IN (t.typrelid, e.typrelid) AND r.relkind <> 'c')`,
			[][]byte{[]byte(k.name), mod}, []uint32{25, 23}, nil, nil).Read()
		if res.Err != nil {
			return "", fmt.Errorf("look up type %s: %w", k.name, res.Err)
		}
		if len(res.Rows) == 1 {
			typ = string(res.Rows[0][0])
		}
	}
	s.types[k] = typ
	return typ, nil
}

// cmpKind is how a keyless table's column is matched against an old value
// in its text form: only rows whose value prints exactly like it match.
type cmpKind uint8

const (
	cmpEqual  cmpKind = iota // c = $n: equal values print alike
	cmpCast                  // c::text = $n: the cast to text is the output function
	cmpFormat                // format('%s', c) = $n: the output function, whatever the casts
)

// equalIsIdentity are built-in types whose equality holds only for values
// that print alike (not float: -0 = 0; not numeric: 1.0 = 1.00; not bpchar:
// trailing spaces; not json: no equality at all).
var equalIsIdentity = map[uint32]bool{
	schema.OIDBool: true, schema.OIDBytea: true, schema.OIDChar: true, schema.OIDName: true,
	schema.OIDInt2: true, schema.OIDInt4: true, schema.OIDInt8: true, schema.OIDOid: true,
	schema.OIDText: true, schema.OIDVarchar: true, schema.OIDDate: true, schema.OIDTime: true,
	schema.OIDTimestamp: true, schema.OIDTimestampTZ: true, schema.OIDUUID: true,
}

// castNotOutput are built-in types with an explicit cast to text that
// differs from their output (bpchar drops trailing spaces, inet and cidr
// always show the netmask).
var castNotOutput = map[uint32]bool{schema.OIDBpchar: true, 869: true, 650: true}

func cmpFor(targetType uint32) cmpKind {
	switch {
	case equalIsIdentity[targetType]:
		return cmpEqual
	case targetType < firstGenbkiObjectID && !castNotOutput[targetType]:
		return cmpCast
	}
	return cmpFormat
}

// tableInfo is what the sink knows about a target table for one source
// shape. It describes the committed catalog plus this transaction's changes;
// Rollback forgets it.
type tableInfo struct {
	t         *schema.Table
	name      string   // quoted schema.table
	cols      []string // quoted column names, in the shape's order
	keyIdx    []int
	cmp       []cmpKind
	types     []string // the target columns' types, without type modifiers
	unique    bool     // a unique index on exactly the key columns: ON CONFLICT works
	lookup    int8     // 0 not known yet, 1 the lookup index its shape asks for is there (syncLookup), -1 none (hasLookup)
	stage     string   // qualified staging table, "" until created
	gcol      string   // its group column (quoted)
	copySQL   string
	bin       []binEnc // per column, for binary COPY; nil when some column has none
	stageDead int      // rows deleted from the stage since it was last truncated
	oid       uint32
	attnums   []int16 // the target columns' numbers, in the shape's order
	loadDefs  string  // column definitions of its loader tables, "" until read
	intKey    bool    // one key column, an integer type at both ends
}

// targetColumn is a column of the existing target table.
type targetColumn struct {
	num     int16
	typeOID uint32
	typ     string // format_type
	base    string // format_type with typmod -1: no length (bpchar, not character, which is char(1))
}

// inspect reads the target table's columns; ok is false when it does not exist.
func (s *Sink) inspect(ctx context.Context, t *schema.Table) (oid uint32, cols map[string]targetColumn, order []string, ok bool, err error) {
	res := s.conn.PgConn().ExecParams(ctx, `SELECT c.oid, c.relkind, a.attname, a.attnum, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod), pg_catalog.format_type(a.atttypid, -1)
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = $1 AND c.relname = $2
		ORDER BY a.attnum`, [][]byte{[]byte(t.Schema), []byte(t.Name)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return 0, nil, nil, false, fmt.Errorf("inspect target table %s: %w", t.QualifiedName(), res.Err)
	}
	if len(res.Rows) == 0 {
		return 0, nil, nil, false, nil
	}
	if k := string(res.Rows[0][1]); k != "r" && k != "p" {
		return 0, nil, nil, false, fmt.Errorf("target %s exists but is not a table (relkind %q)", t.QualifiedName(), k)
	}
	o, _ := strconv.ParseUint(string(res.Rows[0][0]), 10, 32)
	cols = map[string]targetColumn{}
	for _, r := range res.Rows {
		if r[2] == nil {
			continue // a table without columns
		}
		num, _ := strconv.ParseInt(string(r[3]), 10, 16)
		typ, _ := strconv.ParseUint(string(r[4]), 10, 32)
		name := string(r[2])
		cols[name] = targetColumn{num: int16(num), typeOID: uint32(typ), typ: string(r[5]), base: string(r[6])}
		order = append(order, name)
	}
	return uint32(o), cols, order, true, nil
}

// maxIdentBytes is how long a PostgreSQL identifier may be (NAMEDATALEN - 1).
const maxIdentBytes = 63

func qualified(t *schema.Table) string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported version).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// info returns what the sink knows about t's target table, reading the
// target's catalog the first time (the table must exist).
func (s *Sink) info(ctx context.Context, t *schema.Table) (*tableInfo, error) {
	if ti, ok := s.tables[t]; ok {
		return ti, nil
	}
	oid, cols, _, ok, err := s.inspect(ctx, t)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("target table %s does not exist", t.QualifiedName())
	}
	ti := &tableInfo{t: t, name: qualified(t), keyIdx: t.KeyIndexes(), oid: oid}
	for _, c := range t.Columns {
		tc, ok := cols[c.Name]
		if !ok {
			return nil, fmt.Errorf("target table %s has no column %q", t.QualifiedName(), c.Name)
		}
		ti.cols = append(ti.cols, quoteIdent(c.Name))
		ti.attnums = append(ti.attnums, tc.num)
		ti.cmp = append(ti.cmp, cmpFor(tc.typeOID))
		ti.types = append(ti.types, tc.base)
		ti.bin = append(ti.bin, binaryEncoderFor(c.TypeID, tc.typeOID))
	}
	if len(ti.keyIdx) == 1 {
		c := t.Columns[ti.keyIdx[0]]
		switch cols[c.Name].typeOID {
		case schema.OIDInt2, schema.OIDInt4, schema.OIDInt8:
			ti.intKey = c.TypeID == cols[c.Name].typeOID
		}
	}
	for _, e := range ti.bin {
		if e == nil || !binaryCopy {
			ti.bin = nil // binary COPY is all or nothing
			break
		}
	}
	// The staging table's group column: a name no column has.
	ti.gcol = "g"
	for slices.Contains(ti.cols, quoteIdent(ti.gcol)) {
		ti.gcol += "_"
	}
	ti.gcol = quoteIdent(ti.gcol)
	ti.copySQL = "COPY " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") FROM STDIN"
	if len(ti.keyIdx) > 0 {
		nums := make([]string, len(ti.keyIdx))
		for i, k := range ti.keyIdx {
			nums[i] = strconv.Itoa(int(cols[t.Columns[k].Name].num))
		}
		// ON CONFLICT (keys) needs a unique index on exactly those columns.
		res := s.conn.PgConn().ExecParams(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
			WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indimmediate
				AND i.indpred IS NULL AND i.indexprs IS NULL
				AND (SELECT pg_catalog.array_agg(k ORDER BY k) FROM pg_catalog.unnest((i.indkey::int2[])[0:i.indnkeyatts-1]) k)
					= (SELECT pg_catalog.array_agg(k ORDER BY k) FROM pg_catalog.unnest($2::int2[]) k))`,
			[][]byte{[]byte(strconv.FormatUint(uint64(oid), 10)), []byte("{" + strings.Join(nums, ",") + "}")},
			nil, nil, nil).Read()
		if res.Err != nil {
			return nil, fmt.Errorf("inspect indexes of %s: %w", t.QualifiedName(), res.Err)
		}
		ti.unique = string(res.Rows[0][0]) == "t"
	}
	s.tables[t] = ti
	return ti, nil
}

// EnsureTable creates the table (and its schema) on first sight, or adds the
// columns the source gained. Columns the source dropped are kept, with their
// data, and logged; so are type differences.
func (s *Sink) EnsureTable(ctx context.Context, t *schema.Table) (err error) {
	defer s.busy()()
	defer func() { err = lockTableFull(err) }()
	if t.Schema == metaSchema {
		return fmt.Errorf("source table %s is in schema %s, which is reserved for walmirror's own tables in the target", t.QualifiedName(), metaSchema)
	}
	if err := s.settle(); err != nil {
		return err
	}
	if err := s.alive(ctx); err != nil {
		return err
	}
	if err := s.change(ctx, t); err != nil {
		return err
	}
	_, cols, order, exists, err := s.inspect(ctx, t)
	if err != nil {
		return err
	}
	name := qualified(t)
	pg := s.conn.PgConn()
	if exists {
		if err := s.claim(ctx, t, name); err != nil {
			return err
		}
	}
	if !exists {
		res := pg.ExecParams(ctx, `SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1`, [][]byte{[]byte(t.Schema)}, []uint32{25}, nil, nil).Read()
		if res.Err != nil {
			return fmt.Errorf("inspect schema %q: %w", t.Schema, res.Err)
		}
		if len(res.Rows) == 0 {
			if _, err := pg.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(t.Schema)).ReadAll(); err != nil {
				return fmt.Errorf("create schema %q: %w", t.Schema, err)
			}
		}
		defs := make([]string, 0, len(t.Columns)+1)
		for _, c := range t.Columns {
			typ, err := s.columnType(ctx, t, c)
			if err != nil {
				return err
			}
			defs = append(defs, quoteIdent(c.Name)+" "+typ)
		}
		if keys := t.KeyIndexes(); len(keys) > 0 {
			k := make([]string, len(keys))
			for i, ki := range keys {
				k[i] = quoteIdent(t.Columns[ki].Name)
			}
			defs = append(defs, "PRIMARY KEY ("+strings.Join(k, ", ")+")")
		}
		if _, err := pg.Exec(ctx, "CREATE TABLE "+name+" ("+strings.Join(defs, ", ")+")").ReadAll(); err != nil {
			return fmt.Errorf("create table %s: %w", name, err)
		}
		if err := s.own(ctx, t); err != nil {
			return err
		}
		s.created[name] = true
		s.log.Info("created target table", "table", name, "columns", len(t.Columns))
	} else {
		if t.Replacing {
			// The rows are about to be replaced by a copy: change an empty
			// table, which any type change, new key or NOT NULL can take.
			if _, err := pg.Exec(ctx, "TRUNCATE "+name).ReadAll(); err != nil {
				return fmt.Errorf("empty %s for its copy: %w", name, err)
			}
		}
		seen := map[string]bool{}
		for _, c := range t.Columns {
			seen[c.Name] = true
			typ, err := s.columnType(ctx, t, c)
			if err != nil {
				return err
			}
			tc, ok := cols[c.Name]
			if !ok {
				if err := t.LostColumn(ctx, c.Name, s.Shape); err != nil {
					return err
				}
				fill := t.Fills[c.Name]
				if err := fill.Check(t, c.Name); err != nil {
					return err
				}
				add := "ALTER TABLE " + name + " ADD COLUMN " + quoteIdent(c.Name) + " " + typ
				if fill.Value.State == schema.Text {
					// As on the source: existing rows get the value without a
					// rewrite (a missing value), parsed in the source's session
					// settings; the target column keeps no default.
					add += " DEFAULT " + quoteLiteral(string(fill.Value.Data)) + "::" + typ +
						"; ALTER TABLE " + name + " ALTER COLUMN " + quoteIdent(c.Name) + " DROP DEFAULT"
				}
				if _, err := pg.Exec(ctx, add).ReadAll(); err != nil {
					err = fmt.Errorf("add column %q to %s: %w", c.Name, name, err)
					if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") &&
						c.TypeID >= firstGenbkiObjectID && typ != "text" {
						// The existing rows' value (a default) is one the
						// target's type lacks.
						err = ownTypesHint(err, []string{quoteIdent(c.Name) + " (" + typ + ")"})
					}
					return err
				}
				s.log.Info("added target column", "table", name, "column", c.Name, "type", typ, "existing_rows", fill)
				continue
			}
			if tc.typ != typ {
				if err := s.retype(ctx, name, c.Name, tc.typ, typ, t.Replacing, t.RetypeCause(c.Name)); err != nil {
					return err
				}
			}
		}
		if err := s.rekey(ctx, t, name); err != nil {
			return err
		}
		for _, col := range order {
			switch {
			case seen[col]:
			case !s.DropColumns:
				if err := s.nullable(ctx, name, col); err != nil {
					return err
				}
				s.log.Log(ctx, keptLevel(t, col), "target column no longer in the source (dropped, or left out by the publication's column list): kept, NULL in rows written from now on (in every row when the table is copied again; --drop-columns drops it)", "table", name, "column", col)
			default:
				if _, err := pg.Exec(ctx, "ALTER TABLE "+name+" DROP COLUMN "+quoteIdent(col)).ReadAll(); err != nil {
					return fmt.Errorf("drop column %q of %s, which the source dropped: %w", col, name, err)
				}
				s.forgetTable(name)
				s.log.Info("dropped target column the source dropped", "table", name, "column", col)
			}
		}
	}
	// This shape is read afresh. Other shapes of the table are forgotten
	// (read again should one be used again), with their staging tables: a
	// long run through many shape changes would keep one of each.
	old := s.tables[t]
	delete(s.tables, t)
	s.forgetTable(name)
	ti, err := s.info(ctx, t)
	if old != nil && old.stage != "" {
		if err == nil {
			ti.stage, ti.stageDead = old.stage, old.stageDead // same shape, same staging columns
		} else {
			s.deadStages = append(s.deadStages, old.stage)
		}
	}
	if err != nil {
		return err
	}
	return s.syncLookup(ctx, ti)
}

// lookupPrefix begins the names of the indexes walmirror makes on the
// copy of a table matched by whole rows (REPLICA IDENTITY FULL), on the
// columns of its source primary key (schema.Table.Lookup): without one,
// each update or delete, or set of them, reads the whole table.
const lookupPrefix = "_walmirror_lookup_"

// syncLookup gives ti's table the lookup index its shape asks for, and no
// other. Only columns matched by equality (cmpEqual) are indexed: the
// others are compared by their text forms, which a plain index does not
// serve.
func (s *Sink) syncLookup(ctx context.Context, ti *tableInfo) error {
	want, cols := lookupIndex(ti)
	have, err := s.lookups(ctx, ti)
	if err != nil {
		return err
	}
	pg := s.conn.PgConn()
	found := false
	for _, ix := range have {
		if ix == want {
			found = true
		} else if _, err := pg.Exec(ctx, "DROP INDEX "+pgx.Identifier{ti.t.Schema, ix}.Sanitize()).ReadAll(); err != nil {
			return fmt.Errorf("drop index %q of %s: %w", ix, ti.name, err)
		}
	}
	ti.lookup = -1
	if want == "" {
		return nil
	}
	if !found {
		if _, err := pg.Exec(ctx, "CREATE INDEX "+quoteIdent(want)+" ON "+ti.name+" ("+strings.Join(cols, ", ")+")").ReadAll(); err != nil {
			return fmt.Errorf("index %s on the source's primary key columns, to find rows it updates and deletes: %w", ti.name, err)
		}
		s.log.Info("indexed target table on the source's primary key to find rows (REPLICA IDENTITY FULL: rows are still matched on every column)", "table", ti.name, "columns", cols)
	}
	ti.lookup = 1
	return nil
}

// lookupIndex names the lookup index ti's shape asks for and its columns
// (quoted); "" when it asks for none. The name is the table's oid's and
// the columns': unique in the schema whatever tables are renamed.
func lookupIndex(ti *tableInfo) (string, []string) {
	t := ti.t
	if len(ti.keyIdx) > 0 || t.Identity != schema.IdentityFull {
		return "", nil
	}
	var cols []string
	for _, i := range t.Lookup {
		if ti.cmp[i] == cmpEqual {
			cols = append(cols, ti.cols[i])
		}
	}
	if len(cols) == 0 {
		return "", nil
	}
	h := fnv.New64a()
	h.Write([]byte(strings.Join(cols, "\x00")))
	return fmt.Sprintf("%s%d_%016x", lookupPrefix, ti.oid, h.Sum64()), cols
}

// lookups lists the lookup indexes of ti's table.
func (s *Sink) lookups(ctx context.Context, ti *tableInfo) ([]string, error) {
	res := s.conn.PgConn().ExecParams(ctx, `SELECT c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = $1 AND left(c.relname::text, length($2)) = $2`,
		[][]byte{[]byte(strconv.FormatUint(uint64(ti.oid), 10)), []byte(lookupPrefix)}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("list the indexes of %s: %w", ti.name, res.Err)
	}
	out := make([]string, len(res.Rows))
	for i, r := range res.Rows {
		out[i] = string(r[0])
	}
	return out, nil
}

// hasLookup reports whether ti's table has the lookup index its shape asks
// for: sets search it only then (without it, a search per old row would
// read the table each time).
func (s *Sink) hasLookup(ctx context.Context, ti *tableInfo) (bool, error) {
	if ti.lookup == 0 {
		ti.lookup = -1
		if want, _ := lookupIndex(ti); want != "" {
			have, err := s.lookups(ctx, ti)
			if err != nil {
				return false, err
			}
			if slices.Contains(have, want) {
				ti.lookup = 1
			}
		}
	}
	return ti.lookup > 0, nil
}

// claim makes sure the existing table name is walmirror's: created by it,
// or, with Adopt, an empty table it now takes over.
func (s *Sink) claim(ctx context.Context, t *schema.Table, name string) error {
	pg := s.conn.PgConn()
	res := pg.ExecParams(ctx, `SELECT 1 FROM `+metaSchema+`.tables WHERE schema_name = $1 AND table_name = $2`,
		[][]byte{[]byte(t.Schema), []byte(t.Name)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("look up owner of %s: %w", name, res.Err)
	}
	if len(res.Rows) > 0 {
		return nil
	}
	if !s.Adopt {
		return schema.NotOwned(t, name)
	}
	res = pg.ExecParams(ctx, "SELECT 1 FROM "+name+" LIMIT 1", nil, nil, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("inspect %s: %w", name, res.Err)
	}
	if len(res.Rows) > 0 {
		return schema.NotEmpty(t, name)
	}
	if err := s.own(ctx, t); err != nil {
		return err
	}
	s.log.Info("adopted existing target table", "table", name)
	return nil
}

// own records t's target table as walmirror's, in the open transaction.
func (s *Sink) own(ctx context.Context, t *schema.Table) error {
	res := s.conn.PgConn().ExecParams(ctx, `INSERT INTO `+metaSchema+`.tables (schema_name, table_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		[][]byte{[]byte(t.Schema), []byte(t.Name)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("record %s as walmirror's: %w", qualified(t), res.Err)
	}
	return nil
}

// vacate moves walmirror's table of t's name, which no source table's copy
// is any longer (see schema.Change.Vacate), aside for t's renamed copy to
// take the name. A table walmirror did not create stays, and the rename
// fails.
func (s *Sink) vacate(ctx context.Context, t *schema.Table) error {
	pg := s.conn.PgConn()
	res := pg.ExecParams(ctx, `SELECT 1 FROM `+metaSchema+`.tables w WHERE w.schema_name = $1 AND w.table_name = $2
		AND to_regclass(format('%I.%I', w.schema_name, w.table_name)) IS NOT NULL`,
		[][]byte{[]byte(t.Schema), []byte(t.Name)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("inspect %s: %w", qualified(t), res.Err)
	}
	if len(res.Rows) == 0 {
		return nil
	}
	var lookErr error
	aside := schema.AsideName(t.Name, maxIdentBytes, func(n string) bool {
		r := pg.ExecParams(ctx, `SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL`,
			[][]byte{[]byte(t.Schema), []byte(n)}, []uint32{25, 25}, nil, nil).Read()
		if r.Err != nil || len(r.Rows) == 0 {
			lookErr = errors.Join(r.Err, errors.New("no answer")) // (ends the search)
			return false
		}
		return string(r.Rows[0][0]) == "t"
	})
	name := qualified(t)
	if lookErr != nil {
		return fmt.Errorf("find a free name to move %s aside to: %w", name, lookErr)
	}
	q := "ALTER TABLE " + name + " RENAME TO " + quoteIdent(aside) + "; UPDATE " + metaSchema + ".tables SET table_name = " + quoteLiteral(aside) +
		" WHERE schema_name = " + quoteLiteral(t.Schema) + " AND table_name = " + quoteLiteral(t.Name)
	if _, err := pg.Exec(ctx, q).ReadAll(); err != nil {
		return fmt.Errorf("move %s, a copy no published table has, aside to %q: %w", name, aside, err)
	}
	s.forgetTable(name)
	s.log.Warn("a renamed source table takes the name of a copy no published table has any more (its source table was dropped or left the publication): that copy moves aside", "table", name, "aside", aside)
	return nil
}

// freeIndexNames renames the indexes of table (in schema from) whose names
// a relation of schema to has: index names are per schema, and ALTER
// TABLE ... SET SCHEMA takes them along (helper-108: a copy moved aside in
// to kept its key's index "m_pkey", so moving another m there failed at
// every start). The new name is PostgreSQL's own way: digits appended.
func (s *Sink) freeIndexNames(ctx context.Context, table, from, to string) error {
	pg := s.conn.PgConn()
	res := pg.ExecParams(ctx, `SELECT i.relname FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
		WHERE x.indrelid = $1::regclass AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c
			WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $2) AND c.relname = i.relname)`,
		[][]byte{[]byte(table), []byte(to)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("inspect the index names of %s: %w", table, res.Err)
	}
	for _, row := range res.Rows {
		idx := string(row[0])
		free := ""
		for n := 1; free == ""; n++ {
			digits := strconv.Itoa(n)
			name := idx
			for len(name)+len(digits) > 63 { // NAMEDATALEN: longer names are cut, to the name taken
				_, size := utf8.DecodeLastRuneInString(name)
				name = name[:len(name)-size]
			}
			name += digits
			r := pg.ExecParams(ctx, `SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname IN ($1, $2) AND c.relname = $3`,
				[][]byte{[]byte(from), []byte(to), []byte(name)}, []uint32{25, 25, 25}, nil, nil).Read()
			if r.Err != nil {
				return fmt.Errorf("look for a free index name in %q: %w", to, r.Err)
			}
			if len(r.Rows) == 0 {
				free = name
			}
		}
		if _, err := pg.Exec(ctx, "ALTER INDEX "+pgx.Identifier{from, idx}.Sanitize()+" RENAME TO "+quoteIdent(free)).ReadAll(); err != nil {
			return fmt.Errorf("rename index %q of %s, whose name schema %q has, to %q: %w", idx, table, to, free, err)
		}
		s.log.Info("an index's name is taken in the schema its table moves to: renamed", "table", table, "index", idx, "to", free)
	}
	return nil
}

// MoveTable renames walmirror's table of source table schemaName.from to
// schemaName.to (for the engine: a table whose name another one took
// before its own rename was seen).
func (s *Sink) MoveTable(ctx context.Context, schemaName, from, to string) error {
	defer s.busy()()
	pg := s.conn.PgConn()
	old := pgx.Identifier{schemaName, from}.Sanitize()
	res := pg.ExecParams(ctx, `SELECT 1 FROM `+metaSchema+`.tables WHERE schema_name = $1 AND table_name = $2`,
		[][]byte{[]byte(schemaName), []byte(from)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("look up owner of %s: %w", old, res.Err)
	}
	if len(res.Rows) == 0 {
		return fmt.Errorf("%s is not walmirror's", old)
	}
	q := "ALTER TABLE " + old + " RENAME TO " + quoteIdent(to) + "; UPDATE " + metaSchema + ".tables SET table_name = " + quoteLiteral(to) +
		" WHERE schema_name = " + quoteLiteral(schemaName) + " AND table_name = " + quoteLiteral(from)
	if _, err := pg.Exec(ctx, q).ReadAll(); err != nil {
		return fmt.Errorf("rename %s to %q: %w", old, to, err)
	}
	s.forgetTable(old)
	return nil
}

// nullable lets a kept column that the source no longer has take the NULL
// its new rows get: a dropped key column keeps its NOT NULL otherwise.
func (s *Sink) nullable(ctx context.Context, name, col string) error {
	pg := s.conn.PgConn()
	res := pg.ExecParams(ctx, `SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND attnotnull`,
		[][]byte{[]byte(name), []byte(col)}, []uint32{25, 25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("inspect column %q of %s: %w", col, name, res.Err)
	}
	if len(res.Rows) == 0 {
		return nil
	}
	if _, err := pg.Exec(ctx, "ALTER TABLE "+name+" ALTER COLUMN "+quoteIdent(col)+" DROP NOT NULL").ReadAll(); err != nil {
		return fmt.Errorf("let column %q of %s, which the source no longer has, hold NULL: %w", col, name, err)
	}
	return nil
}

// retype converts a target column to the source column's new type (ALTER
// COLUMN ... TYPE on the source: int to bigint, a longer varchar, ...) with
// the type's own cast, as the source did without USING. If stored values do
// not convert, the column is kept and the change is logged; a value the old
// type cannot hold then stops the run with the server's error. An emptied
// table (its rows about to be replaced by a copy) takes any new type.
func (s *Sink) retype(ctx context.Context, name, col, from, to string, emptied bool, cause string) error {
	pg := s.conn.PgConn()
	c := quoteIdent(col)
	using := c + "::" + to
	if emptied {
		using = "NULL::" + to // no rows to convert, and the types may have no cast
	}
	q := "SAVEPOINT walmirror_retype; ALTER TABLE " + name + " ALTER COLUMN " + c + " TYPE " + to + " USING " + using + "; RELEASE SAVEPOINT walmirror_retype"
	if _, err := pg.Exec(ctx, q).ReadAll(); err != nil {
		if _, rerr := pg.Exec(ctx, "ROLLBACK TO SAVEPOINT walmirror_retype; RELEASE SAVEPOINT walmirror_retype").ReadAll(); rerr != nil {
			return fmt.Errorf("change type of %s.%s to %s: %w (and undoing it: %v)", name, c, to, err, rerr)
		}
		s.log.Warn(cause+" but stored values do not convert: target column kept", "table", name, "column", col,
			"target_type", from, "source_type", to, "err", err)
		return nil
	}
	s.log.Info(cause+": target column converted", "table", name, "column", col, "from", from, "to", to)
	return nil
}

// change does to the target table what happened to the source table since
// the shape the target stored: a rename or move to another schema, renamed
// columns, columns dropped and added again (dropped here: EnsureTable adds
// them as new). Type changes follow in EnsureTable.
func (s *Sink) change(ctx context.Context, t *schema.Table) error {
	c := t.Change
	if c.Empty() {
		return nil
	}
	pg := s.conn.PgConn()
	name := qualified(t)
	if c.FromName != "" {
		old := pgx.Identifier{c.FromSchema, c.FromName}.Sanitize()
		if c.Vacate && (c.FromSchema != t.Schema || c.FromName != t.Name) {
			if err := s.vacate(ctx, t); err != nil {
				return err
			}
		}
		q := ""
		if c.FromSchema != t.Schema {
			if err := s.freeIndexNames(ctx, old, c.FromSchema, t.Schema); err != nil {
				return err
			}
			q = "CREATE SCHEMA IF NOT EXISTS " + quoteIdent(t.Schema) + "; ALTER TABLE " + old + " SET SCHEMA " + quoteIdent(t.Schema) + "; "
		}
		if c.FromName != t.Name {
			q += "ALTER TABLE " + pgx.Identifier{t.Schema, c.FromName}.Sanitize() + " RENAME TO " + quoteIdent(t.Name) + "; "
		}
		q += "UPDATE " + metaSchema + ".tables SET schema_name = " + quoteLiteral(t.Schema) + ", table_name = " + quoteLiteral(t.Name) +
			" WHERE schema_name = " + quoteLiteral(c.FromSchema) + " AND table_name = " + quoteLiteral(c.FromName)
		if _, err := pg.Exec(ctx, q).ReadAll(); err != nil {
			return fmt.Errorf("rename table %s to %s as the source did: %w", old, name, err)
		}
		s.forgetTable(old)
		s.log.Info("renamed target table as the source did", "from", old, "to", name)
	}
	has := func(col string) bool {
		res := pg.ExecParams(ctx, `SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped`,
			[][]byte{[]byte(name), []byte(col)}, []uint32{25, 25}, nil, nil).Read()
		return res.Err == nil && len(res.Rows) > 0 // on an error the ALTER below says what is wrong
	}
	for to, from := range c.Renamed {
		if has(to) {
			// A column the source dropped, kept here, has the new name.
			aside := schema.AsideName(to, maxIdentBytes, has)
			if _, err := pg.Exec(ctx, "ALTER TABLE "+name+" RENAME COLUMN "+quoteIdent(to)+" TO "+quoteIdent(aside)).ReadAll(); err != nil {
				return fmt.Errorf("move kept column %q of %s aside to %q: %w", to, name, aside, err)
			}
			s.log.Warn("a renamed source column takes the name of a dropped one kept here: the kept one moves aside", "table", name, "column", to, "aside", aside)
		}
		if _, err := pg.Exec(ctx, "ALTER TABLE "+name+" RENAME COLUMN "+quoteIdent(from)+" TO "+quoteIdent(to)).ReadAll(); err != nil {
			return fmt.Errorf("rename column %q of %s to %q as the source did: %w", from, name, to, err)
		}
		s.forgetTable(name)
		s.log.Info("renamed target column as the source did", "table", name, "from", from, "to", to)
	}
	for _, col := range c.Replaced() {
		if !has(col) {
			continue // an added column the target does not have yet
		}
		// A new column, maybe of another type: the old one goes, and
		// EnsureTable adds the new one with what existing rows hold.
		if err := t.Fills[col].Check(t, col); err != nil {
			return err
		}
		if _, err := pg.Exec(ctx, "ALTER TABLE "+name+" DROP COLUMN "+quoteIdent(col)).ReadAll(); err != nil {
			return fmt.Errorf("replace re-added column %q of %s: %w", col, name, err)
		}
		s.forgetTable(name)
		s.log.Info(c.ReplacedReason(col), "table", name, "column", col)
	}
	return nil
}

// forgetTable drops what the sink derived for the table name.
func (s *Sink) forgetTable(name string) {
	for shape, ti := range s.tables {
		if ti.name == name {
			if ti.stage != "" {
				// Dropped at the commit: a session that follows many
				// changes of shape would otherwise keep a staging table
				// for each.
				s.deadStages = append(s.deadStages, ti.stage)
			}
			delete(s.tables, shape)
		}
	}
}

// Shape returns the source shape stored for the table mirroring relid.
func (s *Sink) Shape(ctx context.Context, relid uint32) (string, bool, error) {
	if err := s.settle(); err != nil {
		return "", false, err
	}
	res := s.conn.PgConn().ExecParams(ctx, `SELECT shape FROM `+metaSchema+`.tables WHERE relid = $1 AND shape IS NOT NULL`,
		[][]byte{[]byte(strconv.FormatUint(uint64(relid), 10))}, []uint32{20}, nil, nil).Read()
	if res.Err != nil {
		return "", false, fmt.Errorf("read stored shape: %w", res.Err)
	}
	if len(res.Rows) == 0 {
		return "", false, nil
	}
	return string(res.Rows[0][0]), true, nil
}

// SetShape stores t's source shape with its table, in the open transaction.
// ShapeIDs lists the source tables (relids) whose shape is stored.
func (s *Sink) ShapeIDs(ctx context.Context) ([]uint32, error) {
	if err := s.settle(); err != nil {
		return nil, err
	}
	res := s.conn.PgConn().ExecParams(ctx, `SELECT relid FROM `+metaSchema+`.tables WHERE relid IS NOT NULL AND shape IS NOT NULL`,
		nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("list stored shapes: %w", res.Err)
	}
	ids := make([]uint32, 0, len(res.Rows))
	for _, r := range res.Rows {
		id, err := strconv.ParseUint(string(r[0]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("list stored shapes: %w", err)
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}

// ForgetShape drops relid's stored shape (the table stays walmirror's): a
// table that left the publication is copied afresh if it joins again.
func (s *Sink) ForgetShape(ctx context.Context, relid uint32) error {
	res := s.conn.PgConn().ExecParams(ctx, `UPDATE `+metaSchema+`.tables SET relid = NULL, shape = NULL WHERE relid = $1`,
		[][]byte{[]byte(strconv.FormatUint(uint64(relid), 10))}, []uint32{20}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("forget stored shape: %w", res.Err)
	}
	return nil
}

func (s *Sink) SetShape(ctx context.Context, t *schema.Table, shape string) error {
	relid := []byte(strconv.FormatUint(uint64(t.ID), 10))
	res := s.conn.PgConn().ExecParams(ctx, `UPDATE `+metaSchema+`.tables SET relid = NULL, shape = NULL WHERE relid = $1 AND NOT (schema_name = $2 AND table_name = $3)`,
		[][]byte{relid, []byte(t.Schema), []byte(t.Name)}, []uint32{20, 25, 25}, nil, nil).Read()
	if res.Err == nil {
		res = s.conn.PgConn().ExecParams(ctx, `UPDATE `+metaSchema+`.tables SET relid = $1, shape = $2 WHERE schema_name = $3 AND table_name = $4`,
			[][]byte{relid, []byte(shape), []byte(t.Schema), []byte(t.Name)}, []uint32{20, 25, 25, 25}, nil, nil).Read()
	}
	if res.Err != nil {
		return fmt.Errorf("store shape of %s: %w", qualified(t), res.Err)
	}
	return nil
}

// rekey gives the target table t's key when the source's primary key or
// replica identity changed: the old PRIMARY KEY would refuse rows the
// source now allows.
func (s *Sink) rekey(ctx context.Context, t *schema.Table, name string) error {
	pg := s.conn.PgConn()
	res := pg.ExecParams(ctx, `SELECT con.conname, a.attname FROM pg_catalog.pg_constraint con
		CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
		WHERE con.conrelid = $1::regclass AND con.contype = 'p' ORDER BY k.ord`,
		[][]byte{[]byte(name)}, []uint32{25}, nil, nil).Read()
	if res.Err != nil {
		return fmt.Errorf("inspect the primary key of %s: %w", name, res.Err)
	}
	var conname string
	var have []string
	for _, r := range res.Rows {
		conname = string(r[0])
		have = append(have, string(r[1]))
	}
	var want []string
	for _, k := range t.KeyIndexes() {
		want = append(want, t.Columns[k].Name)
	}
	if slices.Equal(have, want) {
		return nil
	}
	q := ""
	if conname != "" {
		q = "ALTER TABLE " + name + " DROP CONSTRAINT " + quoteIdent(conname) + "; "
		// The key made its columns NOT NULL, which outlives it: a column
		// the source now lets be NULL would refuse such rows at every start
		// (fuzzing: REPLICA IDENTITY FULL, then DROP NOT NULL).
		for _, c := range have {
			if !slices.Contains(want, c) {
				q += "ALTER TABLE " + name + " ALTER COLUMN " + quoteIdent(c) + " DROP NOT NULL; "
			}
		}
	}
	if len(want) > 0 {
		k := make([]string, len(want))
		for i, c := range want {
			k[i] = quoteIdent(c)
		}
		q += "ALTER TABLE " + name + " ADD PRIMARY KEY (" + strings.Join(k, ", ") + ")"
	}
	if _, err := pg.Exec(ctx, q).ReadAll(); err != nil {
		return fmt.Errorf("change the primary key of %s from %v to %v as the source did: %w", name, have, want, err)
	}
	s.log.Info("source key changed: target primary key changed", "table", name, "from", have, "to", want)
	return nil
}

// keptLevel: a kept column is a warning when this shape drops it, and at
// debug level at every later shaping (each run's first), where it repeated.
func keptLevel(t *schema.Table, col string) slog.Level {
	if t.Dropping(col) {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

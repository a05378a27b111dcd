package schema

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Replica identity settings, as pgoutput sends them (pg_class.relreplident).
const (
	IdentityDefault = 'd' // primary key
	IdentityNothing = 'n'
	IdentityFull    = 'f' // the whole old row identifies it
	IdentityIndex   = 'i' // a unique index
)

// Column is one source column.
type Column struct {
	Name   string
	TypeID uint32 // pg_type OID
	Typmod int32  // atttypmod; -1 when none
	Key    bool   // part of the replica identity
}

// Table is one source table in the shape the source last described it.
// A Table value is immutable: a changed shape is a new *Table, so rows that
// were decoded with the old shape keep pointing at the shape they fit.
type Table struct {
	ID       uint32 // pg_class OID (pgoutput's relation id)
	Schema   string
	Name     string
	Identity byte // one of the Identity* constants
	Columns  []Column
	// TypeNames names non-built-in types (enums, domains, composites) by OID,
	// from Type messages; empty for built-ins.
	TypeNames map[uint32]string
	// MaxNum is the highest attnum the table is known to have had: from a
	// copy's catalog read (dropped and unpublished columns included), or
	// the stream's columns, whichever is higher (0: not known). A column that appears later with an attnum at most this
	// existed then, unpublished (a generated column whose expression was
	// dropped since): what older rows hold in it is in no WAL.
	MaxNum int16
	// Storage identifies the source table's data files (each leaf's
	// relfilenode): it changes when the source rewrites the table (ALTER
	// TABLE ... USING, VACUUM FULL, CLUSTER, TRUNCATE) or a partition is
	// attached or detached, none of which the stream carries row by row.
	// Empty when unknown. DataFiles is its data files' part.
	Storage string
	// TruncXid is the transaction of the last TRUNCATE of the table the
	// copy applied, stored with its shape, when no row change followed it
	// in that transaction: new data files whose pg_class row that
	// transaction wrote come from the TRUNCATE (a later rewrite in it had
	// no rows to change), not from a rewrite the stream did not carry.
	// 0: take the stored one; NoTruncXid: none.
	TruncXid uint32
	// Replacing says the target table's rows are about to be replaced by
	// an online copy: a sink may empty it first, and what existing rows
	// would hold in a changed column does not matter.
	Replacing bool
	// Recopying says an online copy of the whole table is due and not
	// begun: its first chunk replaces every row, so a column the target
	// table lost (LostColumn) may be added back, empty, until then.
	Recopying bool
	// Fills says, by column name, what rows that existed before a column
	// was added hold in it, as the source's catalog told when this shape
	// arrived. A sink adding a column to an existing target table writes it
	// into every row there, or fails with Fill.Unknown. Nil when nobody
	// asked the catalog (then added columns start NULL).
	Fills map[string]Fill
	// Nums are the columns' attnums as the source's catalog told (0 where
	// it could not: the table changed again since), for telling a renamed
	// column from a dropped and added one.
	Nums []int16
	// Change, when set, is what happened since the shape the target
	// stored (renames, type changes, re-added columns): EnsureTable does it
	// to the target table first.
	Change *Change
	// Lookup, for a table matched by whole rows (REPLICA IDENTITY FULL),
	// are the positions of the columns of its primary key on the source,
	// as the catalog told when this shape arrived: an index on them lets
	// a sink find a changed row without reading the table. Only an access
	// path, never a key: rows are still matched on every value, so a key
	// dropped since, or values repeating in it, change nothing but speed.
	Lookup []int

	keyIdx []int
}

// Fill is the value old rows carry in a column the source added: NULL, or
// PostgreSQL's "missing value" of ADD COLUMN ... DEFAULT, which is stored
// once in the catalog, never written to the rows, so never in the WAL.
type Fill struct {
	Value Datum // State Null or Text
	// Unknown, when set, says why the value old rows hold cannot be known
	// (a volatile default, a rewrite, a catalog that moved on); adding the
	// column must stop with it rather than guess.
	Unknown string
}

// ErrNotOwned is wrapped by NotOwned's error, for errors.Is (apply
// exports it as ErrTargetNotOwned).
var ErrNotOwned = errors.New("target table not created by walmirror")

// ErrDiverged is wrapped by a sink's error for a change that cannot apply
// because the copy no longer holds what the source held (a row the source
// updated is missing, a row it inserted is there already): something
// other than walmirror changed the copy. apply exports it as ErrDiverged.
var ErrDiverged = errors.New("the copy no longer mirrors the source")

// DivergedError is a sink's error for a change to one table that cannot
// apply because the copy no longer holds what the source held: it names
// the table, so that the table alone can be copied again. errors.Is finds
// ErrDiverged in it.
type DivergedError struct {
	RelID uint32 // the source table's OID
	Table string // its name, schema.table (DisplayName)
	Err   error  // what the sink found, naming the key
	// Unidentified: the source's change cannot name its row (Unidentified),
	// which is no sign of someone else writing to the copy.
	Unidentified bool
	// SourceChange, when set, is the source's own change that explains
	// the difference (an enum label renamed: the copy's rows hold the old
	// label, and no WAL says so), no sign of someone else writing to it.
	SourceChange string
	// Perhaps, when set, is a source change that may explain the
	// difference, or not: a partition attached and detached again unseen
	// leaves no trace in the stream, and the copy's root lacks its rows.
	Perhaps string
}

// Diverged marks err, a change to t that found the copy differing from the
// source, as a *DivergedError.
func Diverged(t *Table, err error) error {
	return &DivergedError{RelID: t.ID, Table: DisplayName(t.Schema, t.Name), Err: err}
}

func (e *DivergedError) Error() string   { return e.Err.Error() }
func (e *DivergedError) Unwrap() []error { return []error{e.Err, ErrDiverged} }

// Unidentified is a sink's error for an update or delete of t, a table
// without a key, that its old row cannot identify: t is not REPLICA
// IDENTITY FULL, or the change came without an old row (hasOld false).
// PostgreSQL refuses those on a plain table; they come from a partitioned
// table published through its root (publish_via_partition_root) whose
// partitions have keys of their own, where the old row holds only a
// partition's key: matched as a whole row it would change nothing,
// silently; and, once seen under load (PostgreSQL 14), from a
// plain table whose key and replica identity were being replaced, which
// the message names first. Marked diverged, so the table is copied again (or the run
// stops with apply.Config.StopOnDivergence).
func Unidentified(t *Table, op Op, hasOld bool) error {
	what := "no old row"
	if hasOld {
		what = "an old row holding only key columns (a partition's key, or the published part of a key)"
	}
	return &DivergedError{RelID: t.ID, Table: DisplayName(t.Schema, t.Name), Unidentified: true, Err: fmt.Errorf("%s on %s: the source sent %s, which cannot identify a row of it (REPLICA IDENTITY of the table: %q, no key published); walmirror copies the table again for each such change. "+
		"Causes: the table's key or replica identity was being replaced at that point of the stream (nothing to do); "+
		"a partitioned table published through its root (publish_via_partition_root) without a valid primary key on the root (on every partition too, not added with ALTER TABLE ONLY) or REPLICA IDENTITY FULL on every partition; "+
		"a key of generated columns, which PostgreSQL before 18 does not publish. "+
		"For the last two: run ALTER TABLE ... REPLICA IDENTITY FULL on each partition on the source (and on partitions attached later), or on the table whose key is generated", op, t.QualifiedName(), what, string(t.Identity))}
}

// NotOwned is the error for a target table walmirror did not create: it
// changes only its own tables (or ones it was told to adopt). It wraps
// ErrNotOwned.
func NotOwned(t *Table, target string) error {
	return &notOwnedError{fmt.Sprintf("target table %s already exists and walmirror did not create it (source table %s maps to it); "+
		"walmirror changes only tables it owns: drop or rename that table, or choose another target; "+
		"to have walmirror take over an empty table of the same shape (a pre-created schema), run with --adopt-tables (a sink's Adopt field)", target, t.QualifiedName())}
}

type notOwnedError struct{ msg string }

func (e *notOwnedError) Error() string { return e.msg }
func (e *notOwnedError) Unwrap() error { return ErrNotOwned }

// ErrUnstorable is wrapped by a sink's error for a source value its target
// column cannot hold (DuckDB: NaN in a DECIMAL, a multi-dimensional array
// in a LIST): the message says how to change that column in the target so
// that such values are kept. A caller that has no such column to change
// (an initial copy rolled back) says what it can do instead.
var ErrUnstorable = errors.New("a target column cannot hold a source value")

// Unstorable returns an error with message msg that wraps ErrUnstorable.
func Unstorable(msg string) error { return &unstorableError{msg} }

type unstorableError struct{ msg string }

func (e *unstorableError) Error() string { return e.msg }
func (e *unstorableError) Unwrap() error { return ErrUnstorable }

// ErrTargetFull is wrapped by a sink's error when the target ran out of
// space (SQLite's SQLITE_FULL, DuckDB's "No space left on device",
// PostgreSQL's disk_full): nothing of the transaction is stored nor
// confirmed to the source. apply exports it as ErrTargetFull.
var ErrTargetFull = errors.New("the target's disk is full")

// TargetFull marks err, a target's out-of-space error, with ErrTargetFull
// and says what to do. A nil err or one marked already is returned as is.
func TargetFull(err error) error {
	if err == nil || errors.Is(err, ErrTargetFull) {
		return err
	}
	return &fullError{err}
}

type fullError struct{ err error }

func (e *fullError) Error() string {
	return e.err.Error() + " (the target's disk is full: free space, then run walmirror again; the transaction was not stored nor confirmed to the source, so nothing is lost)"
}
func (e *fullError) Unwrap() []error { return []error{e.err, ErrTargetFull} }

// NotEmpty is the error for a table --adopt-tables would take over that
// holds rows: the copy would mix them with the source's.
func NotEmpty(t *Table, target string) error {
	return fmt.Errorf("target table %s (for source table %s) holds rows, and walmirror adopts only empty tables: "+
		"its rows would mix with the source's; empty it (the initial copy fills it) or choose another target", target, t.QualifiedName())
}

// String says, for logs, what existing rows hold in the added column.
func (f Fill) String() string {
	if f.Value.State == Text {
		return "the source's default " + strconv.Quote(string(f.Value.Data))
	}
	return "NULL"
}

// Check returns nil when the fill is known, else the error that stops the
// run: adding the column would make the copy differ from the source.
func (f Fill) Check(t *Table, column string) error {
	if f.Unknown == "" || t.Replacing {
		return nil
	}
	return fmt.Errorf("source table %s gained column %q, but %s; the copy would differ from the source, so walmirror stops. "+
		"For an exact copy, start a fresh one: drop walmirror's replication slot (walmirror drop --source ... --target ..., or SELECT pg_drop_replication_slot on the source) and run walmirror into an empty target",
		t.QualifiedName(), column, f.Unknown)
}

// LostColumn is nil when a sink may add column to t's existing target
// table, else the reason it may not: the shape the target stored for t
// (read with shape, a sink's Shape) has the column, the source did not
// add it since (Change.Added, Readded), and t's rows are not about to be
// replaced (Replacing, Recopying). Then someone dropped it in the copy,
// its values are gone, and adding it back (NULL, or the source's missing
// value) would leave a copy that differs from the source with no word
// (helper-110: exit 0, a column NULL in every row). The error is a DivergedError: the
// table is copied again online, or the run stops.
func (t *Table) LostColumn(ctx context.Context, column string, shape func(context.Context, uint32) (string, bool, error)) error {
	c := t.Change
	if t.Replacing || t.Recopying || c != nil && (c.Unrecorded || slices.Contains(c.Added, column) || slices.Contains(c.Readded, column)) {
		return nil
	}
	text, found, err := shape(ctx, t.ID)
	if err != nil || !found {
		return err
	}
	stored, err := DecodeStored(text)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(stored.Columns, func(sc StoredColumn) bool { return sc.Name == column }) {
		return nil
	}
	return &DivergedError{RelID: t.ID, Table: DisplayName(t.Schema, t.Name),
		Err: fmt.Errorf("the copy of %s lacks column %q, which walmirror wrote to it (dropped in the copy by someone else?): its values are not in the copy",
			t.QualifiedName(), column)}
}

// NewTable builds a Table and derives its key positions. With REPLICA
// IDENTITY FULL pgoutput flags every column as key, so such tables are
// treated as keyless: rows are matched on all their values.
func NewTable(id uint32, schemaName, name string, identity byte, cols []Column) *Table {
	t := &Table{ID: id, Schema: schemaName, Name: name, Identity: identity, Columns: cols}
	if identity != IdentityFull {
		for i, c := range cols {
			if c.Key {
				t.keyIdx = append(t.keyIdx, i)
			}
		}
	}
	return t
}

// KeyIndexes returns the positions of the key columns; empty when the table is
// matched by whole rows (REPLICA IDENTITY FULL) or has no identity.
func (t *Table) KeyIndexes() []int { return t.keyIdx }

// HasKey reports whether rows are identified by key columns.
func (t *Table) HasKey() bool { return len(t.keyIdx) > 0 }

// QualifiedName is schema.name for messages (not for SQL: sinks quote).
func (t *Table) QualifiedName() string {
	return strconv.Quote(t.Schema) + "." + strconv.Quote(t.Name)
}

// SameShape reports whether two descriptions would need the same target table:
// same column names, types, typmods and keys, in the same order.
func (t *Table) SameShape(o *Table) bool {
	return t.Schema == o.Schema && t.Name == o.Name && t.Identity == o.Identity &&
		slices.Equal(t.Columns, o.Columns)
}

// DisplayName is schema.name as a person would write it in SQL: parts
// quoted only where they need it.
func DisplayName(schemaName, name string) string {
	return displayPart(schemaName) + "." + displayPart(name)
}

func displayPart(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// NoTruncXid is Table.TruncXid when no TRUNCATE explains the table's data
// files (xid 1 is PostgreSQL's bootstrap transaction, never a table's).
const NoTruncXid uint32 = 1

// DataFiles is the part of a storage signature (Table.Storage) that names
// the data files: it changes when the table is rewritten or truncated, or
// its partitions change.
func DataFiles(sig string) string {
	files, _, _ := strings.Cut(sig, "|")
	files, _, _ = strings.Cut(files, ";")
	return files
}

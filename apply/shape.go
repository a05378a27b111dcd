package apply

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Catalog is what the engine asks the source when a table's shape changes:
// a Relation message says what the columns are, not what older rows hold.
type Catalog interface {
	Attributes(ctx context.Context, relid uint32) ([]source.Attribute, error)
}

// snapshotter is a Catalog that says which source transactions its reads
// see (seeTransaction).
type snapshotter interface {
	Snapshot(ctx context.Context) (source.XidSnapshot, error)
	SlotSyncStandby(ctx context.Context) (bool, error)
}

// relNamer is a Catalog that names tables as they are now.
type relNamer interface {
	// RelName is relid's schema and name, and whether it is partitioned
	// ("" names when it no longer exists).
	RelName(ctx context.Context, relid uint32) (nsp, name string, partitioned bool, err error)
}

// match pairs t's columns with the catalog's live attributes of the same
// name and type, in order: a Relation message lists columns by attnum, so
// the pairs must keep that order. The catalog may be ahead of the stream
// (a column dropped and added again under its name, renamed since): a pair
// that breaks the order is such a later column, and the message's column
// stays unmatched (nil).
func match(t *schema.Table, attrs []source.Attribute) []*source.Attribute {
	cand := make([]*source.Attribute, len(t.Columns))
	for i, c := range t.Columns {
		for j := range attrs {
			a := &attrs[j]
			if !a.Dropped && a.Name == c.Name && a.TypeID == c.TypeID && a.Typmod == c.Typmod {
				cand[i] = a
				break
			}
		}
	}
	// The longest run of candidates with increasing attnums (small n: O(n²));
	// of equally long ones, the one with the smaller attnums, since a column
	// added later always gets a larger attnum than every existing one.
	n := len(cand)
	best, prev := make([]int, n), make([]int, n)
	end := -1
	for i := range n {
		prev[i] = -1
		if cand[i] == nil {
			continue
		}
		best[i] = 1
		for j := range i {
			if cand[j] != nil && cand[j].Num < cand[i].Num && best[j]+1 > best[i] {
				best[i], prev[i] = best[j]+1, j
			}
		}
		if end < 0 || best[i] > best[end] || best[i] == best[end] && cand[i].Num < cand[end].Num {
			end = i
		}
	}
	out := make([]*source.Attribute, n)
	for i := end; i >= 0; i = prev[i] {
		out[i] = cand[i]
	}
	return out
}

// unambiguous unmatches each column whose matched attribute has a dropped
// attribute before it that is newer than knownMax (the highest attnum the
// copy knows of the table) and after the message's previous matched
// column: the message's column may be that dropped one, the catalog's a
// column added again under its name since, which a Relation message (no
// attnums) cannot tell apart. Matched, the re-added column was taken for
// the one the stream still wrote, and its later message changed nothing:
// the copy kept values the source no longer had (DROP COLUMN c; ADD COLUMN c
// while walmirror was stopped, exit 0). Unmatched, an added column's fill
// is unknown, so the table is copied again.
func unambiguous(matched []*source.Attribute, attrs []source.Attribute, knownMax int16) {
	prev := int16(0)
	for i, a := range matched {
		if a == nil {
			continue
		}
		for _, d := range attrs {
			if d.Dropped && d.Num > max(prev, knownMax) && d.Num < a.Num {
				matched[i] = nil
				break
			}
		}
		if matched[i] != nil {
			prev = a.Num
		}
	}
}

// lateDrop reports whether attrs has a dropped attribute newer than knownMax.
func lateDrop(attrs []source.Attribute, knownMax int16) bool {
	for _, a := range attrs {
		if a.Dropped && a.Num > knownMax {
			return true
		}
	}
	return false
}

// fills says, for every column of t, what rows that existed before the
// column was added hold in it, from its matched catalog attribute: an
// unmatched column gets an Unknown fill, and so does one whose old rows got
// values the stream never carried.
func fills(t *schema.Table, matched []*source.Attribute) map[string]schema.Fill {
	out := make(map[string]schema.Fill, len(t.Columns))
	for i, c := range t.Columns {
		a := matched[i]
		switch {
		case a == nil:
			out[c.Name] = schema.Fill{Unknown: "the source's catalog no longer describes it as the stream does at this point " +
				"(the table changed again since), so what older rows hold in it cannot be known"}
		case a.HasMissing:
			out[c.Name] = schema.Fill{Value: schema.Datum{State: schema.Text, Data: []byte(a.Missing)}}
		case a.Generated:
			out[c.Name] = schema.Fill{Unknown: "it is a generated column added since (or whose expression changed): PostgreSQL computed it for older rows " +
				"in a rewrite of the table, whose values are not in the replication stream"}
		case a.HasDefault:
			out[c.Name] = schema.Fill{Unknown: "it has a default and PostgreSQL stored no value for older rows: it was added " +
				"with a volatile default (random(), clock_timestamp(), a sequence), or its default was set after it was added, or the table was rewritten since, " +
				"and what older rows hold in it is not known from the replication stream"}
		default:
			out[c.Name] = schema.Fill{Value: schema.Datum{State: schema.Null}}
		}
	}
	return out
}

// nums are the attnums of t's matched columns (0 for unmatched ones).
func nums(matched []*source.Attribute) []int16 {
	out := make([]int16, len(matched))
	for i, a := range matched {
		if a != nil {
			out[i] = a.Num
		}
	}
	return out
}

// lookup are the positions of the matched columns in the source's primary
// key (schema.Table.Lookup).
func lookup(matched []*source.Attribute) []int {
	var out []int
	for i, a := range matched {
		if a != nil && a.Primary {
			out = append(out, i)
		}
	}
	return out
}

// shapeStore is a sink that remembers, per source table, the shape its
// target table was last written with (all of walmirror's sinks are).
type shapeStore interface {
	Shape(ctx context.Context, relid uint32) (shape string, found bool, err error)
	SetShape(ctx context.Context, t *schema.Table, shape string) error
}

// ensureShape brings the target table in line with t: it tells what
// happened since the stored shape (schema.Diff) for the sink to follow,
// lets the sink prepare the table, and stores t's shape, all in the open
// target transaction.
func ensureShape(ctx context.Context, sink Sink, t *schema.Table) error {
	if len(t.Columns) == 0 {
		return fmt.Errorf("source table %s has no columns (or its publication publishes none of them): walmirror cannot mirror a table without columns; "+
			"give it a column, or leave it out of the publication (ALTER PUBLICATION ... DROP TABLE %s)", t.QualifiedName(), t.QualifiedName())
	}
	ss, ok := sink.(shapeStore)
	nums := t.Nums
	if ok {
		text, found, err := ss.Shape(ctx, t.ID)
		if err != nil {
			return err
		}
		if found {
			old, err := schema.DecodeStored(text)
			if err != nil {
				return err
			}
			if t.Storage == "" {
				t.Storage = old.Storage // only a verified storage replaces it
			}
			if t.TruncXid == 0 {
				t.TruncXid = old.TruncXid
			}
			t.MaxNum = max(t.MaxNum, old.MaxNum)
			change, completed, err := schema.Diff(old, t)
			switch {
			case err != nil && t.Replacing && t.Name == old.Name && t.Schema == old.Schema:
				// Columns the copy cannot match (see engine.unfollowable),
				// of a table whose rows a copy is about to replace: the
				// target table takes the new columns as if unrecorded.
				t.Change = &schema.Change{Unrecorded: true}
			case err != nil:
				return err
			default:
				// Set every time: a second call for the same shape (the change
				// already done and stored) must not repeat the first one's.
				t.Change = nil
				if !change.Empty() || len(change.Dropped) > 0 {
					t.Change = change
				}
				if change != nil && change.FromName != "" {
					if change.Vacate, err = unclaimed(ctx, ss, t); err != nil {
						return err
					}
				}
				nums = completed
			}
		} else {
			t.Change = &schema.Change{Unrecorded: true}
		}
	}
	if err := sink.EnsureTable(ctx, t); err != nil {
		return err
	}
	if ok {
		return ss.SetShape(ctx, t, schema.StoredOf(t, nums).Encode())
	}
	return nil
}

// unclaimed reports whether no stored shape but t's names t's name (as
// the sinks' names ignore letter case, any case): a target table there is
// no other source table's copy.
func unclaimed(ctx context.Context, ss shapeStore, t *schema.Table) (bool, error) {
	sl, ok := ss.(shapeLister)
	if !ok {
		return false, nil
	}
	ids, err := sl.ShapeIDs(ctx)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if id == t.ID {
			continue
		}
		text, found, err := ss.Shape(ctx, id)
		if err != nil || !found {
			return false, err
		}
		other, err := schema.DecodeStored(text)
		if err != nil {
			return false, err
		}
		if strings.EqualFold(other.Schema, t.Schema) && strings.EqualFold(other.Name, t.Name) {
			return false, nil
		}
	}
	return true, nil
}

// untrustedKey reports whether t's Relation message flags key columns
// that do not make a key the source keeps unique and whole, so the table
// is taken as keyless (its inserts appended, as the source's; an update or
// delete that cannot name its row copies it again, exactly):
//   - the catalog, which still describes the table, vouches for no key: the
//     flagged columns are an invalid identity index's (a partitioned root's
//     key added ONLY; PostgreSQL 18 flags them), or the key was dropped or
//     replaced since, when the message's key may have been published only
//     in part (helper-91: rows of a repeated part merged into one);
//   - a key column of the catalog is not among the message's columns (the
//     publication's column list leaves it out, as publish = 'insert'
//     allows; a generated column it does not publish), unless an unmatched
//     flagged column of the message stands where it is, between the attnums
//     of that column's matched neighbours: the message's name for it,
//     renamed or retyped since (the catalog is ahead of the stream; the
//     simulation's renamed key column made every update a re-copy).
func untrustedKey(t *schema.Table, attrs []source.Attribute, matched []*source.Attribute) bool {
	if t.Identity != schema.IdentityDefault && t.Identity != schema.IdentityIndex || !t.HasKey() {
		return false
	}
	known, valid := false, false
	for _, a := range attrs {
		known = known || !a.Dropped
		valid = valid || a.Key && !a.Dropped
	}
	if !valid {
		// A table dropped since has no catalog to ask: its message is
		// taken as sent.
		return known
	}
	used := make([]bool, len(t.Columns))
	for j := range attrs {
		a := &attrs[j]
		if !a.Key || a.Dropped || slices.Contains(matched, a) {
			continue
		}
		named := false
		for i, c := range t.Columns {
			if used[i] || !c.Key || matched[i] != nil {
				continue
			}
			if lo, hi := neighbours(matched, i); lo < int(a.Num) && int(a.Num) < hi {
				used[i], named = true, true
				break
			}
		}
		if !named {
			return true
		}
	}
	return false
}

// neighbours returns the attnums of the matched columns nearest before and
// after message column i (0 and past every attnum where there is none).
func neighbours(matched []*source.Attribute, i int) (lo, hi int) {
	lo, hi = 0, math.MaxInt
	for j := i - 1; j >= 0; j-- {
		if matched[j] != nil {
			lo = int(matched[j].Num)
			break
		}
	}
	for j := i + 1; j < len(matched); j++ {
		if matched[j] != nil {
			hi = int(matched[j].Num)
			break
		}
	}
	return lo, hi
}

// sameNums reports whether two shapes' attnums agree where both are known
// (an unknown one is the catalog having moved on since, not a change).
func sameNums(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != 0 && b[i] != 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}

// reshape gives a table the target already mirrors the shape t even when
// no rows were written to it in this transaction. Tables it does not mirror
// are left alone: pgoutput also describes each partition of a table it
// publishes through its root, and those get no table of their own.
func reshape(ctx context.Context, sink Sink, t *schema.Table) error {
	ss, ok := sink.(shapeStore)
	if !ok {
		return nil
	}
	if _, found, err := ss.Shape(ctx, t.ID); err != nil || !found {
		return err
	}
	return ensureShape(ctx, sink, t)
}

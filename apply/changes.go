package apply

import (
	"slices"

	"github.com/walmirror/walmirror/schema"
)

// TableChange says what one target commit changed in one table, for caches
// that invalidate what they hold (CommitInfo.Changes).
type TableChange struct {
	RelID uint32
	Table string // schema.name, as schema.DisplayName writes it
	// Keys are the keys (text form, key columns in table order) of the rows
	// the commit inserted, updated or deleted; for an update that changed a
	// key, both. Nil with AllRows set.
	Keys [][]string
	// AllRows: the commit changed more rows than Config.ChangeKeys, emptied
	// the table (TRUNCATE), wrote a chunk of an online copy, changed the
	// table's shape (a column added, renamed, retyped or re-added; the
	// table renamed or moved, Table then being its new name: RelID is the
	// identity that stays), the table has no key, or an update did not
	// send its key (a TOASTed key it left alone): treat every row as
	// changed.
	AllRows bool
}

// changeLog gathers a target transaction's TableChanges; tuples are kept
// (not copied) until the commit, and at most limit per table.
type changeLog struct {
	limit  int
	tables map[uint32]*tableLog
	order  []uint32
}

type tableLog struct {
	t    *schema.Table
	keys []schema.Tuple
	all  bool
	// seen holds keys' signatures once keys first reached the limit (rows
	// changed more than once are counted once from then on).
	seen map[string]struct{}
}

func (l *changeLog) table(t *schema.Table) *tableLog {
	if l.tables == nil {
		l.tables = map[uint32]*tableLog{}
	}
	tl := l.tables[t.ID]
	if tl == nil {
		tl = &tableLog{t: t}
		l.tables[t.ID] = tl
		l.order = append(l.order, t.ID)
	}
	tl.t = t
	return tl
}

// add notes one row change.
func (l *changeLog) add(t *schema.Table, c schema.RowChange) {
	tl := l.table(t)
	if tl.all {
		return
	}
	if l.limit <= 0 || len(t.KeyIndexes()) == 0 || t.Identity == schema.IdentityFull {
		tl.all, tl.keys, tl.seen = true, nil, nil
		return
	}
	for _, tup := range [2]schema.Tuple{c.Old, c.New} {
		if tup == nil {
			continue
		}
		if !keySent(t, tup) {
			// A TOASTed key column the update left alone (helper-135:
			// reported as ""): the old tuple, when sent, holds its value
			// (helper-137: another key column may have changed); else
			// nothing names the row.
			if c.Old == nil || !keySent(t, c.Old) {
				tl.all, tl.keys, tl.seen = true, nil, nil
				return
			}
			filled := slices.Clone(tup)
			for _, k := range t.KeyIndexes() {
				if filled[k].State == schema.Unchanged {
					filled[k] = c.Old[k]
				}
			}
			tup = filled
		}
		if tl.seen == nil && len(tl.keys) >= l.limit {
			tl.dedupe() // the limit is on keys, not on changes
		}
		if tl.seen != nil {
			sig := keySig(tl.t, tup)
			if _, dup := tl.seen[sig]; dup {
				continue
			}
			tl.seen[sig] = struct{}{}
		}
		if len(tl.keys) >= l.limit {
			tl.all, tl.keys, tl.seen = true, nil, nil
			return
		}
		tl.keys = append(tl.keys, tup)
	}
}

// dedupe drops the repeated keys from tl.keys and starts tl.seen.
func (tl *tableLog) dedupe() {
	tl.seen = make(map[string]struct{}, len(tl.keys)+1)
	kept := tl.keys[:0]
	for _, tup := range tl.keys {
		sig := keySig(tl.t, tup)
		if _, dup := tl.seen[sig]; !dup {
			tl.seen[sig] = struct{}{}
			kept = append(kept, tup)
		}
	}
	clear(tl.keys[len(kept):])
	tl.keys = kept
}

// keySent reports whether tup holds every key column of t's value.
func keySent(t *schema.Table, tup schema.Tuple) bool {
	for _, k := range t.KeyIndexes() {
		if k >= len(tup) || tup[k].State == schema.Unchanged {
			return false
		}
	}
	return true
}

// keySig is the signature of tup's key columns in t.
func keySig(t *schema.Table, tup schema.Tuple) string {
	idx := t.KeyIndexes()
	key := make([]string, len(idx))
	for i, k := range idx {
		if k < len(tup) {
			key[i] = string(tup[k].Data)
		}
	}
	return joinKey(key)
}

// all marks every row of t changed.
func (l *changeLog) all(t *schema.Table) {
	tl := l.table(t)
	tl.all, tl.keys, tl.seen = true, nil, nil
}

// take returns the TableChanges and empties the log.
func (l *changeLog) take() []TableChange {
	if len(l.order) == 0 {
		return nil
	}
	out := make([]TableChange, 0, len(l.order))
	for _, id := range l.order {
		tl := l.tables[id]
		tc := TableChange{RelID: id, Table: schema.DisplayName(tl.t.Schema, tl.t.Name), AllRows: tl.all}
		if !tl.all {
			idx := tl.t.KeyIndexes()
			seen := make(map[string]bool, len(tl.keys))
			for _, tup := range tl.keys {
				key := make([]string, len(idx))
				for i, k := range idx {
					if k < len(tup) {
						key[i] = string(tup[k].Data)
					}
				}
				// One entry per key; an update's old and new often agree.
				sig := joinKey(key)
				if seen[sig] {
					continue
				}
				seen[sig] = true
				tc.Keys = append(tc.Keys, key)
			}
		}
		out = append(out, tc)
	}
	clear(l.tables)
	l.order = l.order[:0]
	return out
}

func joinKey(k []string) string {
	n := 0
	for _, s := range k {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range k {
		b = append(b, s...)
		b = append(b, 0)
	}
	return string(b)
}

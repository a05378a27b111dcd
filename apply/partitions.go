package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Partitioned tables published through their root
// (publish_via_partition_root): the stream names the root for every change,
// whichever partition holds the row, and carries nothing for what changes
// the partitions themselves: a partition attached brings rows the stream
// never carried, and one truncated, detached or dropped takes rows away.
// The storage signature (leaves, their data files, their links) shows these
// at the next poll, which copied the whole table again. Two cheaper,
// exact ways cover the common cases:
//
//   - the keys the stream (and copies by key) wrote to the table since the
//     poll last found its signature as known are tracked (partTrack). At
//     the next poll that finds it unchanged, those missing from the source
//     are copied again by key: a partition that came and went between two
//     polls took them away with no WAL.
//   - partitions added, and nothing else changed, copy by key the rows the
//     new partitions hold and the tracked keys (partitionsAdded).
//
// Both need the keys to be tracked since the signature was known, and at
// most maxPartitionKeys of them: past that, or with no key to match
// (keyOrder.matchable), added partitions copy the whole table again
// as before, and a partition that came and went between two polls goes
// unseen. Tracked keys live in memory: a run starts tracking from the
// stored signature, but what the run before it wrote after its last poll
// is unknown, so partitions added before the new run's first poll copy the
// whole table, and a partition that came and went then with rows that run
// wrote goes unseen. (A bounded run to now ends after a poll that covers
// everything it wrote.)

// maxPartitionKeys bounds the keys tracked per partitioned table between
// two polls and the rows added partitions may hold for the copy to take
// them by key.
const maxPartitionKeys = 5000

// partitionLinker reads a partitioned table's links without some
// partitions' (source.Copier.LinksWithout).
type partitionLinker interface {
	LinksWithout(ctx context.Context, relid uint32, partitions []uint32) (string, error)
}

// partTrack is what was written to a partitioned table's copy since the
// poll found its storage signature as known (sig): the key of each row the
// stream inserted or updated (and did not delete since), or a copy by key
// wrote (trackedKey).
type partTrack struct {
	sig  string
	keys map[string]trackedKey
	// complete: every write since sig was known is here. Not so for a
	// tracking started from the stored signature at a run's first look:
	// the run before may have written after its last poll, and what it
	// tracked went with it. Its keys are still checked at the next poll,
	// which completes it.
	complete bool
	overflow bool // more than maxPartitionKeys, or a key not matched exactly: not kept
	order    keyOrder
	orderOf  *schema.Table
}

// trackedKey is a key written to the copy, and how many publication
// listings had been taken then (engine.listings): a listing taken later
// shows the partitions the row went through (its transaction had committed,
// or the copy that read it had its snapshot, before it was written), so the
// poll acting on that listing may check it.
type trackedKey struct {
	gen uint64
	key []string
}

func newPartTrack(sig string, complete bool) *partTrack {
	return &partTrack{sig: sig, keys: map[string]trackedKey{}, complete: complete}
}

// keyOf is tup's key as text (joined, and by column), false when the table's
// key cannot be matched exactly or a key value was not sent.
func (tr *partTrack) keyOf(t *schema.Table, tup schema.Tuple) (string, []string, bool) {
	if tr.orderOf != t {
		tr.order, tr.orderOf = orderOf(t, false), t
	}
	if !tr.order.matchable {
		return "", nil, false
	}
	key := make([]string, len(tr.order.cols))
	for i, c := range tr.order.cols {
		if c >= len(tup) || tup[c].State != schema.Text {
			return "", nil, false
		}
		key[i] = string(tup[c].Data)
	}
	return strings.Join(key, "\x00"), key, true
}

// write records a change the stream applies, gen listings into the run.
func (tr *partTrack) write(gen uint64, t *schema.Table, c schema.RowChange) {
	if tr.overflow {
		return
	}
	if c.Old != nil {
		// Deleted, or updated with its key changed: gone from the copy.
		if s, _, ok := tr.keyOf(t, c.Old); ok {
			delete(tr.keys, s)
		}
	}
	if c.New == nil {
		return
	}
	s, key, ok := tr.keyOf(t, c.New)
	if !ok {
		tr.drop()
		return
	}
	tr.add(gen, s, key)
}

func (tr *partTrack) add(gen uint64, s string, key []string) {
	if tr.overflow {
		return
	}
	tr.keys[s] = trackedKey{gen: gen, key: key}
	if len(tr.keys) > maxPartitionKeys {
		tr.drop()
	}
}

func (tr *partTrack) drop() { tr.overflow, tr.keys = true, nil }

// before returns the tracked keys written before listing gen was taken,
// sorted.
func (tr *partTrack) before(gen uint64) (joined []string, keys [][]string) {
	for s, k := range tr.keys {
		if k.gen < gen {
			joined = append(joined, s)
		}
	}
	slices.Sort(joined)
	for _, s := range joined {
		keys = append(keys, tr.keys[s].key)
	}
	return joined, keys
}

// knownSig says whether the tracking began when relid's signature was was:
// tr.sig, read as today's when stored by an older version, short of the
// table's name (a rename changes no row).
func (tr *partTrack) knownSig(was string) bool {
	if tr.sig == "" {
		return false
	}
	// DDL on its columns since is no reason to let the keys go (helper-132).
	sig, attached := columnsOnly(upgradeSig(tr.sig, was), was)
	return !attached && sameData(sig, was)
}

// tracker returns relid's partTrack (nil: its writes are not tracked). At
// the first look in a run at a table whose stored signature is a
// partitioned table's, tracking starts from that signature, not complete:
// nothing was written to the table in this run before (the first change,
// Relation message or poll looks), but the run before may have.
func (e *engine) tracker(ctx context.Context, relid uint32) (*partTrack, error) {
	if tr := e.partTracks[relid]; tr != nil || e.trackLooked[relid] || e.copier == nil {
		return tr, nil
	}
	e.trackLooked[relid] = true
	stored, found, err := e.storedShape(ctx, relid)
	if err != nil || !found || !partitionedSig(relid, stored.Storage) {
		return nil, err
	}
	tr := newPartTrack(stored.Storage, false)
	e.partTracks[relid] = tr
	return tr, nil
}

// trackWrite records a change the stream applies to t, when t's writes are
// tracked.
func (e *engine) trackWrite(ctx context.Context, t *schema.Table, c schema.RowChange) error {
	tr, err := e.tracker(ctx, t.ID)
	if tr != nil {
		tr.write(e.listings, t, c)
	}
	return err
}

// trackCopied records the keys of rows a copy by key writes to t's copy
// (a copy of the whole table is followed by trackFrom). Keys whose rows the
// source no longer held are not written, and not tracked.
func (e *engine) trackCopied(ctx context.Context, t *schema.Table, rows []schema.Tuple) error {
	tr, err := e.tracker(ctx, t.ID)
	if tr == nil || err != nil {
		return err
	}
	for _, r := range rows {
		s, key, ok := tr.keyOf(t, r)
		if !ok {
			tr.drop()
			return nil
		}
		tr.add(e.listings, s, key)
	}
	return nil
}

// trackFrom starts tracking relid's writes again when a copy of the whole
// table replaces its rows with the data of storage signature sig.
func (e *engine) trackFrom(relid uint32, sig string) {
	if !partitionedSig(relid, sig) {
		delete(e.partTracks, relid)
		return
	}
	tr := e.partTracks[relid]
	if tr == nil || tr.overflow {
		e.partTracks[relid] = newPartTrack(sig, true)
		return
	}
	// The copy replaces every row: the writes since are all tracked. The
	// keys written before stay: more than needed.
	tr.sig, tr.complete = sig, true
}

// storageKnown is the poll acting on listing gen finding relid's storage
// signature sig as known. Tracked keys written before it was taken that the source
// no longer holds were taken away with no WAL (a partition truncated,
// detached or dropped after the stream wrote them through it, and
// maybe made between the two polls): they are copied again by key, which
// deletes them. The others are let go. Tracking begins here if it has
// not.
func (e *engine) storageKnown(ctx context.Context, relid uint32, name, sig string, gen uint64) error {
	if !partitionedSig(relid, sig) || e.fills[relid] != nil {
		return nil
	}
	tr := e.partTracks[relid]
	if tr == nil || tr.overflow || !tr.knownSig(sig) {
		if tr == nil {
			e.log.Debug("tracking the keys written to a partitioned table: partitions added to it copy only the rows that may differ", "table", name)
		}
		e.partTracks[relid] = newPartTrack(sig, true)
		return nil
	}
	tr.sig, tr.complete = sig, true
	joined, keys := tr.before(gen)
	if len(keys) == 0 {
		return nil
	}
	ch, err := e.copier.BeginChunk(ctx, relid)
	if source.IsLockTimeout(err) {
		return nil // the next poll looks at them
	}
	if err != nil {
		return fmt.Errorf("look for rows of %s the source no longer holds: %w", name, err)
	}
	defer ch.Abort(context.WithoutCancel(ctx))
	if !ch.Published {
		return nil
	}
	if e.unsettled(ch) {
		// Keys a transaction not yet visible wrote would look missing:
		// look again shortly.
		e.pollSoon, e.pollAfter = true, time.Now().Add(100*time.Millisecond)
		return nil
	}
	missing, err := ch.MissingKeys(ctx, keys)
	if err != nil {
		return err
	}
	for _, s := range joined {
		delete(tr.keys, s)
	}
	if len(missing) > 0 {
		e.startKeysFill(relid, name, missing, "rows the stream wrote through a partition that no longer holds them (truncated, detached or dropped: no WAL says so)")
	}
	return nil
}

// partitionedSig says whether sig is a partitioned table's (its leaves are
// other tables) rather than a plain table's (relid:relfilenode).
func partitionedSig(relid uint32, sig string) bool {
	if sig == "" {
		return false
	}
	files, _, _ := strings.Cut(sig, "|")
	leaves, _ := splitFiles(files)
	return leaves == "" || strings.Contains(leaves, ",") || !strings.HasPrefix(leaves, strconv.FormatUint(uint64(relid), 10)+":")
}

// addedOutcome is what partitionsAdded did.
type addedOutcome int

const (
	addedNotCopied addedOutcome = iota // the caller copies the whole table
	addedCopied                        // the rows that may differ are being copied by key
	addedLater                         // the table is locked: look again later
)

// partitionsAdded handles partitions added to the partitioned table relid,
// whose storage signature went from was to now by them alone
// (addedPartitions): instead of the whole table, the rows that may differ
// are copied online by key. Those are the rows the new partitions hold (the
// stream did not carry them as the table's if they were there before the
// partition was attached), read after the partitions were added, so that
// every row they held then and hold still is among them; and the keys
// tracked since was (partTrack), which may have gone through a partition
// that lost them with no WAL. The copy by key deletes each key in the copy
// and reads it again from the table as of its own snapshot, the stream's
// changes after that applied on top. A partition made empty with CREATE
// TABLE ... PARTITION OF while nothing was written copies nothing.
//
// It copies nothing (addedNotCopied) when that cannot be relied on: keys not
// tracked since was, other links changed, no key matched exactly, too many
// rows. gen is the poll's listing (engine.listings when it was taken): now
// is then taken as known. At 0 (a Relation message, whose catalog read may
// be ahead of the stream) it is not, and the keys copied are tracked: the
// next poll copies what may differ again.
func (e *engine) partitionsAdded(ctx context.Context, relid uint32, name string, t *schema.Table, was, now string, added []uint32, gen uint64) (addedOutcome, error) {
	pl, ok := e.copier.(partitionLinker)
	tr := e.partTracks[relid]
	if !ok || e.fills[relid] != nil || tr == nil || !tr.complete || tr.overflow || !tr.knownSig(was) {
		return addedNotCopied, nil
	}
	links, err := pl.LinksWithout(ctx, relid, added)
	if err != nil {
		return addedNotCopied, fmt.Errorf("look up the partitions of %s in the source catalog: %w", name, err)
	}
	if links != inhPart(was) {
		return addedNotCopied, nil
	}
	ch, err := e.copier.BeginChunk(ctx, relid)
	if source.IsLockTimeout(err) {
		if gen == 0 {
			return addedNotCopied, nil // the changes that follow may touch its rows: copy now
		}
		return addedLater, nil
	}
	if err != nil {
		return addedNotCopied, fmt.Errorf("read the partitions added to %s: %w", name, err)
	}
	defer ch.Abort(context.WithoutCancel(ctx))
	if !ch.Published || !orderOf(ch.Table, false).matchable || t != nil && !sameKey(t, ch.Table) {
		return addedNotCopied, nil
	}
	if e.unsettled(ch) {
		// Its rows may lack a delivered transaction's: look again (the
		// whole table's copy waits for it too).
		if gen == 0 {
			return addedNotCopied, nil
		}
		return addedLater, nil
	}
	keys, ok, err := ch.PartitionKeys(ctx, added, maxPartitionKeys)
	if err != nil || !ok {
		return addedNotCopied, err
	}
	fromLeaves := len(keys)
	seen := make(map[string]bool, len(keys)+len(tr.keys))
	for _, k := range keys {
		seen[strings.Join(k, "\x00")] = true
	}
	joined, tracked := tr.before(1<<64 - 1)
	for i, k := range tracked {
		if !seen[joined[i]] {
			seen[joined[i]] = true
			keys = append(keys, k)
		}
	}
	if len(keys) > maxPartitionKeys {
		return addedNotCopied, nil
	}
	stored := now
	if gen != 0 {
		e.storage[relid] = now
	} else {
		// The listings still compare with was (the catalog may be ahead
		// of the stream, and the keys the stream writes from here on are
		// checked only by the next listing). The target stores now with
		// links no listing shows, in the transaction that records the
		// copy by key: a run that ends before its next listing makes the
		// next run copy the table again. Before, was stayed stored, and a
		// partition detached after such a run restored exactly was's
		// signature: the detached rows stayed in the copy, exit 0
		// (helper-121). now itself would hide what the stream wrote
		// after this look through a partition that lost it
		// (TestPartitionChangesCrash).
		stored = unverifiedLinks(now)
	}
	for _, x := range []*schema.Table{t, e.tables[relid]} {
		if x != nil {
			x.Storage = stored
			delete(e.ensured, x) // its shape is stored again
		}
	}
	switch {
	case len(keys) > 0:
		e.startKeysFill(relid, name, keys, fmt.Sprintf("%d partitions added to it: the %d rows they hold, and %d more the copy was written since it last looked",
			len(added), fromLeaves, len(keys)-fromLeaves))
	case gen != 0:
		e.log.Info("partitions added to a published partitioned table hold no rows the copy lacks", "table", name, "partitions", len(added))
	}
	if gen != 0 {
		// The keyed copy covers every key tracked up to now.
		tr.sig = now
		joined, _ := tr.before(gen)
		for _, s := range joined {
			delete(tr.keys, s)
		}
	}
	if t != nil && e.tables[relid] == t {
		if err := e.ensureOpen(ctx); err != nil {
			return addedNotCopied, err
		}
		e.pendingN++
		return addedCopied, e.ensure(ctx, t)
	}
	if gen == 0 {
		// At a Relation message, t is the table it describes, not yet the
		// run's: when the message changed the shape, the commit stores t
		// with its storage; when not, nothing did, and a run ended before
		// the copy by key committed left was stored for the next to
		// resume that copy under: a partition detached after it restored
		// was, and its rows stayed in the copy, exit 0 (helper-123). The
		// stored shape takes the links now, in the transaction that
		// records the copy.
		old, found, err := e.storedShape(ctx, relid)
		if err != nil || !found || old.Storage == stored {
			return addedCopied, err
		}
		return addedCopied, e.storeStorage(ctx, relid, old, stored)
	}
	return addedCopied, nil
}

// sameKey says a and b have the same key columns, by name, in order.
func sameKey(a, b *schema.Table) bool {
	var ka, kb []string
	for _, c := range a.Columns {
		if c.Key {
			ka = append(ka, c.Name)
		}
	}
	for _, c := range b.Columns {
		if c.Key {
			kb = append(kb, c.Name)
		}
	}
	return len(ka) > 0 && slices.Equal(ka, kb)
}

// addedPartitions returns the partitions (leaf oids) in storage signature
// now that are not in was, when they are all that tells the two apart,
// short of the partition links (";inh:", which the caller checks without
// them): the same publication membership and name, the same other parts,
// and every leaf of was with the same data files. Else nil.
func addedPartitions(was, now string) []uint32 {
	wFiles, wRest, ok1 := strings.Cut(was, "|")
	nFiles, nRest, ok2 := strings.Cut(now, "|")
	if !ok1 || !ok2 || wRest != nRest {
		return nil
	}
	wLeaves, wOther := splitFiles(wFiles)
	nLeaves, nOther := splitFiles(nFiles)
	if wOther != nOther {
		return nil
	}
	had := map[string]string{}
	for f := range strings.SplitSeq(wLeaves, ",") {
		if f != "" {
			oid, node, _ := strings.Cut(f, ":")
			had[oid] = node
		}
	}
	var added []uint32
	for f := range strings.SplitSeq(nLeaves, ",") {
		if f == "" {
			continue
		}
		oid, node, _ := strings.Cut(f, ":")
		if w, ok := had[oid]; ok {
			if w != node {
				return nil
			}
			delete(had, oid)
			continue
		}
		id, err := strconv.ParseUint(oid, 10, 32)
		if err != nil {
			return nil
		}
		added = append(added, uint32(id))
	}
	if len(had) > 0 {
		return nil // a partition left
	}
	return added
}

// splitFiles splits a signature's data files part into its leaves
// (oid:relfilenode pairs) and the rest, without the partition links.
func splitFiles(files string) (leaves, other string) {
	leaves, other, _ = strings.Cut(files, ";")
	if other != "" {
		other = ";" + other
	}
	if i := strings.Index(other, ";inh:"); i >= 0 {
		other = other[:i]
	}
	return leaves, other
}

// unverifiedLinks is sig with partition links no listing shows: stored,
// it makes the next run's first look find the links changed.
func unverifiedLinks(sig string) string {
	files, rest, _ := strings.Cut(sig, "|")
	if i := strings.Index(files, ";inh:"); i >= 0 {
		files = files[:i]
	}
	return files + ";inh:unverified|" + rest
}

// inhPart is the partition links part of a signature (";inh:" and a hash),
// "" when it has none.
func inhPart(sig string) string {
	files, _, _ := strings.Cut(sig, "|")
	if i := strings.Index(files, ";inh:"); i >= 0 {
		return files[i:]
	}
	return ""
}

// errRelinked ends a stream whose server session may attribute changes to
// the wrong table: the run reconnects at once (Run), from the position the
// engine stored just before.
var errRelinked = errors.New("partitions attached or detached: reconnecting so the source's decoder sees them")

// linkWatch is for PostgreSQL 14, whose pgoutput works out once per
// session how it publishes a table (as itself, through its root, or not
// at all) and never again: a partition attached or detached after its
// first change decoded in a session sends the changes that follow as the
// wrong table, or drops them, until the next session (15 works it out
// again on such a change). A session that began streaming after the
// listing that first showed a table's links as they are now is safe for
// it; the poll that finds one that is not stores the position the stream
// has passed and reconnects from there (errRelinked), before it acts on
// the listing, and acts in the new session: what the old one applied
// wrongly meanwhile is repaired by that action (the partitions' rows
// copied again by key or whole, as on 15).
type linkWatch struct {
	seen map[uint32]linkSeen // per table: its links and the listing that first showed them (kept across a run's sessions)
	from lsn.LSN             // where this session began streaming
}

// partitionState is what an engine knows of the partitioned tables'
// storage and what it wrote through them: a session ended by errRelinked
// hands it to the next, whose polls then check the keys written before the
// reconnect as a poll of the same session would have (a new run starts
// without it and copies more).
type partitionState struct {
	storage     map[uint32]string
	storedNames map[uint32]string
	partTracks  map[uint32]*partTrack
	trackLooked map[uint32]bool
	listings    uint64
}

func (e *engine) partitionState() *partitionState {
	// The names the copy's tables have now: the next session has
	// described none of them yet (checkStorage's knownName).
	for id, t := range e.tables {
		e.storedNames[id] = schema.DisplayName(t.Schema, t.Name)
	}
	return &partitionState{storage: e.storage, storedNames: e.storedNames, partTracks: e.partTracks, trackLooked: e.trackLooked, listings: e.listings}
}

func (e *engine) resumePartitions(p *partitionState) {
	e.storage, e.storedNames, e.partTracks, e.trackLooked, e.listings = p.storage, p.storedNames, p.partTracks, p.trackLooked, p.listings
}

// valid says whether this session decodes relid's changes right with the
// links inh (a snapshot's): a listing showed them so, before the session
// began.
func (w *linkWatch) valid(relid uint32, inh string) bool {
	s, ok := w.seen[relid]
	return ok && s.inh == inh && s.at <= w.from
}

type linkSeen struct {
	inh string
	att string // column rows (attPart): an attach and detach between two listings rewrites them all
	at  lsn.LSN
}

// linksMoved records the links of the tables listed at `at` and reports
// whether one of them changed after this session began. A table first seen
// in this run whose links are those its stored signature has kept them
// since before the session (a link change is always stored by a session
// that began after it: relink); a listed table with links that leaves the
// listing (a partition detached from a table published as its leaves, or
// dropped) counts as a change.
func (e *engine) linksMoved(ctx context.Context, tables []source.PublishedTable, at lsn.LSN) (string, bool, error) {
	w := e.links
	name, moved := "", false
	listed := make(map[uint32]bool, len(tables))
	for _, p := range tables {
		listed[p.RelID] = true
		cur, att := inhPart(p.Storage), attPart(p.Storage)
		s, ok := w.seen[p.RelID]
		if !ok {
			stored := e.storage[p.RelID]
			if stored == "" && (cur != "" || att != "") {
				old, found, err := e.storedShape(ctx, p.RelID)
				if err != nil {
					return "", false, err
				}
				if found {
					stored = old.Storage
				}
			}
			s = linkSeen{inh: cur, att: att}
			if inhPart(stored) != cur || attachedMeanwhile(stored, att) {
				s.at = at
			}
		} else if s.inh != cur || attachedMeanwhile(s.att, att) {
			// Attached to a partitioned table and detached again (no
			// links to show it) counts too: the session may still send
			// its changes as that table's.
			s = linkSeen{inh: cur, att: att, at: at}
		} else {
			s.att = att
		}
		w.seen[p.RelID] = s
		if s.at > w.from && !moved {
			name, moved = p.Name, true
		}
	}
	for relid, s := range w.seen {
		if listed[relid] {
			continue
		}
		if s.inh != "" {
			s = linkSeen{at: at}
			w.seen[relid] = s
		}
		if s.at > w.from && !moved {
			name, moved = "table "+strconv.FormatUint(uint64(relid), 10), true
		}
	}
	return name, moved, nil
}

// relink stores the position the stream has passed (streamed: nothing is
// in flight, everything before it applied) and ends the session, so that
// the next one starts after every link change the listing showed. A run
// bounded to a position it would pass, with no copy in progress (which a
// bounded run completes), stops at it instead (verify's catch-up: storing
// more would take the copy past the position compared), warning that the
// copy may be wrong there; the next run reconnects.
func (e *engine) relink(ctx context.Context, streamed lsn.LSN, table string) error {
	if e.stopAt != 0 && !e.pollFirst && streamed > e.stopAt && !e.copying() {
		if e.open {
			if err := e.commit(ctx); err != nil {
				return err
			}
		}
		e.log.Warn("PostgreSQL 14: partitions were attached or detached; the stop position is reached before the reconnect their changes need: "+
			"the copy may lack or misplace changes to them since, until the next run reconnects and repairs it", "table", table, "stored", e.state.LSN)
		return errStopReached
	}
	e.log.Info("PostgreSQL 14: partitions were attached or detached; reconnecting so the source decodes what follows with them (its decoder keeps what it first worked out for a table)",
		"table", table, "at", streamed)
	if e.lastEnd < streamed {
		e.lastEnd = streamed
	}
	if err := e.storeBeforeReconnect(ctx); err != nil {
		return err
	}
	return errRelinked
}

// attPart is the column rows part of a signature (";att:" and each live
// column's attnum@xmin: source columnRows), "" when it has none.
func attPart(sig string) string {
	files, _, _ := strings.Cut(sig, "|")
	i := strings.Index(files, ";att:")
	if i < 0 {
		return ""
	}
	part := files[i:]
	if j := strings.Index(part[1:], ";"); j >= 0 {
		part = part[:j+1]
	}
	return part
}

// withAtt is sig with att as its column rows part, right after the data
// files.
func withAtt(sig, att string) string {
	files, rest, hasRest := strings.Cut(sig, "|")
	if old := attPart(sig); old != "" {
		files = strings.Replace(files, old, "", 1)
	}
	leaves, other, _ := strings.Cut(files, ";")
	if other != "" {
		other = ";" + other
	}
	files = leaves + att + other
	if hasRest {
		files += "|" + rest
	}
	return files
}

// attachedMeanwhile says whether column rows part now, against was, shows
// the table attached as a partition and detached again in between: its
// pg_class row rewritten, and no column both list kept its pg_attribute
// row (ATTACH and DETACH PARTITION rewrite every one; other DDL those of
// the columns it names, and seldom the pg_class row with them).
func attachedMeanwhile(was, now string) bool {
	rows := func(att string) (string, map[string]string) {
		m := map[string]string{}
		body, ok := strings.CutPrefix(att, ";att:")
		if !ok {
			return "", m
		}
		class, body, _ := strings.Cut(body, "/")
		for r := range strings.SplitSeq(body, ",") {
			num, xmin, _ := strings.Cut(r, "@")
			m[num] = xmin
		}
		return class, m
	}
	wc, w := rows(attPart(was))
	nc, n := rows(attPart(now))
	if wc == nc {
		return false
	}
	common := 0
	for num, x := range w {
		if y, ok := n[num]; ok {
			if x == y {
				return false
			}
			common++
		}
	}
	return common > 0
}

// columnsOnly reads was with now's column rows when the two differ there
// by DDL that names columns (a rename, a type, statistics, a column
// added or dropped: no row of the table changed), so that the rest
// compares as before; attached when they show the table attached as a
// partition and detached again in between (was is returned as it is).
func columnsOnly(was, now string) (string, bool) {
	a, b := attPart(was), attPart(now)
	switch {
	case a == b || a == "" || b == "":
		return was, false
	case attachedMeanwhile(a, b):
		return was, true
	}
	return withAtt(was, b), false
}

package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// Operator commands (check, drop, status, metrics) look at the source
// through an Admin session: unlike Open, it checks and creates nothing.

// Admin is a plain catalog session on the source.
type Admin struct {
	cfg      Config
	conn     *pgx.Conn
	timeline uint32 // the server's timeline, from Identify
}

// Connect opens a catalog session on cfg.DSN (cfg.Slot and cfg.Publication
// are not needed). Errors say what to change, as Open's do.
func Connect(ctx context.Context, cfg Config) (*Admin, error) {
	pcfg, err := connConfig(&cfg, false)
	if err != nil {
		return nil, permanent("connect to source", "", err)
	}
	// Listing a publication's tables opens them (column lists): a table a
	// migration holds locked made check, status and resync wait out
	// --source-timeout, then blame the network. Say what it is sooner.
	pcfg.RuntimeParams["lock_timeout"] = "10s"
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	ccfg, _ := pgx.ParseConfig("")
	ccfg.Config = *pcfg
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, classify("connect to source "+Describe(cfg.DSN), timeoutCause(ctx, err))
	}
	return &Admin{cfg: cfg, conn: conn}, nil
}

// Close ends the session.
func (a *Admin) Close(ctx context.Context) error { return a.conn.Close(ctx) }

// Storage is relid's storage signature now (schema.Table.Storage) in the
// configured publication; "" when no such table exists.
func (a *Admin) Storage(ctx context.Context, relid uint32) (string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	var version int
	if err := a.conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return "", classify("read the server's version", err)
	}
	return storageOf(ctx, a.conn, version, a.cfg.Publication, relid)
}

func (a *Admin) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.timeout())
}

// ServerInfo is what the source says about itself and the session's role.
type ServerInfo struct {
	Version                 int // server_version_num
	WALLevel                string
	Database, User          string
	Superuser, Replication  bool
	CanCreate               bool // CREATE on the database (needed for CREATE PUBLICATION)
	MaxSlots, Slots         int  // max_replication_slots and slots in use (every database)
	MaxWALSenders, Senders  int  // max_wal_senders and walsenders running
	Standby                 bool // in recovery
	CurrentLSN              lsn.LSN
	SystemID                string // filled by Identify
	ReplicationConnectError error  // filled by Identify when the walsender refused us
}

// Server describes the source server and the session's role.
func (a *Admin) Server(ctx context.Context) (ServerInfo, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	var si ServerInfo
	var cur string
	err := a.conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('wal_level'),
			current_database(), current_user, r.rolsuper, r.rolreplication,
			has_database_privilege(current_database(), 'CREATE'),
			current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
			current_setting('max_wal_senders')::int,
			(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int,
			CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, pg_is_in_recovery()
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&si.Version, &si.WALLevel, &si.Database, &si.User,
		&si.Superuser, &si.Replication, &si.CanCreate, &si.MaxSlots, &si.Slots, &si.MaxWALSenders, &si.Senders, &cur, &si.Standby)
	if err != nil {
		return si, classify("inspect source", timeoutCause(ctx, err))
	}
	si.CurrentLSN, _ = lsn.Parse(cur)
	return si, nil
}

// Identify opens a replication connection, as run does, and returns the
// cluster's system identifier: it proves pg_hba.conf admits replication.
func (a *Admin) Identify(ctx context.Context) (string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	s := &Source{cfg: a.cfg}
	rc, err := s.replicationConn(ctx)
	if err != nil {
		return "", timeoutCause(ctx, err)
	}
	defer rc.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, rc)
	if err != nil {
		return "", classify("identify source system", timeoutCause(ctx, err))
	}
	a.timeline = uint32(sys.Timeline)
	return sys.SystemID, nil
}

// Timeline is the server's timeline, read by Identify.
func (a *Admin) Timeline() uint32 { return a.timeline }

// OtherHistory is Source.OtherHistory through this session, for check:
// whether a copy at position at on timeline tli is of this source's
// history. Identify must have been called first.
func (a *Admin) OtherHistory(ctx context.Context, tli uint32, at lsn.LSN) (string, error) {
	s := &Source{cfg: a.cfg, conn: a.conn, timeline: a.timeline}
	return s.OtherHistory(ctx, tli, at)
}

// CurrentLSN is the server's current WAL write position.
func (a *Admin) CurrentLSN(ctx context.Context) (lsn.LSN, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	var text string
	if err := a.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		return 0, classify("read current WAL position", timeoutCause(ctx, err))
	}
	return lsn.Parse(text)
}

// SlotState describes a replication slot as pg_replication_slots does.
type SlotState struct {
	Name     string
	Exists   bool
	Plugin   string
	Database string
	// Elsewhere: the slot belongs to another database than the session's
	// (a logical slot decodes one database: another copy's).
	Elsewhere bool
	Temporary bool
	// Active: a walsender holds the slot; ActivePID is that server process.
	Active    bool
	ActivePID int
	// Holder describes the connection holding it (application, client
	// address, since when), when the server lets us see it.
	Holder string
	// WALStatus is reserved, extended, unreserved or lost (PostgreSQL 13+).
	WALStatus string
	// InvalidationReason is pg_replication_slots.invalidation_reason
	// (PostgreSQL 17+: wal_removed, idle_timeout, rows_removed,
	// wal_level_insufficient); empty on older servers and for a valid slot.
	InvalidationReason string
	RestartLSN         lsn.LSN
	ConfirmedFlush     lsn.LSN
	CurrentLSN         lsn.LSN
	// RetainedBytes is the WAL the slot keeps on the server's disk
	// (current position minus restart_lsn).
	RetainedBytes int64
	// SafeBytes is how much more WAL may be written before the slot is
	// invalidated (max_slot_wal_keep_size), -1 when unlimited, 0 once
	// it is (WALStatus lost).
	SafeBytes int64
}

// Slot reads the state of slot name; Exists is false when there is none.
func (a *Admin) Slot(ctx context.Context, name string) (SlotState, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	st := SlotState{Name: name}
	var restart, confirmed, cur *string
	var pid *int32
	var safe *int64
	var holder *string
	err := a.conn.QueryRow(ctx, `SELECT coalesce(s.plugin, ''), coalesce(s.database, ''), s.temporary, s.active, s.active_pid,
			coalesce(s.wal_status, ''), s.restart_lsn::text, s.confirmed_flush_lsn::text,
			pg_current_wal_lsn()::text, s.safe_wal_size, coalesce(to_jsonb(s)->>'invalidation_reason', ''),
			(SELECT concat_ws(', ', nullif('application ' || quote_literal(a.application_name), 'application '''''),
				'from ' || coalesce(host(a.client_addr), 'a local socket'),
				'since ' || to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC')
			 FROM pg_stat_activity a WHERE a.pid = s.active_pid),
			s.database IS DISTINCT FROM current_database()
		FROM pg_replication_slots s WHERE s.slot_name = $1`, name).Scan(&st.Plugin, &st.Database, &st.Temporary,
		&st.Active, &pid, &st.WALStatus, &restart, &confirmed, &cur, &safe, &st.InvalidationReason, &holder, &st.Elsewhere)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, classify("look up replication slot", timeoutCause(ctx, err))
	}
	st.Exists = true
	if pid != nil {
		st.ActivePID = int(*pid)
	}
	if holder != nil {
		st.Holder = *holder
	}
	parse := func(s *string) lsn.LSN {
		if s == nil {
			return 0
		}
		l, _ := lsn.Parse(*s)
		return l
	}
	st.RestartLSN, st.ConfirmedFlush, st.CurrentLSN = parse(restart), parse(confirmed), parse(cur)
	if st.RestartLSN != 0 && st.CurrentLSN > st.RestartLSN {
		st.RetainedBytes = int64(st.CurrentLSN - st.RestartLSN)
	}
	st.SafeBytes = -1
	switch {
	case safe != nil:
		st.SafeBytes = *safe
	case st.WALStatus == "lost":
		// PostgreSQL gives no safe_wal_size for a slot already
		// invalidated, whatever max_slot_wal_keep_size is (helper-98:
		// read as unlimited).
		st.SafeBytes = 0
	}
	return st, nil
}

// InvalidationCause says in words why the server invalidated a slot, from
// its invalidation_reason (PostgreSQL 17+; before 17 only
// max_slot_wal_keep_size invalidates a logical slot on a primary).
func InvalidationCause(reason string) string {
	switch reason {
	case "idle_timeout":
		return "it stayed unused longer than idle_replication_slot_timeout"
	case "rows_removed":
		return "the primary removed catalog rows it still needed (this source is a standby: hot_standby_feedback with a physical slot on the primary prevents it)"
	case "wal_level_insufficient":
		return "the primary's wal_level was lowered below logical"
	default:
		return "the server removed WAL it still needed (max_slot_wal_keep_size)"
	}
}

// SlotActiveError says a replication slot is held by another connection.
type SlotActiveError struct {
	Slot   string
	PID    int    // the server process (walsender) holding it
	Holder string // its application, client address and start, when known
}

func (e *SlotActiveError) Error() string {
	msg := fmt.Sprintf("replication slot %q is in use by another connection (server PID %d", e.Slot, e.PID)
	if e.Holder != "" {
		msg += ", " + e.Holder
	}
	return msg + "): stop that process first, or choose another --slot"
}

// Is makes errors.Is(err, ErrSlotActive) true for a *SlotActiveError.
func (e *SlotActiveError) Is(target error) bool { return target == ErrSlotActive }

// ActiveError returns a *SlotActiveError for an active slot, nil otherwise.
func (st SlotState) ActiveError() error {
	if !st.Active {
		return nil
	}
	return &SlotActiveError{Slot: st.Name, PID: st.ActivePID, Holder: st.Holder}
}

// SlotReleased is Slot, waiting up to wait while the slot is active: a
// walsender outlives its client briefly (a walmirror run that just ended,
// its connection closed without a goodbye), and a command run straight
// after it found the slot "in use" (drop, check).
func (a *Admin) SlotReleased(ctx context.Context, name string, wait time.Duration) (SlotState, error) {
	deadline := time.Now().Add(wait)
	for {
		st, err := a.Slot(ctx, name)
		if err != nil || !st.Active || time.Now().After(deadline) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SlotRelease is how long drop and check wait for an active slot to be
// let go (SlotReleased).
const SlotRelease = 5 * time.Second

// DropSlot drops slot name unless a connection is using it
// (*SlotActiveError). It reports whether there was a slot to drop.
func (a *Admin) DropSlot(ctx context.Context, name string) (bool, error) {
	st, err := a.Slot(ctx, name)
	if err != nil || !st.Exists {
		return false, err
	}
	if err := st.ActiveError(); err != nil {
		return false, err
	}
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	if _, err := a.conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, name); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" { // became active meanwhile
			st, _ := a.Slot(context.WithoutCancel(ctx), name)
			return false, &SlotActiveError{Slot: name, PID: st.ActivePID, Holder: st.Holder}
		}
		if errors.As(err, &pgErr) && pgErr.Code == "42704" { // dropped meanwhile
			return false, nil
		}
		return false, classify("drop replication slot "+name, timeoutCause(ctx, err))
	}
	return true, nil
}

// OtherSlots lists the logical slots of this database using pgoutput,
// other than except: each may be a subscriber of any of its publications.
func (a *Admin) OtherSlots(ctx context.Context, except string) ([]string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	rows, err := a.conn.Query(ctx, `SELECT slot_name::text FROM pg_replication_slots
		WHERE database = current_database() AND plugin = 'pgoutput' AND slot_name <> $1 ORDER BY 1`, except)
	if err != nil {
		return nil, classify("list replication slots", timeoutCause(ctx, err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("list replication slots", timeoutCause(ctx, err))
	}
	return names, nil
}

// publicationMark starts the comment walmirror puts on a publication it
// creates, so that drop can tell its own from an administrator's.
const publicationMark = "created by walmirror"

func publicationComment(slot string) string {
	return publicationMark + " for slot " + slot + " (walmirror drop removes it with the slot)"
}

// PublicationInfo describes a publication.
type PublicationInfo struct {
	Name      string
	Exists    bool
	Owner     string
	AllTables bool
	// Insert..Truncate: the operations it publishes.
	Insert, Update, Delete, Truncate bool
	// Walmirror: walmirror created it (its comment says so); ForSlot is
	// the slot it was created for.
	Walmirror bool
	ForSlot   string
	Comment   string
	// GeneratedColumns: it publishes stored generated columns (PostgreSQL
	// 18's publish_generated_columns = stored).
	GeneratedColumns bool
}

// Unpublished lists the operations the publication leaves out: a copy
// through it keeps what they change at the source.
func (p PublicationInfo) Unpublished() []string {
	var left []string
	for _, op := range []struct {
		name string
		on   bool
	}{{"insert", p.Insert}, {"update", p.Update}, {"delete", p.Delete}, {"truncate", p.Truncate}} {
		if !op.on {
			left = append(left, op.name)
		}
	}
	return left
}

// Publication describes publication name; Exists is false when there is none.
func (a *Admin) Publication(ctx context.Context, name string) (PublicationInfo, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	p := PublicationInfo{Name: name}
	var comment *string
	err := a.conn.QueryRow(ctx, `SELECT pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
			obj_description(p.oid, 'pg_publication')
		FROM pg_publication p WHERE p.pubname = $1`, name).Scan(&p.Owner, &p.AllTables, &p.Insert, &p.Update, &p.Delete, &p.Truncate, &comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return p, classify("look up publication", timeoutCause(ctx, err))
	}
	p.Exists = true
	var genCols bool
	if err := a.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute
		WHERE attrelid = 'pg_catalog.pg_publication'::regclass AND attname = 'pubgencols')`).Scan(&genCols); err != nil {
		return p, classify("inspect pg_publication", timeoutCause(ctx, err))
	}
	if genCols {
		if err := a.conn.QueryRow(ctx, `SELECT pubgencols::text = 's' FROM pg_publication WHERE pubname = $1`, name).Scan(&p.GeneratedColumns); err != nil {
			return p, classify("look up publication", timeoutCause(ctx, err))
		}
	}
	if comment != nil {
		p.Comment = *comment
		if rest, ok := strings.CutPrefix(p.Comment, publicationMark); ok {
			p.Walmirror = true
			if rest, ok := strings.CutPrefix(rest, " for slot "); ok {
				p.ForSlot, _, _ = strings.Cut(rest, " ")
			}
		}
	}
	return p, nil
}

// PublicationsFor lists the publications walmirror created for slot (their
// comment names it), by name.
func (a *Admin) PublicationsFor(ctx context.Context, slot string) ([]string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	rows, err := a.conn.Query(ctx, `SELECT p.pubname, obj_description(p.oid, 'pg_publication') FROM pg_publication p
		WHERE starts_with(coalesce(obj_description(p.oid, 'pg_publication'), ''), $1) ORDER BY 1`, publicationMark+" for slot ")
	if err != nil {
		return nil, classify("look up publications", timeoutCause(ctx, err))
	}
	var names []string
	for rows.Next() {
		var name, comment string
		if err := rows.Scan(&name, &comment); err != nil {
			rows.Close()
			return nil, classify("look up publications", err)
		}
		rest := strings.TrimPrefix(comment, publicationMark+" for slot ")
		if forSlot, _, _ := strings.Cut(rest, " "); forSlot == slot {
			names = append(names, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify("look up publications", timeoutCause(ctx, err))
	}
	return names, nil
}

// DropPublication drops publication name.
func (a *Admin) DropPublication(ctx context.Context, name string) error {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	_, err := a.conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(name))
	return classify("drop publication "+name, timeoutCause(ctx, err))
}

// TableInfo describes a table that is (or would be) published.
type TableInfo struct {
	Name            TableName
	Exists          bool
	ReplicaIdentity byte // d(efault), f(ull), i(ndex), n(othing)
	HasPrimaryKey   bool // an immediate one: PostgreSQL takes no DEFERRABLE key as replica identity
	DeferrableKey   bool // its primary key is DEFERRABLE
	Partitioned     bool
	Partition       bool // a partition of another table
	CanSelect       bool // the session's role may SELECT it (the initial copy)
	Owned           bool // the session's role owns it (CREATE PUBLICATION ... FOR TABLE)
	// RowSecurity: a row-level security policy applies to the session's
	// role on this table, so a copy would read only some of its rows
	// (walmirror's connections refuse such a read: row_security = off).
	RowSecurity bool
	// ForeignPartitions: a partitioned table with a foreign table among its
	// partitions, whose rows a copy reads through the root and whose
	// changes are in no WAL.
	ForeignPartitions bool
	// UnloggedPartitions: the same for an unlogged partition (pgoutput
	// publishes no unlogged table, nor its rows through a root).
	UnloggedPartitions bool
	// GeneratedKey: the generated columns of its replica identity's key,
	// which PostgreSQL before 18 never publishes (18 only when the
	// publication publishes generated columns or its column list names them).
	GeneratedKey []string
	// Virtual and Stored are its generated columns of each kind (VIRTUAL:
	// PostgreSQL 18, which publishes none of them).
	Virtual, Stored []string
	// Columns are its columns a copy would get (not generated ones, which
	// PostgreSQL before 18 does not publish), in order; Key the columns of
	// its replica identity's key (none with REPLICA IDENTITY FULL or
	// NOTHING): what walmirror check needs to see the names a target
	// refuses.
	Columns, Key []string
}

// UnpublishedGenerated lists t's generated columns that publication pub
// (or, when it does not exist yet, the one run would create, which
// publishes stored ones) leaves out, on a PostgreSQL 18 source (major):
// VIRTUAL ones always, stored ones unless pub publishes generated
// columns. (A column list naming stored ones is not looked at.) Before 18,
// PostgreSQL publishes no generated column and refuses no change for it.
func (t TableInfo) UnpublishedGenerated(pub PublicationInfo, major int) []string {
	if major < 18 {
		return nil
	}
	out := slices.Clone(t.Virtual)
	if pub.Exists && !pub.GeneratedColumns {
		out = append(out, t.Stored...)
	}
	return out
}

// KeylessForUpdates says the table has no key for UPDATE and DELETE to be
// published with: PostgreSQL refuses those on the source while it is in a
// publication that publishes them.
func (t TableInfo) KeylessForUpdates() bool {
	return t.ReplicaIdentity == 'n' || t.ReplicaIdentity == 'd' && !t.HasPrimaryKey
}

const tableInfoColumns = `n.nspname::text, c.relname::text, c.relreplident::text,
	EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate AND i.indisvalid),
	EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND NOT i.indimmediate), c.relkind = 'p', c.relispartition,
	has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE'), row_security_active(c.oid),
	c.relkind = 'p' AND EXISTS (SELECT FROM pg_class f WHERE f.relkind = 'f' AND f.oid IN ` + leavesOf + `),
	c.relkind = 'p' AND EXISTS (SELECT FROM pg_class f WHERE f.relpersistence = 'u' AND f.oid IN ` + leavesOf + `),
	ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum),
	ARRAY(SELECT a.attname::text FROM pg_index i CROSS JOIN LATERAL generate_series(0, i.indnkeyatts - 1) k
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[k]
		WHERE i.indrelid = c.oid AND i.indisvalid AND i.indimmediate
			AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END
		ORDER BY a.attnum),
	ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = 'v'
		ORDER BY a.attnum),
	ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = 's'
		ORDER BY a.attnum)`

func scanTables(rows pgx.Rows) ([]TableInfo, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableInfo, error) {
		t := TableInfo{Exists: true}
		var ident string
		err := r.Scan(&t.Name.Schema, &t.Name.Name, &ident, &t.HasPrimaryKey, &t.DeferrableKey, &t.Partitioned, &t.Partition, &t.CanSelect, &t.Owned, &t.RowSecurity, &t.ForeignPartitions, &t.UnloggedPartitions, &t.Columns, &t.Key, &t.Virtual, &t.Stored)
		if ident != "" {
			t.ReplicaIdentity = ident[0]
		}
		for _, k := range t.Key {
			if !slices.Contains(t.Columns, k) { // Columns leaves out generated ones
				t.GeneratedKey = append(t.GeneratedKey, k)
			}
		}
		return t, err
	})
}

// PublishedTables lists the tables publication name publishes (partitions
// of a partitioned table published via its root are listed too: their
// replica identity is what the source checks).
func (a *Admin) PublishedTables(ctx context.Context, name string) ([]TableInfo, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	ts, err := retryDropped(func() ([]TableInfo, error) { return a.publishedTables(ctx, name) })
	if err != nil {
		return nil, classify("list published tables", timeoutCause(ctx, err))
	}
	return ts, nil
}

func (a *Admin) publishedTables(ctx context.Context, name string) ([]TableInfo, error) {
	rows, err := a.conn.Query(ctx, `SELECT DISTINCT `+tableInfoColumns+`
		FROM pg_publication_tables p
		JOIN pg_namespace pn ON pn.nspname = p.schemaname
		JOIN pg_class pc ON pc.relnamespace = pn.oid AND pc.relname = p.tablename
		JOIN LATERAL (SELECT relid FROM pg_partition_tree(pc.oid) UNION SELECT pc.oid) t ON true
		JOIN pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p')
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname = $1 ORDER BY 1, 2`, name)
	if err != nil {
		return nil, err
	}
	return scanTables(rows)
}

// UnloggedLeftOut lists the unlogged tables (schema.name) a FOR ALL TABLES
// or FOR TABLES IN SCHEMA publication leaves out: PostgreSQL publishes no
// unlogged table, and the copy has none of them (a table made UNLOGGED
// later leaves the copy behind). allTables: a missing publication would be
// created FOR ALL TABLES; version is the server's (ServerInfo.Version).
func (a *Admin) UnloggedLeftOut(ctx context.Context, name string, allTables bool, version int) ([]string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	inSchema := "false"
	if version >= 150000 {
		inSchema = `c.relnamespace IN (SELECT pn.pnnspid FROM pg_catalog.pg_publication_namespace pn
			JOIN pg_catalog.pg_publication p ON p.oid = pn.pnpubid WHERE p.pubname = $1)`
	}
	rows, err := a.conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relpersistence = 'u' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
			AND (coalesce((SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1), $2) OR `+inSchema+`)
		ORDER BY 1`, name, allTables)
	if err != nil {
		return nil, classify("list unlogged tables", timeoutCause(ctx, err))
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, classify("list unlogged tables", timeoutCause(ctx, err))
	}
	return names, nil
}

// CandidateTables lists what a publication walmirror would create
// publishes: the tables named (Exists false for one that is missing), or
// with none every permanent user table, as FOR ALL TABLES would.
func (a *Admin) CandidateTables(ctx context.Context, names []string) ([]TableInfo, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	if len(names) == 0 {
		rows, err := a.conn.Query(ctx, `SELECT `+tableInfoColumns+`
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
				AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
			ORDER BY 1, 2`)
		if err != nil {
			return nil, classify("list tables", timeoutCause(ctx, err))
		}
		ts, err := scanTables(rows)
		if err != nil {
			return nil, classify("list tables", timeoutCause(ctx, err))
		}
		return ts, nil
	}
	var out []TableInfo
	for _, n := range names {
		tn, err := ParseTableName(n)
		if err != nil {
			return nil, err
		}
		rows, err := a.conn.Query(ctx, `WITH root AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = $1 AND c.relname = $2)
			SELECT `+tableInfoColumns+`
			FROM root JOIN LATERAL (SELECT relid FROM pg_partition_tree(root.oid) UNION SELECT root.oid) t ON true
			JOIN pg_class c ON c.oid = t.relid AND c.relkind IN ('r', 'p')
			JOIN pg_namespace n ON n.oid = c.relnamespace
			ORDER BY c.oid <> (SELECT oid FROM root), 1, 2`, tn.Schema, tn.Name)
		if err != nil {
			return nil, classify("look up table", timeoutCause(ctx, err))
		}
		ts, err := scanTables(rows)
		if err != nil {
			return nil, classify("look up table", timeoutCause(ctx, err))
		}
		if len(ts) == 0 {
			ts = []TableInfo{{Name: tn}}
		}
		out = append(out, ts...)
	}
	return out, nil
}

// ReplicationLag is what the server's walsender for slot reports while a
// client streams from it (pg_stat_replication): how long ago the WAL that
// the client just reported flushed was written; zero when caught up.
func (a *Admin) ReplicationLag(ctx context.Context, slot string) (lag time.Duration, ok bool, err error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	var us *int64
	err = a.conn.QueryRow(ctx, `SELECT (extract(epoch FROM r.flush_lag) * 1e6)::bigint
		FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
		WHERE s.slot_name = $1`, slot).Scan(&us)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify("read replication lag", timeoutCause(ctx, err))
	}
	if us != nil {
		lag = time.Duration(*us) * time.Microsecond
	}
	return lag, true, nil
}

// TablesDisagree compares the --tables list with what an existing
// publication publishes (the publication wins: --tables only shapes one
// walmirror creates) and says what to do when they differ; "" when they
// agree or no list was given.
func TablesDisagree(names []string, pub PublicationInfo, published []TableInfo) string {
	if len(names) == 0 || !pub.Exists {
		return ""
	}
	name := quoteIdent(pub.Name)
	if pub.AllTables {
		return fmt.Sprintf("--tables lists %d table(s), but publication %s is FOR ALL TABLES and every table is replicated: leave --tables out, or name a new --publication for walmirror to create FOR TABLE your list", len(names), name)
	}
	in := map[TableName]bool{}
	for _, t := range published {
		in[t.Name] = true
	}
	want := map[TableName]bool{}
	var missing, extra []string
	for _, n := range names {
		tn, err := ParseTableName(n)
		if err != nil {
			continue
		}
		want[tn] = true
		if !in[tn] {
			missing = append(missing, tn.String())
		}
	}
	for _, t := range published {
		if !want[t.Name] && !t.Partition {
			extra = append(extra, t.Name.String())
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("does not publish %s, which --tables names", strings.Join(missing, ", ")))
	}
	if len(extra) > 0 {
		parts = append(parts, fmt.Sprintf("publishes %s, which --tables leaves out", strings.Join(extra, ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	fix := "ALTER PUBLICATION " + name + " SET TABLE " + strings.Join(func() []string {
		out := make([]string, 0, len(names))
		for _, n := range names {
			if tn, err := ParseTableName(n); err == nil {
				out = append(out, tn.String())
			}
		}
		return out
	}(), ", ")
	return fmt.Sprintf("publication %s exists and decides what is replicated: it %s; to replicate exactly --tables, run %s (rows a table held before it was added are not copied by the running stream), or leave --tables out",
		name, strings.Join(parts, " and "), fix)
}

// SlotBusy reports whether err is the server refusing a slot that another
// connection holds ("replication slot ... is active for PID n"), or a
// *SlotActiveError (a slot to drop, held), and that connection's server PID.
func SlotBusy(err error) (pid int, ok bool) {
	var active *SlotActiveError
	if errors.As(err, &active) {
		return active.PID, true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55006" || !strings.Contains(pgErr.Message, "replication slot") {
		return 0, false
	}
	if i := strings.LastIndex(pgErr.Message, "PID "); i >= 0 {
		fmt.Sscanf(pgErr.Message[i+4:], "%d", &pid)
	}
	return pid, true
}

// SlotState reads the configured slot's state, including whether another
// connection holds it.
func (s *Source) SlotState(ctx context.Context) (SlotState, error) {
	return (&Admin{cfg: s.cfg, conn: s.conn}).Slot(ctx, s.cfg.Slot)
}

// warnTablesDisagree warns, saying what to do, when --tables differs from
// what the existing publication publishes (the publication wins).
func (s *Source) warnTablesDisagree(ctx context.Context) {
	a := &Admin{cfg: s.cfg, conn: s.conn}
	pub, err := a.Publication(ctx, s.cfg.Publication)
	if err != nil {
		return
	}
	tables, err := a.PublishedTables(ctx, s.cfg.Publication)
	if err != nil {
		return
	}
	if msg := TablesDisagree(s.cfg.Tables, pub, tables); msg != "" {
		s.log.Warn("--tables differs from the existing publication: "+msg, "publication", s.cfg.Publication)
	}
}

// ResyncTables resolves names (schema.table) to the publication's tables
// and writes a resync request for slot into the WAL, in one transaction: the
// walmirror following the slot copies those tables again from that point
// (now, or when it next runs). It returns the tables' ids, their display
// names and the request's position.
func (a *Admin) ResyncTables(ctx context.Context, publication, slot string, names []string, encode func(relids []uint32, names []string) string) ([]uint32, []string, lsn.LSN, error) {
	relids, shown, err := a.ResolveTables(ctx, publication, names)
	if err != nil {
		return nil, nil, 0, err
	}
	at, _, err := a.RequestResync(ctx, encode(relids, shown))
	return relids, shown, at, err
}

// RequestResync writes a resync request (apply.EncodeResyncKeys) into the
// WAL in a transaction of its own. It returns the request's position and
// one at or past the end of its commit record, flushed on the source: a copy that has applied everything up to committed has seen
// the request.
func (a *Admin) RequestResync(ctx context.Context, request string) (at, committed lsn.LSN, err error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	var text string
	err = pgx.BeginFunc(ctx, a.conn, func(tx pgx.Tx) error {
		// Flushed at its COMMIT (also under synchronous_commit = off), so
		// that the position read after it covers the commit record.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = local`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT pg_logical_emit_message(true, $1, $2)::text`, ResyncPrefix, request).Scan(&text)
	})
	if err != nil {
		return 0, 0, classify("write resync request", timeoutCause(ctx, err))
	}
	if at, err = lsn.Parse(text); err != nil {
		return 0, 0, err
	}
	if err := a.conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		return 0, 0, classify("read the source's WAL position", timeoutCause(ctx, err))
	}
	committed, err = lsn.Parse(text)
	return at, committed, err
}

// ResolveTables resolves names (schema.table) to the publication's
// tables: their oids and display names, in order. A name the publication
// does not list is an error.
func (a *Admin) ResolveTables(ctx context.Context, publication string, names []string) ([]uint32, []string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	var relids []uint32
	var shown []string
	for _, n := range names {
		tn, err := ParseTableName(n)
		if err != nil {
			return nil, nil, permanent("resync", "", err)
		}
		var relid uint32
		err = a.conn.QueryRow(ctx, `SELECT c.oid FROM pg_publication_tables p
			JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
			WHERE p.pubname = $1 AND p.schemaname = $2 AND p.tablename = $3`, publication, tn.Schema, tn.Name).Scan(&relid)
		if errors.Is(err, pgx.ErrNoRows) {
			// A partitioned table published through its leaves is
			// copied again as those leaves; a leaf published through its
			// root is named by the root.
			var leaves []uint32
			var leafSchemas, leafNames []string
			var rootSchema, rootName string
			err := a.conn.QueryRow(ctx, `WITH t AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
					WHERE n.nspname = $2 AND c.relname = $3),
				pub AS (SELECT c.oid, p.schemaname, p.tablename FROM pg_publication_tables p
					JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
					WHERE p.pubname = $1),
				leaf AS (SELECT pub.* FROM t, pg_partition_tree(t.oid) pt JOIN pub ON pub.oid = pt.relid),
				root AS (SELECT pub.* FROM t, pg_partition_ancestors(t.oid) pa JOIN pub ON pub.oid = pa.relid LIMIT 1)
				SELECT coalesce((SELECT array_agg(oid ORDER BY schemaname, tablename) FROM leaf), '{}'),
					coalesce((SELECT array_agg(schemaname ORDER BY schemaname, tablename) FROM leaf), '{}'),
					coalesce((SELECT array_agg(tablename ORDER BY schemaname, tablename) FROM leaf), '{}'),
					coalesce((SELECT schemaname FROM root), ''), coalesce((SELECT tablename FROM root), '')`,
				publication, tn.Schema, tn.Name).Scan(&leaves, &leafSchemas, &leafNames, &rootSchema, &rootName)
			if err != nil {
				return nil, nil, classify("resync", timeoutCause(ctx, err))
			}
			if len(leaves) > 0 {
				relids = append(relids, leaves...)
				for i := range leaves {
					shown = append(shown, schema.DisplayName(leafSchemas[i], leafNames[i]))
				}
				continue
			}
			if rootName != "" {
				root := schema.DisplayName(rootSchema, rootName)
				return nil, nil, permanent("resync", fmt.Sprintf("name %s: the whole partitioned table is copied again", root),
					fmt.Errorf("publication %q publishes %s through its partition root %s (publish_via_partition_root)", publication, tn, root))
			}
			var exists bool
			if err := a.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, publication).Scan(&exists); err != nil {
				return nil, nil, classify("resync", timeoutCause(ctx, err))
			}
			if !exists {
				return nil, nil, permanent("resync", "pass the copy's --publication (the one its walmirror run uses)",
					fmt.Errorf("publication %q does not exist on the source", publication))
			}
			return nil, nil, permanent("resync", "name a table the publication lists, or pass the copy's --publication if it is another",
				fmt.Errorf("publication %q does not publish %s", publication, tn))
		}
		if err != nil {
			return nil, nil, classify("resync", timeoutCause(ctx, err))
		}
		relids = append(relids, relid)
		shown = append(shown, schema.DisplayName(tn.Schema, tn.Name))
	}
	return relids, shown, nil
}

// KeyTable describes relid as publication publishes it, in the shape the
// stream and the online copies give it (columns, key, replica identity):
// what walmirror resync --key checks keys against.
func (a *Admin) KeyTable(ctx context.Context, publication string, relid uint32) (*schema.Table, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	tx, err := a.conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, classify("read the table's key", timeoutCause(ctx, err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	pts, err := publishedTables(ctx, tx, publication, relid)
	if err != nil {
		return nil, timeoutCause(ctx, err)
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("read the key of table %d: publication %q no longer publishes it", relid, publication)
	}
	t, err := pts[0].describe(ctx, tx)
	return t, timeoutCause(ctx, err)
}

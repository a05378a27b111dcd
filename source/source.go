package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/lsn"
)

// Source is an open, checked connection to the server being replicated.
type Source struct {
	cfg      Config
	log      *slog.Logger
	conn     *pgx.Conn // ordinary session: catalog queries
	systemID string
	// timeline is the server's timeline when the run began; forks says
	// where each earlier timeline of its history ended (TIMELINE_HISTORY).
	timeline uint32
	forks    map[uint32]lsn.LSN
	// racedPublication: creating the publication found it made meanwhile.
	racedPublication bool
	dbName           string
	version          int // server_version_num
	protocol         int // pgoutput proto_version negotiated
	// pubOps is what the publication left out at the start ("delete,
	// truncate"; "" for none), which the start warned of; nil when not
	// looked up.
	pubOps *string
}

// SlotInfo describes an existing replication slot.
type SlotInfo struct {
	Exists bool
	Lost   bool // invalidated: WAL it needed was removed
	// Cause says why the server invalidated it (InvalidationCause), when Lost.
	Cause string
}

// Open connects, checks the prerequisites walmirror relies on and creates the
// publication when it is missing. Every failure says what to change.
func Open(ctx context.Context, cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, permanent("check configuration", "", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg, err := connConfig(&cfg, false)
	if err != nil {
		return nil, permanent("connect to source", "", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	ccfg, _ := pgx.ParseConfig("")
	ccfg.Config = *pcfg
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, classify("connect to source "+Describe(cfg.DSN), timeoutCause(ctx, err))
	}
	s := &Source{cfg: cfg, log: log, conn: conn}
	if err := s.preflight(ctx); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, timeoutCause(ctx, err)
	}
	return s, nil
}

// Close ends the catalog session.
func (s *Source) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// SystemID is the source cluster's identifier: a target follows one cluster.
func (s *Source) SystemID() string { return s.systemID }

// SystemMismatchError is Open's refusal of a cluster other than
// Config.ExpectSystemID.
type SystemMismatchError struct{ Want, Got string }

func (e *SystemMismatchError) Error() string {
	return fmt.Sprintf("the source is PostgreSQL cluster %s, not %s", e.Got, e.Want)
}

func (s *Source) preflight(ctx context.Context) error {
	var walLevel string
	var isSuper, canReplicate, standby bool
	err := s.conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('server_version_num')::int,
		r.rolsuper, r.rolreplication, current_database(), pg_is_in_recovery()
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &s.version, &isSuper, &canReplicate, &s.dbName, &standby)
	if err != nil {
		return classify("inspect source", err)
	}
	if standby {
		// Refused before a slot or a copy is made: the initial copy would
		// work, and every run stop at its first publication poll.
		return permanent("check source", standbyHint, errors.New("the source is a standby: walmirror replicates from a primary"))
	}
	if walLevel != "logical" {
		return permanent("check source", "run ALTER SYSTEM SET wal_level = logical as a superuser, then restart PostgreSQL",
			fmt.Errorf("wal_level is %q, logical replication needs \"logical\"", walLevel))
	}
	if s.version < 140000 {
		// Online copies need pgoutput's messages option (14), and 13 is past
		// its end of life.
		major := strconv.Itoa(s.version / 10000)
		if s.version < 100000 {
			major = fmt.Sprintf("%d.%d", s.version/10000, s.version/100%100) // 9.x numbering
		}
		return permanent("check source", "upgrade the source to PostgreSQL 14 or later",
			fmt.Errorf("PostgreSQL %s is too old: walmirror needs 14 or later", major))
	}
	if err := s.negotiate(); err != nil {
		return err
	}
	if !isSuper && !canReplicate {
		user := s.conn.Config().User
		return permanent("check source", fmt.Sprintf("a superuser can grant it: ALTER ROLE %s REPLICATION", quoteIdent(user)),
			fmt.Errorf("role %q may not start replication", user))
	}
	// A replication connection proves pg_hba.conf lets us in and names the cluster.
	rc, err := s.replicationConn(ctx)
	if err != nil {
		return err
	}
	defer rc.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, rc)
	if err != nil {
		return classify("identify source system", err)
	}
	s.systemID = sys.SystemID
	s.timeline = uint32(sys.Timeline)
	if want := s.cfg.ExpectSystemID; want != "" && want != sys.SystemID {
		// Before the publication is made: a copy pointed at the wrong
		// cluster created one there, FOR ALL TABLES, and UPDATE and
		// DELETE on its keyless tables failed from then on (helper-122).
		return &SystemMismatchError{Want: want, Got: sys.SystemID}
	}
	if err := s.ensurePublication(ctx); err != nil {
		return err
	}
	s.warnUnstreamedPartitions(ctx)
	return nil
}

// warnUnstreamedPartitions warns, at every start, of published partitioned
// tables with an unlogged or foreign table among their partitions: a copy
// reads those rows through the root, but their changes are in no WAL, so
// the copy of them goes stale (helper-93). Best effort: a failed look-up
// only loses the warning.
func (s *Source) warnUnstreamedPartitions(ctx context.Context) {
	// PostgreSQL 16+ opens every published table to list them: a table
	// locked by a long transaction (a load that began with TRUNCATE, a
	// prepared one) held every start here, silently (helper-103).
	tx, err := s.conn.Begin(ctx)
	if err != nil {
		s.log.Debug("could not look for unlogged or foreign partitions", "err", err)
		return
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '"+copierLockTimeout+"'"); err != nil {
		s.log.Debug("could not look for unlogged or foreign partitions", "err", err)
		return
	}
	rows, err := tx.Query(ctx, `SELECT format('%I.%I', pt.schemaname, pt.tablename),
			array_to_string(ARRAY(SELECT format('%I.%I', ln.nspname, l.relname) FROM pg_catalog.pg_class l
				JOIN pg_catalog.pg_namespace ln ON ln.oid = l.relnamespace
				WHERE l.oid IN `+leavesOf+` AND (l.relpersistence = 'u' OR l.relkind = 'f') ORDER BY 1), ', ')
		FROM pg_catalog.pg_publication_tables pt JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname
			JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
		WHERE pt.pubname = $1 AND c.relkind = 'p'`, s.cfg.Publication)
	if IsLockTimeout(err) {
		s.log.Info("did not look for unlogged or foreign partitions: a published table is locked", "err", err)
		return
	}
	if err != nil {
		s.log.Debug("could not look for unlogged or foreign partitions", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var root, leaves string
		if err := rows.Scan(&root, &leaves); err != nil || leaves == "" {
			continue
		}
		s.log.Warn("a published partitioned table has unlogged or foreign partitions: a copy reads their rows through it, but their changes are in no WAL, so the copy of those rows goes stale "+
			"(ALTER TABLE ... SET LOGGED on the source, or detach them)", "table", root, "partitions", leaves)
	}
	if err := rows.Err(); IsLockTimeout(err) {
		s.log.Info("did not look for unlogged or foreign partitions: a published table is locked", "err", err)
	} else if err != nil {
		s.log.Debug("could not look for unlogged or foreign partitions", "err", err)
	}
}

// Timeline is the source's timeline when the run began (IDENTIFY_SYSTEM):
// a promoted standby (a failover) or a recovery to a point in time starts
// a new one.
func (s *Source) Timeline() uint32 { return s.timeline }

// TimelineEnd says up to where the source's WAL is the same as timeline
// tli's was (what came after it on tli is another history), from the
// source's timeline history, read when tli is not the source's own. ok is
// false when tli is not in the history (a timeline of another branch).
func (s *Source) TimelineEnd(ctx context.Context, tli uint32) (end lsn.LSN, ok bool, err error) {
	if tli == s.timeline {
		return lsn.LSN(1<<64 - 1), true, nil
	}
	if s.forks == nil && s.timeline > 1 {
		rc, err := s.replicationConn(ctx)
		if err != nil {
			return 0, false, err
		}
		defer rc.Close(context.WithoutCancel(ctx))
		h, err := pglogrepl.TimelineHistory(ctx, rc, int32(s.timeline))
		if err != nil {
			return 0, false, classify("read the source's timeline history", err)
		}
		if s.forks, err = parseTimelineHistory(h.Content); err != nil {
			return 0, false, fmt.Errorf("read the source's timeline history %s: %w", h.FileName, err)
		}
	}
	end, ok = sharedEnd(s.forks, tli)
	return end, ok, nil
}

// OtherHistory says why the source's WAL is not the history a copy applied
// up to position at on timeline tli, or "" when it is: its timeline history
// left tli before that position (a standby promoted before it received
// everything the copy applied: asynchronous replication, a failover slot
// without synchronized_standby_slots; or a recovery to an earlier point),
// or its WAL ends before it (restored from a copy of its files: the same
// timeline, its slot as it was). Either way its WAL from there on holds
// other transactions, which the copy's position would skip. tli 0 (a copy
// stored before timelines were) checks the WAL's end only.
func (s *Source) OtherHistory(ctx context.Context, tli uint32, at lsn.LSN) (string, error) {
	if tli != 0 && tli != s.timeline {
		end, inHistory, err := s.TimelineEnd(ctx, tli)
		if err != nil {
			return "", err
		}
		if !inHistory || at > end {
			where := fmt.Sprintf("its timeline %d is not in the source's history", tli)
			if inHistory {
				where = fmt.Sprintf("the source's history left timeline %d at %s", tli, end)
			}
			return fmt.Sprintf("the source is on timeline %d (a promoted standby, or a recovery to a point in time) and does not hold what the copy applied: "+
				"the copy is at %s on timeline %d, %s, so the copy has changes the source never had and would miss the source's own after that", s.timeline, at, tli, where), nil
		}
	}
	wal, err := s.WALEnd(ctx)
	if err != nil || at <= wal {
		return "", err
	}
	return fmt.Sprintf("the copy is at %s, past the end of the source's WAL: the source was restored from a backup (its slot with it) after the copy applied more, "+
		"so the copy has changes the source does not and would miss the source's own up to there", at), nil
}

// sharedEnd is where the WAL of the timeline a history (forks: where each
// earlier timeline ended) belongs to stops being timeline tli's: where tli
// ended, or earlier where a later timeline of the history ended before
// that (a recovery to a point before an earlier fork).
func sharedEnd(forks map[uint32]lsn.LSN, tli uint32) (lsn.LSN, bool) {
	end, ok := forks[tli]
	if !ok {
		return 0, false
	}
	for t, e := range forks {
		if t > tli && e < end {
			end = e
		}
	}
	return end, true
}

// parseTimelineHistory reads a timeline history file: per line, a parent
// timeline, where it ended (X/Y) and a reason, tab-separated; # comments.
func parseTimelineHistory(content []byte) (map[uint32]lsn.LSN, error) {
	forks := map[uint32]lsn.LSN{}
	for _, line := range strings.Split(string(content), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("line %q: want a timeline and a position", line)
		}
		tli, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		end, err := lsn.Parse(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		forks[uint32(tli)] = end
	}
	return forks, nil
}

func (s *Source) ensurePublication(ctx context.Context) error {
	var all, ins, upd, del, trunc bool
	err := s.conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		s.cfg.Publication).Scan(&all, &ins, &upd, &del, &trunc)
	if err == nil {
		if len(s.cfg.Tables) > 0 {
			s.warnTablesDisagree(ctx) // the publication decides; --tables only shapes a new one
		}
		pub := PublicationInfo{Insert: ins, Update: upd, Delete: del, Truncate: trunc}
		ops := strings.Join(pub.Unpublished(), ", ")
		s.pubOps = &ops
		if left := pub.Unpublished(); len(left) > 0 {
			// Its choice, maybe on purpose (an append-only copy), but not a
			// mirror: say so at every start.
			s.log.Warn("the publication does not publish every operation: the copy keeps what those change at the source and will differ from it; "+
				"to mirror, run ALTER PUBLICATION "+quoteIdent(s.cfg.Publication)+" SET (publish = 'insert, update, delete, truncate') and copy the tables again (walmirror resync)",
				"publication", s.cfg.Publication, "not_published", strings.Join(left, ", "))
		}
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return classify("look up publication", err)
	}
	if strings.Contains(s.cfg.Publication, ",") {
		// A list of publications, most likely (helper-93: "pa,pb" was
		// created as one FOR ALL TABLES publication of that name).
		return permanent("look up publication", "walmirror follows one publication: create one that lists every table to copy (CREATE PUBLICATION ... FOR TABLE a, b)",
			fmt.Errorf("publication %q does not exist", s.cfg.Publication))
	}
	if err := s.slotRoom(ctx); err != nil {
		return err
	}
	stmt := "CREATE PUBLICATION " + quoteIdent(s.cfg.Publication)
	if len(s.cfg.Tables) == 0 {
		stmt += " FOR ALL TABLES"
	} else {
		names := make([]string, len(s.cfg.Tables))
		for i, t := range s.cfg.Tables {
			tn, _ := ParseTableName(t) // validated
			names[i] = tn.String()
		}
		stmt += " FOR TABLE " + strings.Join(names, ", ")
	}
	// A partitioned table is copied as one table named for its root, as
	// its readers query it, not as one table per partition.
	stmt += " WITH (publish_via_partition_root = true"
	if s.version >= 180000 {
		// Stored generated columns arrive like any other (PostgreSQL 18).
		stmt += ", publish_generated_columns = stored"
	}
	stmt += ")"
	// The comment (in the same implicit transaction) tells walmirror drop
	// that this publication is walmirror's to remove.
	if _, err := s.conn.Exec(ctx, stmt+"; COMMENT ON PUBLICATION "+quoteIdent(s.cfg.Publication)+" IS "+quoteLiteral(publicationComment(s.cfg.Slot))); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42710") && !s.racedPublication {
			// Another walmirror starting at the same moment created it
			// (helper-65: "duplicate key value violates unique constraint
			// pg_publication_pubname_index"): take it as found.
			s.racedPublication = true
			return s.ensurePublication(ctx)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return permanent("create publication", "--tables names a table the source does not have (schema.table; walmirror check lists each)", err)
		}
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			return permanent("create publication", "ask an administrator to run: "+stmt+
				" (FOR ALL TABLES needs a superuser, FOR TABLE needs ownership of the tables)", err)
		}
		return classify("create publication", err)
	}
	s.log.Info("created publication", "publication", s.cfg.Publication, "sql", stmt)
	every := "" // a new publication publishes every operation
	s.pubOps = &every
	s.warnKeyless(ctx)
	s.warnUnpublishedIdentity(ctx)
	return nil
}

// slotRoom fails as creating the slot would when every replication slot is
// taken and the configured one does not exist: before the publication is
// created, so a start that cannot go on leaves nothing behind (helper-64).
func (s *Source) slotRoom(ctx context.Context) error {
	if s.cfg.Slot == "" {
		return nil
	}
	// A slot of that name of another database or plugin is refused before
	// the publication is made (helper-85: it was left behind, its comment
	// sending the user to walmirror drop, which took that other copy's slot).
	if _, err := s.Slot(ctx); err != nil {
		return err
	}
	var full bool
	err := s.conn.QueryRow(ctx, `SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)
		AND (SELECT count(*) FROM pg_catalog.pg_replication_slots) >= current_setting('max_replication_slots')::int`, s.cfg.Slot).Scan(&full)
	if err != nil {
		s.log.Debug("count replication slots", "err", err)
		return nil // creating the slot says it, later
	}
	if full {
		return classify("create replication slot", &pgconn.PgError{Severity: "ERROR", Code: "53400", Message: "all replication slots are in use"})
	}
	return nil
}

// warnKeyless names the tables of the publication just created that have
// no key to publish UPDATE and DELETE with: PostgreSQL now refuses those
// on them (pgbench_history, only ever inserted into, is fine). walmirror
// check calls them a problem; run creates the publication anyway, and
// says so loudly.
func (s *Source) warnKeyless(ctx context.Context) {
	s.warnTables(ctx, `c.relreplident = 'n' OR c.relreplident = 'd'
			AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND i.indimmediate AND i.indisvalid)`,
		"these published tables have no key PostgreSQL takes as replica identity (no primary key, or a DEFERRABLE one): UPDATE and DELETE on them now fail on the source (\"cannot update table ... because it does not have a replica identity\"); "+
			"give each a primary key or run ALTER TABLE ... REPLICA IDENTITY FULL (walmirror check lists them)")
}

// warnUnpublishedIdentity warns, on PostgreSQL 18, of the tables of the
// publication just created whose replica identity is FULL (every column)
// and that have a generated column it does not publish (a VIRTUAL one):
// PostgreSQL refuses UPDATE and DELETE on them from now on (helper-109).
func (s *Source) warnUnpublishedIdentity(ctx context.Context) {
	if s.version < 180000 {
		return
	}
	s.warnTables(ctx, `c.relreplident = 'f' AND EXISTS (SELECT FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '' AND NOT (a.attname = ANY (p.attnames)))`,
		"these published tables are REPLICA IDENTITY FULL with generated columns no publication publishes (VIRTUAL): UPDATE and DELETE on them now fail on the source (\"Replica identity must not contain unpublished generated columns\"); "+
			"give each a primary key (REPLICA IDENTITY DEFAULT) or REPLICA IDENTITY USING INDEX (walmirror check lists them)")
}

// warnTables warns with msg, naming the plain tables of the publication
// (p, pg_publication_tables; c, their pg_class rows) that cond selects.
func (s *Source) warnTables(ctx context.Context, cond, msg string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_publication_tables p
		JOIN pg_catalog.pg_namespace n ON n.nspname = p.schemaname
		JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
		WHERE p.pubname = $1 AND c.relkind = 'r' AND (`+cond+`)
		ORDER BY 1`, s.cfg.Publication)
	if err != nil {
		s.log.Debug("list published tables to warn of", "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) == 0 {
		return
	}
	s.log.Warn(msg, "tables", strings.Join(names, ", "))
}

// PublishesEverything reports whether the publication publishes every
// operation, as of the start (false when not looked up).
func (s *Source) PublishesEverything() bool { return s.pubOps != nil && *s.pubOps == "" }

// Slot reports on the configured replication slot.
func (s *Source) Slot(ctx context.Context) (SlotInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var plugin, db, walStatus, reason string
	err := s.conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), coalesce(database, ''), coalesce(wal_status, ''),
			coalesce(to_jsonb(s)->>'invalidation_reason', '')
		FROM pg_replication_slots s WHERE slot_name = $1`, s.cfg.Slot).Scan(&plugin, &db, &walStatus, &reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return SlotInfo{}, nil
	}
	if err != nil {
		return SlotInfo{}, classify("look up replication slot", timeoutCause(ctx, err))
	}
	if plugin == "pgoutput" && db != s.dbName {
		// A slot decodes one database. helper-113: the copy's database
		// renamed away and a dump restored under its name; "choose another
		// --slot" led to "the target follows slot ...".
		return SlotInfo{}, permanent("check replication slot",
			fmt.Sprintf("if the copy's database was renamed, name it in --source; if it was replaced (renamed away or dropped, and made again under its name), "+
				"drop the old slot (SELECT pg_drop_replication_slot('%s')) and run with --resync to copy the new one; if another copy follows that slot, choose another --slot",
				s.cfg.Slot),
			fmt.Errorf("slot %q exists but decodes database %q, not %q", s.cfg.Slot, db, s.dbName))
	}
	if plugin != "pgoutput" {
		return SlotInfo{}, permanent("check replication slot", "choose another --slot",
			fmt.Errorf("slot %q exists but belongs to plugin %q in database %q, not pgoutput in %q", s.cfg.Slot, plugin, db, s.dbName))
	}
	info := SlotInfo{Exists: true, Lost: walStatus == "lost"}
	if info.Lost {
		info.Cause = InvalidationCause(reason)
	}
	return info, nil
}

// SlotConfirmed is the configured slot's confirmed_flush_lsn; ok is false
// when there is no such slot. A slot just created has its consistent point
// there until a stream confirms more: a different position means another
// slot of the same name.
func (s *Source) SlotConfirmed(ctx context.Context) (_ lsn.LSN, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var text string
	err = s.conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify("look up replication slot", timeoutCause(ctx, err))
	}
	if text == "" {
		return 0, true, nil
	}
	l, err := lsn.Parse(text)
	return l, true, err
}

// DropSlot removes the configured slot (used to redo an interrupted snapshot).
// A slot already gone is no error: a slot whose creation a crash
// interrupted is ephemeral, and the server drops it when its walsender
// notices, which can be after the caller saw it.
func (s *Source) DropSlot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	_, err := s.conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, s.cfg.Slot)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object
		s.log.Info("the replication slot was gone already", "slot", s.cfg.Slot)
		return nil
	}
	if errors.As(err, &pgErr) && pgErr.Code == "55006" { // object_in_use: a walsender holds it
		busy := &SlotActiveError{Slot: s.cfg.Slot}
		var pid *int32
		if s.conn.QueryRow(ctx, `SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&pid) == nil && pid != nil {
			busy.PID = int(*pid)
		}
		return busy
	}
	return classify("drop replication slot "+s.cfg.Slot, timeoutCause(ctx, err))
}

// WALEnd is where the source's WAL ends now (pg_current_wal_insert_lsn),
// read without writing anything: no copy of this source can have applied
// past it.
func (s *Source) WALEnd(ctx context.Context) (lsn.LSN, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var text string
	if err := s.conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return 0, classify("read current WAL position", timeoutCause(ctx, err))
	}
	return lsn.Parse(text)
}

// CurrentLSN is the end of the WAL inserted so far, for --stop-at-lsn now: it
// covers every transaction committed by now, including asynchronous commits
// not yet written (pg_current_wal_lsn, the write position, would miss those).
// A position just past a page header is moved back to the page boundary,
// where the decoder's position stops when the server is idle.
//
// The stream only carries flushed WAL, and the tail of an idle server's WAL
// (records that commit nothing: pruning, the background writer's snapshot
// of running transactions) can wait seconds for a flush: when the position
// is past the flushed one, CurrentLSN has the server flush it (flushWAL;
// best effort: a role that may not do that only waits).
func (s *Source) CurrentLSN(ctx context.Context) (lsn.LSN, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	var text, flushed string
	if err := s.conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text`).Scan(&text, &flushed); err != nil {
		return 0, classify("read current WAL position", timeoutCause(ctx, err))
	}
	l, err := lsn.Parse(text)
	if err != nil {
		return 0, err
	}
	if f, err := lsn.Parse(flushed); err == nil && f < l {
		if err := flushWAL(ctx, s.conn, s.version); err != nil {
			s.log.Debug("could not make the source flush its WAL: waiting for it to do so", "err", err)
		}
	}
	const page = 8192
	if off := uint64(l) % page; off == 24 || off == 40 { // short and long page header sizes
		l -= lsn.LSN(off)
	}
	return l, nil
}

// replicationConn opens a walsender connection (replication=database).
func (s *Source) replicationConn(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := connConfig(&s.cfg, true)
	if err != nil {
		return nil, permanent("connect for replication", "", err)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, classify("open replication connection to "+Describe(s.cfg.DSN), err)
	}
	return conn, nil
}

// maxProtocol is the highest pgoutput protocol walmirror asks for.
const maxProtocol = 4

// serverProtocol is the highest pgoutput protocol a server of version v
// (server_version_num) speaks: 2 from 14 (streaming), 3 from 15 (two-phase),
// 4 from 16 (streaming 'parallel').
func serverProtocol(v int) int {
	switch {
	case v >= 160000:
		return 4
	case v >= 150000:
		return 3
	default:
		return 2
	}
}

// negotiate picks the protocol: Config.Protocol, or the highest the server
// speaks.
func (s *Source) negotiate() error {
	best := serverProtocol(s.version)
	s.protocol = s.cfg.Protocol
	if s.protocol == 0 {
		s.protocol = best
	}
	if s.protocol > best {
		need := map[int]int{3: 15, 4: 16}[s.protocol]
		return permanent("check source", fmt.Sprintf("use --protocol %d or lower, or leave it unset", best),
			fmt.Errorf("--protocol %d needs PostgreSQL %d or later; the source is PostgreSQL %d", s.protocol, need, s.version/10000))
	}
	return nil
}

// Protocol is the pgoutput protocol version the stream uses.
func (s *Source) Protocol() int { return s.protocol }

// Version is the server's version number (server_version_num: 140011).
func (s *Source) Version() int { return s.version }

func (s *Source) pluginArgs() []string {
	// messages: the watermarks of online copies and resync requests come
	// through the stream (PostgreSQL 14+).
	args := []string{"proto_version '" + strconv.Itoa(s.protocol) + "'",
		"publication_names " + quoteLiteral(quoteIdent(s.cfg.Publication)), "messages 'true'"}
	// Protocol 2+: large transactions are streamed while in progress (and
	// spilled by walmirror, not the server). two_phase stays off: a prepared
	// transaction is then sent at COMMIT PREPARED, as an ordinary one.
	switch {
	case s.protocol >= 4:
		// Stream Abort then carries the abort's LSN and time; walmirror
		// applies nothing before the commit either way.
		args = append(args, "streaming 'parallel'")
	case s.protocol >= 2:
		args = append(args, "streaming 'on'")
	}
	return args
}

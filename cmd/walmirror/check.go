package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/walmirror/walmirror/internal/fileperm"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// cmdCheck runs every preflight run performs, creating nothing, and prints
// one line per finding; it fails if any finding would stop run.
func cmdCheck(ctx context.Context, args []string) error {
	fs := newFlagSet("check", "--source DSN --target TARGET [--slot NAME] [--publication NAME] [--tables LIST]")
	cfg := source.Config{}
	var target, tables string
	fs.StringVar(&cfg.DSN, "source", "", sourceHelp)
	fs.StringVar(&target, "target", "", "where the copy would live: "+targetForms)
	fs.StringVar(&cfg.Slot, "slot", "walmirror", "replication slot run would use")
	fs.StringVar(&cfg.Publication, "publication", "walmirror", "publication run would use")
	fs.StringVar(&tables, "tables", "", "comma-separated schema.table list run would create the publication for (default: all tables)")
	var adopt bool
	fs.BoolVar(&adopt, "adopt-tables", false, "run would take over existing, empty target tables walmirror did not create")
	replicaRole := true
	fs.BoolVar(&replicaRole, "pg-replica-role", true, "PostgreSQL target: run would apply with session_replication_role = replica (checked: the role may set it)")
	durationFlag(fs, &cfg.Timeout, "source-timeout", source.DefaultTimeout, "how long the source may take to answer")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	cfg.Tables = source.SplitTableNames(tables)
	c := &checker{out: os.Stdout, adopt: adopt, replicaRole: replicaRole}
	// A DuckDB file a run holds: its run-state file names the slot and
	// publication (helper-139: the default slot was checked).
	if ts, err := readTargetStateOrRun(ctx, target); err == nil && ts.Found { // else the target check says why
		if !flagGiven(fs.FlagSet, "slot") && ts.State.Slot != "" {
			cfg.Slot = ts.State.Slot // as run: the copy's slot, unless another is named
		}
		c.follows = ts.State.Phase == schema.PhaseStreaming && ts.State.Slot == cfg.Slot
		// As run: the publication the copy is made from, unless another is named.
		if _, err := followPublication(ts.State, &cfg.Publication, flagGiven(fs.FlagSet, "publication")); err != nil {
			c.fail("publication", "%v", err)
		}
	}
	c.run(ctx, cfg, target)
	if c.fatal > 0 {
		return fmt.Errorf("check: %d problem(s) to fix before walmirror run (the FAIL lines above: each would stop it, or break UPDATE and DELETE on the source)", c.fatal)
	}
	return nil
}

// checker prints findings: ok, WARN (run works, but look), FAIL (run
// would stop).
type checker struct {
	out   io.Writer
	fatal int
	// published: the tables the copy is made of, as the source check found them.
	published []source.TableName
	adopt     bool // --adopt-tables
	// replicaRole: --pg-replica-role (run sets session_replication_role).
	replicaRole bool
	follows     bool // the target holds a complete copy that follows --slot

	publishedInfo []source.TableInfo // what the source check found of published
}

func (c *checker) ok(subject, format string, a ...any) { c.line("ok  ", subject, format, a...) }
func (c *checker) warn(subject, format string, a ...any) {
	c.line("WARN", subject, format, a...)
}
func (c *checker) fail(subject, format string, a ...any) {
	c.fatal++
	c.line("FAIL", subject, format, a...)
}

func (c *checker) line(level, subject, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	msg = strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\t' }), " ")
	fmt.Fprintf(c.out, "%s %-12s %s\n", level, subject+":", msg)
}

func (c *checker) run(ctx context.Context, cfg source.Config, target string) {
	sourceSystem, slot := c.source(ctx, cfg)
	c.target(ctx, cfg, target, sourceSystem, slot)
}

// source checks the source; it returns the system identifier and the slot
// (nil when the source could not be inspected).
func (c *checker) source(ctx context.Context, cfg source.Config) (string, *source.SlotState) {
	if err := cfg.Validate(); err != nil {
		c.fail("source", "%v", err)
		return "", nil
	}
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		c.fail("source", "%v", err)
		return "", nil
	}
	defer adm.Close(context.WithoutCancel(ctx))
	si, err := adm.Server(ctx)
	if err != nil {
		c.fail("source", "%v", err)
		return "", nil
	}
	c.ok("source", "reachable: %s, PostgreSQL %d.%d, database %q as role %q", source.Describe(cfg.DSN), si.Version/10000, si.Version%10000, si.Database, si.User)
	if si.Version < 140000 {
		c.warn("version", "PostgreSQL %d is older than walmirror's tested versions (14-18)", si.Version/10000)
	}
	if si.Standby {
		c.fail("primary", "the source is a standby (in recovery): walmirror replicates from a primary, point --source at it")
	}
	if si.WALLevel != "logical" {
		c.fail("wal_level", "wal_level is %q, logical replication needs \"logical\" (run ALTER SYSTEM SET wal_level = logical as a superuser, then restart PostgreSQL)", si.WALLevel)
	} else {
		c.ok("wal_level", "logical")
	}
	var system string
	switch {
	case !si.Superuser && !si.Replication:
		c.fail("role", "role %q may not start replication (a superuser can grant it: ALTER ROLE %s REPLICATION)", si.User, quoteIdent(si.User))
	case si.WALLevel == "logical":
		if system, err = adm.Identify(ctx); err != nil {
			c.fail("replication", "%v", err)
		} else {
			c.ok("replication", "a replication connection is allowed (system %s)", system)
		}
	}
	if si.Superuser {
		c.ok("role", "%q is a superuser", si.User)
	} else if si.Replication {
		c.ok("role", "%q has REPLICATION", si.User)
	}

	slot, err := adm.SlotReleased(ctx, cfg.Slot, source.SlotRelease)
	if err != nil {
		c.fail("slot", "%v", err)
		return system, nil
	}
	c.publication(ctx, adm, cfg, si, slot)
	c.slot(cfg, si, slot)
	return system, &slot
}

func (c *checker) publication(ctx context.Context, adm *source.Admin, cfg source.Config, si source.ServerInfo, slot source.SlotState) {
	pub, err := adm.Publication(ctx, cfg.Publication)
	if err != nil {
		c.fail("publication", "%v", err)
		return
	}
	var tables []source.TableInfo
	if pub.Exists {
		what := "FOR ALL TABLES"
		if !pub.AllTables {
			what = "FOR TABLE"
		}
		by := "an administrator's (owner " + pub.Owner + ")"
		if pub.Walmirror {
			by = "created by walmirror"
		}
		if tables, err = adm.PublishedTables(ctx, cfg.Publication); err != nil {
			c.fail("publication", "%v", err)
			return
		}
		c.ok("publication", "%q exists (%s, %s); it decides which tables are replicated", cfg.Publication, what, by)
		if msg := source.TablesDisagree(cfg.Tables, pub, tables); msg != "" {
			c.warn("tables", "%s", msg)
		}
		if left := pub.Unpublished(); len(left) > 0 {
			c.warn("publication", "%q does not publish %s: the copy keeps what those change at the source and will differ from it (ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate'))",
				cfg.Publication, strings.Join(left, ", "), quoteIdent(cfg.Publication))
		}
	} else {
		if tables, err = adm.CandidateTables(ctx, cfg.Tables); err != nil {
			c.fail("tables", "%v", err)
			return
		}
		c.creatable(cfg, si, tables)
	}
	if unlogged, err := adm.UnloggedLeftOut(ctx, cfg.Publication, len(cfg.Tables) == 0, si.Version); err != nil {
		c.warn("tables", "%v", err)
	} else if len(unlogged) > 0 {
		c.warn("tables", "unlogged tables are not published, and the copy has none of them (their changes are in no WAL): %s; ALTER TABLE ... SET LOGGED on the source to have one copied (a published table made UNLOGGED stays in the copy as it was)", strings.Join(unlogged, ", "))
	}
	c.tables(pub, tables, slot, si.User, si.Version/10000)
	for _, t := range tables {
		c.published = append(c.published, t.Name)
	}
	c.publishedInfo = tables
}

// creatable checks that run may create the missing publication.
func (c *checker) creatable(cfg source.Config, si source.ServerInfo, tables []source.TableInfo) {
	name := quoteIdent(cfg.Publication)
	if len(cfg.Tables) == 0 {
		if si.Superuser {
			c.ok("publication", "%q is missing; run will create it FOR ALL TABLES", cfg.Publication)
		} else {
			c.fail("publication", "%q is missing and only a superuser may create it FOR ALL TABLES: have an administrator run CREATE PUBLICATION %s FOR ALL TABLES (or FOR TABLE ...), or pass --tables with tables role %q owns", cfg.Publication, name, si.User)
		}
		return
	}
	problems := 0
	for _, t := range tables {
		switch {
		case !t.Exists:
			c.fail("tables", "--tables names %s, which does not exist", t.Name)
			problems++
		case !t.Owned && !si.Superuser:
			c.fail("tables", "role %q does not own %s: CREATE PUBLICATION ... FOR TABLE needs ownership (or have an administrator create the publication %s)", si.User, t.Name, name)
			problems++
		}
	}
	if !si.CanCreate && !si.Superuser {
		c.fail("publication", "%q is missing and role %q lacks CREATE on database %q, which CREATE PUBLICATION needs", cfg.Publication, si.User, si.Database)
		problems++
	}
	if problems == 0 {
		c.ok("publication", "%q is missing; run will create it FOR TABLE %s", cfg.Publication, strings.Join(cfg.Tables, ", "))
	}
}

// tables checks the replica identity and readability of every table that
// is or would be published.
func (c *checker) tables(pub source.PublicationInfo, tables []source.TableInfo, slot source.SlotState, user string, major int) {
	n, bad := 0, 0
	for _, t := range tables {
		if !t.Exists {
			continue
		}
		n++
		if t.KeylessForUpdates() && !t.Partitioned {
			ident := "REPLICA IDENTITY NOTHING"
			fix := fmt.Sprintf("add a primary key or run ALTER TABLE %s REPLICA IDENTITY FULL", t.Name)
			switch {
			case t.ReplicaIdentity == 'd' && t.DeferrableKey:
				ident = "a DEFERRABLE primary key, which PostgreSQL does not take as its replica identity"
				fix = fmt.Sprintf("make the key NOT DEFERRABLE or run ALTER TABLE %s REPLICA IDENTITY FULL", t.Name)
			case t.ReplicaIdentity == 'd':
				ident = "no primary key"
			}
			switch {
			case !pub.Exists:
				c.fail("table", "%s has %s: once the publication exists, UPDATE and DELETE on it fail on the source (run creates the publication anyway, and warns: a table only ever inserted into, as pgbench_history, is fine); %s (or leave it out with --tables)", t.Name, ident, fix)
				bad++
			case pub.Update || pub.Delete:
				c.warn("table", "%s has %s: UPDATE and DELETE on it fail on the source while publication %q publishes them; %s", t.Name, ident, pub.Name, fix)
				bad++
			}
		}
		if len(t.GeneratedKey) > 0 && !t.Partition && (!pub.Exists || pub.Update || pub.Delete) {
			key := strings.Join(t.GeneratedKey, ", ")
			switch {
			case major < 18:
				c.warn("table", "%s's key includes generated columns (%s), which PostgreSQL before 18 does not publish: each UPDATE and DELETE on it makes walmirror copy the table again; run ALTER TABLE %s REPLICA IDENTITY FULL", t.Name, key, t.Name)
				bad++
			case pub.Exists && !pub.GeneratedColumns:
				c.warn("table", "%s's key includes generated columns (%s) that publication %q does not publish unless its column list names them: then UPDATE and DELETE on it fail on the source; ALTER PUBLICATION %s SET (publish_generated_columns = stored)", t.Name, key, pub.Name, quoteIdent(pub.Name))
				bad++
			}
		}
		if unpublished := t.UnpublishedGenerated(pub, major); len(unpublished) > 0 && t.ReplicaIdentity == 'f' && !t.Partitioned && (!pub.Exists || pub.Update || pub.Delete) {
			// PostgreSQL 18 takes every column of a REPLICA IDENTITY FULL
			// table for its identity, and refuses UPDATE and DELETE while a
			// publication leaves one of them out (helper-109).
			fix := "give it a primary key (REPLICA IDENTITY DEFAULT) or REPLICA IDENTITY USING INDEX"
			if len(t.Virtual) == 0 {
				fix += fmt.Sprintf(", or ALTER PUBLICATION %s SET (publish_generated_columns = stored)", quoteIdent(pub.Name))
			}
			if !pub.Exists {
				c.fail("table", "%s is REPLICA IDENTITY FULL with VIRTUAL generated columns (%s), which no publication publishes: once the publication exists, UPDATE and DELETE on it fail on the source (\"Replica identity must not contain unpublished generated columns\"); %s (or leave it out with --tables)",
					t.Name, strings.Join(unpublished, ", "), fix)
			} else {
				c.warn("table", "%s is REPLICA IDENTITY FULL with generated columns publication %q does not publish (%s): UPDATE and DELETE on it fail on the source (\"Replica identity must not contain unpublished generated columns\"); %s",
					t.Name, pub.Name, strings.Join(unpublished, ", "), fix)
			}
			bad++
		}
		if !t.CanSelect && !t.Partitioned {
			if slot.Exists {
				c.warn("table", "role %q may not SELECT %s: a later initial copy or --resync would fail (GRANT SELECT ON %s TO %s)", user, t.Name, t.Name, quoteIdent(user))
			} else {
				c.fail("table", "role %q may not SELECT %s, which the initial copy reads (GRANT SELECT ON %s TO %s)", user, t.Name, t.Name, quoteIdent(user))
			}
			bad++
		}
		if t.UnloggedPartitions {
			c.warn("table", "%s has an unlogged table among its partitions: the copy reads its rows, but their changes are in no WAL, so the copy of them goes stale (ALTER TABLE ... SET LOGGED on the source, or detach the unlogged partition)", t.Name)
			bad++
		}
		if t.ForeignPartitions {
			c.warn("table", "%s has a foreign table among its partitions: the copy reads its rows, but their changes are in no WAL, so the copy of them goes stale (leave %s out, or detach the foreign partition)", t.Name, t.Name)
			bad++
		}
		if t.RowSecurity && t.CanSelect {
			msg := fmt.Sprintf("row-level security hides rows of %s from role %q, while the stream carries them all: the initial copy would stop with an error (ALTER ROLE %s BYPASSRLS as a superuser, connect as the table's owner, or ALTER TABLE %s DISABLE ROW LEVEL SECURITY)",
				t.Name, user, quoteIdent(user), t.Name)
			if slot.Exists {
				c.warn("table", "%s", strings.Replace(msg, "the initial copy", "verify, --resync or a later copy", 1))
			} else {
				c.fail("table", "%s", msg)
			}
			bad++
		}
	}
	switch {
	case n == 0:
		c.warn("tables", "no table is published: the copy would be empty")
	case bad == 0:
		c.ok("tables", "%d table(s), each with a key or REPLICA IDENTITY FULL and readable", n)
	}
}

func (c *checker) slot(cfg source.Config, si source.ServerInfo, slot source.SlotState) {
	switch {
	case !slot.Exists && c.follows:
		// The target check says what that means.
	case !slot.Exists:
		if si.Slots >= si.MaxSlots {
			c.fail("slot", "%q is missing and every replication slot is in use (%d of max_replication_slots = %d): drop an unused one or raise the setting (restart)", cfg.Slot, si.Slots, si.MaxSlots)
		} else {
			c.ok("slot", "%q is missing; run will create it and copy the tables (%d of %d slots in use)", cfg.Slot, si.Slots, si.MaxSlots)
		}
	case slot.Plugin == "pgoutput" && slot.Database != si.Database:
		c.fail("slot", "%q decodes database %q, not %q: if the copy's database was renamed, name it in --source; if it was replaced (made again under its name), drop the old slot and run with --resync; if another copy follows that slot, choose another --slot",
			cfg.Slot, slot.Database, si.Database)
	case slot.Plugin != "pgoutput":
		c.fail("slot", "%q belongs to plugin %q in database %q, not pgoutput in %q: choose another --slot", cfg.Slot, slot.Plugin, slot.Database, si.Database)
	case slot.Active:
		c.fail("slot", "%v", slot.ActiveError())
	case slot.WALStatus == "lost":
		c.fail("slot", "%q was invalidated (%s): changes since %s are gone; run with --resync to rebuild the copy", cfg.Slot, source.InvalidationCause(slot.InvalidationReason), slot.ConfirmedFlush)
	default:
		c.ok("slot", "%q exists, confirmed up to %s, keeps %s of WAL (wal_status %s)", cfg.Slot, slot.ConfirmedFlush, formatBytes(slot.RetainedBytes), slot.WALStatus)
	}
	if si.Senders >= si.MaxWALSenders {
		c.fail("wal senders", "every WAL sender is in use (%d of max_wal_senders = %d): raise the setting (restart) or stop another replication client", si.Senders, si.MaxWALSenders)
	} else {
		c.ok("wal senders", "%d of max_wal_senders = %d in use", si.Senders, si.MaxWALSenders)
	}
}

func (c *checker) target(ctx context.Context, cfg source.Config, target, system string, slot *source.SlotState) {
	kind, path, err := parseTarget(target)
	if err != nil {
		c.fail("target", "%v", err)
		return
	}
	ts, err := readTargetState(ctx, target)
	if err != nil {
		c.fail("target", "%v", err)
		return
	}
	name := redactTarget(target)
	if kind == "postgres" && sameDatabase(ctx, cfg.DSN, target) {
		c.fail("target", "%s", sameDatabaseText(target))
		return
	}
	if kind == "postgres" && c.replicaRole {
		if err := replicaRoleRefused(ctx, target); err != nil {
			// run stops there (helper-86: check said ok).
			c.fail("target", "%s: the role may not set session_replication_role = replica, which run does so that the target's triggers and foreign keys do not fire: "+
				"make it a superuser, or on PostgreSQL 15+ GRANT SET ON PARAMETER session_replication_role TO it, or run with --pg-replica-role=false (%v)", name, err)
		}
	}
	if kind != "postgres" {
		// run opens an existing file for writing (helper-86: check said ok).
		switch hint := fileperm.Hint(path); {
		case hint != "" && ts.Exists:
			c.fail("target", "%s cannot be written: %s", path, hint)
			return
		case hint != "":
			c.fail("target", "%s cannot be created: %s (check that the directory exists and is writable)", path, hint)
			return
		}
	}
	if kind != "postgres" {
		c.names(kind)
	}
	switch {
	case kind != "postgres" && !ts.Exists:
		c.ok("target", "%s does not exist yet; run will create it", path)
		if slot != nil && slot.Exists && slot.Plugin == "pgoutput" {
			c.fail("slot", "%q already exists but the target has no walmirror state: run walmirror drop --slot %s (or choose another --slot)", cfg.Slot, cfg.Slot)
		}
		return
	case !ts.Found:
		have, err := existingTables(ctx, target, c.published)
		switch {
		case err != nil:
			c.fail("target", "%v", err)
		case len(have) > 0 && c.adopt:
			full, err := targetTables(ctx, target, c.published, true)
			switch {
			case err != nil:
				c.fail("target", "%v", err)
			case len(full) > 0:
				c.fail("target", "%s", adoptRowsText(target, full))
			default:
				c.warn("target", "%s already holds %s, which walmirror did not create: run takes them over while they are empty (--adopt-tables)", name, strings.Join(have, ", "))
			}
		case len(have) > 0:
			c.fail("target", "%s", foreignTablesText(target, have))
		case kind == "postgres" && !ts.CanCreate:
			c.fail("target", "%s is reachable, but the role may not create schemas there, which a new copy needs (GRANT CREATE ON DATABASE ... TO ...)", name)
		case kind == "postgres":
			// run creates each table in the schema of its source name
			// (helper-139: check said ok, run stopped at "permission
			// denied for schema public").
			closed, err := closedSchemas(ctx, target, c.published)
			switch {
			case err != nil:
				c.fail("target", "%v", err)
			case len(closed) > 0:
				c.fail("target", "%s is reachable, but the role may not create tables in schema %s there, which the copy's tables go into: GRANT CREATE ON SCHEMA %s TO the role", name, strings.Join(closed, ", "), strings.Join(closed, ", "))
			default:
				c.ok("target", "%s is reachable and holds no walmirror state; run will start a copy there", name)
			}
		default:
			c.ok("target", "%s exists and holds no walmirror state; run will start a copy in it", path)
		}
		if slot != nil && slot.Exists && slot.Plugin == "pgoutput" {
			c.fail("slot", "%q already exists but the target has no walmirror state: run walmirror drop --slot %s (or choose another --slot)", cfg.Slot, cfg.Slot)
		}
		return
	}
	st := ts.State
	c.ok("target", "%s holds a copy at %s (slot %q, %s, last commit %s)", name, st.LSN, st.Slot, phaseText(st.Phase), formatTime(ts.UpdatedAt))
	switch {
	case st.Slot != cfg.Slot:
		c.fail("target", "it follows slot %q, not %q: pass --slot %s or use a fresh target", st.Slot, cfg.Slot, st.Slot)
	case system != "" && st.SystemID != "" && st.SystemID != system:
		c.fail("target", "it was copied from another PostgreSQL cluster (system %s, the source is %s): if the source named is the copy's and was replaced (pg_upgrade, a dump restored into a new cluster), run with --resync to copy every table again; otherwise check --source", st.SystemID, system)
	case slot != nil && !slot.Exists && st.Phase == "streaming":
		c.fail("slot", "%q is gone but the target follows it: changes since %s cannot be streamed; run with --resync to rebuild the copy", cfg.Slot, st.LSN)
	case slot != nil && slot.Exists && st.SlotGuard && st.Phase == "streaming" && slot.ConfirmedFlush > st.LSN:
		c.fail("slot", "%v; run with --resync to recreate the slot and copy every table again", &source.SlotAheadError{Slot: cfg.Slot, From: st.LSN, Confirmed: slot.ConfirmedFlush})
	case slot != nil && slot.Exists && slot.WALStatus != "lost" && system != "" && st.Phase == "streaming":
		c.history(ctx, cfg, st.Timeline, st.LSN)
	}
}

// names checks the published tables' names against what an SQLite or
// DuckDB target refuses: names that differ in letter case only (tables,
// columns, DuckDB's schemas), reserved names, columns that hide the rowid
// of a table whose changes carry no key. run stops at the first such table
// (helper-104: check said ok).
func (c *checker) names(kind string) {
	problem, folded := sqlite.NameProblem, func(t *schema.Table) string { return sqlite.FoldedName(t.Schema, t.Name) }
	if kind == "duckdb" {
		problem, folded = duckdb.NameProblem, func(t *schema.Table) string { _, f := duckdb.Folded(t.Schema, t.Name); return t.Schema + "." + f }
	}
	bad := 0
	tables := map[string]string{}  // folded target name → source table
	schemas := map[string]string{} // DuckDB: folded schema name → schema ("": clash said)
	for _, ti := range c.publishedInfo {
		if !ti.Exists || ti.Partition {
			// A partition's rows go into its root's table
			// (publish_via_partition_root), whose columns it has.
			continue
		}
		cols := make([]schema.Column, len(ti.Columns))
		for i, n := range ti.Columns {
			cols[i] = schema.Column{Name: n, Key: slices.Contains(ti.Key, n)}
		}
		t := schema.NewTable(0, ti.Name.Schema, ti.Name.Name, ti.ReplicaIdentity, cols)
		if err := problem(t); err != nil {
			c.fail("names", "%v", err)
			bad++
		}
		if kind == "duckdb" {
			f, _ := duckdb.Folded(t.Schema, t.Name)
			switch other, ok := schemas[f]; {
			case !ok:
				schemas[f] = t.Schema
			case other != t.Schema && other != "":
				c.fail("names", "schemas %q and %q hold published tables, and DuckDB does not tell them apart (its names ignore letter case): rename one of the two in the source, or leave the tables of one out of the publication", other, t.Schema)
				bad++
				schemas[f] = "" // said
			}
		}
		if other, ok := tables[folded(t)]; ok {
			c.fail("names", "source tables %s and %s map to %s names that differ in letter case only, which it does not tell apart: rename one of the two in the source, or leave one out of the publication", other, t.QualifiedName(), targetKindName(kind))
			bad++
			continue
		}
		tables[folded(t)] = t.QualifiedName()
	}
	if bad == 0 && len(tables) > 0 {
		c.ok("names", "%d table(s): names and columns %s tells apart", len(tables), targetKindName(kind))
	}
}

func targetKindName(kind string) string {
	if kind == "duckdb" {
		return "DuckDB"
	}
	return "SQLite"
}

// history checks that the source still holds what the copy applied (run
// stops otherwise): not a standby promoted before it received it, nor a
// source restored from a backup taken before.
func (c *checker) history(ctx context.Context, cfg source.Config, tli uint32, at lsn.LSN) {
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		c.fail("history", "%v", err)
		return
	}
	defer adm.Close(context.WithoutCancel(ctx))
	problem := ""
	if _, err = adm.Identify(ctx); err == nil {
		problem, err = adm.OtherHistory(ctx, tli, at)
	}
	switch {
	case err != nil:
		c.fail("history", "%v", err)
	case problem != "":
		c.fail("history", "%s; run with --resync to recreate the slot and copy every table again", problem)
	default:
		c.ok("history", "the source holds what the copy applied (timeline %d)", adm.Timeline())
	}
}

func phaseText(phase string) string {
	if phase == "streaming" {
		return "initial copy complete"
	}
	return "initial copy in progress"
}

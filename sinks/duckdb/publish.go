package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walmirror/walmirror/schema"
)

// tableRef names a DuckDB table of the copy (schema and table as DuckDB
// has them).
type tableRef struct{ schema, table string }

// touch records that the open transaction writes t.
func (s *Sink) touch(t *schema.Table) { s.touched[tableRef{t.Schema, t.Name}] = struct{}{} }

// publication is what the last PublishCopy to a path left there: the
// commits its snapshot held, and the file as written (a file changed since
// by someone else is not built upon).
type publication struct {
	seq   uint64
	size  int64
	mtime time.Time
}

// PublishCopy writes a consistent, checkpointed copy of the database as of
// its last commit to path, for other processes to open read-only while
// walmirror keeps writing the live file (which DuckDB does not let them
// open). The copy is written beside path (path + ".tmp") and renamed over
// it, so readers see the old copy or the new one, never a partial one;
// readers that have the old copy open keep reading it. It reads on a
// connection of its own, so it may be called at any time from any goroutine
// (say every few minutes from the program that runs apply.Run with this
// sink): replication goes on meanwhile, and an open transaction's changes
// are not in the copy.
//
// Its cost: the first copy to a path in a process copies the whole
// database. After that, PublishCopy does nothing when no transaction has
// committed since, and otherwise starts from the copy it published last
// (a byte copy of the file) and copies again only the tables written
// since, unless a table was created, altered, renamed or dropped meanwhile
// or the file at path is not the one it wrote.
//
//	duckdb -readonly copy.duckdb 'SELECT count(*) FROM public.orders'
func (s *Sink) PublishCopy(ctx context.Context, path string) error {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if err := s.publish(ctx, path); err != nil {
		return fmt.Errorf("publish copy to %q: %w", path, err)
	}
	return nil
}

// CheckPublishPath says why PublishCopy cannot replace the file at path,
// or nil: path is the live database, its directory is missing, or a file
// there is not a copy walmirror published of this target (a text file,
// another program's database, another walmirror target's file were
// replaced, exit 0: helper-139). A file another process holds cannot be
// looked into: ErrPublishHeld.
func (s *Sink) CheckPublishPath(ctx context.Context, path string) error {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	return s.checkPublishPath(ctx, path)
}

func (s *Sink) checkPublishPath(ctx context.Context, path string) error {
	if same, err := samePath(path, s.path); err != nil || same {
		if err == nil {
			err = errors.New("that is the live database: give another path for the copy readers open")
		}
		return err
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("its directory %q does not exist: create it first", dir)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	notOurs := func(why string) error {
		return fmt.Errorf("a file is there that is not a copy walmirror published (%s), and publishing would replace it: move it away or give another path", why)
	}
	if !fi.Mode().IsRegular() {
		return notOurs("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	head := make([]byte, 12)
	n, _ := io.ReadFull(f, head)
	f.Close()
	if n < 12 || string(head[8:12]) != "DUCK" {
		return notOurs("not a DuckDB database")
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	s.publishN++
	alias := "walmirror_check_" + strconv.Itoa(s.publishN)
	if _, err := conn.ExecContext(ctx, "ATTACH "+literal(path)+" AS "+quote(alias)+" (TYPE DUCKDB, READ_ONLY)"); err != nil {
		if holder, held := LockHolder(err); held {
			// Some process has it open read-write: a reader of the copy
			// that did not open it read-only, or a live database (another
			// program's, a walmirror's), which must not be replaced
			// (helper-143). Not published until it can be looked into.
			return fmt.Errorf("%w: %s has it open read-write, so walmirror cannot check that it is a copy it published; readers must open it read-only (duckdb -readonly); publishing resumes once no process holds it", ErrPublishHeld, holder)
		}
		return notOurs(fmt.Sprintf("DuckDB cannot open it read-only: %v", err))
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "DETACH "+quote(alias)) }()
	var tables int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' AND table_name = '_walmirror_state'`, alias).Scan(&tables); err != nil {
		return err
	}
	if tables != 1 {
		return notOurs("a DuckDB database without walmirror's state")
	}
	// A copy of this target holds its slot and source; another target's
	// live file (its run stopped) holds its own (helper-142).
	var liveSlot, liveSys, pubSlot, pubSys sql.NullString
	if err := conn.QueryRowContext(ctx, `SELECT slot, system_id FROM `+stateTable+` WHERE id = 1`).Scan(&liveSlot, &liveSys); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err := conn.QueryRowContext(ctx, `SELECT slot, system_id FROM `+quote(alias)+`.main._walmirror_state WHERE id = 1`).Scan(&pubSlot, &pubSys); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	switch {
	case pubSlot.String == "":
	case liveSlot.String == "":
		// This target holds no copy yet: a file naming a slot is some
		// other target's (helper-143: replaced on a first run).
		return notOurs(fmt.Sprintf("a copy of a walmirror target following slot %q of source system %s, where this target holds no copy yet", pubSlot.String, pubSys.String))
	case liveSlot != pubSlot || liveSys != pubSys:
		return notOurs(fmt.Sprintf("a copy of another walmirror target: slot %q of source system %s, where this one follows slot %q of %s", pubSlot.String, pubSys.String, liveSlot.String, liveSys.String))
	}
	return nil
}

// ErrPublishHeld is in CheckPublishPath's and PublishCopy's error when
// another process holds the file at the path (a reader that opened it
// read-write, or a live database): it is not replaced, and may be later.
var ErrPublishHeld = errors.New("the file to publish to is held by another process")

func (s *Sink) publish(ctx context.Context, path string) error {
	prev, ok := s.published[path]
	if ok {
		if fi, err := os.Stat(path); err != nil || fi.Size() != prev.size || !fi.ModTime().Equal(prev.mtime) {
			s.log.Debug("publishing a whole copy: the file is not the one published last", "path", path)
			ok = false
		}
	}
	if !ok {
		// Not the file published last: whatever is there now.
		if err := s.checkPublishPath(ctx, path); err != nil {
			return err
		}
	}
	delete(s.published, path) // until this one succeeds
	s.commitMu.Lock()
	unchanged := s.seq
	s.commitMu.Unlock()
	if ok && unchanged == prev.seq {
		s.published[path] = prev
		s.log.Debug("published copy is current", "path", path)
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tmp := path + ".tmp"
	for _, p := range []string{tmp, tmp + ".wal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	s.publishN++
	alias := quote("walmirror_publish_" + strconv.Itoa(s.publishN))
	attached := false
	defer func() {
		if attached {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DETACH "+alias)
		}
		_ = os.Remove(tmp)
		_ = os.Remove(tmp + ".wal")
	}()
	var seq uint64
	done := false
	if ok {
		if err := copyFile(path, tmp); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, "ATTACH "+literal(tmp)+" AS "+alias+" (TYPE DUCKDB)"); err != nil {
			return fmt.Errorf("open %q: %w", tmp, err)
		}
		attached = true
		if seq, done, err = s.publishChanges(ctx, conn, alias, prev.seq); err != nil {
			return err
		}
		if !done {
			// Start again from an empty file.
			if _, err := conn.ExecContext(ctx, "DETACH "+alias); err != nil {
				return err
			}
			attached = false
			if err := os.Remove(tmp); err != nil {
				return err
			}
		}
	}
	if !done {
		if _, err := conn.ExecContext(ctx, "ATTACH "+literal(tmp)+" AS "+alias+" (TYPE DUCKDB)"); err != nil {
			return fmt.Errorf("create %q: %w", tmp, err)
		}
		attached = true
		// Every commit seq counts is in the copy (a later one may be too:
		// it is copied again next time).
		s.commitMu.Lock()
		seq = s.seq
		s.commitMu.Unlock()
		// One statement: one snapshot of what is committed.
		if _, err := conn.ExecContext(ctx, "COPY FROM DATABASE "+quote(Catalog)+" TO "+alias); err != nil {
			return err
		}
	}
	// The copy must be one self-contained file. DuckDB now and then refuses
	// a CHECKPOINT while the writer's transaction is active ("other write
	// transactions"); that passes.
	giveUp := time.Now().Add(10 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		_, err := conn.ExecContext(ctx, "CHECKPOINT "+alias)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "other write transactions") || time.Now().After(giveUp) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	if _, err := conn.ExecContext(ctx, "DETACH "+alias); err != nil {
		return err
	}
	attached = false
	if _, err := os.Stat(tmp + ".wal"); err == nil {
		return errors.New("DuckDB left a write-ahead log beside the copy; not published")
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	// A write-ahead log left beside an earlier copy would be replayed into
	// the new one.
	if err := os.Remove(path + ".wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if err := syncFile(filepath.Dir(path)); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil {
		s.published[path] = publication{seq: seq, size: fi.Size(), mtime: fi.ModTime()}
	}
	return nil
}

// publishChanges brings the copy attached as alias, published when seq
// was since commits, up to date in one transaction: the tables written
// since, and walmirror's own tables. It reports false, changing nothing,
// when the two catalogs differ (a table created, altered, renamed or
// dropped since): then only a whole copy will do.
func (s *Sink) publishChanges(ctx context.Context, conn *sql.Conn, alias string, since uint64) (uint64, bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	// DuckDB starts a transaction's snapshot of a database when the
	// transaction first reads it: read the live one while no commit can
	// land, so the snapshot holds exactly the commits seq counts.
	s.commitMu.Lock()
	var one int
	err = tx.QueryRowContext(ctx, "SELECT count(*) FROM "+stateTable).Scan(&one)
	seq := s.seq
	var dirty []tableRef
	for t, at := range s.lastWrite {
		if at > since {
			dirty = append(dirty, t)
		}
	}
	s.commitMu.Unlock()
	if err != nil {
		return 0, false, err
	}
	live, err := catalogOf(ctx, tx, Catalog)
	if err != nil {
		return 0, false, err
	}
	pub, err := catalogOf(ctx, tx, strings.Trim(alias, `"`))
	if err != nil {
		return 0, false, err
	}
	if !slices.Equal(live, pub) {
		s.log.Debug("publishing a whole copy: tables were created, altered or dropped since the last one")
		return 0, false, nil
	}
	for _, t := range live { // walmirror's own tables: small, written by every commit
		if t.schema == "main" && strings.HasPrefix(t.table, "_walmirror_") {
			dirty = append(dirty, tableRef{t.schema, t.table})
		}
	}
	slices.SortFunc(dirty, func(a, b tableRef) int { return strings.Compare(a.schema+"."+a.table, b.schema+"."+b.table) })
	dirty = slices.Compact(dirty)
	for _, t := range dirty {
		src := quote(Catalog) + "." + quote(t.schema) + "." + quote(t.table)
		dst := alias + "." + quote(t.schema) + "." + quote(t.table)
		if !slices.ContainsFunc(live, func(c catalogRow) bool { return c.tableRef == t }) {
			continue // written, then dropped or renamed: the catalogs say it is gone from both
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+dst); err != nil {
			return 0, false, fmt.Errorf("copy %s again: %w", src, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+dst+" SELECT * FROM "+src); err != nil {
			return 0, false, fmt.Errorf("copy %s again: %w", src, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, false, err
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		names := make([]string, len(dirty))
		for i, t := range dirty {
			names[i] = t.schema + "." + t.table
		}
		s.log.Debug("published copy: copied again the tables written since the last one", "tables", strings.Join(names, ","))
	}
	return seq, true, nil
}

// catalogRow is one column of a table of a database, as a whole copy would
// make it; catalogs compare equal when their sorted rows are equal.
type catalogRow struct {
	tableRef
	column, typ, comment string
	index                int64
}

func catalogOf(ctx context.Context, tx *sql.Tx, db string) ([]catalogRow, error) {
	rows, err := tx.QueryContext(ctx, `SELECT c.schema_name, c.table_name, c.column_name, c.column_index, c.data_type,
			coalesce(CAST(t.comment AS VARCHAR), '') || '/' || coalesce(CAST(c.comment AS VARCHAR), '')
		FROM duckdb_columns() c JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
		WHERE c.database_name = ? ORDER BY 1, 2, 4`, db)
	if err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", db, err)
	}
	defer rows.Close()
	var out []catalogRow
	for rows.Next() {
		var r catalogRow
		if err := rows.Scan(&r.schema, &r.table, &r.column, &r.index, &r.typ, &r.comment); err != nil {
			return nil, fmt.Errorf("list the tables of %s: %w", db, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", db, err)
	}
	return out, nil
}

// copyFile copies the file src to dst (created).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

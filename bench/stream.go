package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/source/pgoutput"
)

// The stream workload: one large transaction, an INSERT ... SELECT of three
// columns, committed while one consumer follows live; the time from the
// source's COMMIT returning to the transaction being visible in the copy.
// Each consumer runs alone, on a database of its own, with the source's
// default logical_decoding_work_mem (64MB), so the server streams the
// transaction while it runs. References in the same run: a decode-only
// consumer of the streaming protocol (the time until the server has sent
// the commit: nobody's copy can be earlier) and PostgreSQL's built-in
// subscriber (streaming = on on 14-15, parallel on 16+).

const streamDDL = `CREATE TABLE big (id bigint PRIMARY KEY, n int, v text)`

// StreamReport is one consumer's large transaction.
type StreamReport struct {
	Rows      int
	SourceTxn time.Duration // BEGIN to COMMIT returning, on the source
	Visible   time.Duration // COMMIT returned → visible in the copy
	// CommitReceived: COMMIT returned → walmirror received the Stream
	// Commit (its debug log): the server's part of Visible; 0 if unknown.
	CommitReceived time.Duration
	SpillBytes     int64 // the slot's spill_bytes (pg_stat_replication_slots)
	StreamTxns     int64
	VisibleBy      string // how visibility was seen
}

func (e *env) streamWorkload(ctx context.Context) error {
	mode := "on"
	if e.src.Major() >= 16 {
		mode = "parallel"
	}
	e.report.addWorkload("stream", fmt.Sprintf("one INSERT ... SELECT of %s rows (bigint key, int, md5 text) in a single transaction, committed while the consumer follows live, alone, with the source's default logical_decoding_work_mem (64MB); time from the COMMIT returning to the rows visible in the copy. The built-in subscriber uses streaming = %s; decode-only (protocol %d, streaming) is when the server had sent the commit", joinInts(e.cfg.streamRows), mode, maxProto(e.src.Major())))
	for _, rows := range e.cfg.streamRows {
		for _, c := range e.cfg.consumers {
			res, err := e.streamOne(ctx, rows, c, mode)
			if err != nil {
				return fmt.Errorf("%d rows, %s: %w", rows, c, err)
			}
			s := res.stream
			log.Printf("  %-18s %8d rows: source txn %6.2fs  commit → visible %6.2fs (server %.2fs)  spill_bytes %d  rss %6.1f MB  equal=%v %s",
				res.consumer, rows, s.SourceTxn.Seconds(), s.Visible.Seconds(), s.CommitReceived.Seconds(), s.SpillBytes, res.rssMB, res.equal, res.detail)
			e.report.add(res)
		}
	}
	return nil
}

func maxProto(major int) int {
	switch {
	case major >= 16:
		return 4
	case major >= 15:
		return 3
	}
	return 2
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " and ")
}

// streamOne measures one consumer on one transaction of rows rows.
func (e *env) streamOne(ctx context.Context, rows int, consumer, mode string) (result, error) {
	name := fmt.Sprintf("stream_%d_%s", rows, consumer) // CreateDatabase makes it a name
	db, err := e.src.CreateDatabase(ctx, name)
	if err != nil {
		return result{}, err
	}
	if err := e.src.Exec(ctx, db, streamDDL+`; CREATE PUBLICATION bench FOR ALL TABLES`); err != nil {
		return result{}, err
	}
	res := result{workload: "stream", stream: &StreamReport{Rows: rows}}
	var f follower
	switch consumer {
	case "decode":
		f = &streamDecoder{e: e, db: db, slot: "decode_" + db}
		res.consumer = "decode-only"
	case "builtin":
		f = &streamBuiltin{builtin: builtin{e: e, db: db}, mode: mode}
		res.consumer = "built-in"
	default:
		w := e.walmirror(db, consumer, "wm_"+db)
		f = &streamWalmirror{w: w}
		res.consumer = w.name()
	}
	if err := f.start(ctx); err != nil {
		return result{}, fmt.Errorf("start: %w", err)
	}
	defer f.abandon()
	conn, err := pgx.Connect(ctx, e.src.DSN(db))
	if err != nil {
		return result{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	began := time.Now()
	if _, err := conn.Exec(ctx, `BEGIN`); err != nil {
		return result{}, err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO big SELECT i, i %% 1000, md5(i::text) FROM generate_series(1, %d) i`, rows)); err != nil {
		return result{}, err
	}
	// The commit record starts at or after this position: a copy at or
	// past it holds the transaction.
	var text string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return result{}, err
	}
	before, err := lsn.Parse(text)
	if err != nil {
		return result{}, err
	}
	if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
		return result{}, err
	}
	committed := time.Now()
	by, err := f.visible(ctx, before, rows)
	if err != nil {
		return result{}, fmt.Errorf("wait for the transaction: %w", err)
	}
	visibleAt := time.Now()
	if d, ok := f.(*streamDecoder); ok {
		visibleAt = d.seenAt
	}
	s := res.stream
	s.SourceTxn, s.Visible, s.VisibleBy = committed.Sub(began), visibleAt.Sub(committed), by
	u, err := f.stop(ctx)
	if err != nil {
		return result{}, err
	}
	res.rssMB, res.cpu = u.rssMB, u.cpu
	if at, ok := streamCommitLogged(u.log, before); ok {
		s.CommitReceived = at.Sub(committed)
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(spill_bytes), 0)::bigint, coalesce(sum(stream_txns), 0)::bigint
		FROM pg_stat_replication_slots s JOIN pg_replication_slots r USING (slot_name) WHERE r.database = current_database()`).Scan(&s.SpillBytes, &s.StreamTxns); err != nil {
		return result{}, err
	}
	res.equal = true
	if kind, target := f.copy(); kind != "" {
		checks := []check{{"big", "count(*), sum(id), sum(n)"}}
		want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
		if err != nil {
			return result{}, err
		}
		got, err := e.aggregates(ctx, kind, target, checks)
		res.equal = err == nil && got == want
		if !res.equal {
			res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
		}
	}
	f.abandon()
	// The slot goes (it would pin the WAL of the next transactions) once
	// its walsender has gone.
	if err := waitFor(ctx, conn, `SELECT count(*) = 0 FROM pg_replication_slots WHERE database = current_database() AND active`); err != nil {
		return result{}, err
	}
	if err := e.src.Exec(ctx, db, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE database = current_database()`); err != nil {
		return result{}, err
	}
	return res, nil
}

// follower is a consumer following the source live.
type follower interface {
	start(ctx context.Context) error
	// visible returns once the transaction committed before pos (rows rows)
	// is visible in the copy, saying how that was seen.
	visible(ctx context.Context, pos lsn.LSN, rows int) (string, error)
	stop(ctx context.Context) (result, error) // result: rusage of a walmirror process
	copy() (kind, target string)
	abandon() // after stop, or on an error: release what is left
}

// ---- walmirror ----

type streamWalmirror struct {
	w      *walmirrorRun
	cmd    *exec.Cmd
	stderr bytes.Buffer
	client rywClient
	began  time.Time
}

func (s *streamWalmirror) start(ctx context.Context) error {
	if err := s.w.prepare(ctx); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	// Debug: the log says when the Stream Commit arrived.
	s.cmd = exec.CommandContext(ctx, s.w.e.binary, s.w.args("--metrics-addr", addr, "--log-level", "debug")...)
	s.stderr.Reset()
	s.cmd.Stdout, s.cmd.Stderr = s.w.e.logs, io.MultiWriter(s.w.e.logs, &s.stderr)
	s.began = time.Now()
	if err := s.cmd.Start(); err != nil {
		return err
	}
	src, err := pgx.Connect(ctx, s.w.e.src.DSN(s.w.db))
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	s.client = rywClient{src: src, base: "http://" + addr}
	return s.client.waitReady(ctx)
}

func (s *streamWalmirror) visible(ctx context.Context, pos lsn.LSN, rows int) (string, error) {
	code, err := s.client.wait(ctx, pos.String(), "10m")
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("/wait answered %d", code)
	}
	return "/wait", nil
}

func (s *streamWalmirror) stop(ctx context.Context) (result, error) {
	s.cmd.Process.Signal(syscall.SIGINT)
	err := s.cmd.Wait()
	cmd := s.cmd
	s.cmd = nil
	if err != nil {
		return result{}, fmt.Errorf("walmirror: %w", err)
	}
	res := usage(cmd, time.Since(s.began))
	res.log = s.stderr.String()
	return res, nil
}

// streamCommitLogged finds when walmirror logged the Stream Commit of a
// transaction committed at or after pos.
func streamCommitLogged(logText string, pos lsn.LSN) (time.Time, bool) {
	for _, line := range strings.Split(logText, "\n") {
		if !strings.Contains(line, `msg="streamed transaction committed"`) {
			continue
		}
		var at time.Time
		var commit lsn.LSN
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "time":
				at, _ = time.Parse(time.RFC3339Nano, v)
			case "commit_lsn":
				commit, _ = lsn.Parse(v)
			}
		}
		if commit >= pos && !at.IsZero() {
			return at, true
		}
	}
	return time.Time{}, false
}

func (s *streamWalmirror) copy() (string, string) { return s.w.kind(), s.w.target() }

func (s *streamWalmirror) abandon() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// ---- the built-in subscriber ----

type streamBuiltin struct {
	builtin
	mode string
	conn *pgx.Conn // to the copy
}

func (s *streamBuiltin) start(ctx context.Context) error {
	s.targetDB = strings.ReplaceAll(s.db, "-", "_") + "_builtin"
	if err := s.e.dst.Exec(ctx, "postgres", "CREATE DATABASE "+quoteIdent(s.targetDB)); err != nil {
		return err
	}
	if err := s.e.dst.Exec(ctx, s.targetDB, streamDDL); err != nil { // (pg_dump is not in every bin directory)
		return err
	}
	create := fmt.Sprintf(`CREATE SUBSCRIPTION builtin CONNECTION '%s' PUBLICATION bench
		WITH (slot_name = 'builtin_%s', binary = true, streaming = %s, copy_data = true)`,
		strings.ReplaceAll(s.e.src.DSN(s.db), "'", "''"), strings.ReplaceAll(s.db, "-", "_"), s.mode)
	if err := s.e.dst.Exec(ctx, s.targetDB, create); err != nil {
		return err
	}
	var err error
	if s.conn, err = pgx.Connect(ctx, s.e.dst.DSN(s.targetDB)); err != nil {
		return err
	}
	return waitFor(ctx, s.conn, `SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate <> 'r'`)
}

// visible polls the copy for the transaction's last row (all its rows
// become visible at once) every 5 ms.
func (s *streamBuiltin) visible(ctx context.Context, _ lsn.LSN, rows int) (string, error) {
	for {
		var ok bool
		if err := s.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM big WHERE id = $1)`, rows).Scan(&ok); err != nil {
			return "", err
		}
		if ok {
			return "row read from the copy", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *streamBuiltin) stop(ctx context.Context) (result, error) { return result{}, nil }

func (s *streamBuiltin) copy() (string, string) { return "postgres", s.target() }

func (s *streamBuiltin) abandon() {
	if s.conn != nil {
		s.conn.Close(context.Background())
		s.conn = nil
		_ = s.drop(context.Background())
	}
}

// ---- decode-only, streaming ----

// streamDecoder receives and decodes the stream (protocol and streaming
// mode as walmirror asks for them) from the start, on a goroutine of its
// own, and discards it: the transaction is "visible" when its commit
// arrives. (A consumer that stops reading while the transaction runs makes
// the walsender wait on a full socket and fall behind.)
type streamDecoder struct {
	e        *env
	db, slot string
	conn     *pgconn.PgConn
	cancel   context.CancelFunc
	seenAt   time.Time
	commits  chan commitSeen
	done     chan struct{} // closed when receive returns, with err
	err      error
}

type commitSeen struct {
	at  time.Time
	lsn lsn.LSN
}

func (d *streamDecoder) start(ctx context.Context) error {
	if err := d.e.src.Exec(ctx, d.db, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, d.slot)); err != nil {
		return err
	}
	cfg, err := pgconn.ParseConfig(d.e.src.DSN(d.db))
	if err != nil {
		return err
	}
	cfg.RuntimeParams["replication"] = "database"
	if d.conn, err = pgconn.ConnectConfig(ctx, cfg); err != nil {
		return err
	}
	proto := maxProto(d.e.src.Major())
	streaming := "on"
	if proto >= 4 {
		streaming = "parallel"
	}
	err = pglogrepl.StartReplication(ctx, d.conn, d.slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: []string{fmt.Sprintf("proto_version '%d'", proto),
			"publication_names 'bench'", "streaming '" + streaming + "'"}})
	if err != nil {
		return err
	}
	dec, err := pgoutput.NewDecoder(pgoutput.DecodeOptions{Protocol: proto, ParallelAbort: proto >= 4})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	d.commits, d.done = make(chan commitSeen, 16), make(chan struct{})
	go func() {
		d.err = d.receive(rctx, dec)
		close(d.done)
	}()
	return nil
}

// receive reads until ctx ends. No context or clock per message (as in
// walmirror's receive loop): the server's keepalives ask for the status
// updates it needs, and the end of ctx closes the connection.
func (d *streamDecoder) receive(ctx context.Context, dec *pgoutput.Decoder) error {
	conn := d.conn
	defer context.AfterFunc(ctx, func() { conn.Close(context.Background()) })()
	var received pglogrepl.LSN
	for {
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			return err
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			if er, ok := msg.(*pgproto3.ErrorResponse); ok {
				return pgconn.ErrorResponseToPgError(er)
			}
			continue
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				return err
			}
			if ka.ReplyRequested {
				if err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
					WALWritePosition: received, WALFlushPosition: received, WALApplyPosition: received}); err != nil {
					return err
				}
			}
			continue
		case pglogrepl.XLogDataByteID:
		default:
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			return err
		}
		m, err := dec.Decode(xld.WALData)
		if err != nil {
			return err
		}
		received = max(received, xld.WALStart)
		var commit lsn.LSN
		switch m := m.(type) {
		case *pgoutput.StreamCommit:
			commit = m.CommitLSN
		case *pgoutput.Commit:
			commit = m.CommitLSN
		default:
			continue
		}
		select {
		case d.commits <- commitSeen{at: time.Now(), lsn: commit}:
		default: // nobody waits for it
		}
	}
}

// visible returns once the commit at or after pos has arrived (seenAt:
// when the receiving goroutine saw it).
func (d *streamDecoder) visible(ctx context.Context, pos lsn.LSN, _ int) (string, error) {
	for {
		select {
		case c := <-d.commits:
			if c.lsn >= pos {
				d.seenAt = c.at
				return "commit received", nil
			}
		case <-d.done:
			return "", fmt.Errorf("decode-only stream ended: %w", d.err)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (d *streamDecoder) stop(ctx context.Context) (result, error) { return result{}, nil }
func (d *streamDecoder) copy() (string, string)                   { return "", "" }

func (d *streamDecoder) abandon() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
		d.cancel = nil
	}
}

package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
)

// OpenComparison opens the source as of one position, for comparing a copy
// with it (walmirror verify): a temporary logical slot is created with an
// exported snapshot, and a repeatable-read transaction imports it. The
// snapshot's ConsistentPoint is the position it shows: every transaction
// whose commit record lies before it, and none after. Tables and Copy read
// the publication cfg.Publication in that snapshot; nothing is created on
// the source but the temporary slot, which goes with Close (or with the
// connection). A missing publication is an error, not created.
func OpenComparison(ctx context.Context, cfg Config) (_ *Snapshot, err error) {
	if cfg.Slot == "" {
		cfg.Slot = "walmirror" // only validated here: the comparison never uses it
	}
	if err := cfg.Validate(); err != nil {
		return nil, permanent("check configuration", "", err)
	}
	pcfg, err := connConfig(&cfg, false)
	if err != nil {
		return nil, permanent("connect to source", "", err)
	}
	ccfg, _ := pgx.ParseConfig("")
	ccfg.Config = *pcfg
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, classify("connect to source "+Describe(cfg.DSN), err)
	}
	defer func() {
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, cfg.Publication).Scan(&exists); err != nil {
		return nil, classify("look up publication", err)
	}
	if !exists {
		return nil, permanent("look up publication", "pass the --publication the copy was made from",
			fmt.Errorf("publication %q does not exist on the source", cfg.Publication))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg, log: log}
	repl, err := s.replicationConn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			repl.Close(context.WithoutCancel(ctx))
		}
	}()
	name := fmt.Sprintf("walmirror_verify_%d_%d", os.Getpid(), rand.N(1_000_000))
	// Creating it waits for every transaction open on the source (a
	// forgotten prepared one: forever): say which, as for walmirror's slot.
	s.cfg.Slot = name
	began := time.Now()
	stopNotice := s.noticeSlotWait(ctx)
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	stopNotice()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The caller's bound on the wait: say what it waited for.
			if blockers, berr := s.slotBlockers(context.WithoutCancel(ctx), began); berr == nil && len(blockers) > 0 {
				err = fmt.Errorf("%w (waiting for %s)", err, strings.Join(blockers, "; "))
			}
		}
		return nil, classify("create temporary replication slot", err)
	}
	point, err := lsn.Parse(res.ConsistentPoint)
	if err != nil {
		return nil, fmt.Errorf("create temporary replication slot: consistent point: %w", err)
	}
	sn := &Snapshot{ConsistentPoint: point, repl: repl, conn: conn, publication: cfg.Publication}
	sn.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err == nil {
		_, err = sn.tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(res.SnapshotName))
	}
	if err != nil {
		return nil, classify("open snapshot transaction", err)
	}
	return sn, nil
}

// CopyOrdered is Copy with the rows sorted: orderBy is the body of an ORDER
// BY clause over the table's columns (quoted names, COLLATE, ...).
func (sn *Snapshot) CopyOrdered(ctx context.Context, t *schema.Table, orderBy string, fn func(schema.Tuple) error) error {
	q, ok := sn.queries[t.ID]
	if !ok {
		return fmt.Errorf("copy %s: table not listed by Tables", t.QualifiedName())
	}
	q, err := sn.named(ctx, t, q)
	if err != nil {
		return err
	}
	q = strings.TrimSuffix(q, ") TO STDOUT") + " ORDER BY " + orderBy + ") TO STDOUT"
	return copyOut(ctx, sn.tx.Conn().PgConn(), t, q, fn)
}

// ErrSlotActive is returned by WaitSlotIdle when a process still streams
// from the slot: a walmirror is running into the copy that follows it.
// errors.Is matches every *SlotActiveError with it too.
var ErrSlotActive = errors.New("replication slot is in use")

// WaitSlotIdle waits up to wait for no process to be streaming from the
// named slot (a walsender lingers briefly after its client left), and
// returns an error wrapping ErrSlotActive, naming the process, if one
// still is. A slot that does not exist is idle.
func (sn *Snapshot) WaitSlotIdle(ctx context.Context, slot string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		var pid *int32
		err := sn.conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && pid == nil {
			return nil
		}
		if err != nil {
			return classify("look up replication slot", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: slot %q is streaming to server process %d", ErrSlotActive, slot, *pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CopyRange is CopyOrdered restricted to the rows for which where (an SQL
// condition over the table's columns, by their quoted names) holds.
func (sn *Snapshot) CopyRange(ctx context.Context, t *schema.Table, where, orderBy string, fn func(schema.Tuple) error) error {
	from, err := sn.published(ctx, t)
	if err != nil {
		return err
	}
	return copyOut(ctx, sn.tx.Conn().PgConn(), t, "COPY (SELECT * FROM "+from+" WHERE "+where+" ORDER BY "+orderBy+") TO STDOUT", fn)
}

// QueryPublished runs a query over the published rows of t in the
// snapshot: build gets a FROM item (a subquery named s, with the
// publication's columns and row filter) and returns the query; fn gets
// each result row's values in text form (nil for NULL).
func (sn *Snapshot) QueryPublished(ctx context.Context, t *schema.Table, build func(from string) string, fn func(values [][]byte) error) error {
	from, err := sn.published(ctx, t)
	if err != nil {
		return err
	}
	res := sn.tx.Conn().PgConn().ExecParams(ctx, build(from), nil, nil, nil, nil)
	for res.NextRow() {
		if err := fn(res.Values()); err != nil {
			res.Close()
			return err
		}
	}
	if _, err := res.Close(); err != nil {
		return classify("query "+t.QualifiedName(), err)
	}
	return nil
}

// published is the snapshot's query of t's published rows as a FROM item
// (naming t as it is named now: see named).
func (sn *Snapshot) published(ctx context.Context, t *schema.Table) (string, error) {
	q, ok := sn.queries[t.ID]
	if !ok {
		return "", fmt.Errorf("read %s: table not listed by Tables", t.QualifiedName())
	}
	q, err := sn.named(ctx, t, q)
	if err != nil {
		return "", err
	}
	q = strings.TrimSuffix(strings.TrimPrefix(q, "COPY ("), ") TO STDOUT")
	return "(" + q + ") s", nil
}

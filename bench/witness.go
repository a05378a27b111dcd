package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// witness is a decode-only consumer of a slot of its own that follows the
// source while a walmirror run does, recording for every transaction the
// time from its source commit to its Commit message arriving here: what the
// server (decoding, sending) and the machine's scheduling add before any
// consumer can apply a transaction. Measured in the same run as
// walmirror's lag, it tells the source's part of that lag from
// walmirror's (a busy machine moves both).
type witness struct {
	e        *env
	db, slot string
	cancel   context.CancelFunc
	done     chan struct{}
	samples  []time.Duration
	err      error
}

// startWitness creates the witness's slot (before the workload starts, so it
// sees every transaction) and starts following it.
func (e *env) startWitness(ctx context.Context, db, slot string) (*witness, error) {
	if err := e.src.Exec(ctx, db, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, slot)); err != nil {
		return nil, fmt.Errorf("lag witness slot: %w", err)
	}
	cfg, err := pgconn.ParseConfig(e.src.DSN(db))
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication, PluginArgs: []string{"proto_version '1'", "publication_names 'bench'"}})
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &witness{e: e, db: db, slot: slot, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close(context.WithoutCancel(ctx))
		w.err = w.follow(wctx, conn)
		if wctx.Err() != nil {
			w.err = nil // stopped
		}
	}()
	return w, nil
}

// follow receives until ctx ends, timing each Commit message.
func (w *witness) follow(ctx context.Context, conn *pgconn.PgConn) error {
	var received pglogrepl.LSN
	next := time.Now().Add(time.Second)
	for {
		if time.Now().After(next) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
				WALWritePosition: received, WALFlushPosition: received, WALApplyPosition: received}); err != nil {
				return err
			}
			next = time.Now().Add(time.Second)
		}
		rctx, cancel := context.WithDeadline(ctx, next)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
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
				next = time.Now() // answer at once
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return err
			}
			if len(xld.WALData) > 0 && xld.WALData[0] == 'C' {
				m, err := pglogrepl.Parse(xld.WALData)
				if err != nil {
					return err
				}
				if c, ok := m.(*pglogrepl.CommitMessage); ok {
					w.samples = append(w.samples, time.Since(c.CommitTime))
				}
			}
			received = xld.WALStart
		}
	}
}

// stop ends the witness, drops its slot and reports its percentiles.
func (w *witness) stop(ctx context.Context) (LagReport, error) {
	w.cancel()
	<-w.done
	var r LagReport
	s := slices.Clone(w.samples)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if r.N = len(s); r.N > 0 {
		r.P50Ms, r.P99Ms, r.MaxMs = ms(s[r.N/2]), ms(s[min(r.N-1, r.N*99/100)]), ms(s[r.N-1])
	}
	// The walsender may still hold the slot for a moment after the
	// connection closed.
	var err error
	for range 50 {
		if err = w.e.src.Exec(ctx, w.db, fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, w.slot)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, errors.Join(w.err, err)
}

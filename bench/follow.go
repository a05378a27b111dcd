package main

import (
	"context"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// replicate opens a replication connection to db and starts pgoutput
// (protocol 1, the bench publication) on slot, from its confirmed position.
func (e *env) replicate(ctx context.Context, db, slot string) (*pgconn.PgConn, error) {
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
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return conn, nil
}

// follow receives from a started replication connection until ctx ends or
// a callback says done. It sends a status update every second, asking for
// a keepalive back (which carries the server's WAL end), and whenever the
// server asks. keepalive sees each keepalive, data each pgoutput message
// (undecoded: pglogrepl.Parse decodes it).
func follow(ctx context.Context, conn *pgconn.PgConn,
	keepalive func(pglogrepl.PrimaryKeepaliveMessage) (bool, error),
	data func(wal []byte) error) error {
	var received pglogrepl.LSN
	status := func(reply bool) error {
		return pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: received, WALFlushPosition: received, WALApplyPosition: received, ReplyRequested: reply})
	}
	next := time.Now().Add(time.Second)
	for {
		if time.Now().After(next) {
			if err := status(true); err != nil {
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
			if done, err := keepalive(ka); done || err != nil {
				return err
			}
			if ka.ReplyRequested {
				if err := status(false); err != nil {
					return err
				}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return err
			}
			if err := data(xld.WALData); err != nil {
				return err
			}
			received = xld.WALStart
		}
	}
}

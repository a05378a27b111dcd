package observe

import (
	"context"
	"log/slog"
	"time"
)

// LogProgress logs a progress line every interval until ctx is done: rates
// since the previous line, lag, position; during the initial copy, its
// progress instead.
func (m *Monitor) LogProgress(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev, prevAt := m.Summary(), m.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, at := m.Summary(), m.now()
		secs := at.Sub(prevAt).Seconds()
		online := func() []any {
			if s.Online.Tables == 0 {
				return nil
			}
			return []any{"online_copy_tables", s.Online.Tables, "online_copy_table", s.Online.Table,
				"online_copy_rows", s.Online.Rows, "online_copy_estimated_rows", s.Online.Estimate, "online_copy_chunks", s.Online.Chunks}
		}
		switch {
		case !s.CopyComplete && s.Snapshot.Tables > 0:
			log.Info("progress: initial copy", "tables_done", s.Snapshot.TablesDone, "tables", s.Snapshot.Tables,
				"table", s.Snapshot.Table, "rows", s.Snapshot.Rows,
				"rows_per_s", rate(s.SnapshotRows-prev.SnapshotRows, secs))
		case !s.CopyComplete && s.Online.Tables > 0:
			// A chunked initial copy streams meanwhile.
			log.Info("progress: initial copy", append(online(), "lag", s.Lag.Round(time.Millisecond), "applied", s.Applied)...)
		case s.CopyComplete:
			log.Info("progress", append([]any{"tx_per_s", rate(s.Transactions-prev.Transactions, secs),
				"rows_per_s", rate(s.Rows-prev.Rows, secs), "lag", s.Lag.Round(time.Millisecond),
				"lag_bytes", s.LagBytes, "applied", s.Applied, "transactions", s.Transactions, "rows", s.Rows}, online()...)...)
		}
		prev, prevAt = s, at
	}
}

// LogSummary logs the run's totals, once, at stop.
func (m *Monitor) LogSummary(log *slog.Logger) {
	s := m.Summary()
	args := []any{"uptime", s.Uptime.Round(time.Millisecond), "transactions", s.Transactions, "rows", s.Rows,
		"inserts", s.Inserts, "updates", s.Updates, "deletes", s.Deletes, "truncates", s.Truncates,
		"target_commits", s.Commits, "reconnects", s.Reconnects}
	if s.Applied != 0 { // 0: the run ended before streaming (nothing to do)
		args = append(args, "applied", s.Applied)
	}
	args = append(args, "lag", s.Lag.Round(time.Millisecond))
	switch {
	case s.SnapshotRows > 0 && !s.CopyComplete:
		// A single-transaction copy that did not commit left nothing.
		args = append(args, "initial_copy_rows_rolled_back", s.SnapshotRows)
	case s.SnapshotRows > 0:
		args = append(args, "initial_copy_rows", s.SnapshotRows)
	}
	if !s.LastCommit.IsZero() {
		args = append(args, "last_source_commit", s.LastCommit.UTC().Format(time.RFC3339Nano))
	}
	log.Info("summary", args...)
}

func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(int64(float64(n)/secs*10)) / 10
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// statusReport is what status prints (--json: as is).
type statusReport struct {
	LSN              string `json:"lsn"`
	Slot             string `json:"slot"`
	Phase            string `json:"phase"`
	SnapshotComplete bool   `json:"snapshot_complete"`
	// InitialCopyComplete: the snapshot is complete and no table of a
	// chunked initial copy is still to be copied (the copy holds every
	// table; /readyz's first condition).
	InitialCopyComplete bool   `json:"initial_copy_complete"`
	SystemID            string `json:"system_id"`
	// Publication is the one the copy is made from ("" when stored by an
	// older walmirror).
	Publication string `json:"publication,omitempty"`
	// LastTargetCommit is when the target last committed (its clock).
	LastTargetCommit *time.Time `json:"last_target_commit,omitempty"`
	// RunningPID: the report is read from the state file of the running
	// walmirror (this process ID) that holds the DuckDB file (runState),
	// not from the file itself.
	RunningPID int `json:"running_pid,omitempty"`
	// Copies are the tables being copied online, in the order they are
	// copied: the first "copying", the rest "waiting".
	Copies []copyStatus  `json:"copies,omitempty"`
	Source *sourceStatus `json:"source,omitempty"`
	// Error: why status could not say more (--json only; exit 1).
	Error string `json:"error,omitempty"`
}

// sourceStatus is what status adds when given --source.
type sourceStatus struct {
	CurrentLSN string `json:"current_lsn"`
	// AppliedLSN: everything before it is in the copy (the stored position,
	// or the slot's confirmed position when that is further and walmirror
	// is running, or when an older walmirror confirmed WAL that held
	// nothing for the copy without a target write).
	AppliedLSN string `json:"applied_lsn"`
	ahead      bool   // the slot is confirmed past a guarded copy's position
	// foreign: the source is another cluster or database than the copy's,
	// so its slot and positions say nothing of the copy.
	foreign bool
	// LagBytes: 0 also before an initial copy is complete (snapshot_complete).
	LagBytes int64 `json:"lag_bytes"`
	// LagSeconds: the server's flush_lag for the slot's walsender while
	// walmirror streams, 0 when caught up (LagBytes 0), -1 when not known
	// (walmirror is not running and the copy is behind, or no initial copy
	// is complete).
	LagSeconds float64    `json:"lag_seconds"`
	SlotState  slotStatus `json:"slot_state"`
	Problem    string     `json:"problem,omitempty"`
}

type slotStatus struct {
	Exists            bool   `json:"exists"`
	Active            bool   `json:"active"`
	ActivePID         int    `json:"active_pid,omitempty"`
	Holder            string `json:"holder,omitempty"`
	WALStatus         string `json:"wal_status,omitempty"`
	RetainedWALBytes  int64  `json:"retained_wal_bytes"`
	SafeWALBytes      int64  `json:"safe_wal_bytes"` // -1: unlimited
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
}

func cmdStatus(ctx context.Context, args []string) error {
	fs := newFlagSet("status", "--target TARGET [--source DSN] [--json]")
	var target string
	var asJSON bool
	src := source.Config{}
	fs.StringVar(&target, "target", "", "the target to inspect: "+targetForms)
	fs.StringVar(&src.DSN, "source", "", "optional: the source, for lag and slot health ("+sourceHelp+")")
	fs.BoolVar(&asJSON, "json", false, "print JSON, for scripts")
	durationFlag(fs, &src.Timeout, "source-timeout", source.DefaultTimeout, "how long the source may take to answer")
	log, err := fs.parse(args)
	if err != nil {
		return err
	}
	rep, err := buildStatus(ctx, target, src, log)
	if err == nil && rep.Source != nil && rep.Source.Problem != "" {
		// A monitor runs status and reads its exit code: a copy that
		// cannot follow its source is not a healthy one.
		err = errProblem
	}
	if asJSON {
		// A script reads stdout: on failure it still gets an object,
		// with what is known and why the rest is not.
		if err != nil && err != errProblem {
			rep.Error = err.Error()
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if encErr := enc.Encode(rep); encErr != nil && err == nil {
			return encErr
		}
		return err
	}
	if err != nil && err != errProblem {
		return err
	}
	printStatus(os.Stdout, rep)
	return err
}

// errProblem: status printed a problem line (exit 1, and the reason on
// stderr too, where a monitor's log catches it).
var errProblem = errors.New("status found a problem with this copy (see problem: above)")

// buildStatus reads the target's state and, given a source, the slot's.
// On error the report holds what was read before it.
func buildStatus(ctx context.Context, target string, src source.Config, log *slog.Logger) (statusReport, error) {
	var rep statusReport
	// A target that holds no copy is said so without opening it as a
	// sink, which would create walmirror's tables in it (another
	// program's file, a typo's).
	ts, err := readTargetState(ctx, target)
	if errors.Is(err, errDuckDBBusy) {
		// The running walmirror's own account of what it stored.
		_, path, _ := parseTarget(target)
		if rs, rerr := readRunState(path); rerr == nil {
			ts, err = targetState{Kind: "duckdb", Path: path, Exists: true, Found: true, UpdatedAt: rs.CommittedAt}, nil
			ts.State = schema.State{Slot: rs.Slot, Phase: rs.Phase, SystemID: rs.SystemID, Publication: rs.Publication,
				Timeline: rs.Timeline, SlotGuard: rs.SlotGuard, Copies: rs.Copies}
			if ts.State.LSN, err = lsn.Parse(rs.LSN); err != nil {
				return rep, fmt.Errorf("%s: %w", runStatePath(path), err)
			}
			rep.RunningPID = rs.PID
		} else {
			log.Debug("no state file of the running walmirror", "err", rerr)
		}
	}
	switch {
	case err == nil && !ts.Found && !ts.Exists:
		return rep, fmt.Errorf("%s does not exist", redactTarget(target))
	case err != nil:
		return rep, err
	case !ts.Found:
		return rep, fmt.Errorf("%s holds no walmirror state yet", redactTarget(target))
	}
	// Read as it is (readTargetState), not opened as a sink, which would
	// migrate and write the file (helper-71: status changed a SQLite file,
	// and failed on one it may only read).
	st := ts.State
	rep = statusReport{RunningPID: rep.RunningPID, LSN: st.LSN.String(), Slot: st.Slot, Phase: st.Phase, SnapshotComplete: st.Phase == "streaming", SystemID: st.SystemID, Publication: st.Publication}
	rep.Copies = copiesStatus(st.Copies)
	rep.InitialCopyComplete = rep.SnapshotComplete && !slices.ContainsFunc(st.Copies, func(c schema.TableCopy) bool { return c.PartOfInitial() })
	if !ts.UpdatedAt.IsZero() {
		at := ts.UpdatedAt.UTC()
		rep.LastTargetCommit = &at
	}
	if src.DSN != "" {
		s, err := sourceState(ctx, src, st, st.Phase == schema.PhaseStreaming)
		if err != nil {
			return rep, err
		}
		if s.ahead {
			// A walmirror may have committed, confirmed and stopped since
			// the state was read: read it again, after the slot.
			if again, err := readTargetState(ctx, target); err == nil && again.Found && again.State.LSN > st.LSN {
				st = again.State
				if s, err = sourceState(ctx, src, st, st.Phase == schema.PhaseStreaming); err != nil {
					return rep, err
				}
			}
		}
		rep.Source = s
	}
	return rep, nil
}

type copyStatus struct {
	Table    string `json:"table"`
	State    string `json:"state"` // copying or waiting
	Chunks   int64  `json:"chunks_done"`
	Rows     int64  `json:"rows_done"`
	Estimate int64  `json:"estimated_rows"` // -1: unknown
	Reason   string `json:"reason,omitempty"`
	// Keys: the copy is of these many rows only (walmirror resync --key).
	Keys int `json:"keys,omitempty"`
	// Initial: the table's initial copy, maybe started again.
	Initial bool `json:"initial,omitempty"`
}

func copiesStatus(copies []schema.TableCopy) []copyStatus {
	out := make([]copyStatus, len(copies))
	for i, c := range copies {
		state := "waiting"
		if i == 0 {
			state = "copying"
		}
		out[i] = copyStatus{Table: c.Table, State: state, Chunks: c.Chunks, Rows: c.Rows, Estimate: c.Estimate, Reason: c.Reason, Keys: len(c.Keys), Initial: c.PartOfInitial()}
	}
	return out
}

func sourceState(ctx context.Context, cfg source.Config, st schema.State, streaming bool) (*sourceStatus, error) {
	slot, systemID, stored := st.Slot, st.SystemID, st.LSN
	cfg.Slot, cfg.Publication = slot, "walmirror" // Validate wants them; status reads only the slot
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer adm.Close(context.WithoutCancel(ctx))
	si, err := adm.Server(ctx)
	if err != nil {
		return nil, err
	}
	sl, err := adm.Slot(ctx, slot)
	if err != nil {
		return nil, err
	}
	out := &sourceStatus{CurrentLSN: si.CurrentLSN.String(), LagSeconds: -1}
	out.SlotState = slotStatus{Exists: sl.Exists, Active: sl.Active, ActivePID: sl.ActivePID, Holder: sl.Holder, WALStatus: sl.WALStatus,
		RetainedWALBytes: sl.RetainedBytes, SafeWALBytes: sl.SafeBytes}
	if sl.Exists {
		out.SlotState.ConfirmedFlushLSN = sl.ConfirmedFlush.String()
	}
	applied := stored
	if sl.Exists && sl.ConfirmedFlush > applied && (sl.Active || !st.SlotGuard) {
		// Committed since the state was read (a running walmirror), or
		// idle positions an older walmirror confirmed without storing.
		applied = sl.ConfirmedFlush
	}
	out.AppliedLSN = applied.String()
	// Without a complete initial copy there is no position to lag from
	// (helper-110: a failed copy showed the whole WAL since 0/0 as lag).
	if si.CurrentLSN > applied && streaming {
		out.LagBytes = int64(si.CurrentLSN - applied)
	}
	if systemID != "" {
		if sys, err := adm.Identify(ctx); err == nil && sys != systemID {
			// Most likely --source names the wrong server; a source
			// replaced (restored, upgraded) needs a
			// new copy. Its slot of that name, if any, is not the copy's.
			out.foreign, out.LagBytes, out.LagSeconds = true, 0, -1
			out.Problem = fmt.Sprintf("the target was copied from another cluster (system %s, this source is %s): check that --source names the copy's server; "+
				"if that server was replaced (upgraded with pg_upgrade, restored from a dump or a base backup of another cluster), the copy must be made again: run with --resync", systemID, sys)
			return out, nil
		}
	}
	if sl.Exists && sl.Elsewhere {
		out.foreign, out.LagBytes, out.LagSeconds = true, 0, -1
		out.Problem = fmt.Sprintf("slot %q belongs to database %q, not to the one --source names: check that --source names the copy's database", slot, sl.Database)
		return out, nil
	}
	switch {
	case !sl.Exists && !streaming:
		// An initial copy that did not finish: the next run makes the
		// slot again and copies afresh, --resync or not.
	case !sl.Exists:
		out.Problem = join(out.Problem, fmt.Sprintf("slot %q is gone: the copy cannot follow the source any more (run with --resync)", slot))
	case sl.WALStatus == "lost":
		out.Problem = join(out.Problem, fmt.Sprintf("slot %q was invalidated (%s): run with --resync", slot, source.InvalidationCause(sl.InvalidationReason)))
	case streaming && st.SlotGuard && !sl.Active && sl.ConfirmedFlush > stored:
		out.ahead = true
		out.Problem = join(out.Problem, (&source.SlotAheadError{Slot: slot, From: stored, Confirmed: sl.ConfirmedFlush}).Error()+" (run with --resync)")
	case streaming:
		// A source restored from a backup (slots included) or promoted
		// from another timeline, after the copy applied more: run stops
		// there, and status said "caught up" (helper-113).
		problem, err := adm.OtherHistory(ctx, st.Timeline, stored)
		if err != nil {
			return nil, err
		}
		if problem != "" {
			out.LagBytes = 0
			out.Problem = join(out.Problem, problem+" (run with --resync)")
			return out, nil
		}
	}
	switch {
	case sl.Active:
		lag, ok, err := adm.ReplicationLag(ctx, slot)
		if err != nil {
			return nil, err
		}
		if ok {
			out.LagSeconds = lag.Seconds()
		}
		if out.LagBytes == 0 && streaming {
			// The copy holds all the source wrote. flush_lag grows anyway
			// while a transaction the source has not finished was
			// streamed in progress (a prepared one, for hours): walmirror
			// confirms no further than its start (helper-140: status
			// showed a minute of lag, /metrics 0).
			out.LagSeconds = 0
		}
	case out.LagBytes == 0 && streaming:
		out.LagSeconds = 0
	}
	return out, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

func printStatus(w io.Writer, r statusReport) {
	complete := "complete"
	initial := 0
	for _, c := range r.Copies {
		if c.Initial {
			initial++
		}
	}
	switch {
	case !r.SnapshotComplete:
		complete = "in progress (will be redone on the next run)"
	case initial > 0:
		complete = fmt.Sprintf("position stored; the initial copy is made online, in chunks, and is not complete: %d of its tables still to copy (copy: below)", initial)
	case len(r.Copies) == 1:
		complete = "complete; 1 table is being copied online (copy: below)"
	case len(r.Copies) > 1:
		complete = fmt.Sprintf("complete; %d tables are being copied online (copy: below)", len(r.Copies))
	}
	fmt.Fprintf(w, "lsn:      %s\nslot:     %s\nsnapshot: %s\nsource:   system %s\n", r.LSN, r.Slot, complete, r.SystemID)
	if r.Publication != "" {
		fmt.Fprintf(w, "publication: %s\n", r.Publication)
	}
	if r.LastTargetCommit != nil {
		fmt.Fprintf(w, "committed: %s (the target's last commit)\n", formatTime(*r.LastTargetCommit))
	}
	if r.RunningPID != 0 {
		fmt.Fprintf(w, "running:  walmirror (PID %d) holds the file; the above is what it reported it stored, at most %s before\n", r.RunningPID, runStateEvery)
	}
	for _, c := range r.Copies {
		if c.Keys > 0 {
			fmt.Fprintf(w, "copy:     %s %s: %d rows by key (%s)\n", c.Table, c.State, c.Keys, c.Reason)
			continue
		}
		est := "unknown"
		if c.Estimate >= 0 {
			est = fmt.Sprintf("~%d", c.Estimate)
		}
		fmt.Fprintf(w, "copy:     %s %s: %d chunks, %d of %s rows (%s)\n", c.Table, c.State, c.Chunks, c.Rows, est, c.Reason)
	}
	s := r.Source
	if s == nil {
		return
	}
	if s.foreign {
		fmt.Fprintf(w, "lag:      unknown (the source is not the copy's: problem: below)\nproblem:  %s\n", s.Problem)
		return
	}
	lag := "unknown (walmirror is not running and the copy is behind)"
	switch {
	case !r.SnapshotComplete:
		lag = "none yet (no initial copy is complete: one is being made, or the next run makes it)"
	case s.LagSeconds == 0 && s.LagBytes == 0 && len(r.Copies) > 0:
		lag = fmt.Sprintf("0 (caught up with the stream; %d tables still to copy online)", len(r.Copies))
	case s.LagSeconds == 0 && s.LagBytes == 0:
		lag = "0 (caught up)"
	case s.LagSeconds >= 0:
		lag = fmt.Sprintf("%s behind the source's WAL, %s (the server's flush_lag)", formatBytes(s.LagBytes), (time.Duration(s.LagSeconds * float64(time.Second))).Round(time.Millisecond))
	default:
		lag = fmt.Sprintf("%s behind the source's WAL; time unknown (walmirror is not streaming)", formatBytes(s.LagBytes))
	}
	fmt.Fprintf(w, "lag:      %s\n", lag)
	fmt.Fprintf(w, "position: source at %s, applied up to %s\n", s.CurrentLSN, s.AppliedLSN)
	sl := s.SlotState
	switch {
	case !sl.Exists:
		fmt.Fprintf(w, "slot state: missing\n")
	default:
		active := "inactive (walmirror is not streaming)"
		if sl.Active {
			active = fmt.Sprintf("active (server PID %d", sl.ActivePID)
			if sl.Holder != "" {
				active += ", " + sl.Holder
			}
			active += ")"
		}
		safe := "no max_slot_wal_keep_size"
		if sl.WALStatus == "lost" {
			safe = "invalidated"
		} else if sl.SafeWALBytes >= 0 {
			safe = formatBytes(sl.SafeWALBytes) + " more before invalidation"
		}
		fmt.Fprintf(w, "slot state: %s, wal_status %s, retains %s of WAL (%s), confirmed %s\n", active, sl.WALStatus, formatBytes(sl.RetainedWALBytes), safe, sl.ConfirmedFlushLSN)
	}
	if s.Problem != "" {
		fmt.Fprintf(w, "problem:  %s\n", s.Problem)
	}
}

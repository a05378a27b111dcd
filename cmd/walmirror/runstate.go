package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
)

// A DuckDB file a running walmirror writes cannot be opened by another
// process, status included (DuckDB takes the file for one process). The run
// keeps beside it PATH.walmirror.json: the state it last committed, at most
// runStateEvery old, which status reads while the file is held (the
// contract: status prints the stored position). Nothing resumes from it:
// the state in the target, committed with the data, is the truth; the
// file is removed when the run ends.

// runStateEvery bounds how often the file is written: once a second under
// a stream of commits (those that store a position alone included).
const runStateEvery = time.Second

// runState is the content of a run-state file.
type runState struct {
	PID         int                `json:"pid"`
	LSN         string             `json:"lsn"`
	Slot        string             `json:"slot"`
	Phase       string             `json:"phase"`
	SystemID    string             `json:"system_id"`
	Publication string             `json:"publication,omitempty"`
	Timeline    uint32             `json:"timeline,omitempty"`
	SlotGuard   bool               `json:"slot_guard,omitempty"`
	Copies      []schema.TableCopy `json:"copies,omitempty"`
	CommittedAt time.Time          `json:"committed_at"` // the target commit it describes
}

func runStatePath(duckdbPath string) string { return duckdbPath + ".walmirror.json" }

// runStateWriter writes a run's state file after its target commits: at
// once when the last write is runStateEvery old, else when it is (a
// timer), with the newest state.
type runStateWriter struct {
	path    string
	mu      sync.Mutex
	written time.Time // when the file was last written
	pending *runState
	timer   *time.Timer
	done    bool
	err     bool // a write failed: said once
	log     func(msg string, args ...any)
}

// stored takes the state a target commit stored (apply.Config.OnStored),
// at time at.
func (w *runStateWriter) stored(st schema.State, at time.Time) {
	rs := runState{PID: os.Getpid(), LSN: st.LSN.String(), Slot: st.Slot, Phase: st.Phase, SystemID: st.SystemID,
		Publication: st.Publication, Timeline: st.Timeline, SlotGuard: st.SlotGuard, Copies: st.Copies, CommittedAt: at.UTC()}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = &rs
	if wait := runStateEvery - time.Since(w.written); wait > 0 {
		if w.timer == nil {
			w.timer = time.AfterFunc(wait, w.flush)
		}
		return
	}
	w.writeLocked()
}

func (w *runStateWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	w.writeLocked()
}

func (w *runStateWriter) writeLocked() {
	if w.pending == nil || w.done {
		return
	}
	err := writeRunState(w.path, *w.pending)
	w.pending, w.written = nil, time.Now()
	if err != nil && !w.err {
		w.err = true
		w.log("cannot write the run-state file status reads while this run holds the DuckDB file", "path", w.path, "err", err)
	}
}

// remove deletes the file at the run's end: the DuckDB file is free to
// open again.
func (w *runStateWriter) remove() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) && !w.err {
		w.log("cannot remove the run-state file", "path", w.path, "err", err)
	}
}

// writeRunState replaces path with rs, atomically (a reader sees the old
// file or the new one).
func writeRunState(path string, rs runState) error {
	data, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil { // as readable as the DuckDB file's usual mode
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// readRunState reads the state file of the run holding duckdbPath; an
// error when there is none, or the process that wrote it is gone.
func readRunState(duckdbPath string) (runState, error) {
	var rs runState
	data, err := os.ReadFile(runStatePath(duckdbPath))
	if err != nil {
		return rs, err
	}
	if err := json.Unmarshal(data, &rs); err != nil {
		return rs, fmt.Errorf("%s: %w", runStatePath(duckdbPath), err)
	}
	// This process's own PID is a file a killed run left (a container's
	// PID 1 restarted: helper-143).
	if alive := syscall.Kill(rs.PID, 0); rs.PID <= 0 || rs.PID == os.Getpid() || alive != nil && !errors.Is(alive, syscall.EPERM) {
		return rs, fmt.Errorf("%s: written by process %d, which has ended", runStatePath(duckdbPath), rs.PID)
	}
	return rs, nil
}

// readTargetStateOrRun is readTargetState, or for a DuckDB file a running
// walmirror holds, the state its run-state file names (slot, publication,
// phase, source): what resync needs to ask that run to copy a table again
// (helper-139: resync refused the file while the run held it, which is
// when it is used).
func readTargetStateOrRun(ctx context.Context, target string) (targetState, error) {
	ts, err := readTargetState(ctx, target)
	if _, busy := duckdb.LockHolder(err); busy {
		if rs, rerr := readRunState(ts.Path); rerr == nil {
			return targetState{Kind: ts.Kind, Path: ts.Path, Exists: true, Found: true,
				State: schema.State{Slot: rs.Slot, Publication: rs.Publication, Phase: rs.Phase, SystemID: rs.SystemID}}, nil
		}
	}
	return ts, err
}

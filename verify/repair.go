package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Repair is what RepairTables did.
type Repair struct {
	// Tables are the tables copied again: those the verification found
	// different, in its order.
	Tables []string
	// Copies say, per table of Tables (in its order), how it was copied
	// again: its differing rows by key, or whole.
	Copies []TableRepair
	// RequestedAt is the copy's position the copies were started from, as
	// a resync request there would start them (0 when none was started).
	RequestedAt lsn.LSN
	// CopyTook is how long bringing the copy up to date took, the online
	// copies of Tables included.
	CopyTook time.Duration
	// After is the verification of Tables after the copies; nil when the
	// repair stopped before it.
	After *Report
	// Err says why the repair did not finish; RepairTables leaves it empty
	// (it returns the error), the caller sets it for the report.
	Err string
}

// TableRepair is how one table was copied again.
type TableRepair struct {
	Table string
	// Keys is how many rows were requested by key (the differing rows);
	// 0: the whole table was.
	Keys int
	// Whole says why the whole table was requested (when Keys is 0).
	Whole string
}

// String is "public.t (3 rows by key)" or "public.k (whole: no key)".
func (tr TableRepair) String() string {
	if tr.Keys > 0 {
		return fmt.Sprintf("%s (%d rows by key)", printable(tr.Table), tr.Keys)
	}
	return fmt.Sprintf("%s (whole: %s)", printable(tr.Table), tr.Whole)
}

func (rp *Repair) copies() string {
	parts := make([]string, len(rp.Copies))
	for i, c := range rp.Copies {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// Equal reports whether the repair verified every table it copied equal.
func (rp *Repair) Equal() bool { return rp.Err == "" && rp.After != nil && rp.After.Equal() }

// RepairTables copies what rep found different again and verifies those
// tables again. rep is a report of Run on the same target whose copy
// nothing has written to since. A table whose report names the keys of all
// its differing rows (TableReport.Keys: Run with Options.Keys, a key of
// integers, uuids, text and varchar) has just those rows copied again; any other, the
// whole table.
//
// The copies are online copies (apply/backfill.go) that the engine in this
// process starts from the copy's position (apply.Config.ResyncTables), as a
// walmirror resync request standing there in the source's WAL would start
// them, while it brings the copy up to date as walmirror run --stop-at-lsn
// now would: changes the source made to those rows after the verified
// position wait for their copy instead of meeting rows the copy lacks, and
// the bounded run goes on past its stop position until the copies are
// complete. Nothing is written to the source. Finally Run verifies the
// tables at a new source position.
//
// Rows by key are copied by the engine as walmirror resync --key does: it
// deletes those keys in the copy and reads them from the source again, in
// one transaction, with changes to other rows applied as usual. The engine
// itself falls back to the whole table when a key moves into or out of the
// rows while they are copied (its log says so: copying table online).
//
// Nothing is copied while another process streams from the copy's slot
// (ErrInUse). The copies are recorded in the target with the engine's
// first commit: if the copy cannot be brought up to date here after that
// (an error, an interruption), the next walmirror run finishes them.
func RepairTables(ctx context.Context, cfg Config, target Target, rep *Report) (*Repair, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.SlotWait <= 0 {
		cfg.SlotWait = 5 * time.Second
	}
	rp, relids, keys, err := plan(rep)
	if err != nil || len(rp.Tables) == 0 {
		return rp, err
	}
	st, ok, err := target.Sink.ReadState(ctx)
	if err != nil {
		return rp, fmt.Errorf("read the copy's state: %w", err)
	}
	switch {
	case !ok || st.Phase != schema.PhaseStreaming:
		return rp, errors.New("the target holds no complete copy any more")
	case st.LSN > rep.LSN:
		return rp, fmt.Errorf("%w: the copy moved past %s to %s after it was verified; nothing was copied", ErrInUse, rep.LSN, st.LSN)
	case len(st.Copies) > 0:
		return rp, errors.New("tables are being copied into the target since it was verified; nothing was copied")
	}
	scfg := cfg.Source
	scfg.Slot = st.Slot
	adm, err := source.Connect(ctx, scfg)
	if err != nil {
		return rp, err
	}
	err = waitSlotIdle(ctx, adm, st.Slot, cfg.SlotWait)
	adm.Close(context.WithoutCancel(ctx))
	if err != nil {
		return rp, err
	}
	resync := make([]apply.ResyncTable, len(rp.Tables))
	for i := range resync {
		resync[i] = apply.ResyncTable{RelID: relids[i], Name: rp.Tables[i], Keys: keys[i]}
	}
	at := st.LSN
	rp.RequestedAt = at
	log.Info("copying again what differs, from the copy's position", "copies", rp.copies(), "from", at)

	began := time.Now()
	pending := func(err error) error {
		now, _, rerr := target.Sink.ReadState(context.WithoutCancel(ctx))
		if rerr == nil && len(now.Copies) > 0 {
			return fmt.Errorf("%w (the copies are recorded in the target: the next walmirror run into it finishes them)", err)
		}
		return fmt.Errorf("%w (nothing was copied: verify --repair again)", err)
	}
	if err := apply.Run(ctx, target.Sink, apply.Config{Source: scfg, StopAtNow: true, Logger: log, ResyncTables: resync}); err != nil {
		return rp, pending(fmt.Errorf("bring the copy up to date: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return rp, pending(err)
	}
	done, _, err := target.Sink.ReadState(ctx)
	switch {
	case err != nil:
		return rp, fmt.Errorf("read the copy's state: %w", err)
	case len(done.Copies) > 0:
		return rp, pending(errors.New("the copies did not complete"))
	}
	rp.CopyTook = time.Since(began)
	log.Info("copied what differed again", "copies", rp.copies(), "took", rp.CopyTook.Round(time.Millisecond))

	again := cfg
	again.Tables = rp.Tables
	after, err := Run(ctx, again, target)
	if err != nil {
		return rp, fmt.Errorf("verify the copied tables again: %w", err)
	}
	rp.After = after
	return rp, nil
}

// plan is what a repair of what rep found different copies again: the
// tables, and per table its oid and the keys of its differing rows (nil:
// the whole table).
func plan(rep *Report) (rp *Repair, relids []uint32, keys [][][]string, err error) {
	rp = &Repair{}
	for i := range rep.Tables {
		t := &rep.Tables[i]
		if !t.Different() {
			continue
		}
		rp.Tables = append(rp.Tables, t.Table)
		tr := TableRepair{Table: t.Table, Keys: len(t.Keys), Whole: t.KeysNot}
		switch {
		case t.Absent:
			tr.Keys, tr.Whole, t.Keys = 0, "the copy has no such table", nil
		case len(t.Keys) > 0:
		case tr.Whole == "":
			tr.Whole = "the verification did not name its differing rows"
		}
		rp.Copies = append(rp.Copies, tr)
		keys = append(keys, t.Keys)
		if t.RelID == 0 {
			return rp, nil, nil, errors.New("the report does not name the source's tables by oid (a report read from JSON?); nothing was copied")
		}
		relids = append(relids, t.RelID)
	}
	return rp, relids, keys, nil
}

// waitSlotIdle waits up to wait for no process to stream from slot (a
// walsender outlives its client briefly, the catch-up's included).
func waitSlotIdle(ctx context.Context, adm *source.Admin, slot string, wait time.Duration) error {
	st, err := adm.SlotReleased(ctx, slot, wait)
	switch {
	case err != nil:
		return err
	case !st.Exists:
		return fmt.Errorf("the copy's replication slot %q is gone from the source: the copy cannot be brought up to date; nothing was copied", slot)
	case st.Active:
		return fmt.Errorf("%w (%v); nothing was copied: stop it, verify --repair, and start it again", ErrInUse, st.ActiveError())
	}
	return nil
}

// WriteText writes what the repair did and, when it got that far, the
// second verification's report.
func (rp *Repair) WriteText(w io.Writer) error {
	var b bytes.Buffer
	switch {
	case len(rp.Tables) == 0:
		b.WriteString("repair: nothing differs, nothing copied\n")
	case rp.RequestedAt == 0:
		fmt.Fprintf(&b, "repair: nothing copied (%s)\n", rp.Err)
	case rp.After == nil:
		fmt.Fprintf(&b, "repair: copies of %s started at %s; not verified again: %s\n", rp.copies(), rp.RequestedAt, rp.Err)
	case rp.After.Live:
		fmt.Fprintf(&b, "repair: copied again %s by the running walmirror (requested at %s, done in %s); verified again:\n",
			rp.copies(), rp.RequestedAt, rp.CopyTook.Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, "repair: copied again %s (from the copy's position %s, up to date in %s); verified again:\n",
			rp.copies(), rp.RequestedAt, rp.CopyTook.Round(time.Millisecond))
	}
	if _, err := w.Write(b.Bytes()); err != nil || rp.After == nil {
		return err
	}
	return rp.After.WriteText(w)
}

type jsonRepair struct {
	Tables      []string    `json:"tables"`
	Copies      []jsonCopy  `json:"copies"`
	RequestedAt string      `json:"requested_at,omitempty"`
	CopyTookMs  int64       `json:"copy_took_ms"`
	Equal       bool        `json:"equal"`
	Verify      *jsonReport `json:"verify,omitempty"`
	Error       string      `json:"error,omitempty"`
}

// jsonCopy is how one table was copied again: "by" is "keys" (with
// "keys", how many rows) or "table" (with "why").
type jsonCopy struct {
	Table string `json:"table"`
	By    string `json:"by"`
	Keys  int    `json:"keys,omitempty"`
	Why   string `json:"why,omitempty"`
}

// repair reads back what json wrote.
func (jr *jsonRepair) repair() (*Repair, error) {
	rp := &Repair{Tables: jr.Tables, CopyTook: time.Duration(jr.CopyTookMs) * time.Millisecond, Err: jr.Error}
	for _, c := range jr.Copies {
		rp.Copies = append(rp.Copies, TableRepair{Table: c.Table, Keys: c.Keys, Whole: c.Why})
	}
	if jr.RequestedAt != "" {
		at, err := lsn.Parse(jr.RequestedAt)
		if err != nil {
			return nil, fmt.Errorf("read report: repair: requested_at: %w", err)
		}
		rp.RequestedAt = at
	}
	if jr.Verify != nil {
		after, err := jr.Verify.report()
		if err != nil {
			return nil, fmt.Errorf("read report: repair: %w", err)
		}
		rp.After = after
	}
	return rp, nil
}

func (rp *Repair) json() *jsonRepair {
	jr := &jsonRepair{Tables: rp.Tables, CopyTookMs: rp.CopyTook.Milliseconds(), Equal: rp.Equal(), Error: rp.Err, Copies: []jsonCopy{}}
	if jr.Tables == nil {
		jr.Tables = []string{}
	}
	for _, c := range rp.Copies {
		jc := jsonCopy{Table: c.Table, By: "table", Why: c.Whole}
		if c.Keys > 0 {
			jc = jsonCopy{Table: c.Table, By: "keys", Keys: c.Keys}
		}
		jr.Copies = append(jr.Copies, jc)
	}
	if rp.RequestedAt != 0 {
		jr.RequestedAt = rp.RequestedAt.String()
	}
	if rp.After != nil {
		a := rp.After.json()
		jr.Verify = &a
	}
	return jr
}

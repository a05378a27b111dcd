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
	// RequestedAt is the position of the resync request in the source's
	// WAL (0 when none was written).
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
		return fmt.Sprintf("%s (%d rows by key)", tr.Table, tr.Keys)
	}
	return fmt.Sprintf("%s (whole: %s)", tr.Table, tr.Whole)
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
// integers and uuids) has just those rows copied again; any other, the
// whole table.
//
// The copies are online copies (apply/backfill.go) requested the way
// walmirror resync requests them: a transactional message in the source's
// WAL naming the tables and the copy's slot. The copy is then brought up to
// date by the engine in this process, as walmirror run --stop-at-lsn now
// would: it meets the request in its stream, copies the tables while it
// applies what follows, and the bounded run goes on past its stop position
// until those copies are complete. Finally Run verifies the tables at a new
// source position.
//
// Rows by key are copied by the engine as walmirror resync --key does: it
// deletes those keys in the copy and reads them from the source again, in
// one transaction, with changes to other rows applied as usual. The engine
// itself falls back to the whole table when a key moves into or out of the
// rows while they are copied (its log says so: copying table online).
//
// Nothing is requested while another process streams from the copy's slot
// (ErrInUse). A request written is taken up exactly once by whichever
// walmirror follows the slot: if the copy cannot be brought up to date here
// (an error, an interruption), the next walmirror run does the copies.
func RepairTables(ctx context.Context, cfg Config, target Target, rep *Report) (*Repair, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.SlotWait <= 0 {
		cfg.SlotWait = 5 * time.Second
	}
	rp := &Repair{}
	var keys [][][]string
	byKey := false
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
			byKey = true
		case tr.Whole == "":
			tr.Whole = "the verification did not name its differing rows"
		}
		rp.Copies = append(rp.Copies, tr)
		keys = append(keys, t.Keys)
	}
	if len(rp.Tables) == 0 {
		return rp, nil
	}
	st, ok, err := target.Sink.ReadState(ctx)
	if err != nil {
		return rp, fmt.Errorf("read the copy's state: %w", err)
	}
	switch {
	case !ok || st.Phase != schema.PhaseStreaming:
		return rp, errors.New("the target holds no complete copy any more")
	case st.LSN > rep.LSN:
		return rp, fmt.Errorf("%w: the copy moved past %s to %s after it was verified; nothing was requested", ErrInUse, rep.LSN, st.LSN)
	case len(st.Copies) > 0:
		return rp, errors.New("tables are being copied into the target since it was verified; nothing was requested")
	}
	scfg := cfg.Source
	scfg.Slot = st.Slot
	adm, err := source.Connect(ctx, scfg)
	if err != nil {
		return rp, err
	}
	defer adm.Close(context.WithoutCancel(ctx))
	if err := waitSlotIdle(ctx, adm, st.Slot, cfg.SlotWait); err != nil {
		return rp, err
	}
	_, shown, at, err := adm.ResyncTables(ctx, scfg.Publication, st.Slot, rp.Tables, func(relids []uint32, names []string) string {
		if byKey {
			return apply.EncodeResyncKeys(st.Slot, relids, names, keys)
		}
		return apply.EncodeResync(st.Slot, relids, names)
	})
	if err != nil {
		return rp, fmt.Errorf("request the copies: %w", err)
	}
	rp.Tables, rp.RequestedAt = shown, at
	for i := range rp.Copies {
		if i < len(shown) {
			rp.Copies[i].Table = shown[i]
		}
	}
	log.Info("requested online copies of what differs", "copies", rp.copies(), "at", at)

	began := time.Now()
	pending := func(err error) error {
		return fmt.Errorf("%w (the request at %s stays in the source's WAL: the next walmirror run following slot %q copies %s)",
			err, at, st.Slot, strings.Join(shown, ", "))
	}
	if err := apply.Run(ctx, target.Sink, apply.Config{Source: scfg, StopAtNow: true, Logger: log}); err != nil {
		return rp, pending(fmt.Errorf("bring the copy up to date: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return rp, pending(err)
	}
	done, _, err := target.Sink.ReadState(ctx)
	switch {
	case err != nil:
		return rp, fmt.Errorf("read the copy's state: %w", err)
	case done.LSN < at:
		return rp, pending(fmt.Errorf("the copy stopped at %s, before the request", done.LSN))
	case len(done.Copies) > 0:
		return rp, pending(errors.New("the copies did not complete"))
	}
	rp.CopyTook = time.Since(began)
	log.Info("copied the tables that differed again", "tables", strings.Join(shown, ", "), "took", rp.CopyTook.Round(time.Millisecond))

	again := cfg
	again.Tables = shown
	after, err := Run(ctx, again, target)
	if err != nil {
		return rp, fmt.Errorf("verify the copied tables again: %w", err)
	}
	rp.After = after
	return rp, nil
}

// waitSlotIdle waits up to wait for no process to stream from slot (a
// walsender outlives its client briefly, the catch-up's included).
func waitSlotIdle(ctx context.Context, adm *source.Admin, slot string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		st, err := adm.Slot(ctx, slot)
		if err != nil {
			return err
		}
		if !st.Exists {
			return fmt.Errorf("the copy's replication slot %q is gone from the source: the copy cannot be brought up to date; nothing was requested", slot)
		}
		if !st.Active {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%v); nothing was requested: stop it, verify --repair, and start it again", ErrInUse, st.ActiveError())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
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
		fmt.Fprintf(&b, "repair: copies of %s requested at %s; not verified again: %s\n", rp.copies(), rp.RequestedAt, rp.Err)
	default:
		fmt.Fprintf(&b, "repair: copied again %s (requested at %s, copy up to date in %s); verified again:\n",
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

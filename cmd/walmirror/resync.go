package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/source"
)

// cmdResync asks the walmirror that follows a slot to copy tables again
// online: the request is a message in the source's WAL, so it is taken up
// at that point of the stream (now if walmirror runs, else when it next
// starts) and exactly once, whatever the target. With --target (design.md's
// form) the request goes to the slot that target follows.
func cmdResync(ctx context.Context, args []string) error {
	fs := newFlagSet("resync", "--source DSN [--target TARGET] --table schema.t [--table ...] [--key VALUE ...] [--slot NAME] [--publication NAME]")
	cfg := source.Config{}
	var target string
	var tables tableList
	var keys keyFlag
	fs.StringVar(&cfg.DSN, "source", "", sourceHelp)
	fs.StringVar(&target, "target", "", "the copy to resynchronise ("+targetForms+"): the request goes to the slot it follows (read from it, so --slot is not needed)")
	fs.StringVar(&cfg.Slot, "slot", "walmirror", "the replication slot of the copy to resynchronise (with --target: the one it follows)")
	fs.StringVar(&cfg.Publication, "publication", "walmirror", "the copy's publication")
	fs.Var(repeated(&tables, func() { tables = nil }), "table", "a published table to copy again (schema.table; repeat the flag for more)")
	fs.Var(repeated(&keys, func() { keys = nil }), "key", "copy again only the row with this primary key (with one --table; repeat the flag for more rows; "+
		"a key of several columns as its values separated by commas, quoted as in CSV when a value holds one: \"a,b\",5; integer, uuid, text and varchar keys: for other keys the whole table is copied)")
	durationFlag(fs, &cfg.Timeout, "source-timeout", source.DefaultTimeout, "how long the source may take to answer")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if len(tables) == 0 {
		return fmt.Errorf("name at least one --table schema.t to copy again")
	}
	if len(keys) > 0 && len(tables) != 1 {
		return fmt.Errorf("--key needs exactly one --table: the table whose rows to copy again")
	}
	slotOfCopy := false // the slot was read from the copy's state
	if target != "" {
		var err error
		if slotOfCopy, err = resyncSlot(ctx, target, &cfg.Slot, flagGiven(fs.FlagSet, "slot")); err != nil {
			return err
		}
		if err := copyPublication(ctx, target, &cfg.Publication, flagGiven(fs.FlagSet, "publication")); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer adm.Close(context.WithoutCancel(ctx))
	if target == "" && !flagGiven(fs.FlagSet, "publication") {
		// The publication walmirror created for this slot, if any: not the
		// default's, whose tables the copy may not have (helper-98: a
		// request resolved there was "requested", then dropped).
		if pubs, err := adm.PublicationsFor(ctx, cfg.Slot); err == nil && len(pubs) == 1 {
			cfg.Publication = pubs[0]
		}
	}
	// A request for a slot nobody follows would be taken up by no
	// walmirror: say so instead of reporting it requested.
	switch st, err := adm.Slot(ctx, cfg.Slot); {
	case err != nil:
		return err
	case !st.Exists && slotOfCopy:
		// The copy's own slot (resyncSlot read it from the target) is gone
		// (helper-139: this said to pass the --target that was passed).
		return fmt.Errorf("the copy in --target follows replication slot %q, which is gone from the source, so no walmirror would take the request up: "+
			"the copy cannot be resumed; run walmirror run --resync to copy every table again (or walmirror drop, and make a new copy)", cfg.Slot)
	case !st.Exists:
		return fmt.Errorf("no replication slot %q on the source, so no walmirror would take the request up: "+
			"pass the copy's --target (or its --slot)", cfg.Slot)
	case st.Plugin != "pgoutput":
		return fmt.Errorf("slot %q belongs to plugin %q, not walmirror's pgoutput: check --slot", cfg.Slot, st.Plugin)
	case st.Elsewhere:
		// The request is written into this database's WAL stream, which
		// that slot does not decode.
		return fmt.Errorf("slot %q belongs to database %q, not the one --source names, so its walmirror would never see the request: check --source and --slot", cfg.Slot, st.Database)
	}
	if len(keys) > 0 {
		// Checked before anything is written: a key the table's key cannot
		// hold would otherwise only show as a warning in the running
		// walmirror's log, and this command would say it was requested.
		relids, _, err := adm.ResolveTables(ctx, cfg.Publication, tables)
		if err != nil {
			return err
		}
		t, err := adm.KeyTable(ctx, cfg.Publication, relids[0])
		if err != nil {
			return err
		}
		canon, exact, err := apply.CheckResyncKeys(t, keys)
		if err != nil {
			return err
		}
		if exact {
			keys = canon
		} else {
			fmt.Fprintf(os.Stderr, "walmirror: the key of %s is not of integers, uuids, text and varchar (or it has none), so rows cannot be picked out exactly: "+
				"the whole table is copied again\n", t.QualifiedName())
			keys = nil
		}
	}
	_, names, at, err := adm.ResyncTables(ctx, cfg.Publication, cfg.Slot, tables, func(relids []uint32, names []string) string {
		if len(keys) > 0 {
			return apply.EncodeResyncKeys(cfg.Slot, relids, names, [][][]string{keys})
		}
		return apply.EncodeResync(cfg.Slot, relids, names)
	})
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		fmt.Fprintf(os.Stdout, "resync of %d rows of %s requested at %s: the walmirror following slot %q copies them again online "+
			"when its stream reaches that point\n", len(keys), strings.Join(names, ", "), at, cfg.Slot)
		return nil
	}
	fmt.Fprintf(os.Stdout, "resync of %s requested at %s: the walmirror following slot %q copies them again online "+
		"when its stream reaches that point (walmirror status --target shows the progress)\n", strings.Join(names, ", "), at, cfg.Slot)
	return nil
}

// resyncSlot sets *slot to the slot target follows, read without opening it
// as a sink (nothing is created). An explicit --slot must agree with it; a
// target it cannot read (a DuckDB file a running walmirror holds) is then
// no obstacle.
func resyncSlot(ctx context.Context, target string, slot *string, slotGiven bool) (read bool, err error) {
	ts, err := readTargetStateOrRun(ctx, target)
	switch {
	case err != nil && slotGiven:
		// E.g. a DuckDB file held by the running walmirror: --slot names
		// it, unchecked (another copy following that slot would copy the
		// tables again instead).
		fmt.Fprintf(os.Stderr, "walmirror: could not read %s (%v), so not checked that it follows slot %q: the copy following that slot acts on the request\n",
			redactTarget(target), err, *slot)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read the slot %s follows: %w (while walmirror holds a DuckDB file, name its slot with --slot)",
			redactTarget(target), err)
	case !ts.Found:
		return false, fmt.Errorf("%s holds no walmirror copy, so there is nothing to copy again: run walmirror run into it first",
			redactTarget(target))
	case slotGiven && *slot != ts.State.Slot:
		return false, fmt.Errorf("--slot %s, but %s follows slot %q", *slot, redactTarget(target), ts.State.Slot)
	}
	*slot = ts.State.Slot
	return true, nil
}

// keyFlag collects --key values: one key each, its columns' values
// separated by commas as in CSV (a value holding a comma or starting with
// a double quote is quoted, its quotes doubled), kept exactly (a text key
// may hold spaces, or be empty).
type keyFlag [][]string

func (k *keyFlag) String() string { return fmt.Sprint(*k) }

func (k *keyFlag) Set(v string) error {
	r := csv.NewReader(strings.NewReader(v))
	r.LazyQuotes, r.FieldsPerRecord = true, -1
	parts, err := r.Read()
	switch {
	case err == io.EOF:
		parts = []string{""} // one empty text
	case err != nil:
		return fmt.Errorf("key %q: %w (values separated by commas; quote one that holds a comma: \"a,b\",5)", v, err)
	}
	if _, err := r.Read(); err != io.EOF {
		return fmt.Errorf("key %q: a key on one line, please", v)
	}
	*k = append(*k, parts)
	return nil
}

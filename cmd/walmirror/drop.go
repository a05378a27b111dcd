package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walmirror/walmirror/source"
)

// cmdDrop retires a copy on the source side: it drops the replication slot
// (which otherwise pins WAL forever) and the publication when walmirror
// created it. A slot in use by another connection is left alone.
func cmdDrop(ctx context.Context, args []string) error {
	fs := newFlagSet("drop", "--source DSN [--slot NAME] [--publication NAME] [--target TARGET]")
	cfg := source.Config{}
	var target string
	fs.StringVar(&cfg.DSN, "source", "", sourceHelp)
	fs.StringVar(&cfg.Slot, "slot", "walmirror", "the replication slot to drop")
	fs.StringVar(&cfg.Publication, "publication", "walmirror", "the publication to drop, if walmirror created it")
	fs.StringVar(&target, "target", "", "optional: the copy being retired ("+targetForms+"); its slot is the one dropped")
	durationFlag(fs, &cfg.Timeout, "source-timeout", source.DefaultTimeout, "how long the source may take to answer")
	_, err := fs.parse(args)
	if err != nil {
		return err
	}
	systemID := "" // the cluster the target's copy came from, when known
	if target != "" {
		// Read without opening it as a sink, which would create
		// walmirror's tables in a file that is not a copy. A target that
		// holds no copy names no slot: dropping the default one would take
		// the slot of another copy (a typo in --target).
		slotGiven := flagGiven(fs.FlagSet, "slot")
		ts, err := readTargetState(ctx, target)
		switch {
		case err != nil && slotGiven:
			// e.g. a DuckDB file a running walmirror holds: --slot names it
		case err != nil:
			return fmt.Errorf("read the slot %s follows: %w: nothing dropped (if a running walmirror holds it, stop that first: dropping the slot it follows ends it; or name the slot with --slot)",
				redactTarget(target), err)
		case !ts.Exists:
			return fmt.Errorf("--target %s: no such file: nothing dropped (to drop a slot by name, give --slot NAME without --target)", redactTarget(target))
		case !ts.Found && !slotGiven:
			return fmt.Errorf("%s holds no walmirror copy, so it names no slot: nothing dropped (to drop a slot by name, give --slot NAME)", redactTarget(target))
		case ts.Found && slotGiven && cfg.Slot != ts.State.Slot:
			return fmt.Errorf("--slot %s, but %s follows slot %q", cfg.Slot, redactTarget(target), ts.State.Slot)
		case ts.Found:
			cfg.Slot = ts.State.Slot
		}
		if ts.Found && ts.State.Publication != "" && !flagGiven(fs.FlagSet, "publication") {
			// The one the copy is made from, also an administrator's (left
			// in place): not the default name's.
			cfg.Publication = ts.State.Publication
		}
		systemID = ts.State.SystemID
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return drop(ctx, os.Stdout, cfg, target != "", flagGiven(fs.FlagSet, "publication"), systemID)
}

// flagGiven reports whether the named flag was given on the command line or
// in the environment.
func flagGiven(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if v, ok := os.LookupEnv(envName(name)); ok && v != "" { // empty is unset, as parseFlags takes it
		set = true
	}
	return set
}

func drop(ctx context.Context, out io.Writer, cfg source.Config, haveTarget, pubGiven bool, systemID string) error {
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer adm.Close(context.WithoutCancel(ctx))
	if systemID != "" {
		// A slot of that name on this server belongs to another copy.
		id, err := adm.Identify(ctx)
		if err != nil {
			return fmt.Errorf("nothing dropped: %w", err)
		}
		if id != systemID {
			return fmt.Errorf("nothing dropped: the target was copied from another PostgreSQL cluster (system %s, this source is %s), so slot %q here may belong to another copy: check --source; "+
				"if this source is the copy's, replaced (pg_upgrade keeps a caught-up slot from 17 on), run with --resync to copy it again, or drop that slot by name with walmirror drop --source ... --slot %s (without --target)", systemID, id, cfg.Slot, cfg.Slot)
		}
	}

	slot, err := adm.SlotReleased(ctx, cfg.Slot, source.SlotRelease)
	if err != nil {
		return err
	}
	if err := slot.ActiveError(); err != nil {
		return fmt.Errorf("nothing dropped: %w", err)
	}
	if slot.Exists && slot.Plugin != "pgoutput" {
		return fmt.Errorf("nothing dropped: slot %q belongs to plugin %q, not walmirror's pgoutput: check --slot", cfg.Slot, slot.Plugin)
	}
	if slot.Exists && slot.Elsewhere {
		// helper-85: drop took another database's copy's slot.
		return fmt.Errorf("nothing dropped: slot %q belongs to database %q, not the one --source names: it is another copy's (connect to %q to drop it): check --slot", cfg.Slot, slot.Database, slot.Database)
	}
	dropped, err := adm.DropSlot(ctx, cfg.Slot)
	if err != nil {
		return fmt.Errorf("nothing dropped: %w", err)
	}
	if dropped {
		fmt.Fprintf(out, "dropped replication slot %q (it kept %s of WAL on the source)\n", cfg.Slot, formatBytes(slot.RetainedBytes))
		if haveTarget {
			fmt.Fprintln(out, "the target keeps its copy, but can no longer follow the source: a later run needs --resync, or a fresh target")
		}
	} else {
		fmt.Fprintf(out, "no replication slot %q: nothing to drop\n", cfg.Slot)
	}

	pub, err := adm.Publication(ctx, cfg.Publication)
	if err != nil {
		return err
	}
	if !pubGiven && !(pub.Walmirror && pub.ForSlot == cfg.Slot) {
		// The run used another --publication: the one walmirror created
		// for this slot (its comment names the slot) is the one to drop.
		names, err := adm.PublicationsFor(ctx, cfg.Slot)
		if err != nil {
			return err
		}
		if len(names) == 1 {
			cfg.Publication = names[0]
			if pub, err = adm.Publication(ctx, cfg.Publication); err != nil {
				return err
			}
		}
	}
	name := cfg.Publication
	switch {
	case !pub.Exists:
		fmt.Fprintf(out, "no publication %q: nothing to drop\n", name)
		return nil
	case !pub.Walmirror:
		fmt.Fprintf(out, "publication %q left in place: walmirror did not create it (owner %s); if nothing else uses it, an administrator can run DROP PUBLICATION %s\n",
			name, pub.Owner, quoteIdent(name))
		return nil
	}
	others, err := adm.OtherSlots(ctx, cfg.Slot)
	if err != nil {
		return err
	}
	if pub.ForSlot != "" && pub.ForSlot != cfg.Slot && slices.Contains(others, pub.ForSlot) {
		fmt.Fprintf(out, "publication %q left in place: walmirror created it for slot %q, not %q\n", name, pub.ForSlot, cfg.Slot)
		return nil
	}
	// Created for this slot, or for one that is gone (its own drop left
	// the publication to the slots that remained, this one among them).
	if len(others) > 0 {
		fmt.Fprintf(out, "publication %q left in place: other pgoutput slots in this database may use it (%s); drop it with DROP PUBLICATION %s once none does\n",
			name, strings.Join(others, ", "), quoteIdent(name))
		return nil
	}
	if err := adm.DropPublication(ctx, name); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			// Not the REPLICATION or SELECT a generic hint names (helper-139).
			return fmt.Errorf("publication %q left in place: only its owner (%s) or a superuser may drop it; have one run DROP PUBLICATION %s",
				name, pub.Owner, quoteIdent(name))
		}
		return err
	}
	fmt.Fprintf(out, "dropped publication %q (walmirror created it)\n", name)
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// formatBytes prints a byte count for people: 0 B, 512 B, 1.5 MB, 2.0 GB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "KMGTPE"[exp])
}

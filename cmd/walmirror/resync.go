package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/source"
)

// cmdResync asks the walmirror that follows a slot to copy tables again
// online: the request is a message in the source's WAL, so it is taken up
// at that point of the stream (now if walmirror runs, else when it next
// starts) and exactly once, whatever the target.
func cmdResync(ctx context.Context, args []string) error {
	fs := newFlagSet("resync", "--source DSN --table schema.t [--table ...] [--key VALUE ...] [--slot NAME] [--publication NAME]")
	cfg := source.Config{}
	var tables multiFlag
	var keys keyFlag
	fs.StringVar(&cfg.DSN, "source", "", sourceHelp)
	fs.StringVar(&cfg.Slot, "slot", "walmirror", "the replication slot of the copy to resynchronise")
	fs.StringVar(&cfg.Publication, "publication", "walmirror", "the copy's publication")
	fs.Var(&tables, "table", "a published table to copy again (schema.table; repeat the flag for more)")
	fs.Var(&keys, "key", "copy again only the row with this primary key (with one --table; repeat the flag for more rows; "+
		"a key of several columns as its values separated by commas; integer and uuid keys: for other keys the whole table is copied)")
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
	if err := cfg.Validate(); err != nil {
		return err
	}
	adm, err := source.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer adm.Close(context.WithoutCancel(ctx))
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

// keyFlag collects --key values: one key each, its columns' values
// separated by commas.
type keyFlag [][]string

func (k *keyFlag) String() string { return fmt.Sprint(*k) }

func (k *keyFlag) Set(v string) error {
	parts := strings.Split(v, ",")
	for i := range parts {
		if parts[i] = strings.TrimSpace(parts[i]); parts[i] == "" {
			return fmt.Errorf("key %q: an empty value", v)
		}
	}
	*k = append(*k, parts)
	return nil
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*m = append(*m, p)
		}
	}
	return nil
}

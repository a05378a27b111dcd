package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// flagSet is a flag.FlagSet whose flags fall back to WALMIRROR_* environment
// variables (--stop-at-lsn reads WALMIRROR_STOP_AT_LSN).
type flagSet struct {
	*flag.FlagSet
	logLevel   string
	logFormat  string
	configFile string
	// strictConfig: a config file key that is no flag is an error (run,
	// whose flags cover every command's but status's --json).
	strictConfig bool
}

func newFlagSet(name, synopsis string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: walmirror %s %s\n\nFlags (each also read from the environment variable shown, and from --config;\nflags win over the environment, which wins over the file):\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	fs.StringVar(&fs.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&fs.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&fs.configFile, configFlag, "", "read settings from this YAML file: keys named as the flags, ${ENV} expanded")
	return fs
}

func envName(flagName string) string {
	return "WALMIRROR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads the config file, then the environment, then the command line
// (each wins over the one before), and returns the logger the flags ask
// for. --help returns errHelp.
func (fs *flagSet) parse(args []string) (*slog.Logger, error) {
	if err := fs.parseFlags(args); err != nil {
		return nil, err
	}
	return fs.logger(os.Stderr)
}

func (fs *flagSet) parseFlags(args []string) error {
	if path := configPath(args); path != "" {
		if err := applyConfig(fs.FlagSet, path, fs.strictConfig); err != nil {
			return err
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		// An empty variable is unset, as a shell's VAR= in an env file
		// usually means.
		if v, ok := os.LookupEnv(envName(f.Name)); ok && v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w%s", envName(f.Name), v, err, wantForm(f))
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	fs.VisitAll(func(f *flag.Flag) {
		if r, ok := f.Value.(*repeatedFlag); ok {
			r.commandLine = true
		}
	})
	// The flag package prints a problem and the usage to Output; asked for,
	// the usage goes to stdout (walmirror run --help | less), as the
	// top-level help does.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(nil) // stderr again
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stdout)
		fs.Usage()
		fs.SetOutput(nil)
		return errHelp
	} else if err != nil {
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

var errHelp = errors.New("help requested")

func (fs *flagSet) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(fs.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", fs.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch fs.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", fs.logFormat)
}

func durationFlag(fs *flagSet, p *time.Duration, name string, def time.Duration, help string) {
	fs.DurationVar(p, name, def, help)
}

// repeatedFlag is a flag that may be given several times (--table): the
// command line's values replace those of the environment and the config
// file, as a flag given once does (before, they were added to them).
type repeatedFlag struct {
	flag.Value
	reset                 func()
	commandLine, replaced bool
}

func repeated(v flag.Value, reset func()) *repeatedFlag {
	return &repeatedFlag{Value: v, reset: reset}
}

func (r *repeatedFlag) Set(v string) error {
	if r.commandLine && !r.replaced {
		r.reset()
		r.replaced = true
	}
	return r.Value.Set(v)
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// A config file holds the same settings as the flags, as YAML keys named
// like the flags (source, commit-rows; commit_rows works too). String
// values may refer to the environment as ${NAME} or ${NAME:-default}.
// Precedence: flags > environment (WALMIRROR_*) > file.
//
//	source: postgres://mirror@db.example.com/shop?sslmode=verify-full
//	target: duckdb:/var/lib/walmirror/shop.duckdb
//	tables: [public.orders, public.customers]
//	metrics-addr: 127.0.0.1:9187
//	commit-interval: 500ms

// configFlag is the flag (and WALMIRROR_CONFIG) naming the file.
const configFlag = "config"

// otherCommandKeys are keys of commands other than run that a file shared
// by every command may hold; run ignores them.
var otherCommandKeys = map[string]bool{"json": true}

// configPath finds --config in args (before the flags are parsed), or
// WALMIRROR_CONFIG.
func configPath(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != configFlag {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv(envName(configFlag))
}

// applyConfig sets fs's flags from the file at path. strict: a key that is
// no flag of this command (nor of another) is an error.
func applyConfig(fs *flag.FlagSet, path string, strict bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	values, err := parseConfig(data)
	if err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		f := fs.Lookup(name)
		if name == configFlag {
			return fmt.Errorf("--config %s: a config file cannot name another (key %q)", path, k)
		}
		if f == nil {
			if strict && !otherCommandKeys[name] {
				return fmt.Errorf("--config %s: unknown key %q (keys are the flags of walmirror %s, see --help)", path, k, fs.Name())
			}
			continue
		}
		if values[k] == "" {
			// Unset, as an empty variable is (slot: ${SLOT:-}): counted as
			// given, it named no slot, and the copy of another was refused
			// (helper-123).
			continue
		}
		// Set through fs, so that a key of the file counts as given
		// (flagGiven), as a flag or variable does: a slot or publication
		// in the file was dropped for the copy's own (helper-122).
		if err := fs.Set(name, values[k]); err != nil {
			return fmt.Errorf("--config %s: %s: %w%s", path, k, err, wantForm(f))
		}
	}
	return nil
}

// parseConfig reads YAML settings into flag values: scalars as their text,
// lists joined with commas (tables: [a, b]), ${NAME} expanded in strings.
func parseConfig(data []byte) (map[string]string, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, errors.New(strings.TrimSpace(yaml.FormatError(err, false, true)))
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		s, err := configValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if s, err = expandEnv(s); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

func configValue(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := configValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("want a value or a list, not a mapping")
	default:
		return fmt.Sprint(v), nil
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} with the environment variable's value (an
// error when unset) and ${NAME:-default} with the value or the default.
// A lone $ is kept: passwords may hold one.
func expandEnv(s string) (string, error) {
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := os.LookupEnv(m[1]); ok && (v != "" || m[2] == "") {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		missing = append(missing, m[1])
		return ""
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}

// wantForm says what a flag's value must look like, for an error about
// one that did not parse ("parse error" alone says little).
func wantForm(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return " (want true or false)"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return " (want a whole number)"
	case time.Duration:
		return " (want a duration such as 500ms, 10s or 5m)"
	}
	return ""
}

package apply

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/walmirror/walmirror/source"
)

// Defaults Run uses for Config fields left zero, field by field (see
// Config.Validate).
const (
	DefaultSlot        = "walmirror"
	DefaultPublication = "walmirror"
	DefaultMaxBackoff  = 30 * time.Second
)

// ConfigError is a Config field that is out of range. Field is its path
// from Config ("Limits.ChunkRows", "Source.Slot"); for Source's fields,
// Err is what source.Config.Validate said.
type ConfigError struct {
	Field  string
	Value  any    // the value given (a DSN is not: it may hold a password)
	Reason string // what is wrong with it
	Err    error  // for Source fields, source.Config.Validate's error (its text names the command-line flag)
}

func (e *ConfigError) Error() string {
	if e.Reason == "" && e.Err != nil {
		return "apply.Config." + e.Field + ": " + e.Err.Error()
	}
	v := fmt.Sprint(e.Value)
	if s, ok := e.Value.(string); ok {
		v = strconv.Quote(s)
	}
	return fmt.Sprintf("apply.Config.%s = %s: %s", e.Field, v, e.Reason)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports the first field of c that Run cannot use, as a
// *ConfigError naming it. Zero values are valid: Run gives each zero field
// its default on its own (a Limits with only CommitRows set keeps the
// other limits of DefaultLimits), so Validate checks c as Run will use it.
// Negative sizes and durations (but CopyChunkTime, PollInterval and
// ChangeKeys, where negative means something), an InitialCopy other than
// "auto", "single" or "chunked", StopAt together with StopAtNow, and what
// source.Config.Validate refuses are errors. Run calls Validate first.
func (c *Config) Validate() error {
	d := c.withDefaults()
	l := d.Limits
	for _, f := range []struct {
		name string
		v    int
	}{{"Limits.CommitRows", l.CommitRows}, {"Limits.CommitBytes", l.CommitBytes}, {"Limits.ChunkRows", l.ChunkRows}, {"Limits.ChunkBytes", l.ChunkBytes}} {
		if f.v < 0 {
			return &ConfigError{Field: f.name, Value: f.v, Reason: "must be positive (0: the default)"}
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"Limits.CommitInterval", l.CommitInterval}, {"MaxBackoff", d.MaxBackoff}, {"SlotBusyWait", d.SlotBusyWait}, {"Source.Timeout", d.Source.Timeout}} {
		if f.v < 0 {
			return &ConfigError{Field: f.name, Value: f.v, Reason: "must be positive (0: the default)"}
		}
	}
	if d.CopyChunkRows < 0 {
		return &ConfigError{Field: "CopyChunkRows", Value: d.CopyChunkRows, Reason: "must be positive (0: the default)"}
	}
	switch d.InitialCopy {
	case "", "auto", "single", "chunked":
	default:
		return &ConfigError{Field: "InitialCopy", Value: d.InitialCopy, Reason: `want "auto", "single" or "chunked" ("": auto)`}
	}
	if d.StopAt != 0 && d.StopAtNow {
		return &ConfigError{Field: "StopAtNow", Value: true, Reason: fmt.Sprintf("StopAt is set too (%s): set one of them", d.StopAt)}
	}
	for i, rt := range d.ResyncTables {
		if rt.RelID == 0 {
			return &ConfigError{Field: fmt.Sprintf("ResyncTables[%d].RelID", i), Value: 0, Reason: fmt.Sprintf("names no table (want the pg_class oid of %q)", rt.Name)}
		}
	}
	if err := d.Source.Validate(); err != nil {
		ce := &ConfigError{Field: "Source", Err: err}
		if fe := (*source.FieldError)(nil); errors.As(err, &fe) {
			ce.Field, ce.Value, ce.Reason = "Source."+fe.Field, fe.Value, fe.Reason
		}
		return ce
	}
	return nil
}

// withDefaults returns c with each zero field set to its default, field by
// field: setting one never zeroes another.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits = c.Limits.withDefaults()
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.SlotBusyWait == 0 {
		c.SlotBusyWait = DefaultSlotBusyWait
	}
	if c.Source.Slot == "" {
		c.Source.Slot = DefaultSlot
	}
	if c.Source.Publication == "" {
		c.Source.Publication = DefaultPublication
	}
	return c
}

// withDefaults returns l with each zero field taken from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.CommitRows == 0 {
		l.CommitRows = d.CommitRows
	}
	if l.CommitBytes == 0 {
		l.CommitBytes = d.CommitBytes
	}
	if l.CommitInterval == 0 {
		l.CommitInterval = d.CommitInterval
	}
	if l.ChunkRows == 0 {
		l.ChunkRows = d.ChunkRows
	}
	if l.ChunkBytes == 0 {
		l.ChunkBytes = d.ChunkBytes
	}
	return l
}

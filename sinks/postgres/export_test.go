package postgres

import "time"

// BinaryAccepts reports whether the binary encoder for a type takes text.
func BinaryAccepts(oid uint32, text []byte) bool {
	_, ok := binEncoders[oid](nil, text)
	return ok
}

// SetBinaryCopy turns binary COPY on or off for tables the sink reads next.
func SetBinaryCopy(on bool) { binaryCopy = on }

// LoaderTables names the loader's tables, free and in use.
func LoaderTables(s *Sink) []string {
	if s.ld == nil {
		return nil
	}
	var out []string
	for _, ts := range s.ld.free {
		for _, t := range ts {
			out = append(out, t.name)
		}
	}
	for _, t := range s.ld.used {
		out = append(out, t.name)
	}
	return out
}

// SetLockWatch sets the lock watcher's timing (lockwait.go) for sinks
// opened after it; the returned func restores it.
func SetLockWatch(after, every, poll time.Duration) (restore func()) {
	a, e, p := lockWarnAfter, lockWarnEvery, lockPoll
	lockWarnAfter, lockWarnEvery, lockPoll = after, every, poll
	return func() { lockWarnAfter, lockWarnEvery, lockPoll = a, e, p }
}

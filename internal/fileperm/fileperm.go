// Package fileperm says what keeps this process from writing a file target.
package fileperm

import (
	"os"
	"path/filepath"
	"syscall"
)

const wOK, xOK = 2, 1 // access(2)

// Hint says what keeps this process from writing the file at path, or the
// files a database writes beside it, in words an operator can act on; ""
// when the permissions allow it (the cause is elsewhere).
func Hint(path string) string {
	if _, err := os.Stat(path); err == nil && syscall.Access(path, wOK) != nil {
		return "the file is not writable by this user: make it writable (chmod u+w), or run walmirror as its owner"
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "the directory " + dir + " does not exist"
	}
	if syscall.Access(dir, wOK|xOK) != nil {
		return "the directory " + dir + " is not writable by this user, and the database writes files beside the target there"
	}
	return ""
}

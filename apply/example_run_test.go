package apply_test

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestExamples runs the examples that need a PostgreSQL server (they have
// no Output comment, so go test only compiles them) against a fresh
// database and checks what they print.
func TestExamples(t *testing.T) {
	if server == nil {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	for _, ex := range []struct {
		name string
		fn   func()
		want string
	}{
		{"ExampleRun", ExampleRun, "copied up to the position taken at start: true\n"},
		{"ExampleProgress_WaitFor", ExampleProgress_WaitFor, "true lamp\n"},
	} {
		t.Run(ex.name, func(t *testing.T) {
			db, err := server.CreateDatabase(t.Context(), "example")
			if err != nil {
				t.Fatal(err)
			}
			if err := server.Exec(t.Context(), db, `CREATE TABLE items (id int PRIMARY KEY, name text);
				INSERT INTO items VALUES (1, 'chair'), (2, 'table')`); err != nil {
				t.Fatal(err)
			}
			t.Setenv("WALMIRROR_SOURCE", server.DSN(db))
			t.Setenv("WALMIRROR_SLOT", "s_"+db)
			if got := captureStdout(t, ex.fn); got != ex.want {
				t.Errorf("%s printed %q, want %q", ex.name, got, ex.want)
			}
		})
	}
}

// captureStdout runs fn with os.Stdout going to a pipe and returns what it
// wrote.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	out := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); out <- b }()
	defer func() { os.Stdout = old }()
	fn()
	w.Close()
	os.Stdout = old
	return string(bytes.TrimLeft(<-out, "\x00"))
}

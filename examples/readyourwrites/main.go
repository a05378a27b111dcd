// Command readyourwrites is a small HTTP service that writes through
// PostgreSQL and reads from a local SQLite copy that walmirror keeps in the
// same process, with read-your-writes: after a write it takes the source's
// WAL position and waits (apply.Progress.WaitFor) until the copy has
// applied it, so the read that follows sees the write.
//
//	POST /items?name=lamp   insert into PostgreSQL, answer with the row read from the copy
//	GET  /items/{id}        read from the copy; with ?lsn=X/Y, first wait for that position
//
//	go run ./examples/readyourwrites -source postgres://... -copy /tmp/items.db -listen 127.0.0.1:8080
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

func main() {
	dsn := flag.String("source", os.Getenv("WALMIRROR_SOURCE"), "PostgreSQL to write to and copy from")
	copyPath := flag.String("copy", "items.db", "the SQLite copy")
	listen := flag.String("listen", "127.0.0.1:8080", "HTTP address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc, err := Start(ctx, Options{Source: *dsn, CopyPath: *copyPath, Slot: "readyourwrites"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	srv := &http.Server{Addr: *listen, Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Shutdown(context.Background()) }()
	log.Printf("listening on %s", *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// Options configure a Service.
type Options struct {
	Source   string // PostgreSQL DSN
	CopyPath string // SQLite file
	Slot     string // replication slot ("" : walmirror)
	// WaitTimeout bounds how long a request waits for the copy (default 5s).
	WaitTimeout time.Duration
	Logger      *slog.Logger
}

// Service writes to PostgreSQL and reads from its SQLite copy.
type Service struct {
	opts     Options
	pg       *pgxpool.Pool
	copy     *sql.DB // read-only connections to the copy
	progress apply.Progress
	cancel   context.CancelFunc
	done     chan error
}

// Start creates the items table when missing, starts replicating into the
// copy and returns once the copy holds the table.
func Start(ctx context.Context, o Options) (*Service, error) {
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pg, err := pgxpool.New(ctx, o.Source)
	if err != nil {
		return nil, err
	}
	if _, err := pg.Exec(ctx, `CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, name text NOT NULL)`); err != nil {
		pg.Close()
		return nil, err
	}
	sink, err := sqlite.Open(ctx, o.CopyPath, o.Logger)
	if err != nil {
		pg.Close()
		return nil, err
	}
	s := &Service{opts: o, pg: pg, done: make(chan error, 1)}
	cfg := apply.Config{
		Source: source.Config{DSN: o.Source, Slot: o.Slot, Tables: []string{"public.items"}},
		Logger: o.Logger,
	}
	s.progress.Hook(&cfg)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go func() {
		err := apply.Run(runCtx, sink, cfg)
		sink.Close()
		s.done <- err
	}()
	// Seeded: the copy holds everything up to now.
	at, err := s.currentLSN(ctx)
	if err == nil {
		// WaitFor ends with apply.ErrStopped (wrapping Run's error) when
		// Run ends first: a wrong DSN, a slot another copy follows, ...
		wctx, cancelWait := context.WithTimeout(ctx, time.Minute)
		err = s.progress.WaitFor(wctx, at)
		cancelWait()
	}
	if err == nil {
		s.copy, err = sql.Open("sqlite3", "file:"+o.CopyPath+"?mode=ro&_busy_timeout=5000")
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops replicating and closes the connections.
func (s *Service) Close() error {
	s.cancel()
	err := <-s.done
	if s.copy != nil {
		s.copy.Close()
	}
	s.pg.Close()
	return err
}

// currentLSN is the source's WAL position, taken after a commit: it covers
// the commit (the service's commits are synchronous; after one with
// synchronous_commit = off, take pg_current_wal_insert_lsn(), see
// apply.Progress).
func (s *Service) currentLSN(ctx context.Context) (lsn.LSN, error) {
	var text string
	if err := s.pg.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		return 0, err
	}
	return lsn.Parse(text)
}

// Item is a row of items, as the copy holds it.
type Item struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// LSN is the source position the read waited for: pass it as ?lsn= to
	// later reads (another instance's copy) to see this write there too.
	LSN string `json:"lsn,omitempty"`
}

// Handler serves the items API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "name is required", http.StatusBadRequest)
			return
		}
		var id int64
		if err := s.pg.QueryRow(r.Context(), `INSERT INTO items (name) VALUES ($1) RETURNING id`, name).Scan(&id); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Committed; the position after it covers the write.
		at, err := s.currentLSN(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.serveItem(w, r, id, at)
	})
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		var at lsn.LSN
		if q := r.URL.Query().Get("lsn"); q != "" {
			if at, err = lsn.Parse(q); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		s.serveItem(w, r, id, at)
	})
	return mux
}

// serveItem waits until the copy holds everything up to at, then answers
// with the item read from the copy.
func (s *Service) serveItem(w http.ResponseWriter, r *http.Request, id int64, at lsn.LSN) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.WaitTimeout)
	defer cancel()
	if err := s.progress.WaitFor(ctx, at); errors.Is(err, apply.ErrStopped) {
		http.Error(w, "the copy is not kept current: "+err.Error(), http.StatusServiceUnavailable)
		return
	} else if err != nil {
		http.Error(w, "the copy has not caught up: "+err.Error(), http.StatusGatewayTimeout)
		return
	}
	it := Item{ID: id}
	if at != 0 {
		it.LSN = at.String()
	}
	err := s.copy.QueryRowContext(r.Context(), `SELECT name FROM items WHERE id = ?`, id).Scan(&it.Name)
	if errors.Is(err, sql.ErrNoRows) {
		http.Error(w, "no such item", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(it)
}

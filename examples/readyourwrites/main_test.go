package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/testenv"
)

// TestReadYourWrites: every write answered by the service is read back
// from the SQLite copy, from concurrent clients, and a later read by id
// with the returned position finds it too.
func TestReadYourWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	srv := testenv.StartT(t, testenv.Options{})
	db, err := srv.CreateDatabase(t.Context(), "ryw")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Start(t.Context(), Options{Source: srv.DSN(db), CopyPath: filepath.Join(t.TempDir(), "items.db"), Slot: "s_" + db})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := svc.Close(); err != nil {
			t.Error(err)
		}
	}()
	ts := httptest.NewServer(svc.Handler())
	defer ts.Close()

	decode := func(resp *http.Response) (Item, error) {
		defer resp.Body.Close()
		var it Item
		if resp.StatusCode != http.StatusOK {
			return it, fmt.Errorf("status %s", resp.Status)
		}
		return it, json.NewDecoder(resp.Body).Decode(&it)
	}
	const clients, writes = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*writes)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				name := fmt.Sprintf("item %d-%d", c, i)
				resp, err := http.Post(ts.URL+"/items?name="+url.QueryEscape(name), "", nil)
				if err != nil {
					errs <- err
					return
				}
				it, err := decode(resp)
				if err != nil || it.Name != name || it.ID == 0 || it.LSN == "" {
					errs <- fmt.Errorf("POST %q: %+v, %v", name, it, err)
					continue
				}
				resp, err = http.Get(fmt.Sprintf("%s/items/%d?lsn=%s", ts.URL, it.ID, it.LSN))
				if err != nil {
					errs <- err
					return
				}
				if got, err := decode(resp); err != nil || got.Name != name {
					errs <- fmt.Errorf("GET item %d: %+v, %v", it.ID, got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	resp, err := http.Get(ts.URL + "/items/999999")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a missing item: %s, want 404", resp.Status)
	}
}

// TestStartFailsWithRun: when replication cannot start (here the slot
// exists, left by another copy), Start returns Run's error at once rather
// than after its one-minute wait for the copy.
func TestStartFailsWithRun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	srv := testenv.StartT(t, testenv.Options{})
	db, err := srv.CreateDatabase(t.Context(), "ryw")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(t.Context(), db, `SELECT pg_create_logical_replication_slot('s_`+db+`', 'pgoutput')`); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	svc, err := Start(t.Context(), Options{Source: srv.DSN(db), CopyPath: filepath.Join(t.TempDir(), "items.db"), Slot: "s_" + db})
	if err == nil {
		svc.Close()
		t.Fatal("Start succeeded on a slot another copy follows")
	}
	if !errors.Is(err, apply.ErrSlotExists) || !errors.Is(err, apply.ErrStopped) {
		t.Errorf("Start = %v, want ErrSlotExists (and ErrStopped)", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("Start took %s to fail", d)
	}
}

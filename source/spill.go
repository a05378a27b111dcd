package source

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/walmirror/walmirror/lsn"
)

// Streamed transactions (protocol v2+) arrive in stream blocks while they are
// still in progress. Their changes are kept on disk, one spill file per
// top-level transaction, until the server says how the transaction ended:
// at Stream Commit they are read back and handed on as one ordinary
// transaction (Begin, changes, Commit), at Stream Abort the file is deleted
// (or, for a subtransaction, its records are skipped when read back).
//
// A spill file is a sequence of records, each
//
//	uint32 length of msg (big-endian)
//	uint32 xid of the (sub)transaction that made the change
//	msg    the pgoutput message as the server sent it
//
// Nothing in it outlives the process that wrote it: the directory is emptied
// at every START_REPLICATION (the server sends every transaction not yet
// confirmed again) and removed when the stream closes.

// maxSpillRecord bounds a record's length when reading one back: a pgoutput
// message is at most a palloc'd buffer (1 GB).
const maxSpillRecord = 1 << 30

// writeSpillRecord appends one record to w.
func writeSpillRecord(w io.Writer, subxid uint32, msg []byte) error {
	var h [8]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(msg)))
	binary.BigEndian.PutUint32(h[4:8], subxid)
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(msg)
	return err
}

// errTornRecord is a spill file that ends inside a record.
var errTornRecord = errors.New("spill file ends inside a record")

// readSpillRecord reads the next record from r into a buffer from alloc
// (msg is that buffer: the caller owns it). At the end of the file it
// returns io.EOF; a file that ends inside a record is errTornRecord.
func readSpillRecord(r *bufio.Reader, alloc func(int) []byte) (subxid uint32, msg []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errTornRecord
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n > maxSpillRecord {
		return 0, nil, fmt.Errorf("spill record of %d bytes: longer than any pgoutput message", n)
	}
	msg = alloc(int(n))
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errTornRecord
		}
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(h[4:8]), msg, nil
}

// spillDirName is the directory, under parent, where one slot's streamed
// transactions are spilled. The slot is exclusive while streaming, but two
// sources may have slots of the same name: the cluster and database are in
// the name too.
func spillDirName(parent, systemID, db, slot string) string {
	if parent == "" {
		parent = os.TempDir()
	}
	h := fnv.New32a()
	h.Write([]byte(systemID + "/" + db))
	return filepath.Join(parent, fmt.Sprintf("walmirror-spill-%s-%08x", slot, h.Sum32()))
}

// spill holds the spill files of the transactions being streamed. It is
// used by the stream's receive goroutine only.
type spill struct {
	dir  string
	txns map[uint32]*spillTxn
	rbuf *bufio.Reader
}

type spillTxn struct {
	f       *os.File
	w       *bufio.Writer
	aborted map[uint32]bool // subtransactions whose records are skipped
	records int
	first   lsn.LSN // where the server started streaming it
}

// openSpill empties dir (whatever is in it belongs to an earlier run of the
// same slot, which the server will send again) and makes it anew.
func openSpill(dir string) (*spill, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("empty spill directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spill directory: %w", err)
	}
	return &spill{dir: dir, txns: make(map[uint32]*spillTxn)}, nil
}

func (s *spill) path(xid uint32) string {
	return filepath.Join(s.dir, strconv.FormatUint(uint64(xid), 10)+".spill")
}

// start opens the spill file of xid for a stream block. The first block of
// a transaction starts a new file; a later one appends to it.
func (s *spill) start(xid uint32, first bool, at lsn.LSN) error {
	t := s.txns[xid]
	if first && t != nil {
		s.drop(xid)
		t = nil
	}
	if t != nil {
		return nil
	}
	if !first {
		return fmt.Errorf("stream block of transaction %d continues a transaction whose first block never came", xid)
	}
	f, err := os.OpenFile(s.path(xid), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create spill file: %w", err)
	}
	s.txns[xid] = &spillTxn{f: f, w: bufio.NewWriterSize(f, 64<<10), first: at}
	return nil
}

// oldest is where the oldest transaction being streamed started, 0 if none.
func (s *spill) oldest() lsn.LSN {
	var o lsn.LSN
	for _, t := range s.txns {
		if o == 0 || t.first != 0 && t.first < o {
			o = t.first
		}
	}
	return o
}

// write appends one change of subxid to xid's spill file.
func (s *spill) write(xid, subxid uint32, msg []byte) error {
	t := s.txns[xid]
	if t == nil {
		return fmt.Errorf("change of streamed transaction %d outside its stream", xid)
	}
	if err := writeSpillRecord(t.w, subxid, msg); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	t.records++
	return nil
}

// abort forgets xid (subxid == xid) or marks the records of one of its
// subtransactions to be skipped. An abort of a transaction that has no
// spill file (nothing of it was streamed in this session) is ignored.
func (s *spill) abort(xid, subxid uint32) {
	t := s.txns[xid]
	switch {
	case t == nil:
	case subxid == xid:
		s.drop(xid)
	default:
		if t.aborted == nil {
			t.aborted = make(map[uint32]bool)
		}
		t.aborted[subxid] = true
	}
}

// replay reads xid's records back in order, calls fn with each one not
// aborted (msg from alloc), then deletes the file. A transaction with no
// spill file has no records.
func (s *spill) replay(xid uint32, alloc func(int) []byte, fn func(msg []byte) error) error {
	t := s.txns[xid]
	if t == nil {
		return nil
	}
	defer s.drop(xid)
	if err := t.w.Flush(); err != nil {
		return fmt.Errorf("write spill file: %w", err)
	}
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read spill file: %w", err)
	}
	if s.rbuf == nil {
		s.rbuf = bufio.NewReaderSize(t.f, 256<<10)
	} else {
		s.rbuf.Reset(t.f)
	}
	defer s.rbuf.Reset(nil)
	for n := 0; ; n++ {
		subxid, msg, err := readSpillRecord(s.rbuf, alloc)
		if err == io.EOF {
			if n != t.records {
				return fmt.Errorf("read spill file of transaction %d: %d records, %d written", xid, n, t.records)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read spill file of transaction %d: %w", xid, err)
		}
		if t.aborted[subxid] {
			continue
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// drop closes and deletes xid's spill file.
func (s *spill) drop(xid uint32) {
	if t := s.txns[xid]; t != nil {
		t.f.Close()
		os.Remove(t.f.Name())
		delete(s.txns, xid)
	}
}

// close deletes every spill file and the directory.
func (s *spill) close() error {
	for xid := range s.txns {
		s.drop(xid)
	}
	return os.RemoveAll(s.dir)
}

package pgoutput

import "fmt"

// MaxProtocol is the highest pgoutput protocol version (proto_version) this
// package decodes.
const MaxProtocol = 4

// DecodeOptions tell a Decoder what the bytes of a message do not: the
// options the replication slot was started with. The zero value is protocol
// v1.
type DecodeOptions struct {
	// Protocol is the proto_version given to START_REPLICATION, 1 to
	// MaxProtocol; 0 means 1. Messages a later version defines are rejected
	// with ErrUnsupported.
	Protocol int
	// ParallelAbort is set when the slot was started with streaming
	// 'parallel' (protocol v4+): Stream Abort then carries the abort LSN and
	// abort time. With streaming 'on' it does not.
	ParallelAbort bool
}

// Validate reports options that no server accepts.
func (o DecodeOptions) Validate() error {
	if o.Protocol < 0 || o.Protocol > MaxProtocol {
		return fmt.Errorf("pgoutput: DecodeOptions.Protocol %d: want 1 to %d", o.Protocol, MaxProtocol)
	}
	if o.ParallelAbort && o.Protocol < 4 {
		return fmt.Errorf("pgoutput: DecodeOptions.ParallelAbort needs Protocol 4 or later (streaming 'parallel'), have %d", o.Protocol)
	}
	return nil
}

// Decoder decodes the messages of one replication stream, in order. It
// tracks stream blocks (protocol v2+): between StreamStart and StreamStop,
// change messages carry the xid of their (sub)transaction, decoded into
// their Xid field (0 outside stream blocks).
//
// Typical use, one Decoder per START_REPLICATION:
//
//	dec, err := pgoutput.NewDecoder(pgoutput.DecodeOptions{Protocol: 4, ParallelAbort: true})
//	...
//	for each XLogData payload {
//		m, err := dec.Decode(payload)
//		switch m := m.(type) {
//		case *pgoutput.StreamStart:  // stage m.Xid's changes until StreamCommit/StreamAbort
//		case *pgoutput.Insert:       // m.Xid != 0: a change of a streamed transaction
//		...
//		}
//	}
//
// A Decoder also checks the order the server keeps: a StreamStop only
// inside a stream block, inside one only the messages pgoutput puts there;
// anything else is an ErrSequence error. A message that fails to decode
// leaves the state unchanged. After reconnecting, start with Reset (or a new
// Decoder): the server starts stream blocks afresh.
//
// Decode's aliasing and error contract is that of the package function
// Decode. A Decoder is not safe for concurrent use; its zero value decodes
// protocol v1.
type Decoder struct {
	opts      DecodeOptions
	inStream  bool
	streamXid uint32
}

// NewDecoder returns a Decoder for a stream started with opts, or the error
// of opts.Validate.
func NewDecoder(opts DecodeOptions) (*Decoder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Protocol == 0 {
		opts.Protocol = 1
	}
	return &Decoder{opts: opts}, nil
}

// Decode decodes the next message of the stream; see the package function
// Decode for what the result aliases. A StreamStart opens a stream block
// and a StreamStop closes it. Errors are *DecodeError values wrapping
// ErrTruncated, ErrInvalid, ErrUnsupported (a message of a later protocol
// than DecodeOptions.Protocol), ErrSequence or ErrUnknownType.
func (d *Decoder) Decode(src []byte) (Message, error) {
	m, err := decode(src, mode{
		protocol:      max(d.opts.Protocol, 1),
		inStream:      d.inStream,
		streamXid:     d.streamXid,
		parallelAbort: d.opts.ParallelAbort,
	})
	if err != nil {
		return nil, err
	}
	switch m := m.(type) {
	case *StreamStart:
		d.inStream, d.streamXid = true, m.Xid
	case *StreamStop:
		d.inStream, d.streamXid = false, 0
	}
	return m, nil
}

// Stream returns the top-level transaction of the open stream block, and
// whether one is open.
func (d *Decoder) Stream() (xid uint32, ok bool) { return d.streamXid, d.inStream }

// Reset forgets the open stream block, for a new START_REPLICATION.
func (d *Decoder) Reset() { d.inStream, d.streamXid = false, 0 }

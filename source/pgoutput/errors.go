package pgoutput

import (
	"errors"
	"fmt"
)

// Sentinel causes, matched with errors.Is against the *DecodeError that
// Decode returns.
var (
	// ErrTruncated: the message ended before a field, or a length or count
	// claims more bytes than remain.
	ErrTruncated = errors.New("pgoutput: message truncated")
	// ErrInvalid: a field holds a value the format does not allow (a negative
	// length or count, an unknown tuple marker).
	ErrInvalid = errors.New("pgoutput: invalid field value")
	// ErrUnsupported: a message that a later protocol version defines than
	// the one decoded (Decode: v1; a Decoder: DecodeOptions.Protocol), which
	// such a stream never carries.
	ErrUnsupported = errors.New("pgoutput: unsupported message")
	// ErrSequence: a Decoder got a message where the server never sends it:
	// a Stream Stop outside a stream block, or inside one a message other
	// than a change, an Origin or the Stream Stop.
	ErrSequence = errors.New("pgoutput: message out of sequence")
	// ErrUnknownType: the first byte is not a known message type.
	ErrUnknownType = errors.New("pgoutput: unknown message type")
)

// DecodeError describes why Decode rejected its input.
type DecodeError struct {
	Type   MessageType // the message type byte (0 when src was empty)
	Field  string      // the field being decoded, "" for message-level errors
	Offset int         // offset in src of that field (0 is the type byte)
	Detail string      // what was wrong
	Err    error       // one of the Err* sentinels
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return fmt.Sprintf("pgoutput %s message %q: %s at offset %d: %s",
		e.Type, byte(e.Type), e.Field, e.Offset, e.Detail)
}

// Unwrap returns the sentinel cause.
func (e *DecodeError) Unwrap() error { return e.Err }

package verify

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
)

// DefaultRepairKeys is how many differing rows of a table verify --repair
// copies again by key at most; a table with more is copied again whole.
const DefaultRepairKeys = 10000

// keyNamer turns the key of a differing row into the key a resync request
// names it by (apply.EncodeResyncKeys): the key columns' values exactly as
// pgoutput sends them, in key column order. Rows are named by key only
// for keys of integers (int2, int4, int8, oid), uuids, text and varchar,
// which the engine matches by their text; for these, the canonical form
// (canon.go) is that text: integers in decimal without leading zeros,
// uuids in lowercase with hyphens, text as it is. (Other types have
// canonical forms that are not the stream's: numeric without trailing
// zeros, timestamps rebuilt.)
type keyNamer struct {
	cols []int    // key column positions
	oids []uint32 // their types
}

// newKeyNamer returns how t's keys are named, or why its rows cannot be
// copied again by key.
func newKeyNamer(t *Table) (*keyNamer, string) {
	if !t.Keyed() {
		return nil, "no key"
	}
	k := &keyNamer{}
	var other []string
	for _, i := range t.keys {
		c := t.Columns[i]
		if !apply.ExactKeyType(c.TypeID) {
			other = append(other, c.Name)
		}
		k.cols = append(k.cols, i)
		k.oids = append(k.oids, c.TypeID)
	}
	if other != nil {
		return nil, "key column " + strings.Join(other, ", ") + " is not an integer, uuid, text or varchar"
	}
	return k, ""
}

// name returns r's key as a resync request names it, or why it cannot be
// named (a value the copy holds that is no valid value of its column, or
// NULL: such a row is only removed by copying the whole table).
func (k *keyNamer) name(r Row) ([]string, string) {
	key := make([]string, len(k.cols))
	for i, ci := range k.cols {
		v := r[ci]
		if v == nil {
			return nil, "a differing row's key is NULL"
		}
		if !validKey(k.oids[i], v) {
			return nil, "a differing row's key is no valid " + typeName(k.oids[i])
		}
		key[i] = string(v)
	}
	return key, ""
}

// validKey reports whether v, a canonical value, is the text PostgreSQL
// prints for some value of the type.
func validKey(oid uint32, v []byte) bool {
	if isInvalid(v) {
		return false
	}
	if oid == schema.OIDText || oid == schema.OIDVarchar {
		// As a literal to the source: UTF-8 without NUL (a hand-written
		// SQLite value may be neither).
		return utf8.Valid(v) && bytes.IndexByte(v, 0) < 0
	}
	if oid == schema.OIDUUID {
		if len(v) != 36 {
			return false
		}
		for i, c := range v {
			switch {
			case i == 8 || i == 13 || i == 18 || i == 23:
				if c != '-' {
					return false
				}
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			default:
				return false
			}
		}
		return true
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != string(v) {
		return false
	}
	switch oid {
	case schema.OIDInt2:
		return n >= -1<<15 && n < 1<<15
	case schema.OIDInt4:
		return n >= -1<<31 && n < 1<<31
	case schema.OIDOid:
		return n >= 0 && n < 1<<32
	}
	return true
}

func typeName(oid uint32) string {
	switch oid {
	case schema.OIDInt2:
		return "int2"
	case schema.OIDInt4:
		return "int4"
	case schema.OIDInt8:
		return "int8"
	case schema.OIDOid:
		return "oid"
	case schema.OIDUUID:
		return "uuid"
	case schema.OIDText:
		return "text"
	case schema.OIDVarchar:
		return "varchar"
	}
	return fmt.Sprintf("type %d", oid)
}

// keySet collects the keys of a table's differing rows, up to a bound.
type keySet struct {
	namer *keyNamer
	max   int
	seen  map[string]bool
	keys  [][]string
	why   string // set: the keys are not all named (keys is then nil)
}

func newKeySet(t *Table, max int) *keySet {
	ks := &keySet{max: max}
	if max <= 0 {
		ks.why = "copying rows by key is off"
		return ks
	}
	ks.namer, ks.why = newKeyNamer(t)
	return ks
}

// add names the differing row r (its key columns at least).
func (ks *keySet) add(r Row) {
	if ks.why != "" {
		return
	}
	key, why := ks.namer.name(r)
	if why != "" {
		ks.give(why)
		return
	}
	s := strings.Join(key, "\x00")
	if ks.seen[s] {
		return
	}
	if len(ks.keys) >= ks.max {
		ks.give(fmt.Sprintf("more than %d rows differ", ks.max))
		return
	}
	if ks.seen == nil {
		ks.seen = map[string]bool{}
	}
	ks.seen[s] = true
	ks.keys = append(ks.keys, key)
}

func (ks *keySet) give(why string) {
	ks.why, ks.keys, ks.seen = why, nil, nil
}

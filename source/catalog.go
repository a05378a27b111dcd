package source

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Attribute is one column of a source table as the catalog (pg_attribute)
// describes it now: pgoutput's Relation messages say what the columns are,
// not what old rows hold or what happened to them.
type Attribute struct {
	Num     int16 // attnum: survives a rename, a new column gets a new one
	Name    string
	TypeID  uint32
	Typmod  int32
	Dropped bool
	// HasMissing says rows that existed when the column was added carry
	// Missing (ADD COLUMN ... DEFAULT with a non-volatile default: PostgreSQL
	// stores the value once instead of writing the rows, so no WAL says so).
	HasMissing bool
	Missing    string // the value's text form, as pgoutput would print it
	HasDefault bool
	Generated  bool
	// Key: a key column of the replica identity index (primary key or
	// REPLICA IDENTITY USING INDEX). pgoutput flags an index's INCLUDE
	// columns too, which are not part of the key.
	Key bool
}

// Attributes returns the columns of relation relid, dropped ones included, in
// attnum order. It uses the catalog session, whose settings match the
// replication session's, so text forms agree with the stream's.
func (s *Source) Attributes(ctx context.Context, relid uint32) ([]Attribute, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout())
	defer cancel()
	// attmissingval is an array of one element of the column's type: through
	// text[] its element comes out in the type's own text form.
	rows, err := s.conn.Query(ctx, `SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attisdropped,
			a.atthasmissing, CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END,
			a.atthasdef, a.attgenerated <> '',
			EXISTS (SELECT FROM generate_series(0, i.indnkeyatts - 1) k WHERE i.indkey[k] = a.attnum)
		FROM pg_catalog.pg_attribute a
		JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND
			CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END
		WHERE a.attrelid = $1 AND a.attnum > 0
		ORDER BY a.attnum`, relid)
	if err != nil {
		return nil, classify("read the source catalog", timeoutCause(ctx, err))
	}
	attrs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attribute, error) {
		var a Attribute
		var missing *string
		err := r.Scan(&a.Num, &a.Name, &a.TypeID, &a.Typmod, &a.Dropped, &a.HasMissing, &missing, &a.HasDefault, &a.Generated, &a.Key)
		if missing != nil {
			a.Missing = *missing
		}
		return a, err
	})
	if err != nil {
		return nil, classify("read the source catalog", timeoutCause(ctx, err))
	}
	return attrs, nil
}

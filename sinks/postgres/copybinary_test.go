package postgres_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
)

// rawTypesDDL has built-in types only, several of them with a binary form
// that names an element type or depends on typmods.
const rawTypesDDL = `
CREATE TABLE raw (
	id bigint PRIMARY KEY, n numeric(12,2), nu numeric, f4 float4, f8 float8, t text, vc varchar(5), c char(3),
	by bytea, j json, jb jsonb, d date, ts timestamp(3), tstz timestamptz, tm time, tmtz timetz, iv interval,
	u uuid, m money, b bool, bits bit(4), vb varbit, ip inet, cidr cidr, mac macaddr, pt point, bx box,
	ia int[], ta text[][], na numeric(5,1)[], r int4range, tr tstzrange, x xml, tv tsvector, o oid, nm name, ch "char"
);
INSERT INTO raw VALUES
(1, 1234567890.12, 'NaN', 'Infinity', -0.0, E'tab\there\nnewline ✓', 'abcde', 'ab', '\x00ff', '{"a": [1, 2.50]}',
	'{"b": 1, "a": [1.0]}', 'infinity', '2024-01-02 03:04:05.123', '2024-01-02 03:04:05.5+05:30', '24:00:00',
	'03:04:05+05:30', '1 year 2 mons -3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '$1,234.56', true,
	B'1010', B'10', '10.0.0.1', '192.168.0.0/16', '08:00:2b:01:02:03', '(1.5,-2.25)', '((0,0),(1,1))',
	'{1,NULL,3}', '{{"a b",NULL},{"c\"d",""}}', '{1.5,NULL}', '[1,10)', '[2024-01-01,infinity)', '<a>ü</a>',
	'a fat cat', 4294967295, 'name', 'z'),
(2, NULL, '123456789012345678901234567890.123456789', 'NaN', 1e-310, '', '', '', '\x', 'null', '[]',
	'0044-03-15 BC', '-infinity', '0001-01-01 00:00:00+00 BC', '00:00', '00:00:00-14', '-178000000 years', NULL,
	'-$0.01', false, B'0000', B'', '::1', '::/0', 'ff:ff:ff:ff:ff:ff', '(0,0)', '((1,2),(3,4))', '{}', '{}',
	'{}', 'empty', '(,)', NULL, '', 0, '', ''),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`

// TestCopyBinary: a table of built-in types is loaded from the source's
// binary COPY stream as is, every value reads back as the source prints it,
// and a table created in the transaction gets its primary key back after
// the load; a table with types the target does not share goes the usual way.
func TestCopyBinary(t *testing.T) {
	ctx := context.Background()
	src := connect(t, newDB(t, "rawcopy_source"))
	exec(t, src, rawTypesDDL+typesDDL)
	// Before 17 the target takes intervals through their text (an infinite
	// one, 17+, would read as finite): here without them, and a table with
	// one is refused below.
	before17 := string(query(t, src, "SELECT current_setting('server_version_num')::int < 170000")[0][0]) == "t"
	if before17 {
		exec(t, src, "ALTER TABLE raw DROP COLUMN iv; CREATE TABLE ivt (id int PRIMARY KEY, iv interval[])")
	}
	tbl, _ := sourceTable(t, src, "raw", schema.IdentityDefault)
	types, _ := sourceTable(t, src, "types", schema.IdentityDefault)
	var stream bytes.Buffer
	if _, err := src.PgConn().CopyTo(ctx, &stream, "COPY raw TO STDOUT (FORMAT binary)"); err != nil {
		t.Fatal(err)
	}
	want := query(t, src, "SELECT * FROM raw ORDER BY id")

	dsn := newDB(t, "rawcopy_target")
	dst := connect(t, dsn)
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	check := func(what string) {
		t.Helper()
		got := query(t, dst, "SELECT * FROM public.raw ORDER BY id")
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
		}
		for i := range want {
			for j := range want[i] {
				if g, w := got[i][j], want[i][j]; (g == nil) != (w == nil) || string(g) != string(w) {
					t.Errorf("%s: row %d column %s: %q, source %q", what, i+1, tbl.Columns[j].Name, g, w)
				}
			}
		}
		key := query(t, dst, `SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.raw'::regclass AND contype = 'p'`)
		if len(key) != 1 || string(key[0][0]) != "raw_pkey" || string(key[0][1]) != "PRIMARY KEY (id)" {
			t.Errorf("%s: primary key %q", what, key)
		}
	}
	load := func(ctx context.Context) error {
		ok, err := s.CopiesBinary(ctx, tbl)
		if err != nil || !ok {
			t.Fatalf("CopiesBinary(raw) = %v, %v", ok, err)
		}
		n, err := s.CopyBinary(ctx, tbl, bytes.NewReader(stream.Bytes()))
		if err == nil && n != int64(len(want)) {
			t.Errorf("CopyBinary loaded %d rows, want %d", n, len(want))
		}
		return err
	}
	// Created in the transaction: the key comes after the load.
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return load(ctx)
	})
	check("new table")
	if before17 {
		ivt, _ := sourceTable(t, src, "ivt", schema.IdentityDefault)
		tx(t, s, func(ctx context.Context) error {
			if err := s.EnsureTable(ctx, ivt); err != nil {
				return err
			}
			if ok, err := s.CopiesBinary(ctx, ivt); err != nil || ok {
				t.Errorf("CopiesBinary(a table with interval[]) before 17 = %v, %v, want false", ok, err)
			}
			return nil
		})
	}
	// Emptied in the transaction, the key stays (not the sink's to drop
	// any more: someone may depend on it by now).
	keyOID := func() string {
		return string(query(t, dst, `SELECT oid FROM pg_constraint WHERE conrelid = 'public.raw'::regclass AND contype = 'p'`)[0][0])
	}
	before := keyOID()
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		if err := s.Truncate(ctx, []*schema.Table{tbl}); err != nil {
			return err
		}
		return load(ctx)
	})
	check("emptied table")
	if keyOID() != before {
		t.Error("the primary key of a table the transaction did not create was dropped and added again")
	}

	// Enums and domains are text in the target: not the source's binary form.
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, types); err != nil {
			return err
		}
		ok, err := s.CopiesBinary(ctx, types)
		if err == nil && ok {
			t.Error("CopiesBinary(types) = true with enum and domain columns stored as text")
		}
		return err
	})
	// A failed load fails the transaction and leaves nothing.
	err := s.Begin(ctx)
	if err == nil {
		if err = s.EnsureTable(ctx, tbl); err == nil {
			_, err = s.CopyBinary(ctx, tbl, bytes.NewReader(stream.Bytes()[:stream.Len()-10]))
		}
	}
	if err == nil || !strings.Contains(err.Error(), "copy into") {
		t.Fatalf("a cut stream: %v", err)
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a failed load")
}

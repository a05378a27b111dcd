package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
)

// TestReplicaRoleWithoutSuperuser: a target role that is not a superuser can
// have walmirror's writes bypass the target's triggers from PostgreSQL 15 on,
// once granted SET on session_replication_role (GRANT SET ON PARAMETER is
// new in 15); on 14 opening the sink fails with an error naming the ways out.
func TestReplicaRoleWithoutSuperuser(t *testing.T) {
	dsn := newDB(t, "replica_nosuper")
	dst := connect(t, dsn)
	db := string(query(t, dst, "SELECT current_database()")[0][0])
	role := "writer_" + db
	exec(t, dst, "CREATE ROLE "+qident(role)+" LOGIN PASSWORD 'pw'; GRANT CREATE ON DATABASE "+qident(db)+" TO "+qident(role)+
		"; GRANT CREATE ON SCHEMA public TO "+qident(role))
	if srv.Major() >= 15 {
		exec(t, dst, "GRANT SET ON PARAMETER session_replication_role TO "+qident(role))
	}
	opts := postgres.DefaultOptions()
	opts.ReplicaRole = true
	s, err := postgres.Open(context.Background(), srv.DSNFor(role, "pw", db), nil, opts)
	if srv.Major() < 15 {
		if err == nil {
			s.Close()
			t.Fatal("PostgreSQL 14: a role that is not a superuser set session_replication_role")
		}
		if !strings.Contains(err.Error(), "needs a superuser") {
			t.Fatalf("PostgreSQL 14: the error does not say what is needed: %v", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := schema.NewTable(1, "public", "guarded", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
	})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	exec(t, dst, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'the target''s trigger fired'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON guarded FOR EACH ROW EXECUTE FUNCTION refuse();`)
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{{{State: schema.Text, Data: []byte("1")}}}})
	})
	if got := query(t, dst, "SELECT count(*) FROM guarded"); string(got[0][0]) != "1" {
		t.Errorf("rows written: %s, want 1", got[0][0])
	}
}

// TestNumericOddScale: numeric(5,-2) and numeric(3,5) (PostgreSQL 15+) from
// a newer source into a PostgreSQL 14 target stopped every run ("NUMERIC
// scale 2046 must be between 0 and precision 5": 14 reads the typmod
// otherwise); such a column is plain numeric there, the same type on 15+.
func TestNumericOddScale(t *testing.T) {
	dsn := newDB(t, "numeric_odd")
	dst := connect(t, dsn)
	s, err := postgres.Open(context.Background(), dsn, nil, postgres.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	typmod := func(prec, scale int32) int32 { return prec<<16 | scale&0x7ff + 4 }
	tbl := schema.NewTable(1, "public", "odd", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "neg", TypeID: schema.OIDNumeric, Typmod: typmod(5, -2)},
		{Name: "big", TypeID: schema.OIDNumeric, Typmod: typmod(3, 5)},
		{Name: "usual", TypeID: schema.OIDNumeric, Typmod: typmod(10, 2)},
	})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	tx(t, s, func(ctx context.Context) error {
		v := func(s string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(s)} }
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{{v("1"), v("12300"), v("0.00123"), v("1.50")}}})
	})
	want := "numeric(5,-2) numeric(3,5) numeric(10,2) 12300 0.00123 1.50"
	if srv.Major() < 15 {
		want = "numeric numeric numeric(10,2) 12300 0.00123 1.50"
	}
	got := query(t, dst, `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = 'odd'::regclass AND a.attnum > 1 ORDER BY a.attnum`)
	vals := query(t, dst, `SELECT neg::text, big::text, usual::text FROM odd`)
	if s := string(got[0][0]) + " " + string(got[1][0]) + " " + string(got[2][0]) + " " + string(vals[0][0]) + " " + string(vals[0][1]) + " " + string(vals[0][2]); s != want {
		t.Errorf("target columns and values: %s, want %s", s, want)
	}
}

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

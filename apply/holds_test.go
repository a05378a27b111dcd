package apply

import (
	"slices"
	"strconv"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// TestHolds: what decides which rows a table publishes is read from its
// storage signature: the leaves holding its rows and its membership, not
// their data files, enum labels or name.
func TestHolds(t *testing.T) {
	base, ok := holds("16384:16390;enums:abc|r16400|2200.t")
	if !ok || base != "16384,|r16400" {
		t.Fatalf("holds = %q, %v", base, ok)
	}
	same := []string{
		"16384:16999;enums:def|r16400|2200.t",      // rewritten, enum relabelled
		"16384:16390|r16400|2200.renamed|with|bar", // renamed (a name may hold "|")
	}
	for _, s := range same {
		if h, _ := holds(s); h != base {
			t.Errorf("holds(%q) = %q, want %q", s, h, base)
		}
	}
	differ := []string{
		"16384:16390|r16401|2200.t",     // filter or column list altered: re-added
		"16384:16390|all|2200.t",        // now through FOR ALL TABLES
		"16384:1,16500:2|r16400|2200.t", // a partition attached
	}
	for _, s := range differ {
		if h, _ := holds(s); h == base {
			t.Errorf("holds(%q) = %q, the same as before the change", s, h)
		}
	}
	for _, s := range []string{"", "16384:16390", "16384:16390||2200.t"} {
		if _, ok := holds(s); ok {
			t.Errorf("holds(%q) is ok for a signature without membership", s)
		}
	}
}

// TestUpgradeSig: a signature stored before the FOR ALL TABLES membership
// named the publication's oid (or a FOR TABLES IN SCHEMA one its schema
// link, and so on) reads as today's, so an upgrade copies
// nothing again; any other difference stays.
func TestUpgradeSig(t *testing.T) {
	for _, c := range []struct{ stored, now, want string }{
		{"16384:16390|all|2200.t", "16384:16390|all16400|2200.t", "16384:16390|all16400|2200.t"},
		{"16384:16390;enums:ab|all|2200.a|b", "16384:16399|all16400|2200.c", "16384:16390;enums:ab|all16400|2200.a|b"},
		{"16384:16390|all16300|2200.t", "16384:16390|all16400|2200.t", "16384:16390|all16300|2200.t"},
		{"16384:16390|r16500|2200.t", "16384:16390|all16400|2200.t", "16384:16390|r16500|2200.t"},
		{"16384:16390|all|2200.t", "16384:16390|r16500|2200.t", "16384:16390|all|2200.t"},
		{"", "16384:16390|all16400|2200.t", ""},
		// The publication's transaction and a partitioned table's links.
		{"16384:16390|r16500|2200.t", "16384:16390|r16500;pub:777|2200.t", "16384:16390|r16500;pub:777|2200.t"},
		{"16384:16390|all|2200.t", "16384:16390|all16400;pub:777|2200.t", "16384:16390|all16400;pub:777|2200.t"},
		{"1:2,3:4;enums:ab|r16500|2200.p", "1:2,3:4;enums:ab;inh:cd|r16500;pub:777|2200.p", "1:2,3:4;enums:ab;inh:cd|r16500;pub:777|2200.p"},
		{"1:2,3:4;inh:ef|r16500;pub:700|2200.p", "1:2,3:4;inh:cd|r16500;pub:777|2200.p", "1:2,3:4;inh:ef|r16500;pub:700|2200.p"},
		// Enums and composites nested in the columns' types, before the links.
		{"1:2;enums:ab|r1|2200.t", "1:2;enums:ab;nested:xy|r1|2200.t", "1:2;enums:ab;nested:xy|r1|2200.t"},
		{"1:2,3:4;inh:cd|r1;pub:7|2200.p", "1:2,3:4;nested:xy;inh:cd|r1;pub:7|2200.p", "1:2,3:4;nested:xy;inh:cd|r1;pub:7|2200.p"},
		{"1:2|r1;pub:7|2200.p", "1:2;nested:xy;inh:cd|r1;pub:7|2200.p", "1:2;nested:xy;inh:cd|r1;pub:7|2200.p"},
		{"1:2;nested:aa|r1|2200.t", "1:2;nested:bb|r1|2200.t", "1:2;nested:aa|r1|2200.t"},
		// A FOR TABLES IN SCHEMA membership's schema link.
		{"1:2|s9;pub:7|2200.t", "1:2|s9@800;pub:7|2200.t", "1:2|s9@800;pub:7|2200.t"},
		{"1:2|s9|2200.t", "1:2|s9@800;pub:7|2200.t", "1:2|s9@800;pub:7|2200.t"},
		{"1:2|s9@700;pub:7|2200.t", "1:2|s9@800;pub:7|2200.t", "1:2|s9@700;pub:7|2200.t"},
		{"1:2|s9;pub:7|2200.t", "1:2|s19@800;pub:7|2200.t", "1:2|s9;pub:7|2200.t"},
		{"1:2|s9;pub:7|2200.t", "1:2|r9;pub:7|2200.t", "1:2|s9;pub:7|2200.t"},
		// A partition's membership through its root's.
		{"1:2;inh:ab|all5;pub:7|2200.t", "1:2;inh:ab|r9;pub:7|2200.t", "1:2;inh:ab|r9;pub:7|2200.t"},
		{"1:2;inh:ab|all5;pub:7|2200.t", "1:2;inh:ab|s9@80;pub:7|2200.t", "1:2;inh:ab|s9@80;pub:7|2200.t"},
		{"1:2;inh:ab|all5;pub:7|2200.t", "1:2;inh:ab|r9;pub:8|2200.t", "1:2;inh:ab|r9;pub:7|2200.t"},
		{"1:2|all5;pub:7|2200.t", "1:2|r9;pub:7|2200.t", "1:2|all5;pub:7|2200.t"},
		{"1:2;inh:ab|r9;pub:7|2200.t", "1:2;inh:ab|all5;pub:7|2200.t", "1:2;inh:ab|r9;pub:7|2200.t"},
		// Column rows, right after the data files.
		{"1:2;enums:ab|all5;pub:7|2200.t", "1:3;att:8/1@9,2@9;enums:ab|all5;pub:7|2200.t", "1:2;att:8/1@9,2@9;enums:ab|all5;pub:7|2200.t"},
		{"1:2|all5|2200.t", "1:2;att:8/1@9;nested:xy|all5;pub:7|2200.t", "1:2;att:8/1@9;nested:xy|all5;pub:7|2200.t"},
		{"1:2;att:8/1@8|all5;pub:7|2200.t", "1:2;att:8/1@9|all5;pub:7|2200.t", "1:2;att:8/1@8|all5;pub:7|2200.t"},
	} {
		if got := upgradeSig(c.stored, c.now); got != c.want {
			t.Errorf("upgradeSig(%q, %q) = %q, want %q", c.stored, c.now, got, c.want)
		}
	}
}

// TestColumnsOnly: DDL naming some columns (their pg_attribute rows alone
// rewritten, maybe the pg_class row too) reads as no change of the
// signature; the pg_class row and every column's row rewritten (ATTACH and
// DETACH PARTITION) reads as attached meanwhile (helper-126). Columns added
// or dropped since count for neither, and every column rewritten with the
// pg_class row kept (a key added to a two-column table sets attnotnull on
// both) is no attach (helper-132).
func TestColumnsOnly(t *testing.T) {
	was := "1:2;att:690/1@700,2@700,3@700;enums:ab|all5;pub:7|2200.t"
	for _, c := range []struct {
		now, want string
		attached  bool
	}{
		{"1:2;att:690/1@700,2@700,3@700;enums:ab|all5;pub:7|2200.t", was, false},
		{"1:2;att:690/1@700,2@800,3@700;enums:ab|all5;pub:7|2200.t", "1:2;att:690/1@700,2@800,3@700;enums:ab|all5;pub:7|2200.t", false},
		{"1:9;att:900/1@700,3@800,4@800;enums:ab|all5;pub:7|2200.t", "1:2;att:900/1@700,3@800,4@800;enums:ab|all5;pub:7|2200.t", false}, // 2 dropped, 4 added, rewritten
		{"1:2;att:690/1@800,2@800,3@800;enums:ab|all5;pub:7|2200.t", "1:2;att:690/1@800,2@800,3@800;enums:ab|all5;pub:7|2200.t", false}, // every column, not pg_class
		{"1:2;att:800/1@800,2@800,3@800;enums:ab|all5;pub:7|2200.t", was, true},
		{"1:2;att:805/1@801,2@802,3@803,4@804;enums:ab|all5;pub:7|2200.t", was, true},
		{"1:2;att:800/2@800,3@800,4@701;enums:ab|all5;pub:7|2200.t", was, true}, // 1 dropped since
		{"1:2;att:800/4@800,5@800;enums:ab|all5;pub:7|2200.t", "1:2;att:800/4@800,5@800;enums:ab|all5;pub:7|2200.t", false},
		{"1:2;enums:ab;inh:cd|all5;pub:7|2200.t", was, false}, // a partition now: its links tell
	} {
		got, attached := columnsOnly(was, c.now)
		if got != c.want || attached != c.attached {
			t.Errorf("columnsOnly(%q) = %q, %v; want %q, %v", c.now, got, attached, c.want, c.attached)
		}
	}
	if got, _ := columnsOnly("1:2;att:9/1@5,2@5|all5|2200.t", "1:2;att:9/1@5,2@6,3@6|all5|2200.t"); got != "1:2;att:9/1@5,2@6,3@6|all5|2200.t" {
		t.Errorf("no other parts: %q", got)
	}
	if attPart("1:2;att:9/1@5;inh:x|all5|2200.a;att:b") != ";att:9/1@5" || attPart("1:2|all5|2200.a;att:b") != "" {
		t.Error("attPart reads past the data files part")
	}
}

// TestFilesAlone: what a TRUNCATE explains is new data files, nothing else
// of the signature (helper-131).
func TestFilesAlone(t *testing.T) {
	was := "16384:16390;att:6/1@7,2@7;enums:ab|all5;pub:7|2200.t"
	for _, c := range []struct {
		now  string
		want bool
	}{
		{"16384:16399;att:6/1@7,2@7;enums:ab|all5;pub:7|2200.t", true},
		{"16384:16399;att:6/1@7,2@7;enums:ab|all5;pub:7|2200.renamed", true},
		{"16384:16399;att:6/1@7,2@7;enums:cd|all5;pub:7|2200.t", false}, // an enum value renamed
		{"16384:16399;att:6/1@7,2@7;enums:ab|r9;pub:7|2200.t", false},   // membership
		{"16384:16399;att:6/1@7,2@7;enums:ab|all5;pub:8|2200.t", false}, // the publication's options
		{"16384:16399;att:9/1@8,2@8;enums:ab|all5;pub:7|2200.t", false}, // attached and detached
		{"16385:16399;att:6/1@7,2@7;enums:ab|all5;pub:7|2200.t", false}, // another table
		{"16384:16399;att:6/1@7,2@7;enums:ab;inh:x|all5;pub:7|2200.t", false},
	} {
		if got := filesAlone(was, c.now); got != c.want {
			t.Errorf("filesAlone(%q) = %v, want %v", c.now, got, c.want)
		}
	}
}

// TestAddedPartitions: a partitioned table's signature that differs only by
// leaves added names them; any other difference (a leaf rewritten or gone,
// membership, name, enum labels) names none, so the whole table is copied.
func TestAddedPartitions(t *testing.T) {
	was := "1:11,2:12;enums:e;inh:aa|r9;pub:5|2200.m"
	cases := []struct {
		now  string
		want []uint32
	}{
		{"1:11,2:12,3:13;enums:e;inh:bb|r9;pub:5|2200.m", []uint32{3}},
		{"1:11,2:12,3:13,4:14;enums:e;inh:bb|r9;pub:5|2200.m", []uint32{3, 4}},
		{"1:11,2:12;enums:e;inh:bb|r9;pub:5|2200.m", nil},       // links alone
		{"1:11,2:99,3:13;enums:e;inh:bb|r9;pub:5|2200.m", nil},  // a leaf rewritten
		{"1:11,3:13;enums:e;inh:bb|r9;pub:5|2200.m", nil},       // a leaf gone
		{"1:11,2:12,3:13;enums:f;inh:bb|r9;pub:5|2200.m", nil},  // enum relabelled
		{"1:11,2:12,3:13;enums:e;inh:bb|r9;pub:6|2200.m", nil},  // publication changed
		{"1:11,2:12,3:13;enums:e;inh:bb|r9;pub:5|2200.m2", nil}, // renamed
		{"1:11,2:12,x:13;enums:e;inh:bb|r9;pub:5|2200.m", nil},  // not an oid
	}
	for _, c := range cases {
		got := addedPartitions(was, c.now)
		if !slices.Equal(got, c.want) {
			t.Errorf("addedPartitions(%q) = %v, want %v", c.now, got, c.want)
		}
	}
	if got := addedPartitions("|r9|2200.m", "3:13;inh:bb|r9|2200.m"); len(got) != 1 || got[0] != 3 {
		t.Errorf("first partition of an empty table: %v", got)
	}
	if inhPart(was) != ";inh:aa" || inhPart("1:11|r9|2200.m") != "" {
		t.Errorf("inhPart = %q, %q", inhPart(was), inhPart("1:11|r9|2200.m"))
	}
}

// TestPartTrack: keys the stream writes to a partitioned table are tracked
// until deleted, by key text; a key not matched exactly, or too many, stop
// the tracking (added partitions then copy the whole table).
func TestPartTrack(t *testing.T) {
	tbl := schema.NewTable(1, "public", "m", schema.IdentityDefault, []schema.Column{{Name: "id", TypeID: 20, Key: true}, {Name: "v", TypeID: 25}})
	row := func(id string) schema.Tuple {
		return schema.Tuple{{State: schema.Text, Data: []byte(id)}, {State: schema.Text, Data: []byte("x")}}
	}
	tr := newPartTrack("sig", true)
	tr.write(10, tbl, schema.RowChange{Op: schema.Insert, New: row("1")})
	tr.write(20, tbl, schema.RowChange{Op: schema.Insert, New: row("2")})
	tr.write(30, tbl, schema.RowChange{Op: schema.Update, Old: row("2"), New: row("3")}) // key changed
	tr.write(40, tbl, schema.RowChange{Op: schema.Insert, New: row("4")})
	tr.write(50, tbl, schema.RowChange{Op: schema.Delete, Old: row("4")})
	if _, keys := tr.before(101); len(keys) != 2 || keys[0][0] != "1" || keys[1][0] != "3" {
		t.Fatalf("tracked %v, want 1 and 3", keys)
	}
	if _, keys := tr.before(21); len(keys) != 1 || keys[0][0] != "1" {
		t.Fatalf("tracked before listing 21: %v, want 1", keys)
	}
	unsent := schema.Tuple{{State: schema.Unchanged}, {State: schema.Text, Data: []byte("x")}}
	tr.write(60, tbl, schema.RowChange{Op: schema.Insert, New: unsent})
	if !tr.overflow {
		t.Fatal("a key not sent did not stop the tracking")
	}
	tr = newPartTrack("sig", true)
	for i := range maxPartitionKeys + 1 {
		tr.write(1, tbl, schema.RowChange{Op: schema.Insert, New: row(strconv.Itoa(i))})
	}
	if !tr.overflow || tr.keys != nil {
		t.Fatal("more than maxPartitionKeys keys are still tracked")
	}
	if !partitionedSig(1, "|r9|2200.m") || !partitionedSig(1, "5:6,7:8|r9|2200.m") || !partitionedSig(1, "5:6|r9|2200.m") || partitionedSig(1, "1:6|r9|2200.m") || partitionedSig(1, "") {
		t.Error("partitionedSig")
	}
}

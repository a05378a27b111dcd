package pgserver

import (
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		n      int64
		want   string
	}{
		{"orders", 1, "orders_1"},
		{"My-DB.x", 12, "my_db_x_12"},
		{"", 3, "db_3"},
		{"9lives", 4, "db9lives_4"},
		{strings.Repeat("a", 100), 7, strings.Repeat("a", 61) + "_7"},
	} {
		if got := databaseName(tc.prefix, tc.n); got != tc.want {
			t.Errorf("databaseName(%q, %d) = %q, want %q", tc.prefix, tc.n, got, tc.want)
		}
		if got := databaseName(tc.prefix, tc.n); len(got) > 63 {
			t.Errorf("databaseName(%q) is %d bytes", tc.prefix, len(got))
		}
	}
}

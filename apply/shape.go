package apply

import (
	"context"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Catalog is what the engine asks the source when a table's shape changes:
// a Relation message says what the columns are, not what older rows hold.
type Catalog interface {
	Attributes(ctx context.Context, relid uint32) ([]source.Attribute, error)
}

// fills says, for every column of t, what rows that existed before the
// column was added hold in it, from the catalog's attributes of t now. The
// catalog may be ahead of the stream (later DDL already happened): a column
// it no longer describes the same way gets an Unknown fill, and so does one
// whose old rows got values the stream never carried.
func fills(t *schema.Table, attrs []source.Attribute) map[string]schema.Fill {
	live := make(map[string]*source.Attribute, len(attrs))
	for i := range attrs {
		if !attrs[i].Dropped {
			live[attrs[i].Name] = &attrs[i]
		}
	}
	out := make(map[string]schema.Fill, len(t.Columns))
	for _, c := range t.Columns {
		a := live[c.Name]
		switch {
		case a == nil || a.TypeID != c.TypeID || a.Typmod != c.Typmod:
			out[c.Name] = schema.Fill{Unknown: "the source's catalog no longer describes it as the stream does at this point " +
				"(the table changed again since), so what older rows hold in it cannot be known"}
		case a.HasMissing:
			out[c.Name] = schema.Fill{Value: schema.Datum{State: schema.Text, Data: []byte(a.Missing)}}
		case a.HasDefault: // generated columns too: a stored one added later was computed by a rewrite
			out[c.Name] = schema.Fill{Unknown: "it has a default and PostgreSQL stored no value for older rows: it was added " +
				"with a volatile default (now(), random(), a sequence) or the table was rewritten since, and the values older rows got are not in the replication stream"}
		default:
			out[c.Name] = schema.Fill{Value: schema.Datum{State: schema.Null}}
		}
	}
	return out
}

package verify

import (
	"context"
	"strings"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// sourceReader reads the source's tables in the comparison snapshot.
type sourceReader struct{ sn *source.Snapshot }

// SourceReader reads the source as a snapshot from source.OpenComparison
// shows it, with the publication's column lists and row filters.
func SourceReader(sn *source.Snapshot) Reader { return sourceReader{sn} }

func (r sourceReader) Scan(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error {
	var b rowBuilder
	conv := func(tup schema.Tuple) error {
		b.reset()
		for i, d := range tup {
			if d.State == schema.Null {
				b.null()
			} else {
				b.text(t.cols[i], d.Data)
			}
		}
		return fn(b.row())
	}
	if sorted {
		return r.sn.CopyOrdered(ctx, t.Table, pgOrderBy(t), conv)
	}
	return r.sn.Copy(ctx, t.Table, conv)
}

// pgOrderBy sorts a PostgreSQL table by its key as verify compares keys:
// text in the C collation (byte order).
func pgOrderBy(t *Table) string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = quoteIdent(t.Columns[k].Name)
		if t.cols[k].kind == schema.KindText {
			parts[i] += ` COLLATE "C"`
		}
	}
	return strings.Join(parts, ", ")
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

package duckdb_test

import (
	"context"

	"testing"

	"github.com/walmirror/walmirror/schema"
)

// BenchmarkChunkedCopy: an online copy's chunks of new rows into a table
// that holds the chunks before, as the engine writes them: 100k-row chunks,
// each in its own transaction, in batches of 20k rows (Limits.ChunkRows).
// One op is a 1M-row table copied. "Write" sends them as Write's Inserts
// (keys checked by each statement), "WriteNew" through WriteNew (checked at
// commit over the chunk's key range).
func BenchmarkChunkedCopy(b *testing.B) {
	const total, chunkRows, batchRows = 1_000_000, 100_000, 20_000
	for _, mode := range []string{"Write", "WriteNew"} {
		b.Run(mode, func(b *testing.B) {
			bt := newBenchTuples(batchRows)
			for b.Loop() {
				b.StopTimer()
				s, t := benchSink(b)
				b.StartTimer()
				for c := 0; c < total; c += chunkRows {
					commit(b, s, func(ctx context.Context) error {
						for r := c; r < c+chunkRows; r += batchRows {
							bt.setKeys(int64(r))
							var err error
							if mode == "Write" {
								err = s.Write(ctx, &schema.Batch{Table: t, Inserts: bt.rows})
							} else {
								err = s.WriteNew(ctx, t, bt.rows)
							}
							if err != nil {
								return err
							}
						}
						return nil
					})
				}
			}
			reportRows(b, b.N*total)
		})
	}
}

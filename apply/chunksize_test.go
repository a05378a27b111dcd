package apply

import (
	"testing"
	"time"
)

// plainSink and grainSink stand for sinks without and with a chunk grain
// (chunkGrainer); adaptChunk calls nothing else.
type plainSink struct{ Sink }

type grainSink struct {
	Sink
	grain int
}

func (g grainSink) CopyChunkGrain() int { return g.grain }

// TestAdaptChunk: chunk sizes double under half the time allowed, halve
// over it or when the stream held many changes, within their bounds; with a
// sink's chunk grain, they go to it after a chunk within the time and do
// not shrink below it once there unless the stream presses. A grain beyond
// the largest size allowed (a small --copy-chunk-rows) changes nothing.
func TestAdaptChunk(t *testing.T) {
	const rows = 50_000
	for _, c := range []struct {
		name  string
		grain int
		size  int // the chunk's
		took  time.Duration
		held  int
		want  int
	}{
		{"fast", 0, rows, 100 * time.Millisecond, 0, 2 * rows},
		{"in time", 0, rows, 700 * time.Millisecond, 0, rows},
		{"slow", 0, 4 * rows, 2 * time.Second, 0, 2 * rows},
		{"slow, smallest", 0, rows / 8, 2 * time.Second, 0, rows / 8},
		{"held", 0, 4 * rows, 100 * time.Millisecond, chunkHeld + 1, 2 * rows},
		{"fast, largest", 0, 16 * rows, 100 * time.Millisecond, 0, 16 * rows},
		{"grain: fast, below it", 122_880, rows, 100 * time.Millisecond, 0, 122_880},
		{"grain: in time, below it", 122_880, rows, 700 * time.Millisecond, 0, 122_880},
		{"grain: slow, below it", 122_880, rows, 2 * time.Second, 0, rows / 2},
		{"grain: slow, above it", 122_880, 8 * rows, 2 * time.Second, 0, 4 * rows},
		{"grain: slow, at it", 122_880, 122_880, 2 * time.Second, 0, 122_880},
		{"grain: slow, just above it", 122_880, 200_000, 2 * time.Second, 0, 122_880},
		{"grain: held, at it", 122_880, 122_880, 100 * time.Millisecond, chunkHeld + 1, 61_440},
		{"grain: fast, at it", 122_880, 122_880, 100 * time.Millisecond, 0, 245_760},
		{"grain beyond the largest size", 16*rows + 1, rows, 100 * time.Millisecond, 0, 2 * rows},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sink Sink = plainSink{}
			if c.grain > 0 {
				sink = grainSink{grain: c.grain}
			}
			e := &engine{sink: sink, chunkRows: rows, chunkTime: time.Second}
			f := &fill{size: c.size}
			w := &chunkWait{rows: c.size, held: c.held, timing: chunkTiming{began: time.Now().Add(-c.took)}}
			e.adaptChunk(f, w)
			if f.size != c.want {
				t.Errorf("next chunk %d rows, want %d", f.size, c.want)
			}
		})
	}
}

package storetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/agenthub/agenthub/internal/store"
)

// AppendParallel is the body of the backends' unbatched append benchmarks:
// it runs b.RunParallel with every goroutine appending value to log once
// per iteration, reading the head first and retrying on store.ErrConflict,
// as a writer that chains each entry to its predecessor must. It returns
// how many appends lost a race and were retried. The caller sets the
// parallelism and resets the timer and its own counters before, and reports
// its metrics after.
func AppendParallel(b *testing.B, s store.Store, log string, value []byte) (conflicts int64) {
	ctx := context.Background()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for {
				head, err := s.Head(ctx, log)
				if err != nil {
					b.Error(err)
					return
				}
				err = s.Append(ctx, log, head.Seq, [][]byte{value})
				if err == nil {
					break
				}
				if !errors.Is(err, store.ErrConflict) {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}
	})
	return n.Load()
}

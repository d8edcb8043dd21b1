package audit

import (
	"path/filepath"
	"testing"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// openBolt opens a bolt store in a fresh file, closed when tb ends.
func openBolt(tb testing.TB) store.Store {
	tb.Helper()
	s, err := boltstore.Open(filepath.Join(tb.TempDir(), "audit.db"), boltstore.Options{})
	if err != nil {
		tb.Fatalf("boltstore.Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestRecordConcurrentBackends runs the concurrent chain test on the real
// backends: one recorder, and two recorders on two handles, as two
// processes would have (bolt allows one process per file, so its two
// recorders share the handle).
func TestRecordConcurrentBackends(t *testing.T) {
	const goroutines, perGoroutine = 8, 1000
	t.Run("bolt", func(t *testing.T) {
		t.Parallel() // bolt waits on fsync, redis on round trips: overlap them
		t.Run("one recorder", func(t *testing.T) {
			s := &countingStore{Store: openBolt(t)}
			testConcurrentChain(t, s, 1, goroutines, perGoroutine)
			t.Logf("%d appends for %d events", s.appends.Load(), goroutines*perGoroutine)
		})
		t.Run("two recorders", func(t *testing.T) {
			testConcurrentChain(t, openBolt(t), 2, goroutines, perGoroutine)
		})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		t.Run("one recorder", func(t *testing.T) {
			s := &countingStore{Store: redistest.Open(t)()}
			testConcurrentChain(t, s, 1, goroutines, perGoroutine)
			t.Logf("%d appends for %d events", s.appends.Load(), goroutines*perGoroutine)
		})
		t.Run("two clients", func(t *testing.T) {
			open := redistest.Open(t)
			testConcurrentChainOn(t, []store.Store{open(), open()}, goroutines, perGoroutine)
		})
	})
}

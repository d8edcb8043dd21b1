package audit

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// headCounter counts reads of a log's head.
type headCounter struct {
	store.Store
	heads atomic.Int64
}

func (h *headCounter) Head(ctx context.Context, log string) (store.Entry, error) {
	h.heads.Add(1)
	return h.Store.Head(ctx, log)
}

// TestHeadReadOncePerWriter pins the cost of a Record: one append, not a
// head read and an append, once the recorder knows the head; and a second
// writer on the same log costs the first one a re-read, not a broken chain.
func TestHeadReadOncePerWriter(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New(memstore.Options{})
	hc := &headCounter{Store: mem}
	a := newRecorder(t, hc, Options{})
	for i := range 10 {
		record(t, a, sampleEvent(i))
	}
	if got := hc.heads.Load(); got != 1 {
		t.Errorf("10 records read the head %d times, want 1", got)
	}
	b := newRecorder(t, mem, Options{})
	record(t, b, sampleEvent(10))
	record(t, a, sampleEvent(11)) // a's cached head is stale: conflict, re-read
	record(t, a, sampleEvent(12))
	if got := hc.heads.Load(); got != 2 {
		t.Errorf("head reads after another writer = %d, want 2", got)
	}
	sum, err := VerifyStore(ctx, mem, DefaultLog)
	if err != nil || sum.Count != 13 {
		t.Fatalf("VerifyStore = %+v, %v; want 13 events, a valid chain", sum, err)
	}
}

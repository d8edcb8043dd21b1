package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/google/go-cmp/cmp"
)

// hookLog is an OnRecord hook that remembers what it saw.
type hookLog struct {
	mu     sync.Mutex
	events []Event
}

func (h *hookLog) record(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *hookLog) seen() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

func TestOnRecordSeesStoredEvents(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	var hook hookLog
	r := newRecorder(t, mem, Options{Now: fixedClock, OnRecord: hook.record})

	var want []Event
	for i := range 3 {
		got := record(t, r, sampleEvent(i))
		got.Args = nil // the hook sees what was stored, never the arguments
		want = append(want, got)
	}
	if diff := cmp.Diff(want, hook.seen()); diff != "" {
		t.Errorf("OnRecord events (-want +got):\n%s", diff)
	}
	stored, err := r.Tail(context.Background(), 10)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	if diff := cmp.Diff(stored, hook.seen()); diff != "" {
		t.Errorf("OnRecord events differ from the stored ones (-stored +hook):\n%s", diff)
	}
}

func TestOnRecordNotCalledWhenNotStored(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	var hook hookLog
	r := newRecorder(t, mem, Options{OnRecord: hook.record})

	mem.FailWrites(errBroken)
	if _, err := r.Record(context.Background(), Event{Kind: PolicyDecided, RequestID: "req-lost"}); !errors.Is(err, errBroken) {
		t.Fatalf("Record on a failing store = %v, want an error wrapping %v", err, errBroken)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Record(ctx, Event{Kind: PolicyDecided, RequestID: "req-canceled"}); err == nil {
		t.Fatal("Record with an ended context succeeded")
	}
	if _, err := r.Record(context.Background(), Event{RequestID: "req-nokind"}); err == nil {
		t.Fatal("Record without a kind succeeded")
	}
	if got := hook.seen(); len(got) != 0 {
		t.Fatalf("OnRecord called %d times for events that were not stored: %v", len(got), got)
	}

	mem.FailWrites(nil)
	record(t, r, Event{Kind: PolicyDecided, RequestID: "req-ok"})
	got := hook.seen()
	if len(got) != 1 || got[0].RequestID != "req-ok" || got[0].Seq != 1 {
		t.Errorf("OnRecord after recovery saw %v, want only req-ok at seq 1", got)
	}
}

// TestOnRecordOncePerEventConcurrent checks the hook under group commit:
// leaders and followers each report their own event, exactly once.
func TestOnRecordOncePerEventConcurrent(t *testing.T) {
	const n = 200
	mem := memstore.New(memstore.Options{})
	var hook hookLog
	r := newRecorder(t, mem, Options{OnRecord: hook.record})

	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := r.Record(context.Background(), Event{Kind: ActionSucceeded, RequestID: fmt.Sprint("req-", i)}); err != nil {
				t.Errorf("Record %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	seqs := make(map[uint64]int)
	ids := make(map[string]int)
	for _, e := range hook.seen() {
		seqs[e.Seq]++
		ids[e.RequestID]++
	}
	if len(seqs) != n || len(ids) != n {
		t.Errorf("OnRecord saw %d distinct seqs and %d distinct requests, want %d of each", len(seqs), len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("OnRecord saw %s %d times, want 1", id, c)
		}
	}
}

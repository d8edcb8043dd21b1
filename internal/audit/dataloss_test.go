package audit

import (
	"context"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// losingStore is a store whose log can lose everything at once, as a
// Redis restarted from an old snapshot (or a failed-over replica) does.
type losingStore struct {
	store.Store // everything but the log
	mu          sync.Mutex
	log         store.Store
}

func (s *losingStore) cur() store.Store { s.mu.Lock(); defer s.mu.Unlock(); return s.log }
func (s *losingStore) lose()            { s.mu.Lock(); s.log = memstore.New(memstore.Options{}); s.mu.Unlock() }

func (s *losingStore) Head(ctx context.Context, log string) (store.Entry, error) {
	return s.cur().Head(ctx, log)
}

func (s *losingStore) Append(ctx context.Context, log string, after uint64, v [][]byte) error {
	return s.cur().Append(ctx, log, after, v)
}

func (s *losingStore) Read(ctx context.Context, log string, from uint64, n int) ([]store.Entry, error) {
	return s.cur().Read(ctx, log, from, n)
}

// TestChainSurvivesStoreDataLoss: recorder a wrote seq 1..3; the store
// loses them; recorder b (another replica) writes a new 1..3; a's next
// event must chain to what the store holds now, not to the head a wrote
// last (an append only checks the head's seq, which matches by chance).
// A recorder that cached its head failed this (a second review's finding).
func TestChainSurvivesStoreDataLoss(t *testing.T) {
	s := &losingStore{Store: memstore.New(memstore.Options{}), log: memstore.New(memstore.Options{})}
	a := newRecorder(t, s, Options{})
	for i := range 3 {
		record(t, a, sampleEvent(i))
	}
	s.lose()
	b := newRecorder(t, s, Options{})
	for i := range 3 {
		record(t, b, sampleEvent(10+i))
	}
	record(t, a, sampleEvent(20))
	sum, err := VerifyStore(context.Background(), s.cur(), DefaultLog)
	if err != nil || sum.Count != 4 {
		t.Fatalf("VerifyStore = %+v, %v; want 4 events in a valid chain", sum, err)
	}
}

// TestTailOfMatchesEveryActorString: the prefilter must look for the actor
// as the stored line spells it, whatever characters it holds.
func TestTailOfMatchesEveryActorString(t *testing.T) {
	for _, actor := range []string{"T1:U1", "T1:U<1>", "T&1:U1", "T1:U1\u2028", "T1:U1\x01", `T1:"U1"`} {
		t.Run(actor, func(t *testing.T) {
			r := newRecorder(t, memstore.New(memstore.Options{}), Options{})
			e := sampleEvent(1)
			e.Actor = actor
			record(t, r, e)
			if got, err := r.TailOf(context.Background(), actor, 10, 10); err != nil || len(got) != 1 {
				t.Errorf("TailOf(%q) = %d events, %v; want 1", actor, len(got), err)
			}
		})
	}
}

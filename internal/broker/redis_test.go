package broker

import (
	"net/http"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// TestRedisDoubleApprovalAndRestart runs the promises that rest on the
// store's atomic operations against Redis (AGENTHUB_TEST_REDIS, or a
// miniredis): two brokers, as two replicas, share one Redis; 50 concurrent
// approvals spread over both run the step once, and a request made on one
// is finished on the other.
func TestRedisDoubleApprovalAndRestart(t *testing.T) {
	open := redistest.Open(t)
	f := newFixtureOn(t, open())
	replicas := []*Broker{f.b, f.newBroker()}

	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := replicas[i%2].Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce}); err != nil {
				t.Errorf("Decide: %v", err)
			}
		})
	}
	wg.Wait()
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Errorf("comments after 50 approvals = %d, want 1", got)
	}

	b := f.approval("comment 'later' on PR 12 in acme/website")
	f.b = replicas[1]
	only(t, f.decide(alice, b.RequestID, ChoiceOnce), KindResult)
	if got := f.calls(http.MethodPost, commentPath); got != 2 {
		t.Errorf("comments = %d, want 2", got)
	}
}

// TestRedisRefusalFloodIsCountedExactly: a flood of refusals from one
// actor, on 64 workers of each of two replicas sharing one Redis, costs the
// trail at most two events per replica and window, and the counts in it add
// up to every refusal.
func TestRedisRefusalFloodIsCountedExactly(t *testing.T) {
	open := redistest.Open(t)
	f := newFixtureOn(t, open())
	replicas := []*Broker{f.b, f.newBroker()}
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	before := f.trailLen()
	const workers, each = 64, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				if _, err := replicas[w%2].Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: bob, Choice: ChoiceOnce}); err != nil {
					t.Errorf("Decide: %v", err)
				}
			}
		})
	}
	wg.Wait()
	f.clock.Advance(RefusalWindow)
	if err := f.b.FlushRefusals(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.refusals(bob.String()); got != workers*each {
		t.Errorf("refusals counted = %d, want %d", got, workers*each)
	}
	if got := f.trailLen() - before; got > 2*len(replicas) {
		t.Errorf("%d refusals made %d events, want at most %d", workers*each, got, 2*len(replicas))
	}
}

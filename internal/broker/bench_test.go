package broker

import (
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// BenchmarkHandleAllowedRead measures one allowed step end to end:
// planning, validation, the broker's three audit events, the connection
// check, resource discovery under a lease, the policy decision, the
// execution lease and the agent's call, with the requests, connections and
// leases in the named store (the audit chain stays in a memstore). The
// provider is the sim over loopback HTTP, so its latency (two round trips)
// is included, as are the vault's provider.requested/called events.
//
//	go test -run '^$' -bench HandleAllowedRead -benchmem ./internal/broker/
func BenchmarkHandleAllowedRead(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			f := newFixtureOn(b, s.open(b))
			msg := Message{Principal: alice, Text: "list open pull requests in acme/website"}
			for b.Loop() {
				outs, err := f.b.Handle(f.ctx, msg)
				if err != nil || len(outs) != 1 || outs[0].Kind != KindResult {
					b.Fatalf("Handle = %s, %v", dump(outs), err)
				}
			}
		})
	}
}

// BenchmarkBrokerOverhead is BenchmarkHandleAllowedRead with the sim
// reached in-process through sim.(*World).Transport (no sockets), and the
// time spent inside that transport — the simulated provider's own work —
// measured on every call and reported apart: provider-ns/op is it,
// broker-ns/op is the rest of ns/op, which is the broker's overhead for one
// allowed step (planner, policy, lease, audit, store, the agent's client
// code).
//
//	go test -run '^$' -bench BrokerOverhead -benchmem ./internal/broker/
func BenchmarkBrokerOverhead(b *testing.B) {
	for _, s := range benchStores {
		b.Run(s.name, func(b *testing.B) {
			f := newFixtureWith(b, s.open(b), true)
			timed := f.simTime
			msg := Message{Principal: alice, Text: "list open pull requests in acme/website"}
			outs, err := f.b.Handle(f.ctx, msg) // warm up: connection checks, caches
			if err != nil || len(outs) != 1 || outs[0].Kind != KindResult {
				b.Fatalf("Handle = %s, %v; log:\n%s", dump(outs), err, f.logs)
			}
			timed.reset()
			for b.Loop() {
				outs, err := f.b.Handle(f.ctx, msg)
				if err != nil || len(outs) != 1 || outs[0].Kind != KindResult {
					b.Fatalf("Handle = %s, %v", dump(outs), err)
				}
			}
			provider, calls := timed.total()
			n := float64(b.N)
			b.ReportMetric(float64(provider.Nanoseconds())/n, "provider-ns/op")
			b.ReportMetric(float64((b.Elapsed()-provider).Nanoseconds())/n, "broker-ns/op")
			b.ReportMetric(float64(calls)/n, "provider-calls/op")
		})
	}
}

// timedTransport adds up the time its requests spend in next.
type timedTransport struct {
	next  http.RoundTripper
	mu    sync.Mutex
	spent time.Duration
	calls int
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	begin := time.Now()
	resp, err := t.next.RoundTrip(r)
	d := time.Since(begin)
	t.mu.Lock()
	t.spent += d
	t.calls++
	t.mu.Unlock()
	return resp, err
}

func (t *timedTransport) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spent, t.calls = 0, 0
}

func (t *timedTransport) total() (time.Duration, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.spent, t.calls
}

// benchStores are the stores the broker benchmarks run on; memstore is nil
// (the fixture's own memstore).
var benchStores = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"memstore", func(*testing.B) store.Store { return nil }},
	{"boltstore", func(b *testing.B) store.Store {
		s, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), boltstore.Options{})
		if err != nil {
			b.Fatalf("open bolt: %v", err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}},
	{"redis", func(b *testing.B) store.Store { return redistest.Open(b)() }},
}

package broker

import (
	"path/filepath"
	"testing"

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
	stores := []struct {
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
	for _, s := range stores {
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

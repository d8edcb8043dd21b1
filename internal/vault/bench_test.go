package vault

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
)

// benchBackends are the stores the benchmarks run on. Redis is the one
// named by AGENTHUB_TEST_REDIS, else miniredis (whose figures mean little).
var benchBackends = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"bolt", func(b *testing.B) store.Store { return openBolt(b) }},
	{"redis", func(b *testing.B) store.Store { s, _ := openRedis(b); return s }},
}

// benchVault is a vault with a warm token, recording to a real audit chain
// in the same store.
func benchVault(b *testing.B, st store.Store) (*Vault, *fixture) {
	b.Helper()
	f := newFixture(b, "")
	v := f.vault(b, st, newRecorder(b, st, audit.Options{}), mustKeys(b, testKey('a')))
	mustConnect(b, v, alice, "github", f.tokens.fresh())
	l := mustLease(b, v, alice, "github")
	if _, err := get(context.Background(), l, f.api.URL+"/warm"); err != nil {
		b.Fatal(err)
	}
	return v, f
}

// BenchmarkLeaseRoundTrip measures one execution's overhead with a warm
// token: Lease, one GET through its client to a local server, Release.
func BenchmarkLeaseRoundTrip(b *testing.B) {
	for _, bk := range benchBackends {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			v, f := benchVault(b, bk.open(b))
			url := f.api.URL + "/repos/acme/payments"
			b.ReportAllocs()
			for b.Loop() {
				l, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github", Scopes: []string{"repo"}, Resource: "acme/payments"})
				if err != nil {
					b.Fatal(err)
				}
				if status, err := get(ctx, l, url); err != nil || status != http.StatusOK {
					b.Fatalf("GET = %d, %v", status, err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTransportWarm measures one request through an existing lease:
// the lease and connection reads, the token from the cache, the
// provider.requested event, the request, the provider.called event.
func BenchmarkTransportWarm(b *testing.B) {
	for _, bk := range benchBackends {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			v, f := benchVault(b, bk.open(b))
			l := mustLease(b, v, alice, "github")
			url := f.api.URL + "/repos/acme/payments"
			b.ReportAllocs()
			for b.Loop() {
				if status, err := get(ctx, l, url); err != nil || status != http.StatusOK {
					b.Fatalf("GET = %d, %v", status, err)
				}
			}
		})
	}
}

// BenchmarkTransportWarmParallel is BenchmarkTransportWarm with concurrent
// requests, where the backends batch audit appends (one fsync or one Redis
// round trip per batch).
func BenchmarkTransportWarmParallel(b *testing.B) {
	for _, bk := range benchBackends {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			v, f := benchVault(b, bk.open(b))
			l := mustLease(b, v, alice, "github")
			url := f.api.URL + "/repos/acme/payments"
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if status, err := get(ctx, l, url); err != nil || status != http.StatusOK {
						b.Errorf("GET = %d, %v", status, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDirectGET is the baseline: the same GET with a plain client, no
// vault, so the vault's share of the figures above can be read off.
func BenchmarkDirectGET(b *testing.B) {
	f := newFixture(b, "")
	tok := f.tokens.fresh()
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, f.api.URL+"/repos/acme/payments", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := f.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // so the connection is reused, as get does
		resp.Body.Close()
	}
}

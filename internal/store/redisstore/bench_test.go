package redisstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
	"github.com/agenthub/agenthub/internal/store/storetest"
)

// benchParallelism is goroutines per GOMAXPROCS: enough clients in flight
// that the benchmark measures Redis rather than one connection's latency.
const benchParallelism = 8

// benchStore returns a store on the test Redis (AGENTHUB_TEST_REDIS when
// set) whose client counts its round trips.
func benchStore(b *testing.B) (*redisstore.Store, *commandLog) {
	b.Helper()
	srv := redistest.Start(b)
	c := srv.NewClient()
	cl := &commandLog{}
	c.AddHook(cl)
	return redisstore.New(c, srv.Prefix()), cl
}

// startTiming resets the timer and the round-trip count after the set-up.
func startTiming(b *testing.B, cl *commandLog) {
	b.ResetTimer()
	cl.trips.Store(0)
}

// reportRate reports operations per second of wall time and round trips
// per operation.
func reportRate(b *testing.B, cl *commandLog, unit string) {
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit+"/s")
	}
	b.ReportMetric(float64(cl.trips.Load())/float64(b.N), "roundtrips/"+unit)
}

// BenchmarkCompareAndSwap has each goroutine flip its own record between
// two values, so every compare-and-swap succeeds (a status transition).
func BenchmarkCompareAndSwap(b *testing.B) {
	s, cl := benchStore(b)
	ctx := context.Background()
	vals := [2][]byte{[]byte("pending"), []byte("approved")}
	const records = 256
	for i := range records {
		k := store.Key{Scope: fmt.Sprintf("T1:U%d", i), Kind: "request", ID: "r1"}
		if err := s.Put(ctx, k, vals[0], time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	startTiming(b, cl)
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1) - 1
		if g >= records {
			b.Error("more goroutines than records")
			return
		}
		k := store.Key{Scope: fmt.Sprintf("T1:U%d", g), Kind: "request", ID: "r1"}
		for i := 0; pb.Next(); i++ {
			if err := s.CompareAndSwap(ctx, k, vals[i%2], vals[(i+1)%2], store.KeepTTL); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, cl, "ops")
}

// BenchmarkCreate creates a new global dedupe key with a ttl per
// operation, as Slack event deduplication does.
func BenchmarkCreate(b *testing.B) {
	s, cl := benchStore(b)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(benchParallelism)
	startTiming(b, cl)
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1)
		for i := 0; pb.Next(); i++ {
			k := store.Key{Kind: "dedupe", ID: fmt.Sprintf("Ev%d-%d", g, i)}
			if err := s.Create(ctx, k, []byte("1"), time.Minute); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, cl, "ops")
}

// BenchmarkAppendParallel appends one entry per operation from many
// goroutines, each reading the head and retrying on conflict as the
// conformance suite's chain test does. Batching several entries per append,
// as the audit trail does, is what raises throughput; this measures the
// unbatched floor. Like the suite it runs about 8 writers.
func BenchmarkAppendParallel(b *testing.B) {
	s, cl := benchStore(b)
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	startTiming(b, cl)
	conflicts := storetest.AppendParallel(b, s, "audit", []byte("an audit event of about the size of a real one, give or take a hundred bytes"))
	reportRate(b, cl, "entries")
	b.ReportMetric(float64(conflicts)/float64(b.N), "conflicts/entry")
}

package audit

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// BenchmarkRecordParallel measures audit append throughput with many
// concurrent callers, as a busy broker produces them, on each backend. The
// redis case runs against AGENTHUB_TEST_REDIS when it is set, else
// miniredis.
func BenchmarkRecordParallel(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchRecordParallel(b, memstore.New(memstore.Options{})) })
	b.Run("bolt", func(b *testing.B) { benchRecordParallel(b, openBolt(b)) })
	b.Run("redis", func(b *testing.B) { benchRecordParallel(b, redistest.Open(b)()) })
}

// benchParallelism × GOMAXPROCS goroutines record at once.
const benchParallelism = 64

func benchRecordParallel(b *testing.B, s store.Store) {
	counted := &countingStore{Store: s}
	r := newRecorder(b, counted, Options{})
	ctx := context.Background()
	e := sampleEvent(7)
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Record(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(counted.appends.Load()), "events/append")
}

// BenchmarkRecordSerial measures one caller at a time: the latency floor,
// with no batching.
func BenchmarkRecordSerial(b *testing.B) {
	r := newRecorder(b, memstore.New(memstore.Options{}), Options{})
	ctx := context.Background()
	e := sampleEvent(7)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

const verifyBenchEvents = 100_000

var verifyBenchExport = sync.OnceValues(func() ([]byte, error) {
	s := memstore.New(memstore.Options{})
	r, err := NewRecorder(s, testKey, Options{})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	for i := range verifyBenchEvents {
		if _, err := r.Record(ctx, sampleEvent(i)); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	_, err = Export(ctx, s, DefaultLog, 0, &buf)
	return buf.Bytes(), err
})

// BenchmarkVerify measures offline verification of an export held in
// memory.
func BenchmarkVerify(b *testing.B) {
	export, err := verifyBenchExport()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(export)))
	b.ReportAllocs()
	for b.Loop() {
		sum, err := Verify(bytes.NewReader(export))
		if err != nil || sum.Count != verifyBenchEvents {
			b.Fatalf("Verify = %+v, %v", sum, err)
		}
	}
	b.ReportMetric(float64(b.N)*verifyBenchEvents/b.Elapsed().Seconds(), "events/s")
}

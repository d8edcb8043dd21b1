package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Store {
		path := filepath.Join(t.TempDir(), "agenthub.db")
		return func() store.Store {
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		}
	})
}

func newClock() *clocktest.Clock { return clocktest.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)) }

// openTest opens a store in a fresh file and closes it when the test ends.
func openTest(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, err := Open(filepath.Join(tb.TempDir(), "agenthub.db"), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// commits returns the id of the last committed write transaction; bbolt
// increments it once per commit, and so once per fsync.
func commits(tb testing.TB, s *Store) int {
	tb.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		tb.Fatal(err)
	}
	return id
}

// rawIDs lists the IDs stored in one scope and kind bucket, expired or not,
// and whether the bucket exists at all.
func rawIDs(tb testing.TB, s *Store, scope, kind string) (ids []string, exists bool) {
	tb.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := kindBucket(tx, scope, kind, false)
		if err != nil || b == nil {
			return err
		}
		exists = true
		return b.ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ids, exists
}

func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agenthub.db")
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open of a file in use succeeded")
	}
	if !errors.Is(err, bolterrors.ErrTimeout) || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open error = %q, want a lock timeout naming %s", err, path)
	}
	t.Log(err)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	again.Close()
}

func TestOpenError(t *testing.T) {
	dir := t.TempDir()
	notBolt := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notBolt, []byte(strings.Repeat("not a bolt file\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
	}{
		{"missing directory", filepath.Join(dir, "missing", "agenthub.db")},
		{"not a bolt file", notBolt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.path, Options{Timeout: 100 * time.Millisecond})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded", tt.path)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("Open(%s) error = %q, want one naming the path", tt.path, err)
			}
			t.Log(err)
		})
	}
}

func TestCloseTwice(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	k := store.Key{Kind: "k", ID: "x"}
	if err := s.Put(ctx, k, []byte("v"), 0); !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Errorf("Put after Close: %v, want ErrDatabaseNotOpen", err)
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Errorf("Get after Close: %v, want ErrDatabaseNotOpen", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func TestInvalidArguments(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	k := store.Key{Kind: "k", ID: "x"}
	tests := []struct {
		name string
		fn   func() error
	}{
		{"put negative ttl", func() error { return s.Put(ctx, k, nil, -time.Second) }},
		{"create negative ttl", func() error { return s.Create(ctx, k, nil, -2*time.Second) }},
		{"swap negative ttl", func() error { return s.CompareAndSwap(ctx, k, nil, nil, -2*time.Second) }},
		{"list bad kind", func() error { _, err := s.List(ctx, "", "a:b"); return err }},
		{"append empty log name", func() error { return s.Append(ctx, "", 0, [][]byte{[]byte("v")}) }},
		{"head control character", func() error { _, err := s.Head(ctx, "a\nb"); return err }},
		{"read empty log name", func() error { _, err := s.Read(ctx, "", 1, 1); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); err == nil {
				t.Fatal("succeeded, want an error")
			}
		})
	}
}

func TestAppendConflictNamesHead(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values [][]byte
	}{
		{"with values", [][]byte{[]byte("c")}},
		{"without values", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Append(ctx, "audit", 1, tt.values)
			if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "head is 2") {
				t.Fatalf("Append after a stale head: %v, want ErrConflict naming head 2", err)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name           string
		expired, alive int
	}{
		{"nothing expired", 0, 3},
		{"some expired", 5, 3},
		{"everything expired", 4, 0},
		{"more than one chunk", 2*sweepChunk + 17, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			s := openTest(t, Options{Now: clock.Now})
			putMany(t, s, "old", tt.expired, time.Minute)
			putMany(t, s, "new", tt.alive, time.Hour)
			// A record in the global scope that expires too, so sweeping
			// crosses scope buckets.
			if err := s.Put(ctx, store.Key{Kind: "dedupe", ID: "ev1"}, []byte("v"), time.Second); err != nil {
				t.Fatal(err)
			}
			clock.Advance(10 * time.Minute)

			got, err := s.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.expired + 1; got != want {
				t.Fatalf("Sweep removed %d records, want %d", got, want)
			}
			ids, exists := rawIDs(t, s, "T1:U1", "request")
			if len(ids) != tt.alive {
				t.Fatalf("after Sweep the bucket holds %d records, want %d", len(ids), tt.alive)
			}
			for _, id := range ids {
				if !strings.HasPrefix(id, "new") {
					t.Fatalf("Sweep left expired record %s", id)
				}
			}
			if tt.alive == 0 && exists {
				t.Fatal("Sweep left an empty bucket behind")
			}
			if _, exists := rawIDs(t, s, "", "dedupe"); exists {
				t.Fatal("Sweep left the emptied global dedupe bucket behind")
			}
			again, err := s.Sweep(ctx)
			if err != nil || again != 0 {
				t.Fatalf("second Sweep = %d, %v; want 0", again, err)
			}
		})
	}
}

// putMany puts n records T1:U1/request/<prefix><i> from concurrent
// writers, so that group commit keeps large setups quick.
func putMany(tb testing.TB, s *Store, prefix string, n int, ttl time.Duration) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(context.Background(), store.Key{Scope: "T1:U1", Kind: "request", ID: fmt.Sprintf("%s%05d", prefix, i)}, []byte("v"), ttl)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func TestSweepCanceled(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Sweep(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sweep with a canceled context: %v, want context.Canceled", err)
	}
}

// TestLazyDelete checks that write paths meeting an expired record treat it
// as absent and remove its bytes.
func TestLazyDelete(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		write   func(s *Store, k store.Key) error
		wantErr error
		wantIDs int
	}{
		{"compare-and-swap", func(s *Store, k store.Key) error {
			return s.CompareAndSwap(ctx, k, []byte("v"), []byte("w"), 0)
		}, store.ErrNotFound, 0},
		{"compare-and-delete", func(s *Store, k store.Key) error {
			return s.CompareAndDelete(ctx, k, []byte("v"))
		}, store.ErrNotFound, 0},
		{"create", func(s *Store, k store.Key) error {
			return s.Create(ctx, k, []byte("new"), 0)
		}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			s := openTest(t, Options{Now: clock.Now})
			k := store.Key{Scope: "T1:U1", Kind: "grant", ID: "g1"}
			if err := s.Put(ctx, k, []byte("v"), time.Second); err != nil {
				t.Fatal(err)
			}
			clock.Advance(2 * time.Second)
			if err := tt.write(s, k); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if ids, _ := rawIDs(t, s, k.Scope, k.Kind); len(ids) != tt.wantIDs {
				t.Fatalf("bucket holds %v, want %d records", ids, tt.wantIDs)
			}
		})
	}
}

func TestRun(t *testing.T) {
	clock := newClock()
	s := openTest(t, Options{Now: clock.Now, SweepInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := store.Key{Scope: "T1:U1", Kind: "request", ID: "r1"}
	if err := s.Put(ctx, k, []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	clock.Advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, exists := rawIDs(t, s, k.Scope, k.Kind); !exists {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep the expired record")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after its context ended, want nil", err)
	}
}

func TestRunClosedStore(t *testing.T) {
	s := openTest(t, Options{})
	s.Close()
	if err := s.Run(context.Background()); !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Fatalf("Run on a closed store: %v, want ErrDatabaseNotOpen", err)
	}
}

// TestGroupCommit proves concurrent writes share transactions: 200
// concurrent Puts must take far fewer commits (each one fsync) than 200.
func TestGroupCommit(t *testing.T) {
	const writers = 200
	// A generous delay makes the grouping independent of scheduling noise;
	// the assertion counts commits, it never measures time.
	s := openTest(t, Options{BatchDelay: 50 * time.Millisecond})
	ctx := context.Background()
	before := commits(t, s)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- s.Put(ctx, store.Key{Scope: "T1:U1", Kind: "grant", ID: fmt.Sprintf("g%03d", i)}, []byte("v"), 0)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := commits(t, s) - before
	t.Logf("%d concurrent Puts took %d commits", writers, got)
	if got > writers/10 {
		t.Fatalf("%d concurrent Puts took %d commits, want at most %d", writers, got, writers/10)
	}
	items, err := s.List(ctx, "T1:U1", "grant")
	if err != nil || len(items) != writers {
		t.Fatalf("List after the Puts = %d items, %v; want %d", len(items), err, writers)
	}
}

// TestBatchRerun forces bbolt to roll back and re-run batches, by mixing
// writes that fail (an ID over bbolt's key size limit) into a
// compare-and-swap race and a create race. Re-run functions must report
// their final outcome, not the one from a rolled-back run: still exactly
// one winner each.
func TestBatchRerun(t *testing.T) {
	const racers, failers = 60, 20
	s := openTest(t, Options{BatchDelay: 50 * time.Millisecond})
	ctx := context.Background()
	swapKey := store.Key{Scope: "T1:U1", Kind: "request", ID: "r1"}
	createKey := store.Key{Kind: "dedupe", ID: "ev1"}
	tooLong := store.Key{Kind: "blob", ID: strings.Repeat("x", bolt.MaxKeySize+1)}
	if err := s.Put(ctx, swapKey, []byte("pending"), 0); err != nil {
		t.Fatal(err)
	}
	var (
		swaps, creates, failed atomic.Int64
		wg                     sync.WaitGroup
		start                  = make(chan struct{})
		unexpected             = make(chan error, 2*racers+failers)
	)
	run := func(fn func() error, wins *atomic.Int64) {
		defer wg.Done()
		<-start
		switch err := fn(); {
		case err == nil:
			wins.Add(1)
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		default:
			unexpected <- err
		}
	}
	for i := range racers {
		wg.Add(2)
		go run(func() error {
			return s.CompareAndSwap(ctx, swapKey, []byte("pending"), fmt.Appendf(nil, "by-%d", i), store.KeepTTL)
		}, &swaps)
		go run(func() error { return s.Create(ctx, createKey, fmt.Appendf(nil, "%d", i), 0) }, &creates)
	}
	for range failers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := s.Put(ctx, tooLong, []byte("v"), 0); errors.Is(err, bolterrors.ErrKeyTooLarge) {
				failed.Add(1)
			} else {
				unexpected <- fmt.Errorf("Put with an oversized key: %v, want ErrKeyTooLarge", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(unexpected)
	for err := range unexpected {
		t.Error(err)
	}
	if got := swaps.Load(); got != 1 {
		t.Errorf("%d compare-and-swaps won, want 1", got)
	}
	if got := creates.Load(); got != 1 {
		t.Errorf("%d creates won, want 1", got)
	}
	if got, want := failed.Load(), int64(failers); got != want {
		t.Errorf("%d oversized Puts failed, want %d", got, want)
	}
}

// rerunning returns a batch runner that does what bbolt does when another
// function in the batch fails and a competing transaction commits before
// the re-run: it runs fn in a transaction it rolls back, commits between,
// and then runs fn again for real.
func rerunning(tb testing.TB, s *Store, between func(tx *bolt.Tx) error) func(func(*bolt.Tx) error) error {
	return func(fn func(*bolt.Tx) error) error {
		errRollback := errors.New("rolled back")
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			return err
		}
		if err := s.db.Update(between); err != nil {
			tb.Fatalf("competing write: %v", err)
		}
		return s.db.Update(fn)
	}
}

// rawPut writes a record straight into the layout, bypassing the Store.
func rawPut(k store.Key, value string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b, err := kindBucket(tx, k.Scope, k.Kind, true)
		if err != nil {
			return err
		}
		return b.Put([]byte(k.ID), encode(0, []byte(value)))
	}
}

// TestRerunReportsFinalOutcome checks that a batched function that runs
// twice reports what its committed run did, not what the rolled-back run
// saw: a write that lost the first time and won the second must report
// success, and the other way round.
func TestRerunReportsFinalOutcome(t *testing.T) {
	ctx := context.Background()
	k := store.Key{Scope: "T1:U1", Kind: "request", ID: "r1"}
	none := func(*bolt.Tx) error { return nil }
	remove := func(tx *bolt.Tx) error {
		b, err := kindBucket(tx, k.Scope, k.Kind, false)
		if err != nil {
			return err
		}
		return b.Delete([]byte(k.ID))
	}
	tests := []struct {
		name      string
		setup     func(tx *bolt.Tx) error // before the first run
		between   func(tx *bolt.Tx) error // between the runs
		op        func(s *Store) error
		wantErr   error
		wantValue string // "" means no record
	}{
		{"swap loses then wins", rawPut(k, "denied"), rawPut(k, "pending"),
			func(s *Store) error { return s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), 0) },
			nil, "approved"},
		{"swap wins then loses", rawPut(k, "pending"), rawPut(k, "denied"),
			func(s *Store) error { return s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), 0) },
			store.ErrConflict, "denied"},
		{"swap finds nothing then wins", none, rawPut(k, "pending"),
			func(s *Store) error { return s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), 0) },
			nil, "approved"},
		{"delete loses then wins", rawPut(k, "theirs"), rawPut(k, "mine"),
			func(s *Store) error { return s.CompareAndDelete(ctx, k, []byte("mine")) },
			nil, ""},
		{"create exists then wins", rawPut(k, "old"), remove,
			func(s *Store) error { return s.Create(ctx, k, []byte("new"), 0) },
			nil, "new"},
		{"create wins then exists", none, rawPut(k, "theirs"),
			func(s *Store) error { return s.Create(ctx, k, []byte("new"), 0) },
			store.ErrExists, "theirs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, Options{})
			if err := s.db.Update(tt.setup); err != nil {
				t.Fatal(err)
			}
			s.runBatch = rerunning(t, s, tt.between)
			if err := tt.op(s); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			it, err := s.Get(ctx, k)
			if got := string(it.Value); got != tt.wantValue || (tt.wantValue == "") != errors.Is(err, store.ErrNotFound) {
				t.Fatalf("record after the re-run = %q, %v; want %q", got, err, tt.wantValue)
			}
		})
	}
	t.Run("append conflicts then wins", func(t *testing.T) {
		s := openTest(t, Options{})
		if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("e1")}); err != nil {
			t.Fatal(err)
		}
		s.runBatch = rerunning(t, s, func(tx *bolt.Tx) error {
			return tx.Bucket(logsBucket).Bucket([]byte("audit")).Put(seqKey(2), []byte("e2"))
		})
		if err := s.Append(ctx, "audit", 2, [][]byte{[]byte("e3")}); err != nil {
			t.Fatalf("Append: %v, want success on the re-run", err)
		}
		head, err := s.Head(ctx, "audit")
		if err != nil || head.Seq != 3 || string(head.Value) != "e3" {
			t.Fatalf("Head = %d %q, %v; want 3 e3", head.Seq, head.Value, err)
		}
	})
}

// BenchmarkPut measures Puts of distinct keys by one writer, and by many
// concurrent writers sharing commits.
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	b.Run("writers=1", func(b *testing.B) {
		s := openTest(b, Options{})
		before := commits(b, s)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := s.Put(ctx, store.Key{Scope: "T1:U1", Kind: "grant", ID: fmt.Sprint(i)}, []byte("value"), 0); err != nil {
				b.Fatal(err)
			}
		}
		reportRates(b, s, before)
	})
	b.Run("writers=64", func(b *testing.B) {
		s := openTest(b, Options{})
		before := commits(b, s)
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := fmt.Sprint(next.Add(1))
				if err := s.Put(ctx, store.Key{Scope: "T1:U1", Kind: "grant", ID: id}, []byte("value"), 0); err != nil {
					b.Error(err)
					return
				}
			}
		})
		reportRates(b, s, before)
	})
}

// BenchmarkCompareAndSwap has 64 writers each flipping its own record
// between two states, as status transitions of different requests do.
func BenchmarkCompareAndSwap(b *testing.B) {
	ctx := context.Background()
	s := openTest(b, Options{})
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	before := commits(b, s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		k := store.Key{Scope: "T1:U1", Kind: "request", ID: fmt.Sprint(next.Add(1))}
		cur, other := []byte("pending"), []byte("approved")
		if err := s.Put(ctx, k, cur, time.Hour); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := s.CompareAndSwap(ctx, k, cur, other, store.KeepTTL); err != nil {
				b.Error(err)
				return
			}
			cur, other = other, cur
		}
	})
	reportRates(b, s, before)
}

// BenchmarkAppendParallel has 64 writers each append one chained entry per
// op to one log, retrying on conflict as the audit trail does: read the
// head, append after it.
func BenchmarkAppendParallel(b *testing.B) {
	s := openTest(b, Options{})
	b.ReportAllocs()
	b.SetParallelism(32)
	before := commits(b, s)
	b.ResetTimer()
	conflicts := storetest.AppendParallel(b, s, "audit", []byte(strings.Repeat("e", 300)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(conflicts)/float64(b.N), "conflicts/op")
	b.ReportMetric(float64(commits(b, s)-before)/float64(b.N), "commits/op")
}

// BenchmarkAppendBatched is the pattern the audit trail can use instead:
// one writer appends the events gathered meanwhile in a single Append, so
// one commit carries many events. Each op appends 256 events of 300 bytes.
func BenchmarkAppendBatched(b *testing.B) {
	const perAppend = 256
	ctx := context.Background()
	s := openTest(b, Options{})
	values := make([][]byte, perAppend)
	for i := range values {
		values[i] = []byte(strings.Repeat("e", 300))
	}
	b.ReportAllocs()
	var head uint64
	for b.Loop() {
		if err := s.Append(ctx, "audit", head, values); err != nil {
			b.Fatal(err)
		}
		head += perAppend
	}
	b.ReportMetric(float64(b.N*perAppend)/b.Elapsed().Seconds(), "events/s")
}

// reportRates reports operations per second and commits (fsyncs) per op.
func reportRates(b *testing.B, s *Store, before int) {
	b.Helper()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(commits(b, s)-before)/float64(b.N), "commits/op")
}

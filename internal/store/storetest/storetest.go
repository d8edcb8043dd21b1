// Package storetest is the conformance suite for store.Store. Every backend
// runs it from its own tests:
//
//	storetest.Run(t, func(t *testing.T) func() store.Store { … })
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// Opener creates a fresh, empty database for one subtest and returns a
// function that opens a handle onto it. Each call of that function must
// return a new handle (a new file handle, a new Redis client) on the same
// data, so the suite can check that data outlives a handle. The suite closes
// every handle it opens; the Opener cleans up the data with t.Cleanup.
type Opener func(t *testing.T) func() store.Store

// Run runs the conformance suite against one backend.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func() store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"InvalidKey", testInvalidKey},
		{"Create", testCreate},
		{"Expiry", testExpiry},
		{"CompareAndSwap", testCompareAndSwap},
		{"CompareAndSwapKeepTTL", testCompareAndSwapKeepTTL},
		{"CompareAndSwapRace", testCompareAndSwapRace},
		{"CreateRace", testCreateRace},
		{"CompareAndDelete", testCompareAndDelete},
		{"List", testList},
		{"GetMany", testGetMany},
		{"LogAppendRead", testLogAppendRead},
		{"LogConcurrentChain", testLogConcurrentChain},
		{"Lock", testLock},
		{"Update", testUpdate},
		{"UpdateRace", testUpdateRace},
		{"SurvivesReopen", testSurvivesReopen},
		{"CanceledContext", testCanceledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reopen := open(t)
			tt.fn(t, func() store.Store {
				s := reopen()
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

func key(scope, kind, id string) store.Key { return store.Key{Scope: scope, Kind: kind, ID: id} }

func mustPut(t *testing.T, s store.Store, k store.Key, v string, ttl time.Duration) {
	t.Helper()
	if err := s.Put(context.Background(), k, []byte(v), ttl); err != nil {
		t.Fatalf("Put(%v): %v", k, err)
	}
}

func wantValue(t *testing.T, s store.Store, k store.Key, want string) {
	t.Helper()
	it, err := s.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%v): %v, want %q", k, err, want)
	}
	if got := string(it.Value); got != want {
		t.Fatalf("Get(%v) = %q, want %q", k, got, want)
	}
	if it.Key != k {
		t.Fatalf("Get(%v).Key = %v", k, it.Key)
	}
}

func wantNotFound(t *testing.T, s store.Store, k store.Key) {
	t.Helper()
	_, err := s.Get(context.Background(), k)
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%v) error = %v, want ErrNotFound", k, err)
	}
}

// waitGone polls until k has expired, failing after a generous deadline:
// expiry is checked by behaviour, never by timing assertions.
func waitGone(t *testing.T, s store.Store, k store.Key) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Get(context.Background(), k)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("Get(%v): %v", k, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v did not expire", k)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testGetMissing(t *testing.T, open func() store.Store) {
	s := open()
	wantNotFound(t, s, key("T1:U1", "grant", "g1"))
	wantNotFound(t, s, key("", "dedupe", "e1"))
	if err := s.Delete(context.Background(), key("T1:U1", "grant", "g1")); err != nil {
		t.Fatalf("Delete of a missing record: %v", err)
	}
}

func testPutGet(t *testing.T, open func() store.Store) {
	s := open()
	k := key("T1:U1", "grant", "g1")
	mustPut(t, s, k, "one", 0)
	wantValue(t, s, k, "one")
	mustPut(t, s, k, "two", 0)
	wantValue(t, s, k, "two")
	// Same ID, different scope or kind: a different record.
	wantNotFound(t, s, key("T1:U2", "grant", "g1"))
	wantNotFound(t, s, key("T1:U1", "request", "g1"))
	// Values are opaque bytes, including empty ones and binary.
	bin := key("", "blob", "b")
	mustPut(t, s, bin, "\x00\xff{}:\n", 0)
	wantValue(t, s, bin, "\x00\xff{}:\n")
	empty := key("", "blob", "empty")
	mustPut(t, s, empty, "", 0)
	wantValue(t, s, empty, "")
	if err := s.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, k)
}

func testInvalidKey(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	for _, k := range []store.Key{{Kind: "", ID: "x"}, {Kind: "k", ID: ""}, {Kind: "a:b", ID: "x"}, {Kind: "k", ID: "a\nb"}} {
		if err := s.Put(ctx, k, []byte("v"), 0); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k.String())
		}
	}
}

func testCreate(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("", "dedupe", "Ev123")
	if err := s.Create(ctx, k, []byte("first"), time.Minute); err != nil {
		t.Fatalf("first Create: %v", err)
	}
	if err := s.Create(ctx, k, []byte("second"), time.Minute); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create error = %v, want ErrExists", err)
	}
	wantValue(t, s, k, "first")

	// An expired record no longer blocks Create.
	short := key("", "dedupe", "short")
	if err := s.Create(ctx, short, []byte("a"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitGone(t, s, short)
	if err := s.Create(ctx, short, []byte("b"), 0); err != nil {
		t.Fatalf("Create after expiry: %v", err)
	}
	wantValue(t, s, short, "b")
}

func testExpiry(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	short := key("T1:U1", "request", "r1")
	hour := key("T1:U1", "request", "r2")
	keep := key("T1:U1", "request", "r3")
	mustPut(t, s, hour, "an hour", time.Hour)
	mustPut(t, s, keep, "stays", 0)
	mustPut(t, s, short, "soon gone", 100*time.Millisecond)
	it, err := s.Get(ctx, hour)
	if err != nil {
		t.Fatalf("Get right after Put: %v", err)
	}
	if !aboutAnHour(it.ExpiresAt) {
		t.Fatalf("ExpiresAt = %v, want about an hour from now", it.ExpiresAt)
	}
	if it, _ := s.Get(ctx, keep); !it.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt of a record without ttl = %v, want zero", it.ExpiresAt)
	}
	waitGone(t, s, short)
	items, err := s.List(ctx, "T1:U1", "request")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(ids(items), ","), "r2=an hour,r3=stays"; got != want {
		t.Fatalf("List after expiry = %s, want %s", got, want)
	}
	// Put without ttl clears an earlier expiry.
	mustPut(t, s, short, "short", 100*time.Millisecond)
	mustPut(t, s, short, "forever", 0)
	time.Sleep(250 * time.Millisecond)
	wantValue(t, s, short, "forever")
}

func testCompareAndSwap(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("T1:U1", "request", "r1")
	if err := s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompareAndSwap on a missing record: %v, want ErrNotFound", err)
	}
	mustPut(t, s, k, "pending", 0)
	if err := s.CompareAndSwap(ctx, k, []byte("approved"), []byte("executing"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CompareAndSwap with a stale value: %v, want ErrConflict", err)
	}
	wantValue(t, s, k, "pending")
	if err := s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), 0); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	wantValue(t, s, k, "approved")
	// A prefix of the value is not the value.
	if err := s.CompareAndSwap(ctx, k, []byte("approve"), []byte("x"), 0); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CompareAndSwap with a prefix: %v, want ErrConflict", err)
	}
	// A new ttl applies.
	if err := s.CompareAndSwap(ctx, k, []byte("approved"), []byte("expiring"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitGone(t, s, k)
}

func testCompareAndSwapKeepTTL(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("T1:U1", "request", "r1")
	mustPut(t, s, k, "pending", time.Hour)
	before, err := s.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), store.KeepTTL); err != nil {
		t.Fatal(err)
	}
	after, err := s.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.ExpiresAt.Sub(before.ExpiresAt); d < -time.Second || d > time.Second {
		t.Fatalf("KeepTTL moved the expiry from %v to %v", before.ExpiresAt, after.ExpiresAt)
	}
	// KeepTTL on a record without expiry keeps it without expiry.
	p := key("T1:U1", "request", "r2")
	mustPut(t, s, p, "a", 0)
	if err := s.CompareAndSwap(ctx, p, []byte("a"), []byte("b"), store.KeepTTL); err != nil {
		t.Fatal(err)
	}
	if it, _ := s.Get(ctx, p); !it.ExpiresAt.IsZero() {
		t.Fatalf("KeepTTL gave an expiry of %v to a record without one", it.ExpiresAt)
	}
}

// race runs fn on n goroutines released together and counts the nil errors.
func race(t *testing.T, n int, fn func(i int) error) int {
	t.Helper()
	var (
		wins  atomic.Int64
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := fn(i); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	return int(wins.Load())
}

func testCompareAndSwapRace(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("T1:U1", "request", "r1")
	mustPut(t, s, k, "pending", 0)
	wins := race(t, 100, func(i int) error {
		return s.CompareAndSwap(ctx, k, []byte("pending"), fmt.Appendf(nil, "approved-by-%d", i), store.KeepTTL)
	})
	if wins != 1 {
		t.Fatalf("%d goroutines won the compare-and-swap, want exactly 1", wins)
	}
	it, err := s.Get(ctx, k)
	if err != nil || !strings.HasPrefix(string(it.Value), "approved-by-") {
		t.Fatalf("after the race: %q, %v", it.Value, err)
	}
}

func testCreateRace(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("", "dedupe", "Ev1")
	wins := race(t, 100, func(i int) error {
		return s.Create(ctx, k, fmt.Appendf(nil, "%d", i), time.Minute)
	})
	if wins != 1 {
		t.Fatalf("%d goroutines created the record, want exactly 1", wins)
	}
}

func testCompareAndDelete(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("", "lock", "l")
	if err := s.CompareAndDelete(ctx, k, []byte("x")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CompareAndDelete of a missing record: %v, want ErrNotFound", err)
	}
	mustPut(t, s, k, "mine", time.Minute)
	if err := s.CompareAndDelete(ctx, k, []byte("theirs")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CompareAndDelete with another value: %v, want ErrConflict", err)
	}
	wantValue(t, s, k, "mine")
	if err := s.CompareAndDelete(ctx, k, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, k)
}

// aboutAnHour reports whether t is about an hour from now, as the expiry
// of a record put with a ttl of an hour reads back.
func aboutAnHour(t time.Time) bool {
	now := time.Now()
	return !t.Before(now.Add(50*time.Minute)) && !t.After(now.Add(61*time.Minute))
}

func ids(items []store.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Key.ID+"="+string(it.Value))
	}
	return out
}

func testGetMany(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	lease := key("T1:U1", "lease", "l1")
	conn := key("T1:U1", "connection", "github")
	gone := key("T1:U1", "lease", "l2")
	missing := key("T1:U1", "grant", "none")
	mustPut(t, s, lease, "lease", time.Hour)
	mustPut(t, s, conn, "conn", 0)
	mustPut(t, s, gone, "soon gone", 100*time.Millisecond)
	waitGone(t, s, gone)

	items, err := s.GetMany(ctx, []store.Key{conn, missing, gone, lease})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if got, want := strings.Join(ids(items), ","), "github=conn,l1=lease"; got != want {
		t.Fatalf("GetMany = %s, want %s: the live records, in the order asked, without the missing and the expired", got, want)
	}
	if items[0].Key != conn || !items[0].ExpiresAt.IsZero() {
		t.Errorf("first item = %+v, want the connection's key and no expiry", items[0])
	}
	if !aboutAnHour(items[1].ExpiresAt) {
		t.Errorf("the lease's ExpiresAt = %v, want about an hour from now", items[1].ExpiresAt)
	}
	if items, err := s.GetMany(ctx, []store.Key{missing}); err != nil || len(items) != 0 {
		t.Errorf("GetMany of a missing key = %v, %v; want nothing, no error", items, err)
	}
	if items, err := s.GetMany(ctx, nil); err != nil || len(items) != 0 {
		t.Errorf("GetMany of no keys = %v, %v; want nothing, no error", items, err)
	}
	for name, keys := range map[string][]store.Key{
		"two scopes":                   {lease, key("T1:U2", "lease", "l1")},
		"two global kinds":             {key("", "dedupe", "a"), key("", "lock", "a")},
		"an invalid key":               {lease, key("T1:U1", "", "x")},
		"a scoped and a global record": {lease, key("", "lease", "l1")},
	} {
		if _, err := s.GetMany(ctx, keys); err == nil {
			t.Errorf("GetMany of %s succeeded, want an error", name)
		}
	}
}

func testList(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	mustPut(t, s, key("T1:U1", "grant", "b"), "2", 0)
	mustPut(t, s, key("T1:U1", "grant", "a"), "1", time.Hour)
	mustPut(t, s, key("T1:U1", "grant", "c"), "3", 0)
	mustPut(t, s, key("T1:U1", "request", "a"), "other kind", 0)
	mustPut(t, s, key("T1:U2", "grant", "a"), "other scope", 0)
	mustPut(t, s, key("", "grant", "a"), "global", 0)
	if err := s.Create(ctx, key("T1:U1", "grant", "d"), []byte("4"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, key("T1:U1", "grant", "c")); err != nil {
		t.Fatal(err)
	}
	if err := s.CompareAndSwap(ctx, key("T1:U1", "grant", "b"), []byte("2"), []byte("2b"), 0); err != nil {
		t.Fatal(err)
	}
	items, err := s.List(ctx, "T1:U1", "grant")
	if err != nil {
		t.Fatal(err)
	}
	got, want := strings.Join(ids(items), ","), "a=1,b=2b,d=4"
	if got != want {
		t.Fatalf("List(T1:U1, grant) = %s, want %s", got, want)
	}
	for _, it := range items {
		if it.Key.Scope != "T1:U1" || it.Key.Kind != "grant" {
			t.Fatalf("List returned key %v", it.Key)
		}
	}
	if items[0].ExpiresAt.IsZero() {
		t.Fatalf("List lost the expiry of %v", items[0].Key)
	}
	global, err := s.List(ctx, "", "grant")
	if err != nil || strings.Join(ids(global), ",") != "a=global" {
		t.Fatalf("List(global, grant) = %v, %v", ids(global), err)
	}
	none, err := s.List(ctx, "T9:U9", "grant")
	if err != nil || len(none) != 0 {
		t.Fatalf("List of an empty scope = %v, %v", ids(none), err)
	}
}

func testLogAppendRead(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	head, err := s.Head(ctx, "audit")
	if err != nil || head.Seq != 0 || head.Value != nil {
		t.Fatalf("Head of an empty log = %+v, %v", head, err)
	}
	if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("e1"), []byte("e2")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("fork")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Append after a stale head: %v, want ErrConflict", err)
	}
	if err := s.Append(ctx, "audit", 5, [][]byte{[]byte("gap")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Append leaving a gap: %v, want ErrConflict", err)
	}
	if err := s.Append(ctx, "audit", 2, [][]byte{[]byte("e3")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "other", 0, [][]byte{[]byte("x1")}); err != nil {
		t.Fatal(err)
	}
	head, err = s.Head(ctx, "audit")
	if err != nil || head.Seq != 3 || string(head.Value) != "e3" {
		t.Fatalf("Head = %d %q, %v; want 3 e3", head.Seq, head.Value, err)
	}
	all, err := s.Read(ctx, "audit", 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(all); got != "1=e1,2=e2,3=e3" {
		t.Fatalf("Read(1, 100) = %s", got)
	}
	part, err := s.Read(ctx, "audit", 2, 1)
	if err != nil || entries(part) != "2=e2" {
		t.Fatalf("Read(2, 1) = %s, %v", entries(part), err)
	}
	past, err := s.Read(ctx, "audit", 4, 10)
	if err != nil || len(past) != 0 {
		t.Fatalf("Read past the head = %s, %v", entries(past), err)
	}
	zero, err := s.Read(ctx, "audit", 0, 10)
	if err != nil || entries(zero) != "1=e1,2=e2,3=e3" {
		t.Fatalf("Read(0, 10) = %s, %v; want every entry", entries(zero), err)
	}
	if err := s.Append(ctx, "audit", 3, nil); err != nil {
		t.Fatalf("Append of nothing: %v", err)
	}
}

func entries(es []store.Entry) string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d=%s", e.Seq, e.Value))
	}
	return strings.Join(out, ",")
}

// testLogConcurrentChain has 8 writers append 1,000 entries each, every
// entry naming the hash of the one before it, as the audit trail does. The
// result must be one gap-free chain holding all 8,000 entries.
func testLogConcurrentChain(t *testing.T, open func() store.Store) {
	const writers, each = 8, 1000
	s := open()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				head, err := s.Head(ctx, "chain")
				if err != nil {
					errs <- err
					return
				}
				sum := sha256.Sum256(head.Value)
				v := fmt.Appendf(nil, "%d|%s|w%d-%d", head.Seq+1, hex.EncodeToString(sum[:]), w, i)
				err = s.Append(ctx, "chain", head.Seq, [][]byte{v})
				switch {
				case err == nil:
					i++
				case errors.Is(err, store.ErrConflict):
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var (
		prev []byte
		seen = map[string]bool{}
		n    uint64
	)
	for from := uint64(1); ; {
		batch, err := s.Read(ctx, "chain", from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			n++
			if e.Seq != n {
				t.Fatalf("entry %d has seq %d", n, e.Seq)
			}
			parts := strings.SplitN(string(e.Value), "|", 3)
			sum := sha256.Sum256(prev)
			if len(parts) != 3 || parts[0] != fmt.Sprint(e.Seq) || parts[1] != hex.EncodeToString(sum[:]) {
				t.Fatalf("entry %d does not chain to its predecessor: %q", e.Seq, e.Value)
			}
			if seen[parts[2]] {
				t.Fatalf("entry %s appended twice", parts[2])
			}
			seen[parts[2]] = true
			prev = e.Value
		}
		from += uint64(len(batch))
	}
	if n != writers*each {
		t.Fatalf("chain holds %d entries, want %d", n, writers*each)
	}
	head, err := s.Head(ctx, "chain")
	if err != nil || head.Seq != n || !bytes.Equal(head.Value, prev) {
		t.Fatalf("Head = %d, %v; want %d and the last entry", head.Seq, err, n)
	}
}

func testLock(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	l, err := store.TryLock(ctx, s, "T1:U1", "refresh:github", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.TryLock(ctx, s, "T1:U1", "refresh:github", time.Minute); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second TryLock: %v, want ErrExists", err)
	}
	other, err := store.TryLock(ctx, s, "T1:U1", "refresh:google", time.Minute)
	if err != nil {
		t.Fatalf("a lock of another name: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// An expired lock can be taken, and its old holder's Unlock does not
	// release the new holder's lock.
	old, err := store.TryLock(ctx, s, "T1:U1", "refresh:github", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	next, err := store.AcquireLock(wctx, s, "T1:U1", "refresh:github", time.Minute, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("AcquireLock after expiry: %v", err)
	}
	if err := old.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.TryLock(ctx, s, "T1:U1", "refresh:github", time.Minute); !errors.Is(err, store.ErrExists) {
		t.Fatalf("a stale Unlock released the new holder's lock: %v", err)
	}
	// Renewing keeps a lock past its first ttl; a holder that lost it is
	// told so by Renew.
	if err := old.Renew(ctx, time.Minute); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Renew by a holder whose lock was taken over: %v, want ErrConflict", err)
	}
	if err := next.Renew(ctx, time.Minute); err != nil {
		t.Fatalf("Renew by the holder: %v", err)
	}
	if err := next.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := next.Renew(ctx, time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Renew after Unlock: %v, want ErrNotFound", err)
	}
	cctx, cancel2 := context.WithCancel(ctx)
	held, _ := store.TryLock(ctx, s, "", "busy", time.Minute)
	cancel2()
	if _, err := store.AcquireLock(cctx, s, "", "busy", time.Minute, time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Fatalf("AcquireLock with a canceled context: %v", err)
	}
	held.Unlock(ctx)
}

func testSurvivesReopen(t *testing.T, open func() store.Store) {
	ctx := context.Background()
	s := open()
	mustPut(t, s, key("T1:U1", "connection", "github"), "sealed", 0)
	mustPut(t, s, key("T1:U1", "grant", "g1"), "expiring", time.Hour)
	if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("e1"), []byte("e2")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open()
	wantValue(t, s2, key("T1:U1", "connection", "github"), "sealed")
	it, err := s2.Get(ctx, key("T1:U1", "grant", "g1"))
	if err != nil || it.ExpiresAt.IsZero() {
		t.Fatalf("grant after reopen: %+v, %v", it, err)
	}
	items, err := s2.List(ctx, "T1:U1", "connection")
	if err != nil || len(items) != 1 {
		t.Fatalf("List after reopen = %v, %v", ids(items), err)
	}
	head, err := s2.Head(ctx, "audit")
	if err != nil || head.Seq != 2 || string(head.Value) != "e2" {
		t.Fatalf("Head after reopen = %+v, %v", head, err)
	}
	if err := s2.Append(ctx, "audit", 2, [][]byte{[]byte("e3")}); err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
	if err := s2.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testCanceledContext(t *testing.T, open func() store.Store) {
	s := open()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := key("", "x", "y")
	if err := s.Put(ctx, k, []byte("v"), 0); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	wantNotFound(t, s, k)
	if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("v")}); err == nil {
		t.Fatal("Append with a canceled context succeeded")
	}
}

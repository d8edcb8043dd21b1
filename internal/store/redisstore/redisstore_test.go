package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
	"github.com/agenthub/agenthub/internal/store/storetest"
)

// TestConformance runs the suite. On a real Redis it also checks that the
// suite's keys, which exist before each subtest's cleanup, are all gone
// after it, so redistest leaves a shared database as it found it.
func TestConformance(t *testing.T) {
	real := redistestURL() != ""
	var (
		admin    *redis.Client
		subtests []*prefixKeys
	)
	if real {
		admin = redistest.Start(t).NewClient()
	}
	storetest.Run(t, func(t *testing.T) func() store.Store {
		srv := redistest.Start(t)
		if real {
			subtests = append(subtests, watchPrefix(t, admin, srv.Prefix()))
		}
		return func() store.Store { return srv.Open() }
	})
	if real {
		checkGone(t, admin, subtests)
	}
}

// TestCleanupLeavesNoKeys writes records, indexes and logs through
// redistest's real-Redis path (against a miniredis standing in for Redis
// when AGENTHUB_TEST_REDIS is not set) and checks that the test's cleanup
// deletes all of them and nothing outside the test's prefix.
func TestCleanupLeavesNoKeys(t *testing.T) {
	if redistestURL() == "" {
		mr := miniredis.RunT(t)
		mr.ClockTTL(true)
		t.Setenv(redistest.EnvURL, "redis://"+mr.Addr())
		t.Log("AGENTHUB_TEST_REDIS not set: one miniredis stands in for a real Redis so that the key cleanup runs")
	}
	admin := redistest.Start(t).NewClient()
	ctx := context.Background()
	sentinel := fmt.Sprintf("agenthubtest-sentinel:%d", time.Now().UnixNano())
	if err := admin.Set(ctx, sentinel, "keep", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Del(context.Background(), sentinel) })

	var subtests []*prefixKeys
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t)
			subtests = append(subtests, watchPrefix(t, admin, srv.Prefix()))
			s := srv.Open()
			for i, k := range []store.Key{
				{Scope: "T1:U1", Kind: "grant", ID: "g1"},
				{Scope: "T1:U1", Kind: "request", ID: "r1"},
				{Kind: "dedupe", ID: "e1"},
			} {
				if err := s.Put(ctx, k, []byte("v"), time.Duration(i)*time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("e1")}); err != nil {
				t.Fatal(err)
			}
		})
	}
	checkGone(t, admin, subtests)
	if got, err := admin.Get(ctx, sentinel).Result(); err != nil || got != "keep" {
		t.Fatalf("the key outside the test prefixes: %q, %v; want it untouched", got, err)
	}
}

// prefixKeys is one subtest's prefix and the number of its keys just
// before redistest's cleanup ran.
type prefixKeys struct {
	prefix string
	before int
}

// watchPrefix must be called right after redistest.Start: its cleanup then
// runs before Start's, and counts the keys that one is to delete.
func watchPrefix(t *testing.T, admin *redis.Client, prefix string) *prefixKeys {
	t.Helper()
	p := &prefixKeys{prefix: prefix}
	t.Cleanup(func() { p.before = countKeys(t, admin, prefix) })
	return p
}

func checkGone(t *testing.T, admin *redis.Client, subtests []*prefixKeys) {
	t.Helper()
	var before int
	for _, p := range subtests {
		before += p.before
		if n := countKeys(t, admin, p.prefix); n != 0 {
			t.Errorf("%d keys under %s remain after the test", n, p.prefix)
		}
	}
	if before == 0 {
		t.Fatal("no keys existed before the cleanup; the check proves nothing")
	}
	t.Logf("redistest deleted %d keys under %d prefixes", before, len(subtests))
}

func redistestURL() string {
	return strings.TrimSpace(os.Getenv(redistest.EnvURL))
}

func countKeys(tb testing.TB, c *redis.Client, prefix string) int {
	tb.Helper()
	var (
		n      int
		cursor uint64
	)
	for {
		keys, next, err := c.Scan(context.Background(), cursor, redistest.Pattern(prefix), 1000).Result()
		if err != nil {
			tb.Fatalf("SCAN: %v", err)
		}
		n += len(keys)
		if next == 0 {
			return n
		}
		cursor = next
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	const pw = "Canary-Pw-5f1e8b93"
	tests := []struct {
		name, url string
		want      string // in the error
	}{
		{"closed port", "redis://agent:" + pw + "@127.0.0.1:1/0", "redis://agent:xxxxx@127.0.0.1:1/0"},
		{"closed port with TLS", "rediss://:" + pw + "@127.0.0.1:1", "rediss://:xxxxx@127.0.0.1:1"},
		{"unsupported scheme", "http://agent:" + pw + "@127.0.0.1:1", "http://agent:xxxxx@127.0.0.1:1"},
		{"bad database", "redis://agent:" + pw + "@127.0.0.1:1/x", "redis://agent:xxxxx@127.0.0.1:1/x"},
		{"bad port", "redis://agent:" + pw + "@127.0.0.1:port/0", "redis:…@127.0.0.1:port/0"},
		{"bad escape in the password", "redis://agent:" + pw + "%zz@127.0.0.1:1/0", "redis:…@127.0.0.1:1/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := redisstore.Open(ctx, redisstore.Options{URL: tt.url})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			// Print the error only once it is known not to hold the password.
			if strings.Contains(err.Error(), pw) || strings.Contains(fmt.Sprintf("%+v", err), pw) {
				t.Fatal("the error contains the password")
			}
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				if strings.Contains(e.Error(), pw) {
					t.Fatal("an error wrapped inside the error contains the password")
				}
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestKeyLayoutAndHashSlots(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.NewClient()
	cl := &commandLog{record: true}
	c.AddHook(cl)
	base := srv.Prefix()
	tests := []struct {
		name, prefix, scope, kind string
		wantTag                   string
		wantRecord, wantIndex     string // full keys for ID "g1", when set
	}{
		{
			name: "principal", prefix: base, scope: "T1:U1", kind: "grant", wantTag: "s:T1%3AU1",
			wantRecord: base + ":{s:T1%3AU1}:r:grant:g1", wantIndex: base + ":{s:T1%3AU1}:i:grant",
		},
		{
			name: "global", prefix: base, scope: "", kind: "dedupe", wantTag: "g:dedupe",
			wantRecord: base + ":{g:dedupe}:r:dedupe:g1", wantIndex: base + ":{g:dedupe}:i:dedupe",
		},
		// Unescaped, "a}b" would end the tag early and share the tag "s:a"
		// with the scope "a".
		{name: "closing brace", prefix: base, scope: "a}b", kind: "grant", wantTag: "s:a%7Db"},
		{name: "plain scope a", prefix: base, scope: "a", kind: "grant", wantTag: "s:a"},
		{name: "braces", prefix: base, scope: "{x}", kind: "grant", wantTag: "s:%7Bx%7D"},
		{name: "escaped text stays distinct", prefix: base, scope: "%7D", kind: "grant", wantTag: "s:%257D"},
		{
			name: "prefix with braces", prefix: base + ":{p}", scope: "T1:U1", kind: "request", wantTag: "s:T1%3AU1",
			wantRecord: base + ":%7Bp%7D:{s:T1%3AU1}:r:request:g1", wantIndex: base + ":%7Bp%7D:{s:T1%3AU1}:i:request",
		},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := redisstore.New(c, tt.prefix)
			k := store.Key{Scope: tt.scope, Kind: tt.kind, ID: "g1"}
			other := store.Key{Scope: tt.scope, Kind: tt.kind, ID: "{id}:with}braces"}
			ops := []struct {
				name string
				fn   func() error
			}{
				{"Put", func() error { return s.Put(ctx, k, []byte("v1"), time.Hour) }},
				{"Put other", func() error { return s.Put(ctx, other, []byte("o"), 0) }},
				{"Create", func() error { return ignore(s.Create(ctx, k, []byte("v"), 0), store.ErrExists) }},
				{"Get", func() error { _, err := s.Get(ctx, k); return err }},
				{"GetMany", func() error { _, err := s.GetMany(ctx, []store.Key{k, other}); return err }},
				{"CompareAndSwap", func() error { return s.CompareAndSwap(ctx, k, []byte("v1"), []byte("v2"), 0) }},
				{"CompareAndSwap KeepTTL", func() error { return s.CompareAndSwap(ctx, k, []byte("v2"), []byte("v3"), store.KeepTTL) }},
				{"List", func() error { _, err := s.List(ctx, tt.scope, tt.kind); return err }},
				{"CompareAndDelete", func() error { return s.CompareAndDelete(ctx, k, []byte("v3")) }},
				{"Delete", func() error { return s.Delete(ctx, other) }},
			}
			cl.take()
			var all []string
			for _, op := range ops {
				if err := op.fn(); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
				sent := cl.take()
				if len(sent) == 0 {
					t.Fatalf("%s sent no command", op.name)
				}
				for _, cmd := range sent {
					for _, key := range cmd.keys {
						all = append(all, key)
						if got := hashTag(key); got != tt.wantTag {
							t.Errorf("%s: %s key %q has hash tag %q, want %q", op.name, cmd.name, key, got, tt.wantTag)
						}
						if got, want := keySlot(key), int(crc16([]byte(tt.wantTag))%16384); got != want {
							t.Errorf("%s: %s key %q is in slot %d, want %d", op.name, cmd.name, key, got, want)
						}
					}
				}
			}
			if tt.wantRecord != "" {
				for _, want := range []string{tt.wantRecord, tt.wantIndex} {
					if !slices.Contains(all, want) {
						t.Errorf("no operation touched %q; keys touched: %q", want, all)
					}
				}
			}
		})
	}

	t.Run("logs", func(t *testing.T) {
		s := redisstore.New(c, base)
		for _, tt := range []struct{ log, wantKey string }{
			{"audit", base + ":{l:audit}"},
			{"a:b{c}", base + ":{l:a%3Ab%7Bc%7D}"},
		} {
			cl.take()
			if err := s.Append(ctx, tt.log, 0, [][]byte{[]byte("e1")}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Head(ctx, tt.log); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Read(ctx, tt.log, 1, 10); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range cl.take() {
				if cmd.name == "multi" || cmd.name == "exec" {
					continue // they name no key
				}
				if diff := cmp.Diff([]string{tt.wantKey}, cmd.keys); diff != "" {
					t.Errorf("log %q: %s keys (-want +got):\n%s", tt.log, cmd.name, diff)
				}
			}
		}
	})
}

func ignore(err, want error) error {
	if errors.Is(err, want) {
		return nil
	}
	return err
}

// TestSlotFunction pins the test's own CRC16 and hash-tag rules to values
// from a real Redis in cluster mode (CLUSTER KEYSLOT), so the slot test
// above cannot pass on a wrong checksum.
func TestSlotFunction(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 0x31C3},
		{"foo", 12182},
		{"somekey", 11058},
		{"foo{hash_tag}", 2515},
		{"bar{hash_tag}", 2515},
		{"{}x", 10595},
		{"a{}{b}", 15033},
		{"a{b}{c}", 3300},
		{"agenthub:{s:T1%3AU1}:r:grant:g1", 12593},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := keySlot(tt.key); got != tt.want {
				t.Fatalf("keySlot(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

// TestRoundTrips checks that each operation costs the round trips the
// package comment promises, once the scripts are cached on the server.
func TestRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.NewClient()
	cl := &commandLog{}
	c.AddHook(cl)
	s := redisstore.New(c, srv.Prefix())
	ctx := context.Background()
	k := store.Key{Scope: "T1:U1", Kind: "request", ID: "r1"}
	tests := []struct {
		name string
		fn   func() error
		want int64
	}{
		{"Put", func() error { return s.Put(ctx, k, []byte("a"), time.Hour) }, 1},
		{"Create", func() error { return ignore(s.Create(ctx, k, []byte("a"), time.Hour), store.ErrExists) }, 1},
		{"Get", func() error { _, err := s.Get(ctx, k); return err }, 1},
		{"CompareAndSwap", func() error {
			return ignore(s.CompareAndSwap(ctx, k, []byte("a"), []byte("a"), store.KeepTTL), store.ErrConflict)
		}, 1},
		{"List", func() error { _, err := s.List(ctx, k.Scope, k.Kind); return err }, 2},
		{"Append", func() error { return ignore(s.Append(ctx, "audit", 0, [][]byte{[]byte("e")}), store.ErrConflict) }, 1},
		{"Head", func() error { _, err := s.Head(ctx, "audit"); return err }, 1},
		{"Read", func() error { _, err := s.Read(ctx, "audit", 1, 10); return err }, 1},
		{"CompareAndDelete", func() error { return ignore(s.CompareAndDelete(ctx, k, []byte("x")), store.ErrConflict) }, 1},
		{"Delete", func() error { return s.Delete(ctx, k) }, 1},
	}
	// The first run of each script may cost an extra EVAL.
	for _, tt := range tests {
		if err := tt.fn(); err != nil {
			t.Fatalf("warm-up %s: %v", tt.name, err)
		}
	}
	if err := s.Put(ctx, k, []byte("a"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cl.trips.Load()
			if err := tt.fn(); err != nil {
				t.Fatal(err)
			}
			if got := cl.trips.Load() - before; got != tt.want {
				t.Fatalf("%s took %d round trips, want %d", tt.name, got, tt.want)
			}
		})
	}
}

// TestAppendLargeBatch appends more values in one call than the script
// pushes per RPUSH, so the chunking has to get every boundary right.
func TestAppendLargeBatch(t *testing.T) {
	s := redistest.Open(t)()
	ctx := context.Background()
	if err := s.Append(ctx, "big", 0, [][]byte{[]byte("first")}); err != nil {
		t.Fatal(err)
	}
	var batch [][]byte
	for i := range 2501 {
		batch = append(batch, fmt.Appendf(nil, "v%d", i+2))
	}
	if err := s.Append(ctx, "big", 1, batch); err != nil {
		t.Fatal(err)
	}
	err := s.Append(ctx, "big", 1, batch)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Append after a stale head: %v, want ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "head is 2502") {
		t.Errorf("conflict error %q does not name the current head 2502", err)
	}
	got, err := s.Read(ctx, "big", 1, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2502 {
		t.Fatalf("Read returned %d entries, want 2502", len(got))
	}
	for i, e := range got {
		want := fmt.Sprintf("v%d", i+1)
		if i == 0 {
			want = "first"
		}
		if e.Seq != uint64(i+1) || string(e.Value) != want {
			t.Fatalf("entry %d = %d %q, want %d %q", i, e.Seq, e.Value, i+1, want)
		}
	}
}

// TestListSkipsVanishedRecord removes a record behind the store's back:
// List must not return it even though its index entry is still there.
func TestListSkipsVanishedRecord(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.NewClient()
	s := redisstore.New(c, srv.Prefix())
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Put(ctx, store.Key{Scope: "T1:U1", Kind: "grant", ID: id}, []byte(id), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Del(ctx, srv.Prefix()+":{s:T1%3AU1}:r:grant:b").Err(); err != nil {
		t.Fatal(err)
	}
	items, err := s.List(ctx, "T1:U1", "grant")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Key.ID)
	}
	if diff := cmp.Diff([]string{"a", "c"}, got); diff != "" {
		t.Fatalf("List IDs (-want +got):\n%s", diff)
	}
}

// TestWritePrunesIndex checks that the index of short-lived records does
// not grow when nobody lists it: a write removes expired members.
func TestWritePrunesIndex(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.NewClient()
	s := redisstore.New(c, srv.Prefix())
	ctx := context.Background()
	index := srv.Prefix() + ":{g:dedupe}:i:dedupe"
	short := store.Key{Kind: "dedupe", ID: "e1"}
	if err := s.Create(ctx, short, []byte("x"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := c.ZCard(ctx, index).Val(); n != 1 {
		t.Fatalf("index holds %d members after one Create, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.Get(ctx, short); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record did not expire")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The expired member is still in the index until a write or List.
	if err := s.Create(ctx, store.Key{Kind: "dedupe", ID: "e2"}, []byte("y"), time.Minute); err != nil {
		t.Fatal(err)
	}
	members, err := c.ZRange(ctx, index, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"e2"}, members); diff != "" {
		t.Fatalf("index members (-want +got):\n%s", diff)
	}
}

func TestBadArguments(t *testing.T) {
	s := redistest.Open(t)()
	ctx := context.Background()
	k := store.Key{Scope: "T1:U1", Kind: "grant", ID: "g1"}
	tests := []struct {
		name string
		fn   func() error
	}{
		{"Put with KeepTTL", func() error { return s.Put(ctx, k, []byte("v"), store.KeepTTL) }},
		{"Put with a negative ttl", func() error { return s.Put(ctx, k, []byte("v"), -2*time.Second) }},
		{"Create with a negative ttl", func() error { return s.Create(ctx, k, []byte("v"), -time.Minute) }},
		{"List of an invalid kind", func() error { _, err := s.List(ctx, "T1:U1", "a{b"); return err }},
		{"Get of an invalid key", func() error { _, err := s.Get(ctx, store.Key{Kind: "grant"}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); err == nil {
				t.Fatal("succeeded, want an error")
			}
		})
	}
	if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the rejected writes, Get = %v, want ErrNotFound", err)
	}
}

func TestSubMillisecondTTLExpires(t *testing.T) {
	s := redistest.Open(t)()
	ctx := context.Background()
	k := store.Key{Kind: "dedupe", ID: "tiny"}
	if err := s.Put(ctx, k, []byte("v"), time.Microsecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a record with a 1µs ttl is still there (%v); it must not live forever", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewDefaultPrefix(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.NewClient()
	cl := &commandLog{record: true}
	c.AddHook(cl)
	s := redisstore.New(c, "")
	ctx := context.Background()
	// Read only: this must not write outside the test prefix on a shared Redis.
	if _, err := s.Get(ctx, store.Key{Scope: "T1:U1", Kind: "grant", ID: "never-written-" + srv.Prefix()}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get = %v, want ErrNotFound", err)
	}
	for _, cmd := range cl.take() {
		for _, key := range cmd.keys {
			if !strings.HasPrefix(key, "agenthub:{s:T1%3AU1}:") {
				t.Errorf("key %q does not use the default prefix", key)
			}
		}
	}
}

package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// TestRedisPrefixComesFromConfig: the commands that open a store without
// the rest of the configuration (here the demo and audit verify) take
// AGENTHUB_REDIS_PREFIX as config parses it: every key they write starts
// with it, what they read is what is under it, and a prefix config refuses
// stops them before they touch Redis.
func TestRedisPrefixComesFromConfig(t *testing.T) {
	rs := redistest.Start(t)
	prefix := rs.Prefix()
	env := map[string]string{"AGENTHUB_REDIS_PREFIX": prefix}
	ctx := context.Background()
	c := rs.NewClient()
	// Counted before and after, as a real test Redis may be shared.
	defaultKeys := func() int {
		keys, err := c.Keys(ctx, redistest.Pattern(config.DefaultRedisPrefix)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	before := defaultKeys()

	r := invoke(t, env, "", "demo", "-store", rs.URL())
	if r.code != 0 {
		t.Fatalf("bot demo -store redis: exit %d, stderr %s", r.code, r.stderr)
	}
	ours, err := c.Keys(ctx, redistest.Pattern(prefix)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) == 0 {
		t.Fatalf("no key in Redis starts with %s: after a demo, want its records there", prefix+":")
	}
	if n := defaultKeys() - before; n > 0 {
		t.Errorf("the demo wrote %d keys under the default prefix %s, want none: AGENTHUB_REDIS_PREFIX was ignored", n, config.DefaultRedisPrefix)
	}

	tests := []struct {
		name     string
		prefix   string
		wantCode int
		want     string
	}{
		{"the demo's prefix", prefix, 0, "OK: "},
		{"another prefix", prefix + "-other", 0, "OK: the audit trail is empty"},
		{"a prefix config refuses", prefix + ":x", 2, "AGENTHUB_REDIS_PREFIX: must not contain braces, colons or spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, map[string]string{"AGENTHUB_REDIS_PREFIX": tt.prefix}, "", "audit", "verify", "-store", rs.URL())
			if r.code != tt.wantCode || !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Fatalf("audit verify with prefix %q: exit %d, stdout %q, stderr %q; want %d and %q", tt.prefix, r.code, r.stdout, r.stderr, tt.wantCode, tt.want)
			}
		})
	}
	if r := invoke(t, map[string]string{"AGENTHUB_REDIS_PREFIX": "a b"}, "", "demo", "-store", rs.URL()); r.code == 0 || !strings.Contains(r.stderr, "AGENTHUB_REDIS_PREFIX") {
		t.Errorf("demo with a prefix config refuses: exit %d, stderr %q; want a failure naming AGENTHUB_REDIS_PREFIX", r.code, r.stderr)
	}
}

// expiredRecord puts a record into st that expires at once, and waits
// until it has.
func expiredRecord(tb testing.TB, st store.Store) {
	tb.Helper()
	k := store.Key{Scope: "T0SWEEP:U0SWEEP", Kind: "sweep-test", ID: "short-lived"}
	if err := st.Put(context.Background(), k, []byte("x"), time.Millisecond); err != nil {
		tb.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
}

// nothingToSweep checks that the bolt file at path holds no expired
// record: someone swept it while it was open.
func nothingToSweep(tb testing.TB, path string) {
	tb.Helper()
	st, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	if n, err := st.Sweep(context.Background()); err != nil || n != 0 {
		tb.Errorf("expired records left in the file = %d (%v), want 0: nothing swept them while it ran", n, err)
	}
}

// sweptLine is the debug line of a sweep that removed something.
const sweptLine = `"msg":"swept expired records"`

func TestBotSweepsExpiredRecords(t *testing.T) {
	srv := slacktest.New(t)
	path := filepath.Join(t.TempDir(), "bot.db")
	bot := startBot(t, srv, e2eEnv(t, srv, "bolt:"+path, ""), hooks{sweepEvery: 20 * time.Millisecond})
	expiredRecord(t, bot.env.st)
	eventually(t, "a sweep of the expired record", func() bool { return strings.Contains(bot.stderr.String(), sweptLine) })
	bot.stop(t) // which also checks that the sweeper ended with the bot
	nothingToSweep(t, path)
}

func TestDemoSweepsExpiredRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.db")
	logs := new(lockedBuffer)
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env, err := hooks{sweepEvery: 20 * time.Millisecond}.startDemo(context.Background(), "bolt:"+path, nil, func(string) string { return "" }, logger)
	if err != nil {
		t.Fatal(err)
	}
	expiredRecord(t, env.st)
	eventually(t, "a sweep of the expired record", func() bool { return strings.Contains(logs.String(), sweptLine) })
	if err := env.close(); err != nil {
		t.Fatal(err)
	}
	nothingToSweep(t, path)
}

// TestRunStoreStopsWithItsContext: the sweeper is one of the bot's
// errgroup's goroutines and returns when its context ends; a store with
// nothing to sweep returns at once.
func TestRunStoreStopsWithItsContext(t *testing.T) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "x.db"), boltstore.Options{SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	tests := []struct {
		name string
		st   store.Store
	}{
		{"embedded", bolt},
		{"memory", memstore.New(memstore.Options{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- runStore(ctx, tt.st) }()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("runStore = %v, want nil once its context ended", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("runStore did not return once its context ended")
			}
		})
	}
}

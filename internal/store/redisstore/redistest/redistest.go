// Package redistest gives tests a Redis to run redisstore against: the
// server named by AGENTHUB_TEST_REDIS when that is set (CI sets it), and
// otherwise an embedded miniredis started for the one test.
//
// Each test gets its own random key prefix. On a real Redis the test's
// cleanup deletes every key under that prefix with SCAN and UNLINK, and
// nothing else: the database may be shared with other tests and other
// packages, so FLUSHDB and FLUSHALL are never used.
//
// The miniredis runs with ClockTTL, so TTLs run down with the wall clock as
// on a real Redis and TIME inside scripts agrees with them (by default
// miniredis only moves TTLs on FastForward, and the conformance suite waits
// for expiry in real time).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore"
)

// EnvURL names the environment variable holding the URL of a real Redis
// for tests, such as redis://127.0.0.1:6379/9.
const EnvURL = "AGENTHUB_TEST_REDIS"

// Server is one test's Redis: a URL and a key prefix no other test uses.
type Server struct {
	tb     testing.TB
	url    string
	prefix string
}

// Start picks the Redis for tb (see the package comment), logs which one,
// and registers the cleanup of tb's keys.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, prefix: "agenthubtest-" + randomHex(tb)}
	if u := strings.TrimSpace(os.Getenv(EnvURL)); u != "" {
		s.url = u
		tb.Logf("store: real Redis at %s (key prefix %s)", store.RedactURL(u), s.prefix)
		tb.Cleanup(s.cleanup)
		return s
	}
	mr := miniredis.RunT(tb)
	mr.ClockTTL(true)
	s.url = "redis://" + mr.Addr()
	tb.Log("store: AGENTHUB_TEST_REDIS not set, using embedded miniredis")
	return s
}

// Open starts a Server for tb and returns a function that opens a new
// client (a new *redisstore.Store) on it at each call, all sharing tb's key
// prefix, as storetest.Opener wants. The stores are closed when tb ends.
func Open(tb testing.TB) func() *redisstore.Store {
	tb.Helper()
	return Start(tb).Open
}

// URL returns the server's URL, for code under test that opens the store
// itself from a URL (it may hold a password: never log it unredacted).
func (s *Server) URL() string { return s.url }

// Prefix returns the test's key prefix.
func (s *Server) Prefix() string { return s.prefix }

// Open opens a new store client on the server under the test's prefix and
// closes it when the test ends. Call it from the test's goroutine: it fails
// the test with Fatal.
func (s *Server) Open() *redisstore.Store {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := redisstore.Open(ctx, redisstore.Options{URL: s.url, Prefix: s.prefix})
	if err != nil {
		s.tb.Fatalf("redistest: %v", err)
	}
	s.tb.Cleanup(func() { st.Close() })
	return st
}

// NewClient returns a new plain go-redis client on the server, closed when
// the test ends, for tests that add hooks or inspect keys; wrap it with
// redisstore.New(c, s.Prefix()).
func (s *Server) NewClient() *redis.Client {
	s.tb.Helper()
	c := s.newClient()
	s.tb.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) newClient() *redis.Client {
	s.tb.Helper()
	opt, err := redis.ParseURL(s.url)
	if err != nil {
		s.tb.Fatalf("redistest: parse %s: invalid URL", store.RedactURL(s.url))
	}
	return redis.NewClient(opt)
}

// cleanup removes every key under the test's prefix, and only those.
func (s *Server) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.newClient()
	defer c.Close()
	if _, err := deleteKeys(ctx, c, s.prefix); err != nil {
		s.tb.Errorf("redistest: deleting the keys under %s: %v", s.prefix, err)
	}
}

// deleteKeys removes every key that starts with prefix+":" with SCAN and
// UNLINK and returns how many it removed.
func deleteKeys(ctx context.Context, c redis.UniversalClient, prefix string) (int, error) {
	var (
		n      int
		cursor uint64
	)
	for {
		keys, next, err := c.Scan(ctx, cursor, Pattern(prefix), 1000).Result()
		if err != nil {
			return n, err
		}
		// One UNLINK per key keeps this valid on Redis Cluster, where one
		// command may not span slots; go-redis pipelines them.
		if len(keys) > 0 {
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			if err != nil {
				return n, err
			}
			n += len(keys)
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

// Pattern is the SCAN MATCH pattern for every key under prefix, with the
// glob characters of the prefix itself escaped.
func Pattern(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + ":*"
}

func randomHex(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("redistest: random prefix: %v", err)
	}
	return hex.EncodeToString(b[:])
}

package stepup

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// t0 is the start of the tests' clock, 10 s into a time step so that the
// previous and the next step are both one step away.
var t0 = time.Date(2026, 3, 2, 9, 0, 10, 0, time.UTC)

// testKey is the sealing key of the tests; newKey replaces it in the
// rotation tests, and strangerKey is neither.
var (
	testKey     = []byte("0123456789abcdef0123456789abcdef")
	newKey      = []byte("fedcba9876543210fedcba9876543210")
	strangerKey = []byte("the-stranger-key-is-32-bytes-lng")
)

func newClock() *clocktest.Clock { return clocktest.New(t0) }

// auditLog is a Recorder that keeps the events in memory, or refuses them
// all while fail is set.
type auditLog struct {
	mu     sync.Mutex
	events []audit.Event
	fail   error
}

func (l *auditLog) Record(_ context.Context, e audit.Event) (audit.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return audit.Event{}, l.fail
	}
	l.events = append(l.events, e)
	return e, nil
}

func (l *auditLog) setFail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

func (l *auditLog) all() []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// last returns the last event, failing the test when there is none.
func (l *auditLog) last(tb testing.TB) audit.Event {
	tb.Helper()
	ev := l.all()
	if len(ev) == 0 {
		tb.Fatal("no audit event recorded")
	}
	return ev[len(ev)-1]
}

// fixture is one service under test with its clock and audit log.
type fixture struct {
	svc   *Service
	clock *clocktest.Clock
	audit *auditLog
	store store.Store
}

// newFixture returns a service on st (a new memstore when nil).
func newFixture(tb testing.TB, st store.Store, demo bool) *fixture {
	tb.Helper()
	f := &fixture{clock: newClock(), audit: &auditLog{}, store: st}
	if f.store == nil {
		f.store = memstore.New(memstore.Options{Now: f.clock.Now})
	}
	f.svc = f.another(tb, f.store, demo)
	return f
}

// another returns a second service on st sharing the fixture's clock and
// audit log, as another process would.
func (f *fixture) another(tb testing.TB, st store.Store, demo bool) *Service {
	tb.Helper()
	svc, err := New(Options{Store: st, Key: testKey, Audit: f.audit, Now: f.clock.Now, Demo: demo})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return svc
}

// enrol enrols and confirms principal and returns the secret. It does so
// five minutes in the past, so that every code valid now is unused.
func (f *fixture) enrol(tb testing.TB, principal string) string {
	tb.Helper()
	ctx := context.Background()
	f.clock.Advance(-5 * time.Minute)
	defer f.clock.Advance(5 * time.Minute)
	enr, err := f.svc.Enroll(ctx, principal, "")
	if err != nil {
		tb.Fatalf("Enroll: %v", err)
	}
	secret := enr.Secret.Reveal()
	if err := f.svc.Confirm(ctx, principal, codeAt(tb, secret, f.clock.Now())); err != nil {
		tb.Fatalf("Confirm: %v", err)
	}
	return secret
}

// keyed returns another service on the fixture's store, clock and audit
// log that seals under key and also opens under old, as a process deployed
// after a key rotation would.
func (f *fixture) keyed(tb testing.TB, key []byte, old ...[]byte) *Service {
	tb.Helper()
	svc, err := New(Options{Store: f.store, Key: key, OldKeys: old, Audit: f.audit, Now: f.clock.Now})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return svc
}

// lockedOut returns the *LockedOut joined to err, failing the test when
// there is none.
func lockedOut(tb testing.TB, err error) *LockedOut {
	tb.Helper()
	var lo *LockedOut
	if !errors.As(err, &lo) {
		tb.Fatalf("error %v carries no *LockedOut", err)
	}
	return lo
}

// codeAt returns the code for secret at time t.
func codeAt(tb testing.TB, secret string, t time.Time) string {
	tb.Helper()
	code, err := totp.GenerateCodeCustom(secret, t, validateOpts)
	if err != nil {
		tb.Fatalf("generating a code: %v", err)
	}
	return code
}

// wrongCode returns a well-formed code that is not valid for secret at t
// within the skew.
func wrongCode(tb testing.TB, secret string, t time.Time) string {
	tb.Helper()
	valid := map[string]bool{}
	for d := -Skew; d <= Skew; d++ {
		valid[codeAt(tb, secret, t.Add(time.Duration(d)*Period))] = true
	}
	for n := 314159; ; n++ {
		if c := strconv.Itoa(n); !valid[c] {
			return c
		}
	}
}

// backend is a store backend the key tests run on. open returns a store
// and a function that opens another handle on the same data, as another
// process would (bolt, a single-process file, returns the same handle).
type backend struct {
	name string
	open func(tb testing.TB, now func() time.Time) (store.Store, func() store.Store)
}

var backends = []backend{
	{"memstore", func(tb testing.TB, now func() time.Time) (store.Store, func() store.Store) {
		st := memstore.New(memstore.Options{Now: now})
		return st, func() store.Store { return st.Reopen() }
	}},
	{"boltstore", func(tb testing.TB, now func() time.Time) (store.Store, func() store.Store) {
		tb.Helper()
		st, err := boltstore.Open(filepath.Join(tb.TempDir(), "agenthub.db"), boltstore.Options{Now: now})
		if err != nil {
			tb.Fatalf("boltstore.Open: %v", err)
		}
		tb.Cleanup(func() { st.Close() })
		return st, func() store.Store { return st }
	}},
	{"redis", func(tb testing.TB, _ func() time.Time) (store.Store, func() store.Store) {
		tb.Helper()
		srv := redistest.Start(tb)
		return srv.Open(), func() store.Store { return srv.Open() }
	}},
}

// forEachBackend runs fn on each backend in a named subtest.
func forEachBackend(t *testing.T, fn func(t *testing.T, f *fixture, another func() *Service)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := newClock()
			st, reopen := b.open(t, c.Now)
			f := newFixture(t, st, false)
			f.clock = c
			f.svc = f.another(t, st, false)
			fn(t, f, func() *Service { return f.another(t, reopen(), false) })
		})
	}
}

// seededRand is a deterministic source of secrets and nonces, so that
// tests scanning output for a secret see the same bytes every run.
func seededRand() *rand.ChaCha8 {
	return rand.NewChaCha8([32]byte{1, 2, 3})
}

var errAuditDown = errors.New("audit store unavailable")

package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// hammer takes leasesPerVault leases from each vault, then makes n
// goroutines, released at once, each send one GET through one of the leases
// (round robin), and returns the errors. Taking the leases first puts all n
// requests onto the expired token together.
func hammer(t *testing.T, n, leasesPerVault int, apiURL string, vaults ...*Vault) []error {
	t.Helper()
	ctx := context.Background()
	var leases []*Lease
	for range leasesPerVault {
		for _, v := range vaults {
			leases = append(leases, mustLease(t, v, alice, "github"))
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			status, err := get(ctx, leases[i%len(leases)], apiURL)
			if err == nil && status != http.StatusOK {
				err = errors.New(http.StatusText(status))
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for _, l := range leases {
		if err := l.Release(ctx); err != nil {
			t.Error(err)
		}
	}
	return errs
}

func TestRefreshSingleFlightInProcess(t *testing.T) {
	f := newFixture(t, "")
	f.tokens.delay = 20 * time.Millisecond // keep the refresh in flight while others pile up
	st := memstore.New(memstore.Options{})
	rec := &fakeRecorder{}
	v := f.vault(t, st, rec, mustKeys(t, testKey('a')))
	initial := f.tokens.initial()
	mustConnect(t, v, alice, "github", initial)

	const n = 1000
	if errs := hammer(t, n, n, f.api.URL+"/user", v); len(errs) > 0 {
		t.Fatalf("%d of %d calls failed, first: %v", len(errs), n, errs[0])
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
	// Every call carried the one new token; none the expired one.
	if diff := cmp.Diff(map[string]int{"ACCESS-2": n}, f.api.seenTokens()); diff != "" {
		t.Errorf("tokens seen by the API (-want +got):\n%s", diff)
	}
	if got := rec.kinds()[audit.TokenRefreshed]; got != 1 {
		t.Errorf("token.refreshed events = %d, want 1", got)
	}
	if got := rec.kinds()[audit.ProviderCalled]; got != n {
		t.Errorf("provider.called events = %d, want %d", got, n)
	}
	if got := rec.kinds()[audit.ProviderRequested]; got != n {
		t.Errorf("provider.requested events = %d, want %d", got, n)
	}
	// The rotated refresh token was stored.
	m, err := v.openMaterial(alice, "github", ptr(storedRecord(t, st, alice, "github")))
	if err != nil {
		t.Fatal(err)
	}
	if m.RefreshToken != "REFRESH-2" || m.AccessToken != "ACCESS-2" {
		t.Error("the stored record does not hold the rotated tokens")
	}
}

func ptr[T any](v T) *T { return &v }

// Two vaults are two processes: each has its own cache and singleflight,
// and only the store lock keeps them to one refresh.
func TestRefreshSingleFlightAcrossProcesses(t *testing.T) {
	f := newFixture(t, "")
	f.tokens.delay = 20 * time.Millisecond
	stA, stB := openRedis(t)
	keys := mustKeys(t, testKey('a'))
	vA := f.vault(t, stA, newRecorder(t, stA, audit.Options{}), keys)
	vB := f.vault(t, stB, newRecorder(t, stB, audit.Options{}), keys)
	mustConnect(t, vA, alice, "github", f.tokens.initial())

	const n = 1000
	if errs := hammer(t, n, 8, f.api.URL+"/user", vA, vB); len(errs) > 0 {
		t.Fatalf("%d of %d calls failed, first: %v", len(errs), n, errs[0])
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
	if diff := cmp.Diff(map[string]int{"ACCESS-2": n}, f.api.seenTokens()); diff != "" {
		t.Errorf("tokens seen by the API (-want +got):\n%s", diff)
	}
	// Both recorders appended to one chain, which still verifies.
	sum, err := audit.VerifyStore(context.Background(), stA, audit.DefaultLog)
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	// connection.created + 16 token.issued + n provider.requested + n
	// provider.called + 1 token.refreshed
	if want := uint64(1 + 16 + 2*n + 1); sum.Count != want {
		t.Errorf("audit events = %d, want %d", sum.Count, want)
	}
}

func TestInvalidGrantExpiresConnection(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	rec := &fakeRecorder{}
	v := f.vault(t, st, rec, mustKeys(t, testKey('a')))
	initial := f.tokens.initial()
	mustConnect(t, v, alice, "github", initial)
	l := mustLease(t, v, alice, "github")
	f.tokens.revoke(initial.RefreshToken) // the person revoked the app at the provider

	if _, err := get(ctx, l, f.api.URL+"/user"); !errors.Is(err, ErrReconnect) {
		t.Fatalf("error = %v, want ErrReconnect", err)
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1 (the re-read found no rotation)", got)
	}
	if f.api.calls.Load() != 0 {
		t.Errorf("API calls = %d, want 0", f.api.calls.Load())
	}
	c, err := v.Connection(ctx, alice, "github")
	if err != nil || c.Status != StatusExpired {
		t.Fatalf("connection = %+v, %v; want status expired", c, err)
	}
	if got := storedRecord(t, st, alice, "github"); len(got.Sealed) != 0 {
		t.Error("an expired connection kept its sealed token")
	}
	if got := rec.kinds()[audit.ConnectionExpired]; got != 1 {
		t.Errorf("connection.expired events = %d, want 1", got)
	}
	if _, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github"}); !errors.Is(err, ErrReconnect) {
		t.Errorf("Lease on an expired connection: error = %v, want ErrReconnect", err)
	}
	// Reconnecting makes it usable again.
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	if _, err := get(ctx, mustLease(t, v, alice, "github"), f.api.URL+"/user"); err != nil {
		t.Errorf("after reconnect: %v", err)
	}
}

// When the provider refuses the refresh token because another process
// rotated it meanwhile, the refresher must pick up the rotation from the
// store instead of expiring the connection.
func TestInvalidGrantPicksUpConcurrentRotation(t *testing.T) {
	tests := []struct {
		name string
		// accessExpired: the other process stored a rotated refresh token
		// with an access token that has already expired.
		accessExpired bool
		wantCalls     int64
	}{
		{"rotated token with fresh access token", false, 1},
		{"rotated refresh token only", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "")
			st := memstore.New(memstore.Options{})
			rec := &fakeRecorder{}
			keys := mustKeys(t, testKey('a'))
			v := f.vault(t, st, rec, keys)
			other := f.vault(t, st, &fakeRecorder{}, keys)
			mustConnect(t, v, alice, "github", f.tokens.initial())

			var once atomic.Bool
			var stored string
			f.tokens.onRefresh = func(w http.ResponseWriter, rt string) bool {
				if !once.CompareAndSwap(false, true) {
					return false
				}
				// Another process refreshed with rt first and stored the
				// result; the provider now refuses rt.
				f.tokens.revoke(rt)
				tok := f.tokens.fresh()
				if tt.accessExpired {
					tok = f.tokens.initial()
				}
				stored = tok.AccessToken
				it, err := st.Get(ctx, connKey(alice, "github"))
				if err != nil {
					t.Error(err)
				}
				if _, err := other.update(ctx, alice, "github", it, func(r *connRecord) error {
					return other.sealMaterial(r, material{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: "Bearer", Expiry: tok.Expiry})
				}); err != nil {
					t.Error(err)
				}
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
				return true
			}

			status, err := get(ctx, mustLease(t, v, alice, "github"), f.api.URL+"/user")
			if err != nil || status != http.StatusOK {
				t.Fatalf("request = %d, %v; want 200", status, err)
			}
			if got := f.tokens.calls.Load(); got != tt.wantCalls {
				t.Errorf("token endpoint calls = %d, want %d", got, tt.wantCalls)
			}
			c, err := v.Connection(ctx, alice, "github")
			if err != nil || c.Status != StatusActive {
				t.Fatalf("connection = %+v, %v; want active", c, err)
			}
			if got := rec.kinds()[audit.ConnectionExpired]; got != 0 {
				t.Errorf("connection.expired events = %d, want 0", got)
			}
			if !tt.accessExpired {
				if got := f.api.seenTokens()[stored]; got != 1 {
					t.Errorf("API saw the token the other process stored %d times, want 1", got)
				}
			}
		})
	}
}

func TestRefreshWaitsForLockHolder(t *testing.T) {
	// A refresh lock held by another process is waited for; when it is
	// released the waiter re-reads the record and uses the token stored
	// meanwhile without calling the endpoint.
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	keys := mustKeys(t, testKey('a'))
	v := f.vault(t, st, &fakeRecorder{}, keys)
	other := f.vault(t, st, &fakeRecorder{}, keys)
	mustConnect(t, v, alice, "github", f.tokens.initial())
	lock, err := store.TryLock(ctx, st, alice, "refresh:github", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l := mustLease(t, v, alice, "github")
	done := make(chan error, 1)
	go func() {
		_, err := get(ctx, l, f.api.URL+"/user")
		done <- err
	}()
	// While v waits for the lock, the holder stores a refreshed token.
	tok := f.tokens.fresh()
	it, err := st.Get(ctx, connKey(alice, "github"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.update(ctx, alice, "github", it, func(r *connRecord) error {
		return other.sealMaterial(r, material{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry})
	}); err != nil {
		t.Fatal(err)
	}
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := f.tokens.calls.Load(); got != 0 {
		t.Errorf("token endpoint calls = %d, want 0", got)
	}
	if got := f.api.seenTokens()[tok.AccessToken]; got != 1 {
		t.Errorf("API saw the stored token %d times, want 1", got)
	}
}

func TestExpiredTokenThatCannotBeRefreshed(t *testing.T) {
	tests := []struct {
		name       string
		noEndpoint bool // the service has no token endpoint
		noRefresh  bool // the connection has no refresh token
		wantStatus Status
	}{
		{"no refresh token", false, true, StatusExpired},
		{"no token endpoint", true, false, StatusActive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "")
			v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
				if tt.noEndpoint {
					o.Services[0].OAuth = nil
				}
			})
			tok := f.tokens.initial()
			if tt.noRefresh {
				tok.RefreshToken = ""
			}
			mustConnect(t, v, alice, "github", tok)
			if _, err := get(ctx, mustLease(t, v, alice, "github"), f.api.URL+"/x"); !errors.Is(err, ErrReconnect) {
				t.Fatalf("error = %v, want ErrReconnect", err)
			}
			if c, _ := v.Connection(ctx, alice, "github"); c.Status != tt.wantStatus {
				t.Errorf("status = %s, want %s", c.Status, tt.wantStatus)
			}
			if f.tokens.calls.Load() != 0 || f.api.calls.Load() != 0 {
				t.Errorf("calls: token endpoint %d, API %d; want none", f.tokens.calls.Load(), f.api.calls.Load())
			}
		})
	}
}

// update re-applies its change to the record a concurrent writer left, so
// neither change is lost.
func TestUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')))
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	it, err := st.Get(ctx, connKey(alice, "github"))
	if err != nil {
		t.Fatal(err)
	}
	used := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	attempts := 0
	got, err := v.update(ctx, alice, "github", it, func(r *connRecord) error {
		attempts++
		if attempts == 1 {
			// Another writer gets in between our read and our write.
			other := *r
			other.LastUsed = used
			b, _ := json.Marshal(other)
			if err := st.Put(ctx, connKey(alice, "github"), b, 0); err != nil {
				t.Fatal(err)
			}
		}
		r.Scopes = append(r.Scopes, "admin:org")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("mutate ran %d times, want 2", attempts)
	}
	stored := storedRecord(t, st, alice, "github")
	if !stored.LastUsed.Equal(used) || len(stored.Scopes) != 3 || len(got.Scopes) != 3 {
		t.Errorf("stored last used %v, scopes %v; want both writers' changes", stored.LastUsed, stored.Scopes)
	}
}

package vault

// Regression tests for the findings of the security review of the vault.
// Each fails on the code before its fix.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// Finding 1: http.Transport sets resp.Request to the request it sent, the
// clone with the Authorization header. Nothing the lease's client returns
// may lead to the token: not resp.Request, not an earlier redirect hop, not
// an error.
func TestClientReturnsNoToken(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		wantHops int // requests the API answers
		wantErr  error
	}{
		{"plain GET", "/x", 1, nil},
		{"redirect on the same host", "/redirect/x", 2, nil},
		// "//127.0.0.2:1/x" is a network-path reference: the redirect
		// leaves the allowed host, and the second hop is refused.
		{"redirect to another host", "/redirect//127.0.0.2:1/x", 1, ErrHostNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "CANARY-")
			v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
			tok := f.tokens.fresh()
			mustConnect(t, v, alice, "github", tok)
			l := mustLease(t, v, alice, "github")

			req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.api.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Agent", "kept")
			resp, err := l.Client().Do(req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %q, want %v", maskCanaries(fmt.Sprint(err)), tt.wantErr)
			}
			if resp != nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status = %d, want 200", resp.StatusCode)
				}
				hops := 0
				for r := resp; r != nil; r = r.Request.Response {
					hops++
					if r.Request == nil {
						t.Fatal("a response has no Request")
					}
					if r.Request.Header.Get("Authorization") != "" {
						t.Errorf("hop %d: the response's Request carries an Authorization header", hops)
					}
					if r.Request.Header.Get("X-Agent") != "kept" {
						t.Errorf("hop %d: the response's Request lost the agent's header", hops)
					}
				}
				if hops != tt.wantHops {
					t.Errorf("hops = %d, want %d", hops, tt.wantHops)
				}
			}
			text := reachableText(resp, err)
			for _, canary := range []string{"CANARY-ACCESS", "CANARY-REFRESH"} {
				if i := strings.Index(text, canary); i >= 0 {
					t.Errorf("what the client returned leads to %s (byte %d of the reachable text)", canary, i)
				}
			}
			// Positive control: the token did go to the API.
			if got := f.api.seenTokens()[tok.AccessToken]; got != tt.wantHops {
				t.Errorf("API saw the token %d times, want %d", got, tt.wantHops)
			}
		})
	}
}

// Finding 2: a warm lease only re-read its own record and used the cached
// token. Every request now also reads the connection, so whatever happens
// to it elsewhere — revoked with the lease deletion failing, replaced,
// expired, gone — stops the lease at once.
func TestLeaseStopsWhenItsConnectionChanges(t *testing.T) {
	tests := []struct {
		name string
		// change acts on the connection from the holder, whose store is
		// hs, or from another process, whose store is os.
		change  func(t *testing.T, holder, other *Vault, hs, os *flakyStore, f *fixture)
		wantErr error
	}{
		{"revoked, lease deletion failed", func(t *testing.T, _, other *Vault, _, os *flakyStore, _ *fixture) {
			os.failLeaseDelete.Store(true)
			if err := other.Revoke(context.Background(), alice, "github"); !errors.Is(err, errFlaky) {
				t.Fatalf("Revoke error = %v, want the lease deletion's failure", err)
			}
			if c, _ := other.Connection(context.Background(), alice, "github"); c.Status != StatusRevoked {
				t.Fatalf("status = %s, want revoked", c.Status)
			}
		}, ErrLeaseRevoked},
		{"revoke could not mark the connection", func(t *testing.T, holder, _ *Vault, hs, _ *flakyStore, _ *fixture) {
			hs.failConnCAS.Store(1 << 30)
			if err := holder.Revoke(context.Background(), alice, "github"); !errors.Is(err, errFlaky) {
				t.Fatalf("Revoke error = %v, want the store's failure", err)
			}
			hs.failConnCAS.Store(0)
			// It still forgot the token and deleted the leases.
			if _, ok := holder.getCache(alice, "github"); ok {
				t.Error("the access token is still cached")
			}
			if leases, _ := hs.List(context.Background(), alice, LeaseKind); len(leases) != 0 {
				t.Errorf("%d leases left, want 0", len(leases))
			}
		}, ErrLeaseRevoked},
		{"connection record gone", func(t *testing.T, _, _ *Vault, _, os *flakyStore, _ *fixture) {
			// As if a Redis without noeviction had evicted it.
			if err := os.Delete(context.Background(), connKey(alice, "github")); err != nil {
				t.Fatal(err)
			}
		}, ErrLeaseRevoked},
		{"reconnected in another process", func(t *testing.T, _, other *Vault, _, _ *flakyStore, f *fixture) {
			mustConnect(t, other, alice, "github", f.tokens.fresh())
		}, ErrLeaseRevoked},
		{"expired in another process", func(t *testing.T, _, other *Vault, _, os *flakyStore, _ *fixture) {
			it, err := os.Get(context.Background(), connKey(alice, "github"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.update(context.Background(), alice, "github", it, func(r *connRecord) error {
				r.Status, r.KeyID, r.Sealed = StatusExpired, "", nil
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, ErrReconnect},
		{"record damaged", func(t *testing.T, _, _ *Vault, _, os *flakyStore, _ *fixture) {
			if err := os.Put(context.Background(), connKey(alice, "github"), []byte("garbage"), 0); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
	}
	backends := []struct {
		name string
		open func(t *testing.T) (holder, other store.Store)
	}{
		{"memory", func(t *testing.T) (store.Store, store.Store) { s := memstore.New(memstore.Options{}); return s, s }},
		{"redis", func(t *testing.T) (store.Store, store.Store) { return openRedis(t) }},
	}
	for _, bk := range backends {
		for _, tt := range tests {
			t.Run(bk.name+"/"+tt.name, func(t *testing.T) {
				runConnectionChange(t, bk.open, tt.change, tt.wantErr)
			})
		}
	}
}

// runConnectionChange warms a lease's token in the holder, lets change act
// on the connection, and checks that the lease's next request fails with
// wantErr and reaches nobody.
func runConnectionChange(t *testing.T, open func(t *testing.T) (store.Store, store.Store),
	change func(t *testing.T, holder, other *Vault, hs, os *flakyStore, f *fixture), wantErr error) {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, "")
	a, b := open(t)
	hs, os := &flakyStore{Store: a}, &flakyStore{Store: b}
	keys := mustKeys(t, testKey('a'))
	holder := f.vault(t, hs, &fakeRecorder{}, keys)
	other := f.vault(t, os, &fakeRecorder{}, keys)
	mustConnect(t, holder, alice, "github", f.tokens.fresh())
	l := mustLease(t, holder, alice, "github")
	if status, err := get(ctx, l, f.api.URL+"/warm"); err != nil || status != http.StatusOK {
		t.Fatalf("warm-up = %d, %v", status, err) // the token is now cached in the holder
	}
	before := f.api.calls.Load()

	change(t, holder, other, hs, os, f)
	if _, err := get(ctx, l, f.api.URL+"/after"); !errors.Is(err, wantErr) {
		t.Fatalf("request after the change: error = %v, want %v", err, wantErr)
	}
	if got := f.api.calls.Load() - before; got != 0 {
		t.Errorf("API calls after the change = %d, want 0", got)
	}
}

// Finding 3: the rotated refresh token was written once, under the
// deadline that also covered the lock wait; one transient store error lost
// it, and the provider had already invalidated the old one.
func TestRotatedTokenSurvivesTransientStoreErrors(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := &flakyStore{Store: memstore.New(memstore.Options{})}
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')))
	mustConnect(t, v, alice, "github", f.tokens.initial()) // ACCESS-1 (expired), REFRESH-1
	l := mustLease(t, v, alice, "github")
	st.failConnCAS.Store(rotatedWriteAttempts - 1)

	if status, err := get(ctx, l, f.api.URL+"/x"); err != nil || status != http.StatusOK {
		t.Fatalf("request = %d, %v; want 200", status, err)
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
	c, err := v.Connection(ctx, alice, "github")
	if err != nil || c.Status != StatusActive {
		t.Fatalf("connection = %+v, %v; want active", c, err)
	}
	m, err := v.openMaterial(alice, "github", ptr(storedRecord(t, st, alice, "github")))
	if err != nil {
		t.Fatal(err)
	}
	if m.RefreshToken != "REFRESH-2" || !f.tokens.refreshValid(m.RefreshToken) {
		t.Error("the store does not hold the rotated refresh token, live at the provider")
	}
}

// When the store stays down, the write gives up after a bounded number of
// attempts, says so at error level without a secret, and returns an error.
func TestRotatedTokenWriteGivesUp(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "CANARY-")
	st := &flakyStore{Store: memstore.New(memstore.Options{})}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, nil))
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) { o.Logger = logger })
	mustConnect(t, v, alice, "github", f.tokens.initial())
	l := mustLease(t, v, alice, "github")
	st.failConnCAS.Store(1 << 30)
	st.connCAS.Store(0)

	_, err := get(ctx, l, f.api.URL+"/x")
	if !errors.Is(err, errFlaky) {
		t.Fatalf("error = %q, want the store's failure", maskCanaries(fmt.Sprint(err)))
	}
	if got := st.connCAS.Load(); got != rotatedWriteAttempts {
		t.Errorf("connection writes = %d, want %d", got, rotatedWriteAttempts)
	}
	if got := f.api.calls.Load(); got != 0 {
		t.Errorf("API calls = %d, want 0: an unstored token is not used", got)
	}
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	if !strings.Contains(text, `"level":"ERROR"`) || !strings.Contains(text, "refreshed token could not be stored") {
		t.Error("no error-level log line says the refreshed token was lost")
	}
	for _, place := range []struct{ name, text string }{{"log", text}, {"error", err.Error()}} {
		for _, canary := range []string{"CANARY-ACCESS", "CANARY-REFRESH"} {
			if i := strings.Index(place.text, canary); i >= 0 {
				t.Errorf("the %s contains %s at byte %d", place.name, canary, i)
			}
		}
	}
}

// deadlineRecorder notes the context deadline of each token endpoint call.
type deadlineRecorder struct {
	base      http.RoundTripper
	mu        sync.Mutex
	deadlines []time.Time
}

func (d *deadlineRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/token") {
		dl, _ := r.Context().Deadline()
		d.mu.Lock()
		d.deadlines = append(d.deadlines, dl)
		d.mu.Unlock()
	}
	return d.base.RoundTrip(r)
}

// The token endpoint's deadline starts once the lock is held: time spent
// waiting for another refresher does not eat into it. This compares
// instants in causal order (the lock is taken after it is released), not
// durations, so a slow machine cannot fail it.
func TestRefreshDeadlineStartsAfterLock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := &flakyStore{Store: memstore.New(memstore.Options{})}
	rt := &deadlineRecorder{base: f.client.Transport}
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		o.HTTPClient = &http.Client{Transport: rt}
	})
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
	// Wait until the vault has found the lock taken, so its refresh began
	// before the release below.
	for deadline := time.Now().Add(30 * time.Second); st.lockCreates.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the vault never tried the lock")
		}
		time.Sleep(time.Millisecond)
	}
	released := time.Now()
	if err := lock.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.deadlines) != 1 || rt.deadlines[0].IsZero() {
		t.Fatalf("token endpoint deadlines = %v, want one", rt.deadlines)
	}
	if earliest := released.Add(providerTimeout); rt.deadlines[0].Before(earliest) {
		t.Errorf("token endpoint deadline is %s before the lock was released plus %s: the lock wait counted against it",
			earliest.Sub(rt.deadlines[0]), providerTimeout)
	}
}

// The work under the refresh lock — the token endpoint call and the
// bounded write of its answer — must end before the lock expires, or a
// second refresher could reuse the refresh token.
func TestRefreshBudgetFitsLockTTL(t *testing.T) {
	backoff, total := rotatedWriteBackoff, providerTimeout
	for range rotatedWriteAttempts {
		total += rotatedWriteTimeout + backoff
		backoff *= 2
	}
	if total >= refreshLockTTL {
		t.Errorf("worst case under the lock = %s, want less than the lock's ttl %s", total, refreshLockTTL)
	}
}

// If the connection is revoked while its refresh is at the provider, the
// tokens the provider issued belong to nobody: they are revoked too.
func TestRefreshRacingRevokeRevokesNewTokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	keys := mustKeys(t, testKey('a'))
	var (
		mu      sync.Mutex
		revoked [][2]string
	)
	hook := func(o *Options) {
		o.Services[0].Revoke = func(_ context.Context, access, refresh secret.Secret) error {
			mu.Lock()
			defer mu.Unlock()
			revoked = append(revoked, [2]string{access.Reveal(), refresh.Reveal()})
			f.tokens.revoke(refresh.Reveal())
			return nil
		}
	}
	v := f.vault(t, st, &fakeRecorder{}, keys, hook)
	other := f.vault(t, st, &fakeRecorder{}, keys, hook)
	mustConnect(t, v, alice, "github", f.tokens.initial())
	l := mustLease(t, v, alice, "github")
	var issued *oauth2.Token
	f.tokens.onRefresh = func(w http.ResponseWriter, rt string) bool {
		tok := f.tokens.fresh()
		mu.Lock()
		issued = tok
		mu.Unlock()
		if err := other.Revoke(ctx, alice, "github"); err != nil {
			t.Error(err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken, "token_type": "bearer", "expires_in": 3600})
		return true
	}
	if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("error = %v, want ErrNotConnected", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(revoked) != 2 || revoked[1] != [2]string{issued.AccessToken, issued.RefreshToken} {
		t.Errorf("hook called %d times; want twice, the second time with the tokens issued during the revocation", len(revoked))
	}
	if f.tokens.refreshValid(issued.RefreshToken) {
		t.Error("the refresh token issued during the revocation is still live at the provider")
	}
	if f.api.calls.Load() != 0 {
		t.Errorf("API calls = %d, want 0", f.api.calls.Load())
	}
}

var canaryRE = regexp.MustCompile(`CANARY-[A-Z]+-[0-9]+`)

// maskCanaries replaces every canary token in s.
func maskCanaries(s string) string { return canaryRE.ReplaceAllString(s, "CANARY-(masked)") }

// statusError is a hook error that reports the provider's HTTP status and
// quotes what it should not.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string   { return fmt.Sprintf("revoke: status %d: %s", e.code, e.body) }
func (e *statusError) StatusCode() int { return e.code }

// Finding 5: the hook's error was wrapped verbatim into Revoke's error. It
// is now described by type or status, never quoted.
func TestRevokeHookErrorIsNeverQuoted(t *testing.T) {
	tests := []struct {
		name     string
		hookErr  func(access, refresh string) error
		wantDesc string
	}{
		{"net/http error quoting a token URL", func(access, refresh string) error {
			_, err := http.Post("http://127.0.0.1:1/revoke?token="+refresh+"&hint="+access, "", nil)
			return err
		}, "provider revocation failed: request failed (*net.OpError)"},
		{"status error quoting the body", func(access, refresh string) error {
			return fmt.Errorf("github: %w", &statusError{code: 503, body: access + " " + refresh})
		}, "provider revocation failed: HTTP status 503"},
		{"oauth2 retrieve error", func(access, refresh string) error {
			return &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, Body: []byte(access + refresh), ErrorDescription: refresh}
		}, "provider revocation failed: HTTP status 400"},
		{"timeout", func(access, refresh string) error {
			return fmt.Errorf("revoking %s and %s: %w", access, refresh, context.DeadlineExceeded)
		}, "provider revocation failed: timed out"},
		{"plain error", func(access, refresh string) error {
			return errors.New("could not revoke " + access + " or " + refresh)
		}, "provider revocation failed: error of type *errors.errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "CANARY-")
			var logs bytes.Buffer
			var logMu sync.Mutex
			logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			rec := &fakeRecorder{}
			v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')), func(o *Options) {
				o.Logger = logger
				o.Services[0].Revoke = func(_ context.Context, access, refresh secret.Secret) error {
					return tt.hookErr(access.Reveal(), refresh.Reveal())
				}
			})
			mustConnect(t, v, alice, "github", f.tokens.fresh())
			err := v.Revoke(ctx, alice, "github")
			// Failure messages show the error with the canaries masked: a
			// test must not print a token even when the code under test
			// leaks it.
			if !errors.Is(err, ErrProviderRevoke) {
				t.Fatalf("Revoke error = %q, want ErrProviderRevoke", maskCanaries(fmt.Sprint(err)))
			}
			if !strings.Contains(err.Error(), tt.wantDesc) {
				t.Errorf("Revoke error = %q, want it to say %q", maskCanaries(err.Error()), tt.wantDesc)
			}
			logMu.Lock()
			logText := logs.String()
			logMu.Unlock()
			var events strings.Builder
			for _, e := range rec.ofKind(audit.ConnectionRevoked) {
				fmt.Fprintf(&events, "%+v\n", e)
			}
			for _, place := range []struct{ name, text string }{
				{"error", fmt.Sprintf("%v %+v %#v", err, err, err)},
				{"error chain", reachableText(err)},
				{"log", logText},
				{"audit", events.String()},
			} {
				for _, canary := range []string{"CANARY-ACCESS", "CANARY-REFRESH"} {
					if i := strings.Index(place.text, canary); i >= 0 {
						t.Errorf("the %s contains %s at byte %d", place.name, canary, i)
					}
				}
			}
		})
	}
}

// Finding 6: the hook was called only with a refresh token, so tokens that
// have none (GitHub's non-expiring tokens, Slack user tokens) were never
// revoked at the provider.
func TestRevokeHookGetsWhateverTokensExist(t *testing.T) {
	tests := []struct {
		name     string
		tok      *oauth2.Token
		wantCall bool
	}{
		{"access token only", &oauth2.Token{AccessToken: "xoxp-access", TokenType: "Bearer"}, true},
		{"refresh token only", &oauth2.Token{RefreshToken: "refresh-only"}, true},
		{"both", &oauth2.Token{AccessToken: "both-access", RefreshToken: "both-refresh", Expiry: time.Now().Add(time.Hour)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "")
			var got [][2]string
			rec := &fakeRecorder{}
			v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')), func(o *Options) {
				o.Services[0].Revoke = func(_ context.Context, access, refresh secret.Secret) error {
					got = append(got, [2]string{access.Reveal(), refresh.Reveal()})
					return nil
				}
			})
			mustConnect(t, v, alice, "github", tt.tok)
			if err := v.Revoke(ctx, alice, "github"); err != nil {
				t.Fatal(err)
			}
			want := [][2]string{{tt.tok.AccessToken, tt.tok.RefreshToken}}
			if len(got) != 1 || got[0] != want[0] {
				t.Errorf("hook calls = %d, want 1 with the connection's access and refresh tokens", len(got))
			}
			if ev := rec.ofKind(audit.ConnectionRevoked); len(ev) != 1 || ev[0].Detail["provider_revoke"] != "ok" {
				t.Errorf("connection.revoked events = %+v, want one with provider_revoke ok", ev)
			}
		})
	}
}

// Finding 7: provider.called was recorded after the request was sent, so
// with the audit store down the provider was called with no record. The
// intent is now on record before anything leaves.
func TestProviderRequestedIsRecordedBeforeSending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	rec := &fakeRecorder{}
	var mu sync.Mutex
	var unannounced []string // paths that arrived without a provider.requested event
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		found := false
		for _, e := range rec.ofKind(audit.ProviderRequested) {
			found = found || e.Detail["path"] == r.URL.Path
		}
		if !found {
			mu.Lock()
			unannounced = append(unannounced, r.URL.Path)
			mu.Unlock()
		}
		f.api.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')), func(o *Options) {
		o.Services[0].APIHosts = []string{front.Listener.Addr().String()}
	})
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	l := mustLease(t, v, alice, "github")
	for _, path := range []string{"/a", "/b"} {
		if status, err := get(ctx, l, front.URL+path); err != nil || status != http.StatusOK {
			t.Fatalf("GET %s = %d, %v", path, status, err)
		}
	}
	if f.api.calls.Load() != 2 {
		t.Fatalf("API calls = %d, want 2", f.api.calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(unannounced) > 0 {
		t.Errorf("requests reached the provider before their provider.requested event: %v", unannounced)
	}
}

// Finding 8b: GitHub reports a dead refresh token as HTTP 200 with
// error=bad_refresh_token, which must expire the connection like
// invalid_grant does.
func TestBadRefreshTokenExpiresConnection(t *testing.T) {
	tests := []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"json body", func(w http.ResponseWriter) {
			writeJSON(w, http.StatusOK, map[string]string{"error": "bad_refresh_token", "error_description": "The refresh token passed is incorrect or expired."})
		}},
		{"form body (GitHub's default)", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, "error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired.")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "")
			rec := &fakeRecorder{}
			v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')))
			mustConnect(t, v, alice, "github", f.tokens.initial())
			f.tokens.onRefresh = func(w http.ResponseWriter, _ string) bool { tt.write(w); return true }
			if _, err := get(ctx, mustLease(t, v, alice, "github"), f.api.URL+"/user"); !errors.Is(err, ErrReconnect) {
				t.Fatalf("error = %v, want ErrReconnect", err)
			}
			if got := f.tokens.calls.Load(); got != 1 {
				t.Errorf("token endpoint calls = %d, want 1", got)
			}
			if c, _ := v.Connection(ctx, alice, "github"); c.Status != StatusExpired {
				t.Errorf("status = %s, want expired", c.Status)
			}
			if got := rec.kinds()[audit.ConnectionExpired]; got != 1 {
				t.Errorf("connection.expired events = %d, want 1", got)
			}
		})
	}
}

// Finding 8a: the vault keeps its own copy of each OAuth configuration, so
// a caller changing its config later (to auto-detection, say) changes
// nothing.
func TestNewCopiesOAuthConfig(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	var opts *Options
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) { opts = o })
	opts.Services[0].OAuth.Endpoint.AuthStyle = oauth2.AuthStyleAutoDetect
	opts.Services[0].OAuth.ClientSecret = "changed"
	mustConnect(t, v, alice, "github", f.tokens.initial())
	if status, err := get(ctx, mustLease(t, v, alice, "github"), f.api.URL+"/user"); err != nil || status != http.StatusOK {
		t.Fatalf("request = %d, %v; want 200", status, err)
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
}

// Finding 9: printing a Service, the Options or the Vault, whichever way,
// never shows a client secret.
func TestPrintingShowsNoClientSecret(t *testing.T) {
	const secret = "CLIENT-SECRET-CANARY"
	f := newFixture(t, "")
	var opts Options
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		for i := range o.Services {
			o.Services[i].OAuth.ClientSecret = secret
		}
		opts = *o
	})
	svc := opts.Services[0]
	values := []struct {
		name string
		v    any
	}{
		{"vault", v},
		{"options", opts},
		{"options pointer", &opts},
		{"service", svc},
		{"service pointer", &svc},
		{"services", opts.Services},
	}
	for _, val := range values {
		t.Run(val.name, func(t *testing.T) {
			var out []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
				out = append(out, fmt.Sprintf(verb, val.v))
			}
			for _, h := range []func(*bytes.Buffer) slog.Handler{
				func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
				func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			} {
				var b bytes.Buffer
				slog.New(h(&b)).Info("printing", "value", val.v)
				out = append(out, b.String())
			}
			all := strings.Join(out, "\n")
			if strings.Contains(all, secret) {
				t.Errorf("a printed form shows the client secret (%d bytes printed)", len(all))
			}
			if !strings.Contains(out[0], "github") {
				t.Errorf("%%v = %q, want it to name the service", out[0])
			}
		})
	}
	if got, want := v.String(), fmt.Sprintf("vault.Vault{services: [\"github\" \"google\"], keys: %s}", v.keys); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// Finding 10: a key rotation could not be finished without listing every
// principal. RekeyAll uses the principal index that Connect keeps.
func TestRekeyAll(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	a, b := testKey('a'), testKey('b')
	vA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, a))
	conns := []struct{ principal, service string }{{alice, "github"}, {alice, "google"}, {bob, "github"}}
	for _, c := range conns {
		mustConnect(t, vA, c.principal, c.service, f.tokens.fresh())
	}
	// A revoked connection holds no token, so there is nothing to reseal.
	mustConnect(t, vA, "T1:U3", "github", f.tokens.fresh())
	if err := vA.Revoke(ctx, "T1:U3", "github"); err != nil {
		t.Fatal(err)
	}

	vBA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, b, a))
	n, err := vBA.RekeyAll(ctx, nil)
	if err != nil || n != len(conns) {
		t.Fatalf("RekeyAll = %d, %v; want %d records resealed", n, err, len(conns))
	}
	if n, err := vBA.RekeyAll(ctx, nil); err != nil || n != 0 {
		t.Errorf("second RekeyAll = %d, %v; want 0", n, err)
	}

	vB := f.vault(t, st, &fakeRecorder{}, mustKeys(t, b))
	for _, c := range conns {
		l, err := vB.Lease(ctx, LeaseRequest{Principal: c.principal, Service: c.service})
		if err != nil {
			t.Fatalf("%s of %s under B alone: %v", c.service, c.principal, err)
		}
		if status, err := get(ctx, l, f.api.URL+"/x"); err != nil || status != http.StatusOK {
			t.Errorf("%s of %s under B alone = %d, %v; want 200", c.service, c.principal, status, err)
		}
	}
	if got := f.tokens.calls.Load(); got != 0 {
		t.Errorf("token endpoint calls = %d, want 0 (the tokens were resealed, not refreshed)", got)
	}
}

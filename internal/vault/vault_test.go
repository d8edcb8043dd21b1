package vault

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func TestNewValidates(t *testing.T) {
	f := newFixture(t, "")
	good := func() Options {
		return Options{Store: memstore.New(memstore.Options{}), Keys: mustKeys(t, testKey('a')), Audit: &fakeRecorder{}, Services: f.services(nil)}
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"ok", func(*Options) {}, ""},
		{"no store", func(o *Options) { o.Store = nil }, "store is required"},
		{"no keys", func(o *Options) { o.Keys = nil }, "keys are required"},
		{"no audit", func(o *Options) { o.Audit = nil }, "audit recorder is required"},
		{"lease too long", func(o *Options) { o.MaxLease = 2 * time.Hour }, "max lease"},
		{"duplicate service", func(o *Options) { o.Services = append(o.Services, o.Services[0]) }, `service "github" is listed twice`},
		{"no hosts", func(o *Options) { o.Services = []Service{{Name: "github"}} }, `service "github" has no API hosts`},
		{"bad name", func(o *Options) { o.Services = []Service{{Name: "", APIHosts: []string{"x"}}} }, "invalid name"},
		{"oauth without auth style", func(o *Options) { o.Services[1].OAuth.Endpoint.AuthStyle = oauth2.AuthStyleAutoDetect },
			`service "google": OAuth endpoint needs an explicit AuthStyle`},
		{"no oauth needs no auth style", func(o *Options) { o.Services[1].OAuth = nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.mod(&o)
			_, err := New(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConnectionMetadata(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) { o.Now = func() time.Time { return *clock.Load() } })

	tok := f.tokens.fresh()
	if err := v.Connect(ctx, alice, "google", []string{"calendar", " calendar", "", "openid"}, tok); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	later := now.Add(5 * time.Minute)
	clock.Store(&later)
	mustLease(t, v, alice, "github")

	got, err := v.Connections(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	want := []Connection{
		{Principal: alice, Service: "github", Scopes: []string{"read:org", "repo"}, Status: StatusActive, Created: now, LastUsed: later.Truncate(time.Minute)},
		{Principal: alice, Service: "google", Scopes: []string{"calendar", "openid"}, Status: StatusActive, Created: now},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Connections (-want +got):\n%s", diff)
	}
	one, err := v.Connection(ctx, alice, "google")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[1], one); diff != "" {
		t.Errorf("Connection (-want +got):\n%s", diff)
	}
	if _, err := v.Connection(ctx, bob, "github"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Connection of a stranger: error = %v, want ErrNotConnected", err)
	}
	if _, err := v.Connection(ctx, alice, "nope"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Connection to an unconnected service: error = %v, want ErrNotConnected", err)
	}

	// Metadata only: no field can carry a token, and the stored record
	// holds the token only sealed.
	for i := range reflect.TypeFor[Connection]().NumField() {
		if name := reflect.TypeFor[Connection]().Field(i).Name; strings.Contains(strings.ToLower(name), "token") {
			t.Errorf("Connection has a token field %s", name)
		}
	}
	raw := string(st.Dump())
	for _, s := range []string{tok.AccessToken, tok.RefreshToken} {
		if strings.Contains(raw, s) {
			t.Error("the store holds a token in the clear")
		}
	}
	rec := storedRecord(t, st, alice, "google")
	if rec.KeyID != v.keys.CurrentKeyID() || len(rec.Sealed) == 0 {
		t.Errorf("stored record: key %q, %d sealed bytes; want the current key and a sealed token", rec.KeyID, len(rec.Sealed))
	}
}

func TestConnectRefusesBadInput(t *testing.T) {
	f := newFixture(t, "")
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
	tests := []struct {
		name      string
		principal string
		service   string
		tok       *oauth2.Token
		wantErr   error
	}{
		{"unknown service", alice, "gitlab", f.tokens.fresh(), ErrUnknownService},
		{"empty principal", "", "github", f.tokens.fresh(), nil},
		{"control character", "T1:\nU1", "github", f.tokens.fresh(), nil},
		{"nil token", alice, "github", nil, nil},
		{"empty token", alice, "github", &oauth2.Token{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Connect(context.Background(), tt.principal, tt.service, []string{"repo"}, tt.tok)
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestLease(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	rec := &fakeRecorder{}
	now := time.Now().UTC()
	v := f.vault(t, st, rec, mustKeys(t, testKey('a')), func(o *Options) {
		o.MaxLease = 30 * time.Minute
		o.Now = func() time.Time { return now }
	})
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	if err := v.Connect(ctx, alice, "google", nil, f.tokens.fresh()); err != nil {
		t.Fatal(err)
	}
	if err := v.Revoke(ctx, alice, "google"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		req     LeaseRequest
		wantErr error
		wantTTL time.Duration
	}{
		{"default ttl", LeaseRequest{Principal: alice, Service: "github", Scopes: []string{"repo"}}, nil, 30 * time.Minute},
		{"capped ttl", LeaseRequest{Principal: alice, Service: "github", TTL: 2 * time.Hour}, nil, 30 * time.Minute},
		{"short ttl", LeaseRequest{Principal: alice, Service: "github", Scopes: []string{"repo", "read:org"}, TTL: time.Minute}, nil, time.Minute},
		{"missing scope", LeaseRequest{Principal: alice, Service: "github", Scopes: []string{"repo", "delete_repo"}}, ErrInsufficientScope, 0},
		{"not connected", LeaseRequest{Principal: bob, Service: "github"}, ErrNotConnected, 0},
		{"revoked", LeaseRequest{Principal: alice, Service: "google"}, ErrNotConnected, 0},
		{"unknown service", LeaseRequest{Principal: alice, Service: "gitlab"}, ErrUnknownService, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := st.List(ctx, tt.req.Principal, LeaseKind)
			l, err := v.Lease(ctx, tt.req)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Lease error = %v, want %v", err, tt.wantErr)
				}
				after, _ := st.List(ctx, tt.req.Principal, LeaseKind)
				if len(after) != len(before) {
					t.Errorf("a refused lease left a record: %d leases, want %d", len(after), len(before))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.ExpiresAt.Sub(now); got != tt.wantTTL {
				t.Errorf("lease lifetime = %s, want %s", got, tt.wantTTL)
			}
			it, err := st.Get(ctx, store.Key{Scope: alice, Kind: LeaseKind, ID: l.ID})
			if err != nil {
				t.Fatalf("lease record: %v", err)
			}
			// The store's clock is the wall clock, which the vault's fixed clock
			// trails by the test's running time.
			if it.ExpiresAt.After(time.Now().Add(tt.wantTTL)) {
				t.Errorf("lease record expires at %v, after the lease (%v)", it.ExpiresAt, l.ExpiresAt)
			}
			issued := rec.ofKind(audit.TokenIssued)
			last := issued[len(issued)-1]
			if last.Detail["lease"] != l.ID || last.Actor != alice || last.Detail["service"] != "github" {
				t.Errorf("token.issued event = %+v, want one for lease %s", last, l.ID)
			}
		})
	}
}

func TestTransportCallsAndAudits(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	rec := &fakeRecorder{}
	v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')))
	tok := f.tokens.fresh()
	mustConnect(t, v, alice, "github", tok)
	l := mustLease(t, v, alice, "github")

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.api.URL+"/repos/acme/payments/pulls/7/merge?token=not-logged", strings.NewReader(`{}`))
	req.Header.Set("X-Custom", "kept")
	resp, err := l.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if got := req.Header.Get("Authorization"); got != "" {
		t.Error("the transport modified the caller's request")
	}
	if got := f.api.seenTokens()[tok.AccessToken]; got != 1 {
		t.Errorf("API saw the connection's token %d times, want 1", got)
	}
	for _, tt := range []struct {
		kind audit.Kind
		want map[string]string
	}{
		{audit.ProviderRequested, map[string]string{"service": "github", "lease": l.ID, "method": "POST", "path": "/repos/acme/payments/pulls/7/merge"}},
		{audit.ProviderCalled, map[string]string{"service": "github", "lease": l.ID, "method": "POST", "path": "/repos/acme/payments/pulls/7/merge", "status": "200"}},
	} {
		events := rec.ofKind(tt.kind)
		if len(events) != 1 {
			t.Fatalf("%d %s events, want 1", len(events), tt.kind)
		}
		if diff := cmp.Diff(tt.want, events[0].Detail); diff != "" {
			t.Errorf("%s detail (-want +got):\n%s", tt.kind, diff)
		}
		if events[0].Resource != "acme/payments" || events[0].RequestID != "req-1" || events[0].Actor != alice {
			t.Errorf("%s event = %+v, want actor, resource and request ID of the lease", tt.kind, events[0])
		}
	}
	if f.tokens.calls.Load() != 0 {
		t.Errorf("token endpoint called %d times for a fresh token, want 0", f.tokens.calls.Load())
	}
}

func TestHostNotAllowed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	var otherCalls atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherCalls.Add(1) }))
	t.Cleanup(other.Close)
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	l := mustLease(t, v, alice, "github")

	otherURL, _ := url.Parse(other.URL)
	apiURL, _ := url.Parse(f.api.URL)
	tests := []struct {
		name string
		url  string
		host string // the Host header, if set
	}{
		{"another server", other.URL + "/steal", ""},
		{"same host, other port", "http://" + apiURL.Hostname() + ":" + otherURL.Port() + "/x", ""},
		{"localhost alias", "http://localhost:" + apiURL.Port() + "/x", ""},
		// Go sends req.Host, not the URL's host, when it is set.
		{"allowed URL, other Host header", f.api.URL + "/x", "attacker.example"},
		{"allowed URL, Host header of another port", f.api.URL + "/x", otherURL.Host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			resp, err := l.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if !errors.Is(err, ErrHostNotAllowed) {
				t.Fatalf("error = %v, want ErrHostNotAllowed", err)
			}
		})
	}
	if otherCalls.Load() != 0 || f.api.calls.Load() != 0 {
		t.Errorf("requests reached servers: other %d, api %d; want none", otherCalls.Load(), f.api.calls.Load())
	}
	if _, err := get(ctx, l, f.api.URL+"/ok"); err != nil {
		t.Errorf("allowed host: %v", err)
	}
}

func TestServiceAllow(t *testing.T) {
	s := &Service{Name: "github", APIHosts: []string{"api.github.com", "uploads.github.com:8443", "127.0.0.1:9999"}}
	tests := []struct {
		url  string
		host string // req.Host, the Host header Go sends when set
		want bool
	}{
		{"https://api.github.com/user", "", true},
		{"https://API.GitHub.com/user", "", true},
		{"https://api.github.com:443/user", "", true},
		{"https://uploads.github.com:8443/x", "", true},
		{"http://127.0.0.1:9999/x", "", true},
		{"http://api.github.com/user", "", false}, // plain http off loopback
		{"https://api.github.com.evil.test/user", "", false},
		{"https://evil.test/api.github.com", "", false},
		{"https://api.github.com:444/user", "", false},
		{"https://uploads.github.com/x", "", false},
		{"https://user@evil.test/", "", false},
		{"ws://api.github.com/", "", false},
		{"http://127.0.0.1:9998/x", "", false},
		{"https://api.github.com/user", "api.github.com", true},
		{"https://api.github.com/user", "API.GitHub.com:443", true},
		{"http://127.0.0.1:9999/x", "127.0.0.1:9999", true},
		{"https://api.github.com/user", "attacker.example", false},
		{"https://api.github.com/user", "uploads.github.com:8443", false}, // allowed, but not the URL's host
		{"https://api.github.com/user", "api.github.com:444", false},
		{"https://api.github.com/user", "api.github.com:80", false},
		{"http://127.0.0.1:9999/x", "localhost:9999", false},
	}
	for _, tt := range tests {
		t.Run(tt.url+" Host "+tt.host, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			err = s.allow(req)
			if got := err == nil; got != tt.want {
				t.Errorf("allow = %v (%v), want %v", got, err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrHostNotAllowed) {
				t.Errorf("error = %v, want ErrHostNotAllowed", err)
			}
		})
	}
}

func TestLeaseExpiry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) { o.Now = func() time.Time { return *clock.Load() } })
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	l, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, l, f.api.URL+"/before"); err != nil {
		t.Fatal(err)
	}
	before := f.api.calls.Load()
	past := l.ExpiresAt.Add(time.Second)
	clock.Store(&past)
	if _, err := get(ctx, l, f.api.URL+"/after"); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("error = %v, want ErrLeaseExpired", err)
	}
	if got := f.api.calls.Load(); got != before {
		t.Errorf("API calls = %d after expiry, want %d", got, before)
	}
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	l := mustLease(t, v, alice, "github")
	if _, err := get(ctx, l, f.api.URL+"/x"); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, ErrLeaseRevoked) {
		t.Fatalf("after Release: error = %v, want ErrLeaseRevoked", err)
	}
	if got := f.api.calls.Load(); got != 1 {
		t.Errorf("API calls = %d, want 1", got)
	}
}

// Fail closed: an event that cannot be stored stops what it describes.
func TestAuditFailureFailsClosed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	rec := &fakeRecorder{}
	v := f.vault(t, st, rec, mustKeys(t, testKey('a')))

	rec.setFail(errAuditDown)
	if err := v.Connect(ctx, alice, "github", []string{"repo"}, f.tokens.fresh()); !errors.Is(err, errAuditDown) {
		t.Fatalf("Connect error = %v, want the audit failure", err)
	}
	if _, err := v.Connection(ctx, alice, "github"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("connection stored although its audit failed: %v", err)
	}

	rec.setFail(nil)
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	rec.setFail(errAuditDown)
	if _, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github"}); !errors.Is(err, errAuditDown) {
		t.Fatalf("Lease error = %v, want the audit failure", err)
	}
	if leases, _ := st.List(ctx, alice, LeaseKind); len(leases) != 0 {
		t.Errorf("%d leases stored although their audit failed", len(leases))
	}

	rec.setFail(nil)
	l := mustLease(t, v, alice, "github")
	rec.setFail(errAuditDown)
	if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, errAuditDown) {
		t.Fatalf("request error = %v, want the audit failure", err)
	}
	if got := f.api.calls.Load(); got != 0 {
		t.Errorf("API calls with the audit trail down = %d, want 0", got)
	}

	// Only the intent fails: nothing is sent.
	rec.setFail(nil)
	rec.setFailKind(audit.ProviderRequested, errAuditDown)
	if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, errAuditDown) {
		t.Fatalf("request error = %v, want the audit failure", err)
	}
	if got := f.api.calls.Load(); got != 0 {
		t.Errorf("API calls without a provider.requested event = %d, want 0", got)
	}
	if got := rec.kinds()[audit.ProviderCalled]; got != 0 {
		t.Errorf("provider.called events = %d, want 0", got)
	}

	// Only the outcome fails: the call was made (and its intent is on
	// record), but the response is withheld.
	rec.setFailKind(audit.ProviderRequested, nil)
	rec.setFailKind(audit.ProviderCalled, errAuditDown)
	if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, errAuditDown) {
		t.Fatalf("request error = %v, want the audit failure", err)
	}
	if got := f.api.calls.Load(); got != 1 {
		t.Errorf("API calls = %d, want 1", got)
	}
	if got := rec.kinds()[audit.ProviderRequested]; got != 1 {
		t.Errorf("provider.requested events = %d, want 1", got)
	}
}

func TestLeaseRacingRevokeNeverSurvives(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')))
	other := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')))
	mustConnect(t, v, alice, "github", f.tokens.fresh())

	// Sixteen goroutines, half on each vault, take leases until they are
	// refused; the revocation starts once 32 leases exist, so it overlaps
	// with leases in flight.
	var (
		mu     sync.Mutex
		leases []*Lease
		wg     sync.WaitGroup
	)
	enough := make(chan struct{})
	var enoughOnce sync.Once
	for i := range 16 {
		wg.Go(func() {
			vv := v
			if i%2 == 1 {
				vv = other
			}
			for {
				l, err := vv.Lease(ctx, LeaseRequest{Principal: alice, Service: "github"})
				if errors.Is(err, ErrNotConnected) || errors.Is(err, ErrLeaseRevoked) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				leases = append(leases, l)
				if len(leases) == 32 {
					enoughOnce.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	<-enough
	if err := v.Revoke(ctx, alice, "github"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, l := range leases {
		if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, ErrLeaseRevoked) {
			t.Fatalf("lease issued around a revocation: request error = %v, want ErrLeaseRevoked", err)
		}
	}
	if got, _ := st.List(ctx, alice, LeaseKind); len(got) != 0 {
		t.Errorf("%d leases left after revocation, want 0", len(got))
	}
	if f.api.calls.Load() != 0 {
		t.Errorf("API calls = %d, want 0", f.api.calls.Load())
	}
	t.Logf("%d leases were issued around the revocation", len(leases))
}

func TestCiphertextMovedFailsToOpen(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	keys := mustKeys(t, testKey('a'))
	v := f.vault(t, st, &fakeRecorder{}, keys)
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	it, err := st.Get(ctx, connKey(alice, "github"))
	if err != nil {
		t.Fatal(err)
	}

	// An attacker with write access to the store copies alice's record to
	// another principal or service, also rewriting the names in the clear.
	relabel := func(principal, service string) []byte {
		var rec map[string]any
		if err := json.Unmarshal(it.Value, &rec); err != nil {
			t.Fatal(err)
		}
		rec["principal"], rec["service"] = principal, service
		b, _ := json.Marshal(rec)
		return b
	}
	tests := []struct {
		name      string
		principal string
		service   string
		value     []byte
	}{
		{"verbatim to another principal", bob, "github", it.Value},
		{"relabelled to another principal", bob, "github", relabel(bob, "github")},
		{"relabelled to another service", alice, "google", relabel(alice, "google")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.Put(ctx, connKey(tt.principal, tt.service), tt.value, 0); err != nil {
				t.Fatal(err)
			}
			fresh := f.vault(t, st, &fakeRecorder{}, keys) // nothing cached
			l, err := fresh.Lease(ctx, LeaseRequest{Principal: tt.principal, Service: tt.service})
			if err == nil {
				_, err = get(ctx, l, f.api.URL+"/x")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("using the moved record: error = %v, want ErrCorrupt", err)
			}
		})
	}
	if f.api.calls.Load() != 0 {
		t.Errorf("API calls = %d, want 0", f.api.calls.Load())
	}
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	a, b, c := testKey('a'), testKey('b'), testKey('c')
	idA, idB := keyID(t, a), keyID(t, b)

	// Under key A: github needs a refresh on first use, google does not.
	vA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, a))
	mustConnect(t, vA, alice, "github", f.tokens.initial())
	mustConnect(t, vA, alice, "google", f.tokens.fresh())

	use := func(t *testing.T, v *Vault, service string) error {
		t.Helper()
		l, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: service})
		if err != nil {
			return err
		}
		status, err := get(ctx, l, f.api.URL+"/x")
		if err == nil && status != http.StatusOK {
			t.Fatalf("status = %d, want 200", status)
		}
		return err
	}
	keyOf := func(service string) string { return storedRecord(t, st, alice, service).KeyID }

	vBA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, b, a))
	for _, service := range []string{"github", "google"} {
		if err := use(t, vBA, service); err != nil {
			t.Fatalf("%s under current B, old A: %v", service, err)
		}
	}
	if got := keyOf("github"); got != idB {
		t.Errorf("after a refresh the github record names key %s, want B (%s)", got, idB)
	}
	if got := keyOf("google"); got != idA {
		t.Errorf("without a token write the google record names key %s, want still A (%s)", got, idA)
	}
	n, err := vBA.Rekey(ctx, alice)
	if err != nil || n != 1 {
		t.Fatalf("Rekey = %d, %v; want 1 record resealed", n, err)
	}
	if got := keyOf("google"); got != idB {
		t.Errorf("after Rekey the google record names key %s, want B (%s)", got, idB)
	}

	vB := f.vault(t, st, &fakeRecorder{}, mustKeys(t, b))
	for _, service := range []string{"github", "google"} {
		if err := use(t, vB, service); err != nil {
			t.Fatalf("%s with A dropped: %v", service, err)
		}
	}

	before := f.api.calls.Load()
	vC := f.vault(t, st, &fakeRecorder{}, mustKeys(t, c))
	err = use(t, vC, "google")
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), idB) {
		t.Fatalf("with only key C: error = %v, want ErrUnknownKey naming key %s", err, idB)
	}
	if got := f.api.calls.Load(); got != before {
		t.Errorf("API calls with the wrong key = %d, want 0", got-before)
	}
}

// A provider that redirects elsewhere must not get the lease's client to
// follow it: each hop passes through the transport's host check.
func TestRedirectToOtherHostRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	var otherCalls atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherCalls.Add(1) }))
	t.Cleanup(other.Close)
	redirector := httptest.NewServer(http.RedirectHandler(other.URL+"/collect", http.StatusFound))
	t.Cleanup(redirector.Close)
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		o.Services[0].APIHosts = []string{redirector.Listener.Addr().String()}
	})
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	l := mustLease(t, v, alice, "github")
	if _, err := get(ctx, l, redirector.URL+"/start"); !errors.Is(err, ErrHostNotAllowed) {
		t.Fatalf("error = %v, want ErrHostNotAllowed", err)
	}
	if otherCalls.Load() != 0 {
		t.Errorf("the redirect target got %d requests, want 0", otherCalls.Load())
	}
}

// A connection names the provider account; a new connection of another
// account revokes the old one's tokens at the provider, one of the same
// account does not (revoking would end the new grant too), and the
// replaced account is said and recorded.
func TestConnectAccountReplaces(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	var revoked []string
	rec := &fakeRecorder{}
	v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')), func(o *Options) {
		for i := range o.Services {
			o.Services[i].Revoke = func(_ context.Context, _, refresh secret.Secret) error {
				revoked = append(revoked, refresh.Reveal())
				return nil
			}
		}
	})
	first := f.tokens.fresh()
	if replaced, err := v.ConnectAccount(ctx, alice, "github", "octocat", "", []string{"repo"}, first); err != nil || replaced != "" {
		t.Fatalf("first ConnectAccount = %q, %v; want \"\", nil", replaced, err)
	}
	if c, err := v.Connection(ctx, alice, "github"); err != nil || c.Account != "octocat" {
		t.Fatalf("Connection = %+v, %v; want account octocat", c, err)
	}
	if replaced, err := v.ConnectAccount(ctx, alice, "github", "octocat", "", []string{"repo"}, f.tokens.fresh()); err != nil || replaced != "octocat" {
		t.Fatalf("same account again = %q, %v; want octocat, nil", replaced, err)
	}
	if len(revoked) != 0 {
		t.Fatalf("reconnecting the same account revoked %d token(s) at the provider, want 0", len(revoked))
	}
	prev := f.tokens.fresh()
	if _, err := v.ConnectAccount(ctx, alice, "github", "octocat", "", []string{"repo"}, prev); err != nil {
		t.Fatal(err)
	}
	replaced, err := v.ConnectAccount(ctx, alice, "github", "hubot", "", []string{"repo"}, f.tokens.fresh())
	if err != nil || replaced != "octocat" {
		t.Fatalf("other account = %q, %v; want octocat, nil", replaced, err)
	}
	if len(revoked) != 1 || revoked[0] != prev.RefreshToken {
		t.Errorf("revoked at the provider: %d token(s), want the replaced connection's refresh token alone", len(revoked))
	}
	created := rec.ofKind(audit.ConnectionCreated)
	last := created[len(created)-1]
	if last.Detail["account"] != "hubot" || last.Detail["replaced_account"] != "octocat" {
		t.Errorf("connection.created detail = %v, want account hubot replacing octocat", last.Detail)
	}
}

// The new connection stands when the provider does not revoke the
// replaced account's tokens, and the error says so.
func TestConnectAccountReplacedRevokeFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		for i := range o.Services {
			o.Services[i].Revoke = func(context.Context, secret.Secret, secret.Secret) error { return errors.New("provider down") }
		}
	})
	if _, err := v.ConnectAccount(ctx, alice, "github", "octocat", "", nil, f.tokens.fresh()); err != nil {
		t.Fatal(err)
	}
	_, err := v.ConnectAccount(ctx, alice, "github", "hubot", "", nil, f.tokens.fresh())
	if !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("error = %v, want ErrProviderRevoke", err)
	}
	if c, err := v.Connection(ctx, alice, "github"); err != nil || c.Account != "hubot" || c.Status != StatusActive {
		t.Errorf("Connection = %+v, %v; want hubot's, active", c, err)
	}
}

// Slack's token types name who a token is for; they are sent as bearer
// tokens all the same.
func TestAuthScheme(t *testing.T) {
	for typ, want := range map[string]string{"": "Bearer", "bearer": "Bearer", "Bearer": "Bearer", "user": "Bearer", "bot": "Bearer", "mac": "MAC"} {
		if got := authScheme(typ); got != want {
			t.Errorf("authScheme(%q) = %q, want %q", typ, got, want)
		}
	}
}

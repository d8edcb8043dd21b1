package vault

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// A provider that refuses an access token before its stated expiry (it
// revoked or expired it early) gets the same request once more, with a
// token refreshed for it; both attempts are on the record.
func TestRefusedTokenIsRenewed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	rec := &fakeRecorder{}
	v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')))
	first := f.tokens.fresh()
	mustConnect(t, v, alice, "github", first)
	l := mustLease(t, v, alice, "github")
	if status, err := get(ctx, l, f.api.URL+"/user"); err != nil || status != http.StatusOK {
		t.Fatalf("first GET = %d, %v; want 200", status, err)
	}
	f.tokens.expireAccess(first.AccessToken)

	if status, err := get(ctx, l, f.api.URL+"/user"); err != nil || status != http.StatusOK {
		t.Fatalf("GET with a refused token = %d, %v; want 200 after the renewal", status, err)
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
	if got := f.api.seenTokens()[first.AccessToken]; got != 2 {
		t.Errorf("requests with the refused token = %d, want 2 (the first GET and the refused one)", got)
	}
	kinds := rec.kinds()
	if kinds[audit.ProviderRequested] != 3 || kinds[audit.ProviderCalled] != 3 || kinds[audit.TokenRefreshed] != 1 {
		t.Errorf("events = %v, want 3 provider.requested, 3 provider.called (200, 401, 200) and 1 token.refreshed", kinds)
	}
	var statuses []string
	for _, e := range rec.ofKind(audit.ProviderCalled) {
		statuses = append(statuses, e.Result)
	}
	if strings.Join(statuses, " ") != "200 401 200" {
		t.Errorf("provider.called results = %v, want 200 401 200", statuses)
	}

	// The new token is used from now on, without another refresh.
	if status, err := get(ctx, l, f.api.URL+"/user"); err != nil || status != http.StatusOK {
		t.Fatalf("GET after the renewal = %d, %v; want 200", status, err)
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls after another GET = %d, want 1", got)
	}
}

// Many requests refused together share one refresh.
func TestRefusedTokenRenewedOnceForMany(t *testing.T) {
	f := newFixture(t, "")
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
	tok := f.tokens.fresh()
	mustConnect(t, v, alice, "github", tok)
	f.tokens.expireAccess(tok.AccessToken)
	if errs := hammer(t, 32, 4, f.api.URL+"/user", v); len(errs) != 0 {
		t.Fatalf("%d of 32 requests failed, first: %v", len(errs), errs[0])
	}
	if got := f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
}

// When the grant is gone too, the provider's 401 stands, nothing is sent
// again, and the connection says it must be made again.
func TestRefusedTokenWhoseGrantIsGone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
	tok := f.tokens.fresh()
	mustConnect(t, v, alice, "github", tok)
	l := mustLease(t, v, alice, "github")
	f.tokens.expireAccess(tok.AccessToken)
	f.tokens.revoke(tok.RefreshToken)

	if status, err := get(ctx, l, f.api.URL+"/user"); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("GET = %d, %v; want the provider's 401", status, err)
	}
	if got := f.api.calls.Load(); got != 1 {
		t.Errorf("API calls = %d, want 1", got)
	}
	c, err := v.Connection(ctx, alice, "github")
	if err != nil || c.Status != StatusExpired {
		t.Errorf("connection = %+v, %v; want expired", c, err)
	}
}

// A request whose body cannot be read twice is not sent twice.
func TestRefusedTokenBodies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   func() io.Reader
		status int
	}{
		{"replayable", func() io.Reader { return strings.NewReader(`{"body":"LGTM"}`) }, http.StatusOK},
		{"read once", func() io.Reader { return io.MultiReader(strings.NewReader(`{"body":"LGTM"}`)) }, http.StatusUnauthorized},
		{"none", func() io.Reader { return http.NoBody }, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "")
			v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
			tok := f.tokens.fresh()
			mustConnect(t, v, alice, "github", tok)
			l := mustLease(t, v, alice, "github")
			f.tokens.expireAccess(tok.AccessToken)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.api.URL+"/repos/acme/payments/issues/1/comments", tt.body())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := l.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusUnauthorized && f.tokens.calls.Load() != 0 {
				t.Errorf("token endpoint calls = %d, want 0: nothing could be sent again", f.tokens.calls.Load())
			}
		})
	}
}

// A 401 is not always about the token: a connection without a refresh
// token keeps working, and a path that refuses every token costs at most
// one refresh per connection per renewEvery.
func TestRefusalsThatRenewingCannotFix(t *testing.T) {
	ctx := context.Background()
	t.Run("no refresh token", func(t *testing.T) {
		f := newFixture(t, "")
		v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
		tok := f.tokens.fresh()
		tok.RefreshToken = ""
		mustConnect(t, v, alice, "github", tok)
		l := mustLease(t, v, alice, "github")
		if status, err := get(ctx, l, f.api.URL+"/forbidden-path"); err != nil || status != http.StatusUnauthorized {
			t.Fatalf("GET = %d, %v; want the provider's 401", status, err)
		}
		if c, err := v.Connection(ctx, alice, "github"); err != nil || c.Status != StatusActive {
			t.Errorf("connection after a 401 = %+v, %v; want it still active", c, err)
		}
		if status, err := get(ctx, l, f.api.URL+"/user"); err != nil || status != http.StatusOK {
			t.Errorf("GET /user after the 401 = %d, %v; want 200", status, err)
		}
	})
	t.Run("every token refused", func(t *testing.T) {
		f := newFixture(t, "")
		rec := &fakeRecorder{}
		v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')))
		mustConnect(t, v, alice, "github", f.tokens.fresh())
		l := mustLease(t, v, alice, "github")
		for range 10 {
			if status, err := get(ctx, l, f.api.URL+"/forbidden-path"); err != nil || status != http.StatusUnauthorized {
				t.Fatalf("GET = %d, %v; want the provider's 401", status, err)
			}
		}
		if got := f.tokens.calls.Load(); got != 1 {
			t.Errorf("token endpoint calls for 10 refused requests = %d, want 1", got)
		}
		if got := f.api.calls.Load(); got != 11 {
			t.Errorf("API calls = %d, want 11 (one retry, after the one renewal)", got)
		}
		retried := 0
		for _, e := range rec.ofKind(audit.ProviderRequested) {
			if e.Detail["attempt"] == "2" {
				retried++
			}
		}
		if retried != 1 {
			t.Errorf("provider.requested events marked attempt 2 = %d, want 1", retried)
		}
	})
}

// The lease ending between the 401 and the retry stops both the retry and
// the refresh.
func TestRefusedTokenAfterTheLeaseEnded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')))
	tok := f.tokens.fresh()
	mustConnect(t, v, alice, "github", tok)
	l := mustLease(t, v, alice, "github")
	f.tokens.expireAccess(tok.AccessToken)
	f.api.onCall = func(*http.Request) {
		if err := l.Release(ctx); err != nil {
			t.Error(err)
		}
	}
	if _, err := get(ctx, l, f.api.URL+"/user"); !errors.Is(err, ErrLeaseRevoked) {
		t.Errorf("error = %v, want ErrLeaseRevoked", err)
	}
	if got := f.tokens.calls.Load(); got != 0 {
		t.Errorf("token endpoint calls = %d, want 0", got)
	}
	if got := f.api.calls.Load(); got != 1 {
		t.Errorf("API calls = %d, want 1", got)
	}
}

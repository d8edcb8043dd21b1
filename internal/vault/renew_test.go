package vault

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// connected is a vault on a memstore with alice connected to github
// through tok (a fresh token from the fixture) and a lease on it.
type connected struct {
	f   *fixture
	v   *Vault
	rec *fakeRecorder
	tok *oauth2.Token
	l   *Lease
}

// newConnected sets up a connected; adjust, if set, changes the token
// before it is connected.
func newConnected(t *testing.T, adjust func(*oauth2.Token)) connected {
	t.Helper()
	f := newFixture(t, "")
	rec := &fakeRecorder{}
	v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')))
	tok := f.tokens.fresh()
	if adjust != nil {
		adjust(tok)
	}
	mustConnect(t, v, alice, "github", tok)
	return connected{f: f, v: v, rec: rec, tok: tok, l: mustLease(t, v, alice, "github")}
}

// get GETs path through the lease and fails the test unless the answer
// has status want.
func (c connected) get(t *testing.T, path string, want int) {
	t.Helper()
	if status, err := get(context.Background(), c.l, c.f.api.URL+path); err != nil || status != want {
		t.Fatalf("GET %s = %d, %v; want %d", path, status, err, want)
	}
}

// A provider that refuses an access token before its stated expiry (it
// revoked or expired it early) gets the same request once more, with a
// token refreshed for it; both attempts are on the record.
func TestRefusedTokenIsRenewed(t *testing.T) {
	c := newConnected(t, nil)
	c.get(t, "/user", http.StatusOK)
	c.f.tokens.expireAccess(c.tok.AccessToken)

	c.get(t, "/user", http.StatusOK)
	if got := c.f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
	if got := c.f.api.seenTokens()[c.tok.AccessToken]; got != 2 {
		t.Errorf("requests with the refused token = %d, want 2 (the first GET and the refused one)", got)
	}
	kinds := c.rec.kinds()
	if kinds[audit.ProviderRequested] != 3 || kinds[audit.ProviderCalled] != 3 || kinds[audit.TokenRefreshed] != 1 {
		t.Errorf("events = %v, want 3 provider.requested, 3 provider.called (200, 401, 200) and 1 token.refreshed", kinds)
	}
	var statuses []string
	for _, e := range c.rec.ofKind(audit.ProviderCalled) {
		statuses = append(statuses, e.Result+"/"+e.Detail["attempt"])
	}
	if got := strings.Join(statuses, " "); got != "200/ 401/ 200/2" {
		t.Errorf("provider.called result/attempt = %s, want 200/ 401/ 200/2", got)
	}

	// The new token is used from now on, without another refresh.
	c.get(t, "/user", http.StatusOK)
	if got := c.f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls after another GET = %d, want 1", got)
	}
}

// Many requests refused together share one refresh.
func TestRefusedTokenRenewedOnceForMany(t *testing.T) {
	c := newConnected(t, nil)
	c.f.tokens.expireAccess(c.tok.AccessToken)
	if errs := hammer(t, 32, 4, c.f.api.URL+"/user", c.v); len(errs) != 0 {
		t.Fatalf("%d of 32 requests failed, first: %v", len(errs), errs[0])
	}
	if got := c.f.tokens.calls.Load(); got != 1 {
		t.Errorf("token endpoint calls = %d, want 1", got)
	}
}

// When the grant is gone too, the provider's 401 stands, nothing is sent
// again, and the connection says it must be made again.
func TestRefusedTokenWhoseGrantIsGone(t *testing.T) {
	c := newConnected(t, nil)
	c.f.tokens.expireAccess(c.tok.AccessToken)
	c.f.tokens.revoke(c.tok.RefreshToken)

	c.get(t, "/user", http.StatusUnauthorized)
	if got := c.f.api.calls.Load(); got != 1 {
		t.Errorf("API calls = %d, want 1", got)
	}
	conn, err := c.v.Connection(context.Background(), alice, "github")
	if err != nil || conn.Status != StatusExpired {
		t.Errorf("connection = %+v, %v; want expired", conn, err)
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
			c := newConnected(t, nil)
			c.f.tokens.expireAccess(c.tok.AccessToken)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, c.f.api.URL+"/repos/acme/payments/issues/1/comments", tt.body())
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.l.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusUnauthorized && c.f.tokens.calls.Load() != 0 {
				t.Errorf("token endpoint calls = %d, want 0: nothing could be sent again", c.f.tokens.calls.Load())
			}
		})
	}
}

// A 401 is not always about the token: a connection without a refresh
// token keeps working, and a path that refuses every token costs at most
// one refresh per connection per renewEvery.
func TestRefusalsThatRenewingCannotFix(t *testing.T) {
	t.Run("no refresh token", func(t *testing.T) {
		c := newConnected(t, func(tok *oauth2.Token) { tok.RefreshToken = "" })
		c.get(t, "/forbidden-path", http.StatusUnauthorized)
		if conn, err := c.v.Connection(context.Background(), alice, "github"); err != nil || conn.Status != StatusActive {
			t.Errorf("connection after a 401 = %+v, %v; want it still active", conn, err)
		}
		c.get(t, "/user", http.StatusOK)
	})
	t.Run("every token refused", func(t *testing.T) {
		c := newConnected(t, nil)
		for range 10 {
			c.get(t, "/forbidden-path", http.StatusUnauthorized)
		}
		if got := c.f.tokens.calls.Load(); got != 1 {
			t.Errorf("token endpoint calls for 10 refused requests = %d, want 1", got)
		}
		if got := c.f.api.calls.Load(); got != 11 {
			t.Errorf("API calls = %d, want 11 (one retry, after the one renewal)", got)
		}
	})
}

// The lease ending between the 401 and the retry stops both the retry and
// the refresh.
func TestRefusedTokenAfterTheLeaseEnded(t *testing.T) {
	ctx := context.Background()
	c := newConnected(t, nil)
	c.f.tokens.expireAccess(c.tok.AccessToken)
	c.f.api.onCall = func(*http.Request) {
		if err := c.l.Release(ctx); err != nil {
			t.Error(err)
		}
	}
	if _, err := get(ctx, c.l, c.f.api.URL+"/user"); !errors.Is(err, ErrLeaseRevoked) {
		t.Errorf("error = %v, want ErrLeaseRevoked", err)
	}
	if got := c.f.tokens.calls.Load(); got != 0 {
		t.Errorf("token endpoint calls = %d, want 0", got)
	}
	if got := c.f.api.calls.Load(); got != 1 {
		t.Errorf("API calls = %d, want 1", got)
	}
}

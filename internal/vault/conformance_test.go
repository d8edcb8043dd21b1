package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// backend is one way the vault holds a connection: its own sealed
// provider tokens refreshed at the provider (local), or the person's
// Auth0 refresh token exchanged at Token Vault for the provider's access
// token (auth0). The conformance suite runs the same promises on each.
type backend struct {
	name string
	// service is "github" as the backend serves it, calling api; via,
	// the service its connections are made through, if any.
	service func(api *apiServer) Service
	via     *Service
	valid   func(access string) bool
	// connect stores alice's connection as the connect flow would.
	connect func(t *testing.T, v *Vault)
	// cutOff ends the grant behind the connection (revoked at the
	// provider, or the account disconnected at Auth0): the next renewal
	// is refused.
	cutOff func()
	// refuseAll makes the provider refuse every access token issued so
	// far, before its expiry.
	refuseAll func()
	// renewals counts the calls that got a new access token.
	renewals func() int
}

// backends are fresh fakes of each backend, in the order local, auth0.
func backends(t *testing.T) []backend {
	local := func() backend {
		ts := newTokenServer(t, "CANARY-")
		var refresh string
		return backend{
			name: "local",
			service: func(api *apiServer) Service {
				return Service{Name: "github", APIHosts: []string{api.host()}, OAuth: ts.oauthConfig()}
			},
			valid: ts.accessValid,
			connect: func(t *testing.T, v *Vault) {
				tok := ts.initial()
				refresh = tok.RefreshToken
				mustConnect(t, v, alice, "github", tok)
			},
			cutOff: func() { ts.revoke(refresh); ts.mu.Lock(); clear(ts.valid); ts.mu.Unlock() },
			refuseAll: func() {
				ts.mu.Lock()
				defer ts.mu.Unlock()
				for k := range ts.acc {
					ts.acc[k] = time.Now().Add(-time.Second)
				}
			},
			renewals: func() int { return int(ts.calls.Load()) },
		}
	}
	viaAuth0 := func() backend {
		tenant := auth0test.New(t)
		client, err := auth0.New(auth0.Options{Domain: "acme.eu.auth0.com", BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
			ClientSecret: secret.New(auth0test.ClientSecret)})
		if err != nil {
			t.Fatal(err)
		}
		return backend{
			name: "auth0",
			service: func(api *apiServer) Service {
				return Service{Name: "github", APIHosts: []string{api.host()}, Via: "auth0",
					Renew: func(ctx context.Context, rt secret.Secret) (*oauth2.Token, error) {
						return client.Exchange(ctx, rt, "github", "")
					}}
			},
			via:   &Service{Name: "auth0", APIHosts: []string{client.MyAccountHost()}, Renew: client.MyAccountToken},
			valid: tenant.Valid,
			connect: func(t *testing.T, v *Vault) {
				tenant.Connect("auth0|alice", "github", "alice-gh", "repo read:org")
				mustConnect(t, v, alice, "auth0", &oauth2.Token{RefreshToken: tenant.SignIn("auth0|alice")})
				if _, err := v.ConnectVia(context.Background(), alice, "github", "auth0", "", "", []string{"repo", "read:org"}); err != nil {
					t.Fatal(err)
				}
			},
			cutOff:    func() { tenant.Disconnect("auth0|alice", "github") },
			refuseAll: tenant.ExpireAll,
			renewals: func() int {
				n := 0
				for _, x := range tenant.Exchanges() {
					if x.Status == "ok" {
						n++
					}
				}
				return n
			},
		}
	}
	return []backend{local(), viaAuth0()}
}

// conformant is one backend's vault, with what the suite watches.
type conformant struct {
	backend
	v   *Vault
	api *apiServer
	rec *fakeRecorder
	log *bytes.Buffer
}

func (b backend) start(t *testing.T) *conformant {
	t.Helper()
	c := &conformant{backend: b, rec: &fakeRecorder{}, log: &bytes.Buffer{}}
	c.api = newAPIServerWith(t, b.valid)
	services := []Service{b.service(c.api)}
	if b.via != nil {
		services = append(services, *b.via)
	}
	v, err := New(Options{Store: memstore.New(memstore.Options{}), Keys: mustKeys(t, testKey('a')), Audit: c.rec,
		Services: services, HTTPClient: testHTTPClient(t),
		Logger: slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	c.v = v
	b.connect(t, v)
	return c
}

// TestBackendsConform: agents cannot tell the backends apart. Each gives
// a lease's requests a live token the agent never sees, renews it once
// for everyone when it has expired, marks the connection expired when the
// grant behind it is gone, stops every lease at a revocation, records the
// same audit events, and never shows a token.
func TestBackendsConform(t *testing.T) {
	for i, name := range []string{"local", "auth0"} {
		t.Run(name, func(t *testing.T) {
			t.Run("a lease's requests carry a live token the agent never sees", func(t *testing.T) {
				c := backends(t)[i].start(t)
				l := mustLease(t, c.v, alice, "github")
				req, _ := http.NewRequest(http.MethodGet, c.api.URL+"/user", nil)
				resp, err := l.Client().Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /user: %v %v", resp, err)
				}
				resp.Body.Close()
				if resp.Request.Header.Get("Authorization") != "" || req.Header.Get("Authorization") != "" {
					t.Error("the agent's request, or the one on the response, carries the token")
				}
				kinds := c.rec.kinds()
				for _, k := range []audit.Kind{audit.TokenIssued, audit.ProviderRequested, audit.ProviderCalled, audit.TokenRefreshed} {
					if kinds[k] != 1 {
						t.Errorf("%s recorded %d times, want 1 (%v)", k, kinds[k], kinds)
					}
				}
				c.noSecrets(t)
			})
			t.Run("a token is renewed once for every lease", func(t *testing.T) {
				c := backends(t)[i].start(t)
				// The connection's token has expired (or there is none
				// yet): 50 requests at once get one new one.
				if errs := hammer(t, 50, 10, c.api.URL+"/user", c.v); len(errs) > 0 {
					t.Fatalf("%d calls failed, first: %v", len(errs), errs[0])
				}
				if got := c.renewals(); got != 1 {
					t.Errorf("renewals for an expired token = %d, want 1", got)
				}
				// The provider refuses it before its expiry: one more.
				c.refuseAll()
				if errs := hammer(t, 50, 10, c.api.URL+"/user", c.v); len(errs) > 0 {
					t.Fatalf("after the refusal %d calls failed, first: %v", len(errs), errs[0])
				}
				if got := c.renewals(); got != 2 {
					t.Errorf("renewals = %d, want 2 (then once after the provider refused the token)", got)
				}
				if got := len(c.rec.ofKind(audit.TokenRefreshed)); got != 2 {
					t.Errorf("token.refreshed = %d, want 2", got)
				}
				c.noSecrets(t)
			})
			t.Run("a grant gone behind the connection expires it", func(t *testing.T) {
				c := backends(t)[i].start(t)
				c.cutOff()
				l := mustLease(t, c.v, alice, "github")
				_, err := get(context.Background(), l, c.api.URL+"/user")
				if !errors.Is(err, ErrReconnect) {
					t.Fatalf("GET after the grant ended: %v, want ErrReconnect", err)
				}
				conn, err := c.v.Connection(context.Background(), alice, "github")
				if err != nil || conn.Status != StatusExpired {
					t.Errorf("connection = %+v, %v; want expired", conn, err)
				}
				if got := len(c.rec.ofKind(audit.ConnectionExpired)); got != 1 {
					t.Errorf("connection.expired = %d, want 1", got)
				}
				if c.api.calls.Load() != 0 {
					t.Errorf("the API was called %d times without a token", c.api.calls.Load())
				}
				c.noSecrets(t)
			})
			t.Run("a revocation stops every lease", func(t *testing.T) {
				c := backends(t)[i].start(t)
				l := mustLease(t, c.v, alice, "github")
				if status, err := get(context.Background(), l, c.api.URL+"/user"); err != nil || status != http.StatusOK {
					t.Fatalf("GET: %d %v", status, err)
				}
				if err := c.v.Revoke(context.Background(), alice, "github"); err != nil {
					t.Fatal(err)
				}
				before := c.api.calls.Load()
				if _, err := get(context.Background(), l, c.api.URL+"/user"); !errors.Is(err, ErrLeaseRevoked) && !errors.Is(err, ErrNotConnected) {
					t.Errorf("GET after revoke: %v, want the lease refused", err)
				}
				if c.api.calls.Load() != before {
					t.Error("a request reached the API after the revocation")
				}
			})
		})
	}
}

// noSecrets fails if a token appears in the audit events or the log.
func (c *conformant) noSecrets(t *testing.T) {
	t.Helper()
	c.rec.mu.Lock()
	events := fmt.Sprintf("%+v", c.rec.events)
	c.rec.mu.Unlock()
	if strings.Contains(events, "CANARY") {
		t.Error("a token is in the audit events")
	}
	if strings.Contains(c.log.String(), "CANARY") {
		t.Error("a token is in the log")
	}
}

package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// TestConnectThroughAuth0: with the Auth0 backend, a person's connection
// to GitHub is made through the My Account API's connected accounts,
// called with a lease on their Auth0 connection (whose token only the
// vault sees): connect, the browser's consent, complete with PKCE. The
// GitHub connection then holds their Auth0 refresh token, never leaves
// the vault, and its leases get GitHub tokens from Token Vault.
func TestConnectThroughAuth0(t *testing.T) {
	tenant := auth0test.New(t)
	client, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New(auth0test.ClientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	api := newAPIServerWith(t, tenant.Valid)
	rec := &fakeRecorder{}
	v, err := New(Options{Store: memstore.New(memstore.Options{}), Keys: mustKeys(t, testKey('a')), Audit: rec, HTTPClient: testHTTPClient(t),
		Services: []Service{
			{Name: "auth0", APIHosts: []string{client.MyAccountHost()}, Renew: client.MyAccountToken},
			{Name: "github", APIHosts: []string{api.host()}, Via: "auth0", Renew: func(ctx context.Context, rt secret.Secret) (*oauth2.Token, error) {
				return client.Exchange(ctx, rt, "github", "")
			}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The person signed in at Auth0 (offline_access): their refresh token
	// is their "auth0" connection.
	if err := v.Connect(ctx, alice, "auth0", auth0.MyAccountScopes, &oauth2.Token{RefreshToken: tenant.SignIn("auth0|alice")}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ConnectVia(ctx, alice, "auth0", "auth0", "", "", nil); err == nil {
		t.Error("a connection via itself was made")
	}
	l, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "auth0", Scopes: []string{"create:me:connected_accounts"}, Resource: "github", RequestID: "connect-1"})
	if err != nil {
		t.Fatal(err)
	}
	verifier := oauth2.GenerateVerifier()
	sum := sha256.Sum256([]byte(verifier))
	const redirect = "https://agenthub.example.com/connect/callback/github"
	ticket, err := client.StartConnect(ctx, l.Client(), auth0.ConnectRequest{Connection: "github", RedirectURI: redirect, State: "state-1",
		Challenge: base64.RawURLEncoding.EncodeToString(sum[:]), Scopes: []string{"repo"}})
	if err != nil {
		t.Fatal(err)
	}
	// The person's browser: the tenant's page, then back to AgentHub.
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(ticket.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(back.String(), redirect) || back.Query().Get("state") != "state-1" {
		t.Fatalf("the browser came back to %q", resp.Header.Get("Location"))
	}
	if _, err := client.CompleteConnect(ctx, l.Client(), ticket.Session, back.Query().Get("connect_code"), redirect, "wrong-verifier-"+verifier); err == nil {
		t.Fatal("complete took a wrong PKCE verifier")
	}
	acct, err := client.CompleteConnect(ctx, l.Client(), ticket.Session, back.Query().Get("connect_code"), redirect, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Connection != "github" || tenant.Connected("auth0|alice")["github"] != acct.ID {
		t.Fatalf("connected account = %+v", acct)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ConnectVia(ctx, alice, "github", "auth0", "", acct.ID, acct.Scopes); err != nil {
		t.Fatal(err)
	}
	gl := mustLease(t, v, alice, "github")
	if status, err := get(ctx, gl, api.URL+"/user"); err != nil || status != http.StatusOK {
		t.Fatalf("GET through the GitHub lease: %d %v", status, err)
	}
	// Disconnected at Auth0 (deleted through the My Account API): the
	// connection expires, and the person is asked to connect again.
	dl, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "auth0", Scopes: []string{"delete:me:connected_accounts"}, Resource: "github", RequestID: "revoke-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.DeleteConnected(ctx, dl.Client(), acct.ID); err != nil {
		t.Fatal(err)
	}
	if err := client.DeleteConnected(ctx, dl.Client(), acct.ID); err != nil {
		t.Errorf("deleting it again: %v, want already gone to count as deleted", err)
	}
	tenant.ExpireAll()
	if status, err := get(ctx, gl, api.URL+"/user"); err == nil && status == http.StatusOK {
		t.Fatal("a GitHub call went on after the account was disconnected at Auth0")
	}
	if c, _ := v.Connection(ctx, alice, "github"); c.Status != StatusExpired {
		t.Errorf("github connection = %s, want expired", c.Status)
	}
	// Every My Account call was a lease's: on the record, with no token.
	if got := len(rec.ofKind(audit.ProviderRequested)); got < 4 {
		t.Errorf("provider.requested = %d, want each My Account and GitHub call", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.events {
		if strings.Contains(e.Resource+e.Result+e.RequestID, "CANARY") {
			t.Errorf("a token in the trail: %+v", e)
		}
		for _, d := range e.Detail {
			if strings.Contains(d, "CANARY") {
				t.Errorf("a token in the trail: %+v", e)
			}
		}
	}
}

// Revoking a Token Vault connection deletes its connected account at
// Auth0 (revoking locally first), and leaves the person's Auth0 refresh
// token, which their other connections hold, alive. A tenant that does
// not answer leaves the deletion queued, and a retry makes it.
func TestRevokeThroughAuth0(t *testing.T) {
	tenant := auth0test.New(t)
	client, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New(auth0test.ClientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	api := newAPIServerWith(t, tenant.Valid)
	rec := &fakeRecorder{}
	tvService := func(name, connection string) Service {
		return Service{Name: name, APIHosts: []string{api.host()}, Via: "auth0",
			Renew: func(ctx context.Context, rt secret.Secret) (*oauth2.Token, error) {
				return client.Exchange(ctx, rt, connection, "")
			},
			RevokeAccount: client.DisconnectAccount}
	}
	clock := clocktest.New(time.Now())
	v, err := New(Options{Store: memstore.New(memstore.Options{}), Keys: mustKeys(t, testKey('a')), Audit: rec, HTTPClient: testHTTPClient(t),
		Services: []Service{{Name: "auth0", APIHosts: []string{client.MyAccountHost()}, Renew: client.MyAccountToken},
			tvService("github", "github"), tvService("google", "google-oauth2")}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := v.Connect(ctx, alice, "auth0", auth0.MyAccountScopes, &oauth2.Token{RefreshToken: tenant.SignIn("auth0|alice")}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for svc, conn := range map[string]string{"github": "github", "google": "google-oauth2"} {
		ids[svc] = connectAtTenant(t, tenant, client, "auth0|alice", conn)
		if _, err := v.ConnectVia(ctx, alice, svc, "auth0", "", ids[svc], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Revoke(ctx, alice, "github"); err != nil {
		t.Fatal(err)
	}
	if got := tenant.Connected("auth0|alice"); got["github"] != "" || got["google-oauth2"] != ids["google"] {
		t.Errorf("connected accounts after revoking github = %v, want google's alone", got)
	}
	gl := mustLeaseOf(t, v, "google")
	if status, err := get(ctx, gl, api.URL+"/calendar"); err != nil || status != http.StatusOK {
		t.Errorf("google after revoking github: %d %v (the shared Auth0 refresh token must live)", status, err)
	}
	// The tenant does not answer: the deletion waits in the queue.
	down := tenant.Config.Handler
	tenant.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	if err := v.Revoke(ctx, alice, "google"); err == nil || !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("revoke while Auth0 is down: %v, want it queued", err)
	}
	if c, _ := v.Connection(ctx, alice, "google"); c.Status != StatusRevoked {
		t.Errorf("google = %s, want revoked locally at once", c.Status)
	}
	tenant.Config.Handler = down
	clock.Advance(2 * time.Minute)
	if _, err := v.RetryRevocations(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tenant.Connected("auth0|alice"); len(got) != 0 {
		t.Errorf("connected accounts after the retry = %v, want none", got)
	}
}

// connectAtTenant connects user's account on connection through the My
// Account API, as the connect flow does, and returns its ID.
func connectAtTenant(t *testing.T, tenant *auth0test.Tenant, client *auth0.Client, user, connection string) string {
	t.Helper()
	ctx := context.Background()
	tok, err := client.MyAccountToken(ctx, secret.New(tenant.SignIn(user)))
	if err != nil {
		t.Fatal(err)
	}
	bearer := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))
	verifier := oauth2.GenerateVerifier()
	const redirect = "https://agenthub.example.com/connect/callback/x"
	ticket, err := client.StartConnect(ctx, bearer, auth0.ConnectRequest{Connection: connection, RedirectURI: redirect, State: "st",
		Challenge: oauth2.S256ChallengeFromVerifier(verifier)})
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(ticket.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	acct, err := client.CompleteConnect(ctx, bearer, ticket.Session, back.Query().Get("connect_code"), redirect, verifier)
	if err != nil {
		t.Fatal(err)
	}
	return acct.ID
}

func mustLeaseOf(t *testing.T, v *Vault, service string) *Lease {
	t.Helper()
	l, err := v.Lease(context.Background(), LeaseRequest{Principal: alice, Service: service, Resource: "r", RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

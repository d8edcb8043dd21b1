package vault

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// A deployment switched to AGENTHUB_VAULT=auth0 keeps the connections it
// made with the providers' own tokens. Revoking one (or the panic button)
// revokes it here and sends nothing of its token to the Auth0 tenant; it
// says that the provider was not asked.
func TestConnectionsMadeBeforeTokenVaultStayOutOfIt(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	tenant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.URL.Path+"?"+string(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
	}))
	t.Cleanup(tenant.Close)
	client, err := auth0.New(auth0.Options{Domain: "acme.eu.auth0.com", BaseURL: tenant.URL + "/", ClientID: "cid", ClientSecret: secret.New("csecret")})
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(memstore.Options{})
	keys := mustKeys(t, testKey('a'))
	ctx := context.Background()
	// Before the switch: the local vault's GitHub connection.
	local, err := New(Options{Store: st, Keys: keys, Audit: &fakeRecorder{}, HTTPClient: testHTTPClient(t),
		Services: []Service{{Name: "github", APIHosts: []string{"api.github.com"},
			OAuth: &oauth2.Config{ClientID: "gh", Endpoint: oauth2.Endpoint{TokenURL: "https://github.com/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.ConnectAccount(ctx, alice, "github", "octocat", "583231", []string{"repo"},
		&oauth2.Token{AccessToken: "gho_LOCAL_ACCESS", RefreshToken: "ghr_LOCAL_REFRESH"}); err != nil {
		t.Fatal(err)
	}
	// After: the same store, github through Token Vault.
	v, err := New(Options{Store: st, Keys: keys, Audit: &fakeRecorder{}, HTTPClient: testHTTPClient(t),
		Services: []Service{{Name: "github", APIHosts: []string{"api.github.com"}, Via: "auth0",
			Renew: func(ctx context.Context, rt secret.Secret) (*oauth2.Token, error) {
				return client.Exchange(ctx, rt, "github", "")
			},
			RevokeAccount: client.DisconnectAccount}, {Name: "auth0", APIHosts: []string{"acme.eu.auth0.com"}, Renew: client.MyAccountToken}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = v.Revoke(ctx, alice, "github")
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if strings.Contains(s, "ghr_LOCAL_REFRESH") || strings.Contains(s, "gho_LOCAL_ACCESS") {
			t.Fatalf("a GitHub token was sent to the Auth0 tenant: %s", s)
		}
	}
}

// A Token Vault connection expired when Auth0 refused the person's
// refresh token. Once they sign in again, revoking it (or everything)
// still deletes its connected account at Auth0, through their current
// Auth0 connection.
func TestRevokingAnExpiredTokenVaultConnectionDeletesItsAccount(t *testing.T) {
	tenant := auth0test.New(t)
	client, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New(auth0test.ClientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	api := newAPIServerWith(t, tenant.Valid)
	v, err := New(Options{Store: memstore.New(memstore.Options{}), Keys: mustKeys(t, testKey('a')), Audit: &fakeRecorder{}, HTTPClient: testHTTPClient(t),
		Services: []Service{
			{Name: "auth0", APIHosts: []string{client.MyAccountHost()}, Renew: client.MyAccountToken},
			{Name: "github", APIHosts: []string{api.host()}, Via: "auth0", Renew: func(ctx context.Context, rt secret.Secret) (*oauth2.Token, error) {
				return client.Exchange(ctx, rt, "github", "")
			}, RevokeAccount: client.DisconnectAccount},
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt1 := tenant.SignIn("auth0|alice")
	if err := v.Connect(ctx, alice, "auth0", auth0.MyAccountScopes, &oauth2.Token{RefreshToken: rt1}); err != nil {
		t.Fatal(err)
	}
	id := connectAtTenant(t, tenant, client, "auth0|alice", "github")
	if _, err := v.ConnectVia(ctx, alice, "github", "auth0", "", id, []string{"repo"}); err != nil {
		t.Fatal(err)
	}
	// The Auth0 refresh token the connection holds dies at the tenant.
	tenant.RevokeRefresh(rt1)
	if status, err := get(ctx, mustLeaseOf(t, v, "github"), api.URL+"/user"); err == nil && status == http.StatusOK {
		t.Fatal("a call went through with a revoked Auth0 refresh token")
	}
	if c, _ := v.Connection(ctx, alice, "github"); c.Status != StatusExpired {
		t.Fatalf("github = %s, want expired", c.Status)
	}
	// She signs in again (Keep), and revokes GitHub — or everything.
	if err := v.Connect(ctx, alice, "auth0", auth0.MyAccountScopes, &oauth2.Token{RefreshToken: tenant.SignIn("auth0|alice")}); err != nil {
		t.Fatal(err)
	}
	_ = v.RevokeAll(ctx, alice)
	if got := tenant.Connected("auth0|alice")["github"]; got != "" {
		t.Errorf("after revoking, the GitHub connected account %s still lives at Auth0 (with GitHub's refresh token)", got)
	}
}

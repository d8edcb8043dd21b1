package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/vault"
)

type reviewRecorder struct{}

func (reviewRecorder) Record(_ context.Context, e audit.Event) (audit.Event, error) { return e, nil }

// REVIEW: the local Slack provider refuses a connection whose Slack user
// is not the link's (provider.slackUser's exchange: "the account connected
// must be the Slack user the link was for, in the same workspace, or
// nothing is connected"; connect.ErrWrongAccount). Under
// AGENTHUB_VAULT=auth0, connectThrough replaces that Exchange with the My
// Account API's complete and checks nothing about who the Slack account
// is: Alice, signed in as herself at Auth0, can consent at Slack with
// Bob's Slack session (a stolen cookie, a shared machine) and Bob's Slack
// user token becomes Alice's "slack" connection — her agents then post as
// Bob while the trail says Alice.
func TestReviewTokenVaultSlackConnectsAnotherSlackUser(t *testing.T) {
	ctx := context.Background()
	tenant := auth0test.New(t)
	// Slack's Web API: every user token Token Vault hands out is Bob's.
	slackAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		bob := map[string]any{"ok": true, "user_id": "UBOB", "team_id": "T0001", "user": "bob", "team": "acme",
			"sub": "UBOB", "https://slack.com/user_id": "UBOB", "https://slack.com/team_id": "T0001",
			"user_obj": map[string]any{"id": "UBOB"}}
		if strings.HasSuffix(r.URL.Path, "users.identity") {
			bob = map[string]any{"ok": true, "user": map[string]any{"id": "UBOB", "name": "bob"}, "team": map[string]any{"id": "T0001"}}
		}
		_ = json.NewEncoder(w).Encode(bob)
	}))
	t.Cleanup(slackAPI.Close)

	cfg := &config.Config{SlackAPIURL: slackAPI.URL + "/api/", Auth0: config.Auth0{Domain: auth0test.Domain, URL: tenant.BaseURL(),
		Client:      config.OAuthClient{ID: auth0test.ClientID, Secret: secret.New(auth0test.ClientSecret)},
		Connections: map[string]string{"slack": "sign-in-with-slack"}}}
	provs, err := tokenVaultProviders(cfg, &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.NewKeyring([]byte(strings.Repeat("k", 32)), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(vault.Options{Store: memstore.New(memstore.Options{}), Keys: keys, Audit: reviewRecorder{},
		Services: provs.stack.Services, HTTPClient: provs.stack.Client})
	if err != nil {
		t.Fatal(err)
	}
	alice := broker.Principal{Team: "T0001", User: "UALICE"}
	// Alice signed in at the tenant as herself: Keep stored her Auth0
	// refresh token as her "auth0" connection.
	if err := keepAuth0(v)(ctx, alice, secret.New(tenant.SignIn("auth0|alice"))); err != nil {
		t.Fatal(err)
	}
	prov := provs.tokenVault.connectThrough(v, "slack", provs.oauth["slack"])

	const redirect = "https://agenthub.example.com/connect/callback/slack"
	verifier := oauth2.GenerateVerifier()
	ticket, err := prov.Authorize(ctx, connect.Authorization{Principal: alice, RedirectURI: redirect, State: "state-review-1",
		Challenge: oauth2.S256ChallengeFromVerifier(verifier), Scopes: prov.Config.Scopes})
	if err != nil {
		t.Fatal(err)
	}
	// The browser (logged in at Slack as Bob) consents at the tenant.
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(ticket.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	conf := *prov.Config
	conf.RedirectURL = redirect
	g, err := prov.Exchange(ctx, connect.Exchange{Config: &conf, Code: back.Query().Get("connect_code"), Verifier: verifier,
		Principal: alice, Session: ticket.Session, Client: http.DefaultClient})
	if !errors.Is(err, connect.ErrWrongAccount) {
		t.Fatalf("Token Vault connected Slack user UBOB as Alice's (UALICE) Slack connection: grant %+v, err %v; "+
			"want connect.ErrWrongAccount as the local Slack provider gives", g, err)
	}
}

// REVIEW: the sign-in's refresh token is issued to OIDC_CLIENT_ID, while
// Token Vault's exchange and the My Account token are asked with
// AUTH0_CLIENT_ID/SECRET. Auth0 binds a refresh token to the application
// it was issued to, so two different applications make every renewal
// invalid_grant, which expires every connection (Reconnect loops). The
// configuration accepts them differing (and the end-to-end test runs
// that way, masked by a fake tenant that does not bind tokens to a
// client).
func TestReviewAuth0ConfigAcceptsAnotherClientThanTheSignIns(t *testing.T) {
	vars := map[string]string{
		"SLACK_APP_TOKEN": e2eAppToken, "SLACK_BOT_TOKEN": e2eBotToken,
		"AGENTHUB_VAULT": "auth0", "AUTH0_DOMAIN": "acme.eu.auth0.com", "AUTH0_CLIENT_ID": "agenthub-app", "AUTH0_CLIENT_SECRET": "s1",
		"OIDC_ISSUER": "https://acme.eu.auth0.com/", "OIDC_CLIENT_ID": "another-app", "OIDC_CLIENT_SECRET": "s2",
		"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443",
		"AGENTHUB_VAULT_KEY": strings.Repeat("A", 43) + "=", "AGENTHUB_AUDIT_KEY": strings.Repeat("B", 43) + "=",
	}
	_, err := config.Load(func(k string) string { return vars[k] }, func(string) ([]byte, error) { return nil, errors.New("no file") }, 0)
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("AUTH0_CLIENT_ID %q with OIDC_CLIENT_ID %q accepted (err %v): the sign-in's refresh token cannot be used by another application",
			vars["AUTH0_CLIENT_ID"], vars["OIDC_CLIENT_ID"], err)
	}
}

var _ = auth0.MyAccountScopes

package main

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/secret"
)

// The local Slack provider refuses a connection whose Slack user is not
// the link's. Through Token Vault that check cannot be made yet (the My
// Account API's complete names no Slack user), so Slack is never served
// through it, whatever AUTH0_CONNECTIONS says: Alice cannot end up with
// Bob's Slack token because her browser was logged in at Slack as Bob.
func TestTokenVaultServesNoSlack(t *testing.T) {
	tenant := auth0test.New(t)
	cfg := &config.Config{SlackAPIURL: "https://slack.com/api/", Auth0: config.Auth0{Domain: auth0test.Domain, URL: tenant.BaseURL(),
		Client:      config.OAuthClient{ID: auth0test.ClientID, Secret: secret.New(auth0test.ClientSecret)},
		Connections: map[string]string{"slack": "sign-in-with-slack", "github": "github"}}}
	provs, err := tokenVaultProviders(cfg, &http.Client{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := provs.oauth["slack"]; ok || slices.Contains(provs.names, "slack") {
		t.Errorf("Slack is served through Token Vault: %v", provs.names)
	}
	for _, s := range provs.stack.Services {
		if s.Name == "slack" {
			t.Error("the vault has a Token Vault Slack service")
		}
	}
}

// The sign-in's refresh token is issued to OIDC_CLIENT_ID, and Auth0
// binds it to that application: Token Vault's exchange must be asked by
// the same one, or every renewal fails and expires connections. The
// configuration refuses two applications.
func TestAuth0ConfigWantsTheSignInsApplication(t *testing.T) {
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
		t.Fatalf("AUTH0_CLIENT_ID %q with OIDC_CLIENT_ID %q accepted (err %v)",
			vars["AUTH0_CLIENT_ID"], vars["OIDC_CLIENT_ID"], err)
	}
}

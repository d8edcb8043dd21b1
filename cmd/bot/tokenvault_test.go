package main

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/connect/connecttest"
	"github.com/agenthub/agenthub/internal/identity/oidctest"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// TestSlackBotOnAuth0TokenVault: with AGENTHUB_VAULT=auth0 the bot holds
// no provider's OAuth client. Alice links her identity at the tenant (an
// OpenID Provider on loopback, serving the fake tenant's Token Vault and
// My Account endpoints under the same issuer), which leaves her Auth0
// refresh token in the vault; /agenthub connect github goes through the
// My Account API's connected accounts, after a fresh sign-in; /agenthub
// revoke github deletes the connected account at Auth0. No token or
// secret shows in the log or in Slack, and App Home does not list her
// Auth0 connection.
func TestSlackBotOnAuth0TokenVault(t *testing.T) {
	srv := slacktest.New(t)
	op := oidctest.StartFor(t, auth0test.ClientID, auth0test.ClientSecret) // one application signs in and exchanges
	tenant := auth0test.New(t)
	op.Also(tenant.Server.Config.Handler, "/oauth/token", "/me/v1/", "/connect")
	tenant.PublicURL = op.Issuer()
	anna := oidctest.Person{Subject: "idp|anna", Email: "anna@example.com", AMR: []string{"pwd", "mfa"}}
	tenant.Subject = func(rt string) (string, bool) { return anna.Subject, slices.Contains(op.Issued(), rt) }

	vars := e2eEnv(t, srv, "bolt:"+filepath.Join(t.TempDir(), "bot.db"), "")
	delete(vars, "AGENTHUB_DEMO")
	public := freeAddr(t)
	vars["AGENTHUB_PUBLIC_URL"], vars["AGENTHUB_PUBLIC_ADDR"] = "http://"+public, public
	vars["OIDC_ISSUER"], vars["OIDC_CLIENT_ID"], vars["OIDC_CLIENT_SECRET"] = op.Issuer(), op.ClientID, op.ClientSecret
	vars["AGENTHUB_VAULT"], vars["AUTH0_DOMAIN"], vars["AUTH0_URL"] = "auth0", auth0test.Domain, op.Issuer()+"/"
	vars["AUTH0_CLIENT_ID"], vars["AUTH0_CLIENT_SECRET"], vars["AUTH0_CONNECTIONS"] = auth0test.ClientID, auth0test.ClientSecret, "github=github"
	srv.SetUser(slacktest.User{ID: alice, Email: anna.Email})
	bot := startBot(t, srv, vars, hooks{})
	dm := srv.DMChannel(alice)
	open := func(answer string) connecttest.Response {
		t.Helper()
		link := connectLink.FindStringSubmatch(answer)
		if link == nil {
			t.Fatalf("no link in %q", answer)
		}
		op.SignInAs(anna)
		return connecttest.New(t, "http://"+public).Open(link[1])
	}

	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "link"}))
	if r := open(responseWith(t, srv, "Sign in to link your identity")); r.Status != http.StatusOK || !strings.Contains(r.Body, "Your identity is linked") {
		t.Fatalf("linking: %d %q", r.Status, r.Body)
	}
	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "connect github"}))
	r := open(responseWith(t, srv, "Connect github"))
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "GitHub is connected") {
		t.Fatalf("connecting github through Token Vault: %d %q", r.Status, r.Body)
	}
	id := tenant.Connected(anna.Subject)["github"]
	if id == "" {
		t.Fatal("no connected account at Auth0")
	}
	eventually(t, "the DM saying github is connected", func() bool { _, ok := messageWith(srv, dm, "Connected github"); return ok })

	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "revoke github"}))
	responseWith(t, srv, "Revoked github")
	eventually(t, "the connected account deleted at Auth0", func() bool { return tenant.Connected(anna.Subject)["github"] == "" })

	push(t, srv, srv.AppHomeOpened(alice))
	eventually(t, "App Home", func() bool { return len(srv.Published(alice)) > 0 })
	home := srv.Published(alice)
	if last := string(home[len(home)-1].JSON); strings.Contains(last, "auth0") || !strings.Contains(last, "github") {
		t.Errorf("App Home lists the Auth0 connection, or not github: %s", last)
	}
	seen := seenBy(bot, srv, dm)
	for _, s := range append(op.Issued(), auth0test.ClientSecret, "CANARY-ma-", "CANARY-a0rt-", "CANARY-github-") {
		if strings.Contains(seen, s) {
			t.Fatal("a token or a secret is in the log or in Slack")
		}
	}
}

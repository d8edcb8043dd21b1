package auth0_test

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

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/secret"
)

func newClient(t *testing.T, tenant *auth0test.Tenant, log *bytes.Buffer) *auth0.Client {
	t.Helper()
	c, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New(auth0test.ClientSecret), Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reconnects reports whether err asks the person to connect again, as
// the vault reads it.
func reconnects(err error) bool {
	var r interface{ Reconnect() bool }
	return errors.As(err, &r) && r.Reconnect()
}

// The exchange carries every parameter Token Vault needs, and gets the
// provider's access token, its lifetime and scope.
func TestExchange(t *testing.T) {
	tenant := auth0test.New(t)
	rt := tenant.SignIn("auth0|alice")
	tenant.Connect("auth0|alice", "github", "alice-gh", "repo read:org")
	var log bytes.Buffer
	c := newClient(t, tenant, &log)
	tok, err := c.Exchange(context.Background(), secret.New(rt), "github", "")
	if err != nil {
		t.Fatal(err)
	}
	if !tenant.Valid(tok.AccessToken) || tok.RefreshToken != "" || tok.TokenType != "Bearer" || tok.Extra("scope") != "repo read:org" {
		t.Errorf("token: valid %v, refresh %v, type %q, scope %v", tenant.Valid(tok.AccessToken), tok.RefreshToken != "", tok.TokenType, tok.Extra("scope"))
	}
	if left := time.Until(tok.Expiry); left < 59*time.Minute || left > time.Hour {
		t.Errorf("expires in %v, want the tenant's hour", left)
	}
	if _, err := c.Exchange(context.Background(), secret.New(rt), "github", "alice-gh"); err != nil {
		t.Errorf("with the account's login_hint: %v", err)
	}
	if x := tenant.Exchanges(); len(x) != 2 || x[0].Status != "ok" || x[1].LoginHint != "alice-gh" {
		t.Errorf("exchanges = %+v", x)
	}
}

// Refusals say what the person, or the operator, must do; no error or log
// line quotes a token, a secret or what Auth0 said of them.
func TestExchangeRefusals(t *testing.T) {
	tenant := auth0test.New(t)
	rt := tenant.SignIn("auth0|alice")
	tenant.Connect("auth0|alice", "github", "alice-gh", "repo")
	tenant.Connect("auth0|alice", "google-oauth2", "alice@example.com", "calendar")
	var log bytes.Buffer
	c := newClient(t, tenant, &log)
	ctx := context.Background()
	var all []error

	_, err := c.Exchange(ctx, secret.New(rt), "sign-in-with-slack", "")
	if !errors.Is(err, auth0.ErrNotConnected) || !reconnects(err) {
		t.Errorf("an account not connected: %v, want ErrNotConnected, reconnect", err)
	}
	all = append(all, err)
	_, err = c.Exchange(ctx, secret.New(rt), "github", "someone-else")
	if !errors.Is(err, auth0.ErrNotConnected) {
		t.Errorf("another account's login_hint: %v, want ErrNotConnected", err)
	}
	all = append(all, err)

	tenant.Forbid("google-oauth2")
	for range 3 {
		_, err = c.Exchange(ctx, secret.New(rt), "google-oauth2", "")
		if !errors.Is(err, auth0.ErrTenant) || reconnects(err) {
			t.Errorf("a tenant not set up: %v, want ErrTenant, no reconnect", err)
		}
		all = append(all, err)
	}
	if n := strings.Count(log.String(), "needs fixing"); n != 1 {
		t.Errorf("the set-up was explained %d times, want once:\n%s", n, log.String())
	}

	tenant.RevokeRefresh(rt)
	_, err = c.Exchange(ctx, secret.New(rt), "github", "")
	if !errors.Is(err, auth0.ErrSubjectRefused) || !reconnects(err) {
		t.Errorf("an expired refresh token: %v, want ErrSubjectRefused, reconnect", err)
	}
	all = append(all, err)

	bad, err := auth0.New(auth0.Options{Domain: "acme.eu.auth0.com", BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New("wrong"), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Exchange(ctx, secret.New(tenant.SignIn("auth0|alice")), "github", "")
	if !errors.Is(err, auth0.ErrTenant) {
		t.Errorf("a wrong client secret: %v, want ErrTenant", err)
	}
	all = append(all, err)

	for _, e := range all {
		text := fmt.Sprintf("%v %+v %#v", e, e, e)
		if strings.Contains(text, "CANARY") || strings.Contains(text, "quoted") {
			t.Errorf("an error quotes a secret or Auth0's description: %s", text)
		}
	}
	if strings.Contains(log.String(), "CANARY") || strings.Contains(log.String(), "quoted") {
		t.Errorf("the log quotes a secret or Auth0's description:\n%s", log.String())
	}
}

// A tenant that fails (5xx) is a fault, not a reason to reconnect; a
// plain-http URL off loopback is refused.
func TestExchangeFaultsAndURLs(t *testing.T) {
	down := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	tenant := auth0test.New(t)
	tenant.Config.Handler = down
	c := newClient(t, tenant, &bytes.Buffer{})
	_, err := c.Exchange(context.Background(), secret.New("rt"), "github", "")
	var x *auth0.ExchangeError
	if !errors.As(err, &x) || x.Status != http.StatusServiceUnavailable || reconnects(err) {
		t.Errorf("a tenant that is down: %v", err)
	}
	if _, err := auth0.New(auth0.Options{Domain: "d", BaseURL: "http://auth0.example.com/", ClientID: "c", ClientSecret: secret.New("s")}); err == nil {
		t.Error("plain http off loopback was taken")
	}
	if _, err := auth0.New(auth0.Options{Domain: "d", ClientID: "c"}); err == nil {
		t.Error("a client without its secret was taken")
	}
}

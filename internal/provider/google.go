package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"google.golang.org/api/calendar/v3"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/secret"
)

// google is a Google OAuth client of type "Web application": offline
// access (a refresh token), consent asked each time (Google gives a
// refresh token only on consent), and include_granted_scopes, so that a
// later, wider connection adds to what was granted instead of replacing
// it. "openid email" names the account. Scopes are asked incrementally:
// the first connection asks the calendar agent's read scopes alone;
// calendar.events, which its writes need, is asked when a write needs it.
func google(s Settings, ep *agent.Endpoints) (Service, error) {
	var urls [4]string
	var calendarHost string
	for i, u := range []struct{ raw, def, name string }{
		{s.GoogleAuthURL, googleAuth, "consent"}, {s.GoogleTokenURL, googleToken, "token"},
		{s.GoogleRevokeURL, googleRevoke, "revocation"}, {s.GoogleCalendarURL, googleCalendar, "Calendar API"},
	} {
		b, host, err := base(u.raw, u.def)
		if err != nil {
			return Service{}, fmt.Errorf("%s URL: %w", u.name, err)
		}
		urls[i], calendarHost = b, host // the last is the Calendar API's
	}
	ep.Calendar = urls[3]
	g := &googleClient{http: s.HTTPClient, revokeURL: strings.TrimSuffix(urls[2], "/")}
	conf := &oauth2.Config{
		ClientID: s.Google.ID, ClientSecret: s.Google.Secret.Reveal(),
		Scopes: []string{calendaragent.ScopeRead, calendaragent.ScopeFreeBusy, "openid", "email"},
		Endpoint: oauth2.Endpoint{AuthURL: strings.TrimSuffix(urls[0], "/"), TokenURL: strings.TrimSuffix(urls[1], "/"),
			AuthStyle: oauth2.AuthStyleInParams},
	}
	return Service{
		Name: "google", Title: "Google", APIHosts: []string{calendarHost}, OAuth: conf,
		AuthOptions: []oauth2.AuthCodeOption{oauth2.AccessTypeOffline, oauth2.ApprovalForce,
			oauth2.SetAuthURLParam("include_granted_scopes", "true")},
		Exchange: g.exchange, Revoke: g.revoke,
		OptionalScopes: []string{calendaragent.ScopeWrite},
		Covers:         googleCovers,
	}, nil
}

// googleCovers are the Calendar scopes that include narrower ones, as the
// discovery document of Calendar v3 lists the methods each one allows.
var googleCovers = map[string][]string{
	calendar.CalendarScope:               {calendaragent.ScopeRead, calendaragent.ScopeFreeBusy, calendaragent.ScopeWrite},
	calendar.CalendarReadonlyScope:       {calendaragent.ScopeRead, calendaragent.ScopeFreeBusy},
	calendar.CalendarEventsScope:         {calendaragent.ScopeRead},
	calendar.CalendarEventsReadonlyScope: {calendaragent.ScopeRead},
}

type googleClient struct {
	http      *http.Client
	revokeURL string
}

// exchange swaps the code; the account is the address in the ID token
// that came with the tokens. That token is read, not verified: it came
// straight from Google's token endpoint over TLS, which OpenID Connect
// allows in place of a signature check (Core 1.0, 3.1.3.7), and it only
// names the account to the person.
func (g *googleClient) exchange(ctx context.Context, x connect.Exchange) (connect.Grant, error) {
	grant, err := connect.StandardExchange(ctx, x)
	if err != nil {
		return connect.Grant{}, err
	}
	if raw, _ := grant.Token.Extra("id_token").(string); raw != "" {
		grant.Account, grant.AccountID = accountIn(raw)
	}
	return grant, nil
}

// accountIn is the verified address an ID token's claims hold ("" when not
// verified) and its subject, the account's stable ID.
func accountIn(idToken string) (email, sub string) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return "", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var claims struct {
		Sub      string `json:"sub"`
		Email    string `json:"email"`
		Verified bool   `json:"email_verified"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", ""
	}
	if !claims.Verified {
		claims.Email = ""
	}
	return claims.Email, claims.Sub
}

// revoke asks Google to revoke the refresh token (which ends the grant,
// access tokens with it), or the access token when there is no refresh
// token. Google answers 400 invalid_token for a token it no longer
// honours: already revoked.
func (g *googleClient) revoke(ctx context.Context, access, refresh secret.Secret) error {
	tok := refresh
	if tok.IsZero() {
		tok = access
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.revokeURL, strings.NewReader(url.Values{"token": {tok.Reveal()}}.Encode()))
	if err != nil {
		return fmt.Errorf("google: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("google: revoke: %w", err) // the token is in the body, not the URL
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<14))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(body, &e)
	if resp.StatusCode == http.StatusBadRequest && e.Error == "invalid_token" {
		return nil
	}
	return &statusError{op: "google: revoke", status: resp.StatusCode, code: e.Error}
}

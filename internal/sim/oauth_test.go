package sim_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/sim"
)

// probe calls one cheap authenticated endpoint of service with token and reports whether the
// provider accepted the token.
func probe(tb testing.TB, e *env, service, token string) bool {
	tb.Helper()
	ctx := context.Background()
	switch service {
	case sim.ServiceGitHub:
		_, _, err := e.github(tb, token).Users.Get(ctx, "")
		return err == nil
	case sim.ServiceGoogle:
		_, err := e.calendar(tb, token).Events.List("primary").Do()
		return err == nil
	case sim.ServiceSlack:
		_, err := e.slack(token).AuthTest()
		return err == nil
	}
	tb.Fatalf("unknown service %q", service)
	return false
}

func oauthCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

var scopesFor = map[string][]string{
	sim.ServiceGitHub: {sim.ScopeRepo},
	sim.ServiceGoogle: {sim.ScopeCalendarEvents},
	sim.ServiceSlack:  {sim.ScopeChatWrite, sim.ScopeChannelsRead},
}

func TestRefreshRotation(t *testing.T) {
	for _, service := range []string{sim.ServiceGitHub, sim.ServiceGoogle, sim.ServiceSlack} {
		t.Run(service, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			cfg := e.oauthConfig(service)
			access0, refresh0, err := e.w.IssueTokens(service, "alice", scopesFor[service])
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(sim.DefaultAccessTTL)
			if probe(t, e, service, access0) {
				t.Fatal("access token still works after AccessTTL")
			}

			// x/oauth2 refreshes a token whose expiry has passed.
			stale := &oauth2.Token{AccessToken: access0, RefreshToken: refresh0, Expiry: time.Now().Add(-time.Minute)}
			tok1, err := cfg.TokenSource(ctx, stale).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if tok1.RefreshToken == refresh0 || tok1.AccessToken == access0 {
				t.Fatal("refresh did not rotate both tokens")
			}
			if !probe(t, e, service, tok1.AccessToken) {
				t.Fatal("refreshed access token refused")
			}
			wantScope := strings.Join(scopesFor[service], ",")
			if service == sim.ServiceGoogle {
				wantScope = strings.Join(scopesFor[service], " ")
			}
			if got, _ := tok1.Extra("scope").(string); got != wantScope {
				t.Errorf("scope = %q, want %q", got, wantScope)
			}
			if got, want := tok1.ExpiresIn, int64(sim.DefaultAccessTTL/time.Second); got != want {
				t.Errorf("expires_in = %d, want %d", got, want)
			}

			tok2, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok1.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
			if err != nil {
				t.Fatalf("second refresh: %v", err)
			}

			// Replaying the first refresh token is reuse: refused, and the whole family dies.
			_, err = cfg.TokenSource(ctx, stale).Token()
			if got, want := oauthCode(err), "invalid_grant"; got != want {
				t.Fatalf("reuse error = %q (%v), want %q", got, err, want)
			}
			if probe(t, e, service, tok2.AccessToken) {
				t.Error("the newest access token still works after refresh token reuse")
			}
			_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok2.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
			if got, want := oauthCode(err), "invalid_grant"; got != want {
				t.Errorf("refresh after family revocation = %q, want %q", got, want)
			}
			grants := e.w.Grants(service)
			if len(grants) != 1 || !grants[0].Revoked || grants[0].RevokedBecause != "refresh token reuse" || grants[0].Refreshes != 2 {
				t.Errorf("grants = %+v, want one revoked for reuse after 2 refreshes", grants)
			}
		})
	}
}

func TestTokenClientAuthentication(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		style   oauth2.AuthStyle
		secret  string
		wantErr string
	}{
		{"basic", oauth2.AuthStyleInHeader, "", ""},
		{"params", oauth2.AuthStyleInParams, "", ""},
		{"wrong secret in header", oauth2.AuthStyleInHeader, "nope", "invalid_client"},
		{"wrong secret in params", oauth2.AuthStyleInParams, "nope", "invalid_client"},
		{"wrong secret, auto-detected", oauth2.AuthStyleAutoDetect, "nope", "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, refresh, err := e.w.IssueTokens(sim.ServiceGoogle, "alice", []string{sim.ScopeCalendar})
			if err != nil {
				t.Fatal(err)
			}
			cfg := e.oauthConfig(sim.ServiceGoogle)
			cfg.Endpoint.AuthStyle = tc.style
			if tc.secret != "" {
				cfg.ClientSecret = tc.secret
			}
			_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
			if got := oauthCode(err); got != tc.wantErr || (tc.wantErr == "" && err != nil) {
				t.Errorf("error = %q (%v), want %q", got, err, tc.wantErr)
			}
		})
	}
	t.Run("unsupported grant type", func(t *testing.T) {
		c := sim.DefaultClients()[sim.ServiceGoogle]
		resp, err := http.PostForm(e.srv.URL+"/oauth/google/token", url.Values{
			"grant_type": {"password"}, "client_id": {c.ID}, "client_secret": {c.Secret},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusBadRequest; got != want {
			t.Errorf("status = %d, want %d", got, want)
		}
	})
}

func TestAuthorizationCode(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		mutate   func(e *env, cfg *oauth2.Config, verifier *string)
		wantCode string
	}{
		{"good verifier", func(*env, *oauth2.Config, *string) {}, ""},
		{"bad verifier", func(_ *env, _ *oauth2.Config, v *string) { *v = oauth2.GenerateVerifier() }, "invalid_grant"},
		{"no verifier", func(_ *env, _ *oauth2.Config, v *string) { *v = "" }, "invalid_grant"},
		{"other redirect", func(_ *env, cfg *oauth2.Config, _ *string) { cfg.RedirectURL = "https://evil.test/cb" }, "invalid_grant"},
		{"expired code", func(e *env, _ *oauth2.Config, _ *string) { e.clock.Advance(sim.CodeTTL) }, "invalid_grant"},
		{"wrong client", func(_ *env, cfg *oauth2.Config, _ *string) { cfg.ClientID = "someone-else" }, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.oauthConfig(sim.ServiceGitHub)
			verifier := oauth2.GenerateVerifier()
			code, err := e.w.AuthorizeCode(sim.ServiceGitHub, "alice", []string{sim.ScopeRepo}, cfg.RedirectURL,
				oauth2.S256ChallengeFromVerifier(verifier))
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(e, cfg, &verifier)
			var opts []oauth2.AuthCodeOption
			if verifier != "" {
				opts = append(opts, oauth2.VerifierOption(verifier))
			}
			tok, err := cfg.Exchange(ctx, code, opts...)
			if got := oauthCode(err); got != tc.wantCode || (tc.wantCode == "" && err != nil) {
				t.Fatalf("error = %q (%v), want %q", got, err, tc.wantCode)
			}
			if tc.wantCode != "" {
				if got := len(e.w.Grants(sim.ServiceGitHub)); got != 0 {
					t.Errorf("grants after a failed exchange = %d, want 0", got)
				}
				return
			}
			if !probe(t, e, sim.ServiceGitHub, tok.AccessToken) {
				t.Fatal("exchanged access token refused")
			}
			if got, want := lastCall(t, e.w).Principal, "alice"; got != want {
				t.Errorf("principal = %q, want %q", got, want)
			}
			// A code works once; replaying it revokes what it issued.
			_, err = cfg.Exchange(ctx, code, opts...)
			if got, want := oauthCode(err), "invalid_grant"; got != want {
				t.Errorf("replayed code error = %q, want %q", got, want)
			}
			if probe(t, e, sim.ServiceGitHub, tok.AccessToken) {
				t.Error("token from a replayed code still works")
			}
		})
	}
	t.Run("PKCE is mandatory", func(t *testing.T) {
		e := newEnv(t)
		if _, err := e.w.AuthorizeCode(sim.ServiceGitHub, "alice", nil, "https://agenthub.test/cb", ""); err == nil {
			t.Error("AuthorizeCode without a challenge succeeded")
		}
		if _, err := e.w.AuthorizeCode("gitlab", "alice", nil, "https://agenthub.test/cb", "x"); err == nil {
			t.Error("AuthorizeCode for an unknown service succeeded")
		}
	})
}

func TestAuthorizeEndpoint(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cfg := e.oauthConfig(sim.ServiceSlack)
	cfg.Scopes = []string{sim.ScopeChatWrite}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := oauth2.GenerateVerifier()

	resp, err := noRedirect.Get(cfg.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", "alice")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusFound; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loc.Query().Get("state"), "state-123"; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	tok, err := cfg.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if _, _, err := e.slack(tok.AccessToken).PostMessage("#general", slack.MsgOptionText("connected", false)); err != nil {
		t.Errorf("post with the new token: %v", err)
	}
	authed, _ := tok.Extra("authed_user").(map[string]any)
	if authed["token_type"] != "user" || authed["scope"] != sim.ScopeChatWrite {
		t.Errorf("authed_user = %v, want a user token with chat:write", authed)
	}

	resp, err = noRedirect.Get(cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("login_hint", "alice")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusBadRequest; got != want {
		t.Errorf("without PKCE: status = %d, want %d", got, want)
	}
}

func TestRevocation(t *testing.T) {
	revoke := func(tb testing.TB, e *env, form url.Values, basic bool) int {
		tb.Helper()
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/github/revoke", strings.NewReader(form.Encode()))
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			c := sim.DefaultClients()[sim.ServiceGitHub]
			req.SetBasicAuth(c.ID, c.Secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name        string
		which       string // access or refresh
		form        url.Values
		basic       bool
		want        int
		wantRevoked bool
	}{
		{"refresh token", "refresh", url.Values{"token_type_hint": {"refresh_token"}}, true, http.StatusOK, true},
		{"access token, no client auth", "access", url.Values{}, false, http.StatusOK, true},
		{"unknown token", "", url.Values{"token": {"ghr_unknown"}}, true, http.StatusOK, false},
		{"no token", "", url.Values{}, true, http.StatusBadRequest, false},
		{"wrong client", "refresh", url.Values{"client_id": {"x"}, "client_secret": {"y"}}, false, http.StatusUnauthorized, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			access, refresh, err := e.w.IssueTokens(sim.ServiceGitHub, "alice", []string{sim.ScopeRepo})
			if err != nil {
				t.Fatal(err)
			}
			switch tc.which {
			case "access":
				tc.form.Set("token", access)
			case "refresh":
				tc.form.Set("token", refresh)
			}
			if got := revoke(t, e, tc.form, tc.basic); got != tc.want {
				t.Fatalf("status = %d, want %d", got, tc.want)
			}
			if got := !probe(t, e, sim.ServiceGitHub, access); got != tc.wantRevoked {
				t.Errorf("access token refused = %v, want %v", got, tc.wantRevoked)
			}
			_, err = e.oauthConfig(sim.ServiceGitHub).TokenSource(context.Background(), &oauth2.Token{RefreshToken: refresh}).Token()
			if got := err != nil; got != tc.wantRevoked {
				t.Errorf("refresh refused = %v (%v), want %v", got, err, tc.wantRevoked)
			}
			if g := e.w.Grants(sim.ServiceGitHub); tc.wantRevoked && (len(g) != 1 || g[0].RevokedBecause != "revocation endpoint" || !g[0].RevokedAt.Equal(start)) {
				t.Errorf("grants = %+v, want one revoked by the endpoint", g)
			}
		})
	}
}

func TestIssueTokensRejectsBadInput(t *testing.T) {
	w := sim.New(sim.Options{Empty: true})
	for _, tc := range []struct{ name, service, principal string }{
		{"unknown service", "gitlab", "alice"},
		{"no principal", sim.ServiceGitHub, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := w.IssueTokens(tc.service, tc.principal, nil); err == nil {
				t.Error("IssueTokens succeeded")
			}
		})
	}
}

package provider_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/provider"
	"github.com/agenthub/agenthub/internal/provider/providertest"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/vault"
)

var (
	alice = broker.Principal{Team: "T1", User: "U1"}
	bob   = broker.Principal{Team: "T1", User: "U2"}
)

// harness is the connect flow and the vault on one real provider's
// Service, as provider.Real builds it, in front of a fake of that
// provider: every call the flow and the vault make is a real HTTP round
// trip in the provider's own shapes.
type harness struct {
	t     *testing.T
	ctx   context.Context
	fake  *providertest.Fake
	svc   provider.Service
	vault *vault.Vault
	audit *audit.Recorder
	flows *connect.Flows
	pub   *httptest.Server
	logs  *logtest.Buffer
	clock *clocktest.Clock // the vault's
	pages []string         // every page AgentHub showed the browser
}

func newHarness(t *testing.T, kind string) *harness {
	t.Helper()
	h := &harness{t: t, ctx: t.Context(), fake: providertest.New(t, kind), logs: &logtest.Buffer{}, clock: clocktest.New(time.Now())}
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	services, _, off, err := provider.Real(h.fake.Settings())
	if err != nil || len(services) != 1 || len(off) != 2 {
		t.Fatalf("Real = %d services, %d off, %v; want 1 and 2", len(services), len(off), err)
	}
	h.svc = services[0]
	st := memstore.New(memstore.Options{})
	h.audit, err = audit.NewRecorder(st, bytes.Repeat([]byte("a"), 32), audit.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.NewKeyring(bytes.Repeat([]byte("v"), 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.vault, err = vault.New(vault.Options{Store: st, Keys: keys, Audit: h.audit, Logger: logger, Now: h.clock.Now, Services: []vault.Service{{
		Name: h.svc.Name, APIHosts: h.svc.APIHosts, OAuth: h.svc.OAuth, Revoke: h.svc.Revoke, Covers: h.svc.Covers}}})
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler
	h.pub = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.pub.Close)
	h.flows, err = connect.New(connect.Options{
		PublicURL: h.pub.URL, Key: bytes.Repeat([]byte("k"), 32), Store: st, Vault: h.vault, Audit: h.audit,
		Refuser: refuser{h.audit}, Logger: logger,
		Providers: map[string]connect.Provider{h.svc.Name: {Name: h.svc.Title, Config: h.svc.OAuth, AuthOptions: h.svc.AuthOptions, Exchange: h.svc.Exchange,
			OptionalScopes: h.svc.OptionalScopes}},
	})
	if err != nil {
		t.Fatal(err)
	}
	handler = h.flows.Handler()
	return h
}

// refuser records refusals straight in the trail (the broker counts
// them; that is not what is tested here).
type refuser struct{ rec *audit.Recorder }

func (r refuser) Refuse(ctx context.Context, x broker.Refusal) error {
	_, err := r.rec.Record(ctx, audit.Event{Kind: x.Kind, Actor: x.Actor, Result: x.Reason, Detail: map[string]string{"op": x.Op}})
	return err
}

// browser follows redirects and keeps cookies; stop, when set, ends the
// journey at the first URL it matches, unfollowed.
type browser struct {
	c *http.Client
}

func newBrowser(t *testing.T, stop func(*url.URL) bool) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{c: &http.Client{Jar: jar}}
	if stop != nil {
		b.c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
			if stop(r.URL) {
				return http.ErrUseLastResponse
			}
			return nil
		}
	}
	return b
}

func (h *harness) do(b *browser, method, u string, form url.Values) (int, string, *http.Response) {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Request.URL.String(), h.pub.URL) {
		h.pages = append(h.pages, string(raw)) // AgentHub's pages, not the provider's
	}
	return resp.StatusCode, string(raw), resp
}

// connect is p opening a fresh link in b and pressing Continue; it
// returns the last page.
func (h *harness) connect(b *browser, p broker.Principal) (int, string, *http.Response) {
	h.t.Helper()
	return h.connectFor(b, p, "")
}

// connectFor is connect with a link made for purpose.
func (h *harness) connectFor(b *browser, p broker.Principal, purpose string) (int, string, *http.Response) {
	h.t.Helper()
	link, err := h.flows.LinkFor(p, h.svc.Name, purpose)
	if err != nil {
		h.t.Fatal(err)
	}
	u, _ := url.Parse(link)
	if status, _, _ := h.do(b, http.MethodGet, link, nil); status != http.StatusOK {
		h.t.Fatalf("start page: status %d", status)
	}
	return h.do(b, http.MethodPost, h.pub.URL+connect.StartPath, url.Values{"t": {u.Query().Get("t")}})
}

func atCallback(u *url.URL) bool { return strings.HasPrefix(u.Path, connect.CallbackPath) }

func (h *harness) refused(reason string) bool {
	h.t.Helper()
	events, err := h.audit.Tail(h.ctx, 1000)
	if err != nil {
		h.t.Fatal(err)
	}
	return slices.ContainsFunc(events, func(e audit.Event) bool { return e.Kind == audit.ConnectRefused && e.Result == reason })
}

// noCanary checks that no token and no client secret the fake minted is
// in a page, a log line or the trail.
func (h *harness) noCanary() {
	h.t.Helper()
	events, _ := h.audit.Tail(h.ctx, 1000)
	var trail strings.Builder
	for _, e := range events {
		trail.WriteString(string(e.Kind))
		for k, v := range e.Detail {
			trail.WriteString(k + "=" + v + " ")
		}
		trail.WriteString(e.Actor + e.Result)
	}
	canary := regexp.MustCompile(`CANARY-[a-z]+-(access|refresh|code)-\d+|client-secret-CANARY`)
	for where, text := range map[string]string{"pages": strings.Join(h.pages, "\n"), "logs": h.logs.String(), "trail": trail.String()} {
		if m := canary.FindString(text); m != "" {
			h.t.Errorf("a secret the provider issued is in the %s (%d bytes)", where, len(m))
		}
	}
}

// The whole life of a connection at each real provider: consent with the
// parameters the provider needs, the exchange with PKCE, the account
// named, a lease that calls the API with the token, and revocation at the
// provider that ends the grant.
func TestConnectUseRevoke(t *testing.T) {
	for _, tc := range []struct {
		kind, account string
		scopes        []string
		authParams    map[string]string // what the consent request must carry
	}{
		{"github", "octocat", []string{"repo"}, map[string]string{"allow_signup": "false"}},
		{"google", "ana@example.com", []string{calendaragent.ScopeFreeBusy, calendaragent.ScopeRead, "https://www.googleapis.com/auth/userinfo.email", "openid"},
			map[string]string{"access_type": "offline", "include_granted_scopes": "true", "prompt": "consent",
				"scope": calendaragent.ScopeRead + " " + calendaragent.ScopeFreeBusy + " openid email"}},
		{"slack", "U1 in T1", []string{"channels:manage", "channels:read", "chat:write"},
			map[string]string{"user_scope": "channels:read,chat:write,channels:manage", "scope": ""}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			h := newHarness(t, tc.kind)
			status, page, _ := h.connect(newBrowser(t, nil), alice)
			if status != http.StatusOK || !strings.Contains(page, tc.account) {
				t.Fatalf("callback page: status %d, want 200 naming %q:\n%s", status, tc.account, page)
			}
			for k, want := range tc.authParams {
				if got := h.fake.AuthParams().Get(k); got != want {
					t.Errorf("consent request %s = %q, want %q", k, got, want)
				}
			}
			c, err := h.vault.Connection(h.ctx, alice.String(), tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if c.Account != tc.account || !slices.Equal(c.Scopes, tc.scopes) || c.Status != vault.StatusActive {
				t.Errorf("connection = account %q scopes %q %s; want %q %q active", c.Account, c.Scopes, c.Status, tc.account, tc.scopes)
			}

			l, err := h.vault.Lease(h.ctx, vault.LeaseRequest{Principal: alice.String(), Service: tc.kind, Scopes: tc.scopes[:1]})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := l.Client().Get(h.fake.URL() + h.fake.ProbePath())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(h.fake.APIAuth()[0], "Bearer CANARY-") {
				t.Fatalf("API call through the lease: status %d, Authorization scheme %q; want 200 with a bearer token", resp.StatusCode, strings.SplitN(h.fake.APIAuth()[0], " ", 2)[0])
			}

			if err := h.vault.Revoke(h.ctx, alice.String(), tc.kind); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if n := h.fake.GrantsAlive(); n != 0 {
				t.Errorf("grants alive at the provider after revocation = %d, want 0 (asked: %q)", n, h.fake.Revocations())
			}
			// Revoking at the provider again is "already revoked": success.
			if err := h.svc.Revoke(h.ctx, secret.New("CANARY-x-access-0"), secret.Secret{}); err != nil {
				t.Errorf("revoking a token the provider no longer knows: %v, want success", err)
			}
			h.noCanary()
		})
	}
}

// An access token that has expired cannot name the grant at GitHub, nor
// be revoked at Slack: the refresh token gets a live one first, and the
// grant still ends. Google revokes the refresh token itself.
func TestRevokeAfterAccessExpired(t *testing.T) {
	for _, kind := range []string{"github", "google", "slack"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			if status, page, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK {
				t.Fatalf("connect: %d %s", status, page)
			}
			h.fake.ExpireAccess()
			if err := h.vault.Revoke(h.ctx, alice.String(), kind); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if n := h.fake.GrantsAlive(); n != 0 {
				t.Errorf("grants alive after revocation = %d, want 0 (asked: %q)", n, h.fake.Revocations())
			}
		})
	}
}

// When the provider cannot revoke, the local revocation holds, and the
// error says which provider failed and how, without a token.
func TestRevokeProviderDownLocalHolds(t *testing.T) {
	for _, kind := range []string{"github", "google", "slack"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			if status, page, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK {
				t.Fatalf("connect: %d %s", status, page)
			}
			h.fake.BreakRevocation()
			err := h.vault.Revoke(h.ctx, alice.String(), kind)
			if !errors.Is(err, vault.ErrProviderRevoke) || !strings.Contains(err.Error(), "500") || strings.Contains(err.Error(), "CANARY") {
				t.Fatalf("Revoke = %v; want ErrProviderRevoke naming status 500 and no token", err)
			}
			if c, err := h.vault.Connection(h.ctx, alice.String(), kind); err != nil || c.Status != vault.StatusRevoked {
				t.Errorf("connection after a failed provider revocation = %s, %v; want revoked", c.Status, err)
			}
			if _, err := h.vault.Lease(h.ctx, vault.LeaseRequest{Principal: alice.String(), Service: kind}); err == nil {
				t.Error("a lease was issued on a connection revoked locally")
			}
		})
	}
}

// The flow's refusals against each real provider's shapes: a declined
// consent, a code exchanged with another flow's verifier (PKCE), a
// replayed callback; nothing is connected by any of them.
func TestConnectRefusals(t *testing.T) {
	for _, kind := range []string{"github", "google", "slack"} {
		t.Run(kind+"/consent denied", func(t *testing.T) {
			h := newHarness(t, kind)
			h.fake.Deny()
			status, page, _ := h.connect(newBrowser(t, nil), alice)
			if status != http.StatusOK || !strings.Contains(page, "was not connected") || !h.refused("consent_denied") {
				t.Fatalf("denied consent: %d %q, consent_denied on record %v", status, page, h.refused("consent_denied"))
			}
			h.notConnected(alice)
		})
		t.Run(kind+"/code injected from another flow", func(t *testing.T) {
			h := newHarness(t, kind)
			// The attacker runs a flow of their own up to the callback and
			// keeps its code.
			_, _, resp := h.connect(newBrowser(t, atCallback), bob)
			stolen := resp.Header.Get("Location")
			sl, _ := url.Parse(stolen)
			// The victim's flow, stopped at its callback: the attacker's code
			// goes in with the victim's state.
			victim := newBrowser(t, atCallback)
			_, _, resp = h.connect(victim, alice)
			cb, _ := url.Parse(resp.Header.Get("Location"))
			q := cb.Query()
			q.Set("code", sl.Query().Get("code"))
			cb.RawQuery = q.Encode()
			status, _, _ := h.do(victim, http.MethodGet, cb.String(), nil)
			if status != http.StatusBadGateway || !h.refused("exchange_failed") {
				t.Fatalf("callback with another flow's code: status %d, exchange_failed on record %v; want 502 and recorded", status, h.refused("exchange_failed"))
			}
			h.notConnected(alice)
			h.notConnected(bob)
		})
		t.Run(kind+"/callback replayed", func(t *testing.T) {
			h := newHarness(t, kind)
			b := newBrowser(t, atCallback)
			_, _, resp := h.connect(b, alice)
			cb := resp.Header.Get("Location")
			if status, page, _ := h.do(b, http.MethodGet, cb, nil); status != http.StatusOK {
				t.Fatalf("callback: %d %s", status, page)
			}
			status, _, _ := h.do(b, http.MethodGet, cb, nil)
			if status != http.StatusBadRequest || !h.refused("state_spent") {
				t.Fatalf("replayed callback: status %d, state_spent on record %v", status, h.refused("state_spent"))
			}
			if h.fake.Exchanges() != 1 {
				t.Errorf("codes exchanged = %d, want 1", h.fake.Exchanges())
			}
			h.noCanary()
		})
	}
}

// A Slack user token is only stored for the Slack user the link was for:
// someone else signed in at Slack (a forwarded link) gets nothing
// connected, and the token Slack gave is revoked at once.
func TestSlackOtherUserRefused(t *testing.T) {
	for _, who := range []struct{ name, user, team string }{{"other user", "U2", "T1"}, {"other workspace", "U1", "T9"}} {
		t.Run(who.name, func(t *testing.T) {
			h := newHarness(t, "slack")
			h.fake.SignIn(who.user, who.team)
			status, page, _ := h.connect(newBrowser(t, nil), alice)
			if status != http.StatusForbidden || !strings.Contains(page, "not your Slack account") || !h.refused("wrong_account") {
				t.Fatalf("other Slack user: %d %q, wrong_account on record %v", status, page, h.refused("wrong_account"))
			}
			h.notConnected(alice)
			if n := h.fake.GrantsAlive(); n != 0 {
				t.Errorf("grants alive at Slack = %d, want 0: the token obtained must be revoked", n)
			}
			h.noCanary()
		})
	}
}

// Connecting another account replaces the connection, says so, and ends
// the old account's grant at the provider; connecting the same account
// again keeps the new grant alive.
func TestReconnectOtherAccount(t *testing.T) {
	h := newHarness(t, "github")
	if status, _, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK {
		t.Fatal("first connect failed")
	}
	if status, _, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK || h.fake.GrantsAlive() != 2 {
		t.Fatalf("same account again: status %d, grants alive %d; want 200 and both (GitHub keeps one grant per app and user, its tokens both live)", status, h.fake.GrantsAlive())
	}
	h.fake.SignIn("hubot", "T1")
	status, page, _ := h.connect(newBrowser(t, nil), alice)
	if status != http.StatusOK || !strings.Contains(page, "hubot") || !strings.Contains(page, "replaces the GitHub account octocat") {
		t.Fatalf("other account: %d\n%s", status, page)
	}
	if got := h.fake.Revocations(); len(got) != 1 || got[0] != "DELETE grant: access" {
		t.Errorf("revocations at GitHub = %q, want the replaced connection's grant deleted once", got)
	}
}

// A renamed GitHub login is the same account (the user ID says so):
// reconnecting under the new name does not revoke the grant, which would
// end the new connection with the old.
func TestReconnectRenamedAccount(t *testing.T) {
	h := newHarness(t, "github")
	if status, _, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK {
		t.Fatal("first connect failed")
	}
	h.fake.Rename("octo-renamed")
	status, page, _ := h.connect(newBrowser(t, nil), alice)
	if status != http.StatusOK || !strings.Contains(page, "octo-renamed") {
		t.Fatalf("renamed account: %d\n%s", status, page)
	}
	if got := h.fake.Revocations(); len(got) != 0 {
		t.Errorf("revocations at GitHub after reconnecting a renamed login = %q, want none", got)
	}
	l, err := h.vault.Lease(h.ctx, vault.LeaseRequest{Principal: alice.String(), Service: "github", Scopes: []string{"repo"}})
	if err != nil {
		t.Fatalf("lease after reconnecting: %v", err)
	}
	l.Release(h.ctx)
}

func (h *harness) notConnected(p broker.Principal) {
	h.t.Helper()
	if c, err := h.vault.Connection(h.ctx, p.String(), h.svc.Name); !errors.Is(err, vault.ErrNotConnected) {
		h.t.Errorf("%s is connected (%s, %v); want nothing connected", p, c.Status, err)
	}
}

// Real says which services are off and which settings they lack, by
// name; a bad URL is an error naming its setting.
func TestRealSettings(t *testing.T) {
	_, ep, off, err := provider.Real(provider.Settings{GitHub: provider.Client{ID: "x"}, Google: provider.Client{ID: "g", Secret: secret.New("s")}})
	if err != nil {
		t.Fatal(err)
	}
	want := []provider.Off{{Service: "github", Missing: []string{"GITHUB_APP_CLIENT_SECRET"}},
		{Service: "slack", Missing: []string{"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}}}
	if len(off) != 2 || off[0].Service != want[0].Service || !slices.Equal(off[0].Missing, want[0].Missing) ||
		off[1].Service != want[1].Service || !slices.Equal(off[1].Missing, want[1].Missing) {
		t.Errorf("off = %+v, want %+v", off, want)
	}
	if ep.Calendar != "https://www.googleapis.com/calendar/v3/" || ep.GitHub != "https://api.github.com/" {
		t.Errorf("endpoints = %+v, want the public services'", ep)
	}
	_, _, _, err = provider.Real(provider.Settings{GitHub: provider.Client{ID: "x", Secret: secret.New("s")}, GitHubAPIURL: "ftp://ghe"})
	if err == nil || !strings.Contains(err.Error(), "GITHUB_API_URL") {
		t.Errorf("bad GitHub API URL: %v, want an error naming GITHUB_API_URL", err)
	}
	ghes, ep, _, err := provider.Real(provider.Settings{GitHub: provider.Client{ID: "x", Secret: secret.New("s")},
		GitHubAPIURL: "https://ghe.example.com/api/v3", GitHubWebURL: "https://ghe.example.com"})
	if err != nil || ep.GitHub != "https://ghe.example.com/api/v3/" || ghes[0].OAuth.Endpoint.TokenURL != "https://ghe.example.com/login/oauth/access_token" ||
		!slices.Equal(ghes[0].APIHosts, []string{"ghe.example.com"}) {
		t.Errorf("GitHub Enterprise Server: endpoints %+v, token URL %q, hosts %q, %v", ep, ghes[0].OAuth.Endpoint.TokenURL, ghes[0].APIHosts, err)
	}
}

// A revocation that refreshed first (the access token had expired) and
// then failed spent the refresh token it held: the queue keeps the
// rotated tokens, and the retry ends the grant.
func TestRevokeRetryAfterRotation(t *testing.T) {
	for _, kind := range []string{"github", "slack"} {
		t.Run(kind, func(t *testing.T) {
			h := newHarness(t, kind)
			if status, page, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK {
				t.Fatalf("connect: %d %s", status, page)
			}
			h.fake.ExpireAccess()
			h.fake.BreakRevocation()
			if err := h.vault.Revoke(h.ctx, alice.String(), kind); !errors.Is(err, vault.ErrProviderRevoke) {
				t.Fatalf("Revoke = %v, want ErrProviderRevoke", err)
			}
			h.fake.FixRevocation()
			h.clock.Advance(time.Hour)
			if res, err := h.vault.RetryRevocations(h.ctx); err != nil || res.Revoked != 1 {
				t.Fatalf("retry = %+v, %v", res, err)
			}
			if n := h.fake.GrantsAlive(); n != 0 {
				t.Errorf("grants alive after the retry = %d, want 0 (asked: %q)", n, h.fake.Revocations())
			}
		})
	}
}

// Google's scopes are asked incrementally: the first connection grants the
// calendar agent's reads alone, so a write's lease is refused for want of
// calendar.events; a link made for that scope asks for it as well, with
// include_granted_scopes, and Google's answer (all scopes granted so far)
// lets the write's lease through. A link cannot ask for a scope the
// provider does not offer.
func TestGoogleIncrementalScopes(t *testing.T) {
	h := newHarness(t, "google")
	if status, _, _ := h.connect(newBrowser(t, nil), alice); status != http.StatusOK {
		t.Fatalf("first connection: %d", status)
	}
	lease := func(scope string) error {
		l, err := h.vault.Lease(h.ctx, vault.LeaseRequest{Principal: alice.String(), Service: "google", Scopes: []string{scope}})
		if err == nil {
			l.Release(h.ctx)
		}
		return err
	}
	if err := lease(calendaragent.ScopeRead); err != nil {
		t.Fatalf("a read after the first connection: %v", err)
	}
	if err := lease(calendaragent.ScopeWrite); !errors.Is(err, vault.ErrInsufficientScope) {
		t.Fatalf("a write after the first connection: %v, want ErrInsufficientScope", err)
	}

	purpose := connect.ScopesPurpose([]string{calendaragent.ScopeWrite, "https://www.googleapis.com/auth/calendar"})
	if status, _, _ := h.connectFor(newBrowser(t, nil), alice, purpose); status != http.StatusOK {
		t.Fatalf("connection for the write: %d", status)
	}
	asked := strings.Fields(h.fake.AuthParams().Get("scope"))
	if !slices.Contains(asked, calendaragent.ScopeWrite) || slices.Contains(asked, "https://www.googleapis.com/auth/calendar") ||
		h.fake.AuthParams().Get("include_granted_scopes") != "true" {
		t.Errorf("consent request asked %q (include_granted_scopes %q), want calendar.events and nothing unoffered",
			asked, h.fake.AuthParams().Get("include_granted_scopes"))
	}
	for _, s := range []string{calendaragent.ScopeRead, calendaragent.ScopeFreeBusy, calendaragent.ScopeWrite} {
		if err := lease(s); err != nil {
			t.Errorf("lease for %s after granting the write: %v", s, err)
		}
	}
	h.noCanary()
}

package connect_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/sim"
)

// TestConnectFlow: alice opens her link, continues, consents at the
// provider and comes back: her connection is in the vault with the scopes
// granted, the trail says so, the waiting requests are told, and no token,
// code or secret is on any page or in any log.
func TestConnectFlow(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	link := h.link(alice, sim.ServiceGitHub)
	page := b.do(t, http.MethodGet, link, nil)
	for _, want := range []string{"Connect github to AgentHub", "U1", "T1", "Continue to github"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("start page lacks %q:\n%s", want, page.body)
		}
	}
	if h.connected(alice, sim.ServiceGitHub) {
		t.Fatal("opening the link connected something")
	}
	// Continue posts here and is sent on to the provider: the page's
	// form-action allows both, and nothing else.
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+h.env.URL+";") && !strings.HasSuffix(csp, "form-action 'self' "+h.env.URL) {
		t.Errorf("start page CSP = %q, want form-action 'self' and the provider's origin %s", csp, h.env.URL)
	}
	if got := page.header.Get("Referrer-Policy"); got != "same-origin" {
		t.Errorf("start page Referrer-Policy = %q, want same-origin", got)
	}
	done := b.do(t, http.MethodPost, h.srv.URL+connect.StartPath, url.Values{"t": {tokenOf(t, link)}})
	if done.status != http.StatusOK || !strings.Contains(done.body, "github is connected") {
		t.Fatalf("after consent: %d %q", done.status, done.body)
	}
	if !strings.HasPrefix(done.url.Path, connect.CallbackPath+sim.ServiceGitHub) {
		t.Errorf("the flow ended at %s, want the github callback", done.url.Path)
	}
	if !h.connected(alice, sim.ServiceGitHub) {
		t.Fatal("alice is not connected")
	}
	if got := h.landedAfter(1); len(got) != 1 || got[0] != alice.String()+" github" {
		t.Errorf("Connected saw %q, want alice's github once", got)
	}
	if n := len(h.events(audit.ConnectStarted)); n != 1 {
		t.Errorf("connect.started events = %d, want 1", n)
	}
	created := h.events(audit.ConnectionCreated)
	if len(created) != 1 || created[0].Actor != alice.String() || created[0].Detail["scopes"] == "" {
		t.Errorf("connection.created = %+v, want alice's, with the scopes granted", created)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	} {
		if got := done.header.Get(name); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	secrets := append([]string{done.url.Query().Get("code")}, h.vault.tokens...)
	for _, c := range sim.DefaultClients() {
		secrets = append(secrets, c.Secret)
	}
	trail, err := h.env.Audit.Tail(h.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := json.Marshal(trail)
	if err != nil {
		t.Fatal(err)
	}
	shown := page.body + done.body + h.logs.String() + string(recorded)
	for _, s := range secrets {
		if s != "" && strings.Contains(shown, s) {
			t.Errorf("a secret (%d bytes) is on a page, in the logs or on the trail", len(s))
		}
	}
}

// callbackURL runs b through the link to the provider's consent, and
// returns the callback URL the provider sent it to, unopened.
func (h *harness) callbackURL(b *browser, link string) string {
	h.t.Helper()
	b.stopAtCallback()
	defer func() { b.c.CheckRedirect = nil }()
	resp := h.open(b, link)
	loc := resp.header.Get("Location")
	if resp.status != http.StatusFound || !strings.Contains(loc, connect.CallbackPath) {
		h.t.Fatalf("consent: %d to %q, want a redirect to the callback", resp.status, loc)
	}
	return loc
}

// withState returns callback URL u with its query changed by set.
func withQuery(t *testing.T, u string, set func(url.Values)) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	set(q)
	p.RawQuery = q.Encode()
	return p.String()
}

// TestConnectRefusals: every way a link or a callback can be misused is
// refused with a page that says what to do, on the record, and connects
// nothing.
func TestConnectRefusals(t *testing.T) {
	tests := []struct {
		name   string
		reason string // connect.refused's result
		status int
		page   string
		play   func(t *testing.T, h *harness) response
	}{
		{"a link used twice", "link_spent", http.StatusBadRequest, "already used", func(t *testing.T, h *harness) response {
			link := h.link(alice, sim.ServiceGitHub)
			h.callbackURL(newBrowser(t), link) // used, the flow left unfinished
			return newBrowser(t).do(t, http.MethodPost, h.srv.URL+connect.StartPath, url.Values{"t": {tokenOf(t, link)}})
		}},
		{"an expired link", "link_expired", http.StatusBadRequest, "expired", func(t *testing.T, h *harness) response {
			link := h.link(alice, sim.ServiceGitHub)
			h.clock.Advance(connect.LinkTTL)
			return newBrowser(t).do(t, http.MethodGet, link, nil)
		}},
		{"a link made out to someone else", "link_invalid", http.StatusBadRequest, "not valid", func(t *testing.T, h *harness) response {
			// mallory rewrites the user in alice's link: the MAC no longer holds.
			link := h.link(alice, sim.ServiceGitHub)
			payload, sum, _ := strings.Cut(tokenOf(t, link), ".")
			forged := strings.Replace(decode(t, payload), `"T1:U1"`, `"T1:U9"`, 1)
			if !strings.Contains(forged, "U9") {
				t.Fatalf("the link's payload %q does not name alice as the test expects", decode(t, payload))
			}
			return newBrowser(t).do(t, http.MethodGet, h.srv.URL+connect.StartPath+"?t="+url.QueryEscape(encode(forged)+"."+sum), nil)
		}},
		{"a Continue posted from another site", "cross_site_post", http.StatusForbidden, "did not come from", func(t *testing.T, h *harness) response {
			b := newBrowser(t)
			b.header.Set("Sec-Fetch-Site", "cross-site")
			return b.do(t, http.MethodPost, h.srv.URL+connect.StartPath, url.Values{"t": {tokenOf(t, h.link(alice, sim.ServiceGitHub))}})
		}},
		{"a callback replayed", "state_spent", http.StatusBadRequest, "already finished", func(t *testing.T, h *harness) response {
			b := newBrowser(t)
			cb := h.callbackURL(b, h.link(alice, sim.ServiceGitHub))
			if first := b.do(t, http.MethodGet, cb, nil); first.status != http.StatusOK {
				t.Fatalf("first callback: %d %q", first.status, first.body)
			}
			h.disconnect(alice, sim.ServiceGitHub)
			return b.do(t, http.MethodGet, cb, nil)
		}},
		{"a callback in another person's browser", "other_browser", http.StatusForbidden, "another browser", func(t *testing.T, h *harness) response {
			// mallory starts a flow for himself and sends alice the
			// callback: her browser would connect his account to him, or
			// (the other way) his browser hers.
			cb := h.callbackURL(newBrowser(t), h.link(mallory, sim.ServiceGitHub))
			return newBrowser(t).do(t, http.MethodGet, cb, nil)
		}},
		{"a state that was never issued", "state_unknown", http.StatusBadRequest, "not a connect flow", func(t *testing.T, h *harness) response {
			return newBrowser(t).do(t, http.MethodGet, h.srv.URL+connect.CallbackPath+"github?state=made-up&code=x", nil)
		}},
		{"a callback to another service's endpoint", "wrong_service", http.StatusBadRequest, "wrong service", func(t *testing.T, h *harness) response {
			b := newBrowser(t)
			cb := h.callbackURL(b, h.link(alice, sim.ServiceGitHub))
			return b.do(t, http.MethodGet, strings.Replace(cb, connect.CallbackPath+"github", connect.CallbackPath+"google", 1), nil)
		}},
		{"a flow that took too long", "state_expired", http.StatusBadRequest, "too long", func(t *testing.T, h *harness) response {
			b := newBrowser(t)
			cb := h.callbackURL(b, h.link(alice, sim.ServiceGitHub))
			h.clock.Advance(connect.StateTTL)
			return b.do(t, http.MethodGet, cb, nil)
		}},
		{"a denied consent", "consent_denied", http.StatusOK, "was not connected", func(t *testing.T, h *harness) response {
			b := newBrowser(t)
			cb := h.callbackURL(b, h.link(alice, sim.ServiceGitHub))
			return b.do(t, http.MethodGet, withQuery(t, cb, func(q url.Values) {
				q.Del("code")
				q.Set("error", "access_denied")
			}), nil)
		}},
		{"another flow's code (PKCE mismatch)", "exchange_failed", http.StatusBadGateway, "did not complete", func(t *testing.T, h *harness) response {
			// mallory's code, injected into alice's flow: the verifier of
			// alice's flow does not match the challenge his code was
			// issued for, and the provider refuses the exchange.
			his := h.callbackURL(newBrowser(t), h.link(mallory, sim.ServiceGitHub))
			b := newBrowser(t)
			hers := h.callbackURL(b, h.link(alice, sim.ServiceGitHub))
			code := mustQuery(t, his).Get("code")
			return b.do(t, http.MethodGet, withQuery(t, hers, func(q url.Values) { q.Set("code", code) }), nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			got := tt.play(t, h)
			if got.status != tt.status || !strings.Contains(got.body, tt.page) {
				t.Errorf("page: %d %q; want %d saying %q", got.status, got.body, tt.status, tt.page)
			}
			if got.header.Get("Content-Security-Policy") == "" || got.header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("refusal page headers = %v, want the page headers", got.header)
			}
			if !h.refusedFor(tt.reason) {
				t.Errorf("no connect.refused %s on the trail; have %+v", tt.reason, h.events(audit.ConnectRefused))
			}
			for _, p := range []broker.Principal{alice, mallory} {
				if h.connected(p, sim.ServiceGitHub) || h.connected(p, sim.ServiceGoogle) {
					t.Errorf("%s is connected, want not", p)
				}
			}
		})
	}
}

// TestConnectFaultsLeaveNothingHalfDone: with the audit trail down, no
// flow starts (the browser stays here, the link unspent); with the vault
// unable to store the connection, the page says nothing was connected and
// Connected is not told.
func TestConnectFaultsLeaveNothingHalfDone(t *testing.T) {
	t.Run("audit trail down at Continue", func(t *testing.T) {
		h := newHarness(t)
		link := h.link(alice, sim.ServiceGitHub)
		h.auditDown.Store(true)
		b := newBrowser(t)
		got := h.open(b, link)
		if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "Nothing was connected") || got.url.Host != mustURL(t, h.srv.URL).Host {
			t.Fatalf("with the trail down: %d at %s %q; want 503 here", got.status, got.url, got.body)
		}
		h.auditDown.Store(false)
		if done := h.open(newBrowser(t), h.link(alice, sim.ServiceGitHub)); done.status != http.StatusOK || !h.connected(alice, sim.ServiceGitHub) {
			t.Errorf("a new link once the trail is back: %d %q", done.status, done.body)
		}
	})
	t.Run("vault cannot store", func(t *testing.T) {
		h := newHarness(t)
		h.vault.down.Store(true)
		got := h.open(newBrowser(t), h.link(alice, sim.ServiceGitHub))
		if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "Nothing was connected") {
			t.Fatalf("with the vault down: %d %q", got.status, got.body)
		}
		if h.connected(alice, sim.ServiceGitHub) || len(h.landedAfter(0)) != 0 {
			t.Errorf("connected %v, Connected saw %q; want neither", h.connected(alice, sim.ServiceGitHub), h.landedAfter(0))
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestTwoFlowsInOneBrowser: a person who starts GitHub's flow, then
// Google's, in one browser, finishes both: each flow has its own binding.
func TestTwoFlowsInOneBrowser(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t)
	first := h.callbackURL(b, h.link(alice, sim.ServiceGitHub))
	second := h.callbackURL(b, h.link(alice, sim.ServiceGoogle))
	for _, cb := range []string{first, second} {
		if got := b.do(t, http.MethodGet, cb, nil); got.status != http.StatusOK {
			t.Errorf("callback %s: %d %q", mustURL(t, cb).Path, got.status, got.body)
		}
	}
	if !h.connected(alice, sim.ServiceGitHub) || !h.connected(alice, sim.ServiceGoogle) {
		t.Error("both flows should have connected")
	}
}

// TestNewRefusesAPublicURLWithAPath: the pages post to /connect and the
// providers call back to /oauth/callback at the origin's root; a path in
// PublicURL would send links one place and their Continue another.
func TestNewRefusesAPublicURLWithAPath(t *testing.T) {
	h := newHarness(t)
	for _, u := range []string{"https://example.com/agenthub", "http://example.com", "https://example.com/?x=1", "ftp://127.0.0.1"} {
		_, err := connect.New(connect.Options{PublicURL: u, Key: make([]byte, 32), Store: h.st, Vault: h.vault, Audit: h.env.Audit,
			Refuser: h.env.Broker, Providers: map[string]connect.Provider{"github": {Name: "GitHub", Config: &oauth2.Config{
				ClientID: "c", Endpoint: oauth2.Endpoint{AuthURL: "https://p/a", TokenURL: "https://p/t"}}}}})
		if err == nil {
			t.Errorf("New with PublicURL %q succeeded, want an error", u)
		}
	}
}

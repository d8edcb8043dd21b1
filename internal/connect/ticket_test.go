package connect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/connect"
)

// ticketProvider is a provider whose consent page needs a call first
// (Auth0's connected accounts): Authorize gets a ticket, the consent page
// sends the browser back with connect_code, and Exchange completes the
// session with the PKCE verifier, making a connection through "auth0".
type ticketProvider struct {
	consent *httptest.Server
	mu      sync.Mutex
	asked   []connect.Authorization
	flows   map[string]connect.Authorization // ticket → its authorization
}

func newTicketProvider(t *testing.T) *ticketProvider {
	tp := &ticketProvider{flows: map[string]connect.Authorization{}}
	tp.consent = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		a, ok := tp.flows[r.URL.Query().Get("ticket")]
		delete(tp.flows, r.URL.Query().Get("ticket"))
		tp.mu.Unlock()
		if !ok {
			http.Error(w, "unknown ticket", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, a.RedirectURI+"?"+url.Values{"connect_code": {"cc-" + a.State[:8]}, "state": {a.State}}.Encode(), http.StatusFound)
	}))
	t.Cleanup(tp.consent.Close)
	return tp
}

func (tp *ticketProvider) provider() connect.Provider {
	return connect.Provider{
		Name:   "Token Vault GitHub",
		Config: &oauth2.Config{Scopes: []string{"repo"}, Endpoint: oauth2.Endpoint{AuthURL: tp.consent.URL + "/connect"}},
		Authorize: func(_ context.Context, a connect.Authorization) (connect.Ticket, error) {
			tp.mu.Lock()
			defer tp.mu.Unlock()
			tp.asked = append(tp.asked, a)
			ticket := "tk-" + a.State[:8]
			tp.flows[ticket] = a
			return connect.Ticket{URL: tp.consent.URL + "/connect?ticket=" + ticket, Session: "as-" + a.State[:8]}, nil
		},
		Exchange: func(_ context.Context, x connect.Exchange) (connect.Grant, error) {
			tp.mu.Lock()
			defer tp.mu.Unlock()
			for _, a := range tp.asked {
				if x.Session == "as-"+a.State[:8] && x.Code == "cc-"+a.State[:8] && oauth2.S256ChallengeFromVerifier(x.Verifier) == a.Challenge {
					return connect.Grant{Via: "auth0", Account: "octocat", AccountID: "cac_" + a.State[:8], Scopes: a.Scopes}, nil
				}
			}
			return connect.Grant{}, errors.New("complete refused: session, code or verifier")
		},
	}
}

// A provider whose consent needs a call first (Auth0's connected
// accounts): the flow asks it with its state and PKCE challenge, sends
// the browser to the ticket, keeps the session with the flow, completes
// it with connect_code and the verifier, and connects through the
// person's Auth0 connection. Its callback still works once, for the
// browser that started it, and takes no plain code.
func TestConnectThroughATicket(t *testing.T) {
	tp := newTicketProvider(t)
	h := newHarness(t, func(m map[string]connect.Provider) { m["tvgithub"] = tp.provider() })
	b := newBrowser(t)
	link := h.link(alice, "tvgithub")
	page := b.do(t, http.MethodGet, link, nil)
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, tp.consent.URL) {
		t.Errorf("start page CSP = %q, want the consent page's origin", csp)
	}
	b.stopAtCallback()
	at := b.do(t, http.MethodPost, h.srv.URL+connect.StartPath, url.Values{"t": {tokenOf(t, link)}})
	if at.status != http.StatusFound {
		t.Fatalf("the browser did not come back to the callback: %d %s", at.status, at.url)
	}
	callback := at.header.Get("Location")
	if !strings.Contains(callback, "connect_code=") {
		t.Fatalf("callback %q", callback)
	}
	tp.mu.Lock()
	asked := tp.asked
	tp.mu.Unlock()
	if len(asked) != 1 || asked[0].Principal != alice || asked[0].Challenge == "" || asked[0].RedirectURI != h.srv.URL+connect.CallbackPath+"tvgithub" ||
		strings.Join(asked[0].Scopes, " ") != "repo" {
		t.Fatalf("Authorize was asked %+v", asked)
	}
	// A plain code in place of connect_code is not this provider's answer.
	if r := b.do(t, http.MethodGet, strings.Replace(callback, "connect_code=", "code=", 1), nil); r.status != http.StatusBadRequest || !h.refusedFor("code_missing") {
		t.Errorf("a plain code: %d, want refused", r.status)
	}
	// That spent the flow: a new one, followed through.
	b2 := newBrowser(t)
	link2 := h.link(alice, "tvgithub")
	b2.do(t, http.MethodGet, link2, nil)
	done := b2.do(t, http.MethodPost, h.srv.URL+connect.StartPath, url.Values{"t": {tokenOf(t, link2)}})
	if done.status != http.StatusOK || !strings.Contains(done.body, "Token Vault GitHub is connected") {
		t.Fatalf("after consent: %d %q", done.status, done.body)
	}
	h.vault.mu.Lock()
	via := h.vault.via
	h.vault.mu.Unlock()
	if len(via) != 1 || !strings.HasPrefix(via[0], alice.String()+" tvgithub auth0 cac_") {
		t.Errorf("connections via = %q, want alice's through auth0", via)
	}
	if got := h.landedAfter(1); len(got) != 1 || got[0] != alice.String()+" tvgithub" {
		t.Errorf("Connected saw %q", got)
	}
	if r := b2.do(t, http.MethodGet, done.url.String(), nil); r.status != http.StatusBadRequest || !h.refusedFor("state_spent") {
		t.Errorf("the callback again: %d, want refused", r.status)
	}
	if n := len(h.events(audit.ConnectStarted)); n != 2 {
		t.Errorf("connect.started = %d, want 2", n)
	}
}

package connect_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

var (
	alice   = broker.Principal{Team: "T1", User: "U1"}
	mallory = broker.Principal{Team: "T1", User: "U9"}
)

// harness is Flows on a public loopback server, in front of the simulated
// providers' real OAuth endpoints (authorize with PKCE, token), the real
// vault, audit trail and broker (whose refusal counters record refusals),
// on real Redis where the tests have it.
type harness struct {
	t      *testing.T
	ctx    context.Context
	env    *simenv.Env
	st     store.Store
	clock  *clocktest.Clock
	flows  *connect.Flows
	srv    *httptest.Server
	logs   *logtest.Buffer
	vault  *seenVault
	mu     sync.Mutex
	landed []string // "principal service", as Connected saw them
	// auditDown makes the trail refuse every event Flows records itself.
	auditDown atomic.Bool
}

// seenVault is the real vault, remembering the tokens it was handed so a
// test can look for them where they must never be.
type seenVault struct {
	next   connect.Vault
	mu     sync.Mutex
	tokens []string
	down   atomic.Bool // Connect fails, as a store that does not answer
	// via are the connections made through another (ConnectVia), as
	// "principal service via account-id": the simulated services are not
	// renewed through another, so they are kept here.
	via []string
}

func (v *seenVault) ConnectVia(_ context.Context, principal, service, via, _, accountID string, _ []string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.via = append(v.via, principal+" "+service+" "+via+" "+accountID)
	return "", nil
}

func (v *seenVault) ConnectAccount(ctx context.Context, principal, service, account, accountID string, scopes []string, tok *oauth2.Token) (string, error) {
	v.mu.Lock()
	v.tokens = append(v.tokens, tok.AccessToken, tok.RefreshToken)
	v.mu.Unlock()
	if v.down.Load() {
		return "", errors.New("store unavailable")
	}
	return v.next.ConnectAccount(ctx, principal, service, account, accountID, scopes, tok)
}

func newHarness(t *testing.T, more ...func(map[string]connect.Provider)) *harness {
	t.Helper()
	h := &harness{t: t, ctx: t.Context(), clock: clocktest.New(time.Now()), logs: &logtest.Buffer{}}
	h.st = redistest.Open(t)()
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env, err := simenv.Start(h.ctx, simenv.Options{Store: h.st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	h.env = env
	h.vault = &seenVault{next: env.Vault}
	var handler http.Handler = http.NotFoundHandler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)
	providers := map[string]connect.Provider{}
	for name, c := range sim.DefaultClients() {
		providers[name] = connect.Provider{
			Name: name,
			Config: &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, Scopes: []string{"read"},
				Endpoint: oauth2.Endpoint{AuthURL: env.URL + sim.AuthorizePath(name), TokenURL: env.URL + sim.TokenPath(name), AuthStyle: oauth2.AuthStyleInParams}},
			// The simulated consent page consents at once for whoever
			// login_hint names: the person logged in at the provider.
			AuthOptions: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("login_hint", "person-at-provider")},
		}
	}
	for _, m := range more {
		m(providers)
	}
	h.flows, err = connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.vault, Refuser: env.Broker,
		Audit: recorderFunc(func(ctx context.Context, e audit.Event) (audit.Event, error) {
			if h.auditDown.Load() {
				return audit.Event{}, errors.New("audit store unavailable")
			}
			return env.Audit.Record(ctx, e)
		}),
		Providers: providers, Now: h.clock.Now, Logger: logger,
		Connected: func(_ context.Context, p broker.Principal, service, _ string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.landed = append(h.landed, p.String()+" "+service)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	handler = h.flows.Handler()
	return h
}

type recorderFunc func(ctx context.Context, e audit.Event) (audit.Event, error)

func (f recorderFunc) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	return f(ctx, e)
}

// browser is a person's browser: it keeps cookies and, like a browser,
// follows redirects, except where a test stops it at the callback.
type browser struct {
	c      *http.Client
	header http.Header // sent with every request (Sec-Fetch-Site, …)
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{c: &http.Client{Jar: jar}, header: http.Header{}}
}

// stopAtCallback makes the browser stop at the redirect to the callback,
// for a test to take its URL elsewhere.
func (b *browser) stopAtCallback() {
	b.c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.Path, connect.CallbackPath) {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

// response is what a browser got: status and body (the page).
type response struct {
	status int
	body   string
	header http.Header
	url    *url.URL // the last URL, after redirects
}

func (b *browser) do(t *testing.T, method, u string, form url.Values) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: string(raw), header: resp.Header, url: resp.Request.URL}
}

// tokenOf takes the link's token, as the start page's form carries it.
func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("t")
}

// link asks Flows for p's link to service.
func (h *harness) link(p broker.Principal, service string) string {
	h.t.Helper()
	l, err := h.flows.Link(p, service)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// open is a person opening their link and pressing Continue.
func (h *harness) open(b *browser, link string) response {
	h.t.Helper()
	page := b.do(h.t, http.MethodGet, link, nil)
	if page.status != http.StatusOK || !strings.Contains(page.body, "Continue to") {
		h.t.Fatalf("start page: %d %q", page.status, page.body)
	}
	return b.do(h.t, http.MethodPost, h.srv.URL+connect.StartPath, url.Values{"t": {tokenOf(h.t, link)}})
}

// events are the trail's events of kind.
func (h *harness) events(kind audit.Kind) []audit.Event {
	h.t.Helper()
	all, err := h.env.Audit.Tail(h.ctx, 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// refusedFor says whether a connect.refused event with reason is on the
// trail (the first of an actor and reason in a window is recorded at once).
func (h *harness) refusedFor(reason string) bool {
	h.t.Helper()
	return slices.ContainsFunc(h.events(audit.ConnectRefused), func(e audit.Event) bool { return e.Result == reason })
}

func (h *harness) connected(p broker.Principal, service string) bool {
	h.t.Helper()
	c, err := h.env.Vault.Connection(h.ctx, p.String(), service)
	return err == nil && c.Status == "active"
}

// disconnect revokes p's connection to service, as p would.
func (h *harness) disconnect(p broker.Principal, service string) {
	h.t.Helper()
	if err := h.env.Vault.Revoke(h.ctx, p.String(), service); err != nil {
		h.t.Fatal(err)
	}
}

func decode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func encode(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}

// landedAfter returns what Connected saw, once it has seen n connections:
// Connected runs after the browser has its page.
func (h *harness) landedAfter(n int) []string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := slices.Clone(h.landed)
		h.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

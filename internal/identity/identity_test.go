package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/connect/connecttest"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/identity/oidctest"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

var (
	alice   = broker.Principal{Team: "T1", User: "U1"}
	mallory = broker.Principal{Team: "T1", User: "U9"}
)

// Anna is alice at the IdP, and Mark is mallory: both sign in with their
// second factor.
var (
	anna = oidctest.Person{Subject: "idp|anna", Email: "anna@example.com", AMR: []string{"pwd", "mfa"}}
	mark = oidctest.Person{Subject: "idp|mark", Email: "mark@example.com", AMR: []string{"pwd", "mfa"}}
)

// harness is the IdP (a real OpenID Provider, mockoidc) and AgentHub's
// public listener running the sign-in flows, with the real audit trail and
// broker (for refusals) on real Redis where the tests have it.
type harness struct {
	t      *testing.T
	ctx    context.Context
	op     *oidctest.OP
	env    *simenv.Env
	st     store.Store
	idp    *identity.IdP
	flows  *connect.Flows
	srv    *httptest.Server
	logs   *logtest.Buffer
	mu     sync.Mutex
	signed []string // "principal request", as SignedIn was told
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, ctx: t.Context(), logs: &logtest.Buffer{}}
	h.op = oidctest.Start(t)
	op := h.op
	st := redistest.Open(t)()
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env, err := simenv.Start(h.ctx, simenv.Options{Store: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	h.env, h.st = env, st
	h.idp, err = identity.New(h.ctx, identity.Options{
		Issuer: op.Issuer(), ClientID: op.ClientID, ClientSecret: op.ClientSecret, Name: "Example SSO",
		Store: st, Audit: env.Audit, Logger: logger,
		EmailOf: func(_ context.Context, p broker.Principal) (string, error) {
			return map[broker.Principal]string{alice: "Anna@Example.com", mallory: "mark@example.com"}[p], nil
		},
		SignedIn: func(_ context.Context, p broker.Principal, id string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.signed = append(h.signed, p.String()+" "+id)
			if id == "req-gone" {
				return errors.New("the request no longer waits")
			}
			return nil
		},
		Describe: func(_ context.Context, id string) string { return "github.merge_pull_request on acme/payments" },
		Enrol: func(_ context.Context, p broker.Principal, by, id string, reset bool) (stepup.Enrolment, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.signed = append(h.signed, fmt.Sprintf("enrol %s by %s for %q reset=%v", p, by, id, reset))
			return stepup.Enrolment{Secret: secret.New(totpKey), URI: secret.New("otpauth://totp/AgentHub?secret=" + totpKey)}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = http.NotFoundHandler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.srv.Close)
	h.flows, err = connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: st, Vault: env.Vault, Refuser: env.Broker, Audit: env.Audit,
		Providers: map[string]connect.Provider{identity.Service: h.idp.Provider()}, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	handler = h.flows.Handler()
	return h
}

// signIn is p's browser opening a fresh link for purpose and signing in at
// the OP as who.
func (h *harness) signIn(p broker.Principal, purpose string, who oidctest.Person) connecttest.Response {
	h.t.Helper()
	b := connecttest.New(h.t, h.srv.URL)
	return h.signInWith(b, p, purpose, who)
}

func (h *harness) signInWith(b *connecttest.Browser, p broker.Principal, purpose string, who oidctest.Person) connecttest.Response {
	h.t.Helper()
	link, err := h.flows.LinkFor(p, identity.Service, purpose)
	if err != nil {
		h.t.Fatal(err)
	}
	h.op.SignInAs(who)
	return b.Open(link)
}

// refused reports whether the trail holds a refusal of kind for reason.
func (h *harness) refused(kind audit.Kind, reason string) bool {
	return slices.ContainsFunc(h.events(), func(e audit.Event) bool { return e.Kind == kind && e.Result == reason })
}

func (h *harness) events() []audit.Event {
	h.t.Helper()
	all, err := h.env.Audit.Tail(h.ctx, 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	return all
}

func (h *harness) signedIns() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.signed)
}

func (h *harness) link(p broker.Principal, who oidctest.Person) {
	h.t.Helper()
	if r := h.signIn(p, identity.PurposeLink, who); r.Status != http.StatusOK || !strings.Contains(r.Body, "Your identity is linked") {
		h.t.Fatalf("link %s as %s: %d %s", p, who.Subject, r.Status, r.Body)
	}
}

func (h *harness) linked(p broker.Principal) (identity.Identity, bool) {
	h.t.Helper()
	id, ok, err := h.idp.Linked(h.ctx, p)
	if err != nil {
		h.t.Fatal(err)
	}
	return id, ok
}

// noCanary: the client secret and the codes and tokens the OP issued are
// in no page, log line or audit event.
func (h *harness) noCanary(pages ...string) {
	h.t.Helper()
	var trail strings.Builder
	for _, e := range h.events() {
		b, _ := json.Marshal(e)
		trail.Write(b)
	}
	secrets := append([]string{oidctest.SecretCanary}, h.op.Issued()...)
	if len(secrets) < 4 {
		h.t.Fatalf("the OP issued %d tokens: the check would prove nothing", len(secrets)-1)
	}
	for where, text := range map[string]string{"pages": strings.Join(pages, "\n"), "logs": h.logs.String(), "trail": trail.String()} {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				h.t.Errorf("the client secret or a token the OP issued is in the %s", where)
			}
		}
	}
}

// Linking: a fresh sign-in with the second factor links the Slack user to
// the identity with their email; the sign-in asked the OP for a fresh
// login with the multi-factor policy, PKCE and a nonce.
func TestLink(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	id, ok := h.linked(alice)
	if !ok || id.Subject != anna.Subject || id.Issuer != h.op.Issuer() {
		t.Fatalf("Linked(alice) = %+v, %v", id, ok)
	}
	reqs := h.op.AuthRequests()
	q := reqs[len(reqs)-1]
	for k, want := range map[string]string{"prompt": "login", "max_age": "0", "acr_values": identity.DefaultACR, "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	if q.Get("nonce") == "" || q.Get("code_challenge") == "" || !strings.Contains(q.Get("scope"), "openid") {
		t.Errorf("authorization request lacks nonce, PKCE or openid: %v", q)
	}
	if !slices.ContainsFunc(h.events(), func(e audit.Event) bool {
		return e.Kind == audit.IdentityLinked && e.Actor == alice.String() && e.Detail["subject"] == anna.Subject
	}) {
		t.Error("identity.linked is not on the record")
	}
	// Linking again as the same identity changes nothing.
	h.link(alice, anna)
	h.noCanary()
}

// Linking refusals: someone else's identity (their email is not the Slack
// user's), an identity already linked to another Slack user, a second
// identity for one Slack user, an unverified email.
func TestLinkRefusals(t *testing.T) {
	h := newHarness(t)
	r := h.signIn(alice, identity.PurposeLink, mark)
	if r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "email_mismatch") {
		t.Errorf("alice linking mark: %d, email_mismatch recorded %v", r.Status, h.refused(audit.IdentityRefused, "email_mismatch"))
	}
	unverified := anna
	unverified.Unverified = true
	if r := h.signIn(alice, identity.PurposeLink, unverified); r.Status != http.StatusForbidden {
		t.Errorf("an unverified email linked: %d", r.Status)
	}
	if _, ok := h.linked(alice); ok {
		t.Fatal("alice is linked after refusals")
	}
	h.link(alice, anna)

	// mallory's Slack user, with an IdP that knows anna's email there too,
	// cannot take anna's identity: one identity, one Slack user.
	h.idpEmailFor(mallory, anna.Email)
	if r := h.signIn(mallory, identity.PurposeLink, anna); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "identity_taken") {
		t.Errorf("mallory linking anna's identity: %d", r.Status)
	}
	// alice cannot add a second identity without unlinking the first.
	other := oidctest.Person{Subject: "idp|anna-2", Email: anna.Email, AMR: anna.AMR}
	if r := h.signIn(alice, identity.PurposeLink, other); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "other_identity_linked") {
		t.Errorf("a second identity for alice: %d", r.Status)
	}
	if id, _ := h.linked(alice); id.Subject != anna.Subject {
		t.Errorf("alice's link changed to %s", id.Subject)
	}
	if _, ok := h.linked(mallory); ok {
		t.Error("mallory is linked")
	}
}

// idpEmailFor makes the harness's Slack directory say p has email.
func (h *harness) idpEmailFor(p broker.Principal, email string) {
	h.t.Helper()
	idp, err := identity.New(h.ctx, identity.Options{
		Issuer: h.op.Issuer(), ClientID: h.op.ClientID, ClientSecret: h.op.ClientSecret,
		Store: h.st, Audit: h.env.Audit,
		EmailOf: func(context.Context, broker.Principal) (string, error) { return email, nil },
	})
	if err != nil {
		h.t.Fatal(err)
	}
	flows, err := connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.env.Vault, Refuser: h.env.Broker, Audit: h.env.Audit,
		Providers: map[string]connect.Provider{identity.Service: idp.Provider()},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.flows = flows
	h.srv.Config.Handler = flows.Handler()
}

// Step-up by sign-in counts only a fresh login, with the second factor, of
// the identity linked to the request's owner, once.
func TestStepUp(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	const req = "req-0001"

	stale := anna
	stale.AuthAgo = 10 * time.Minute
	noFactor := anna
	noFactor.AMR = []string{"pwd"}
	noTime := anna
	noTime.NoAuthTime = true
	for _, tc := range []struct {
		name   string
		who    oidctest.Person
		reason string
	}{
		{"another person's login", mark, "wrong_identity"},
		{"a stale login", stale, "auth_time_stale"},
		{"no second factor", noFactor, "factor_missing"},
		{"no auth_time", noTime, "auth_time_missing"},
	} {
		r := h.signIn(alice, identity.StepUpPurpose(req), tc.who)
		if r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, tc.reason) {
			t.Errorf("%s: status %d, %s recorded %v", tc.name, r.Status, tc.reason, h.refused(audit.IdentityRefused, tc.reason))
		}
		if got := h.signedIns(); len(got) != 0 {
			t.Fatalf("%s verified the request: %v", tc.name, got)
		}
	}
	for _, e := range h.events() {
		if e.Kind == audit.IdentityRefused && e.RequestID != req {
			t.Errorf("a refused step-up sign-in is recorded without its request: %+v", e)
		}
	}
	// mallory, never linked, cannot verify with any login.
	if r := h.signIn(mallory, identity.StepUpPurpose("req-0002"), mark); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "not_linked") {
		t.Errorf("an unlinked step-up: %d", r.Status)
	}

	b := connecttest.New(t, h.srv.URL)
	b.StopAt(connecttest.AtCallback)
	callback := h.signInWith(b, alice, identity.StepUpPurpose(req), anna).Header.Get("Location")
	b.StopAt(nil)
	r := b.Do(http.MethodGet, callback, nil)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Verified") {
		t.Fatalf("alice's fresh sign-in: %d %s", r.Status, r.Body)
	}
	if got := h.signedIns(); !slices.Equal(got, []string{alice.String() + " " + req}) {
		t.Fatalf("SignedIn told %v", got)
	}
	if !slices.ContainsFunc(h.events(), func(e audit.Event) bool {
		return e.Kind == audit.StepUpPassed && e.RequestID == req && e.Detail["factor"] == "oidc" && e.Detail["subject"] == anna.Subject
	}) {
		t.Error("stepup.passed with the sign-in is not on the record")
	}
	// The same callback again is refused: one login, one request.
	if r := b.Do(http.MethodGet, callback, nil); r.Status == http.StatusOK || !h.refused(audit.ConnectRefused, "state_spent") {
		t.Errorf("a replayed callback: %d", r.Status)
	}
	if got := h.signedIns(); len(got) != 1 {
		t.Errorf("the replay verified again: %v", got)
	}
	h.noCanary(b.Pages...)
}

// The id_token is checked whatever the OP's token endpoint says: a token
// signed by another key, for another client, or with a nonce of another
// flow does not count.
func TestForgedIDTokens(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := mockoidc.NewKeypair(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tamper func(jwt.MapClaims) *mockoidc.Keypair
		reason string
	}{
		{"another key", func(c jwt.MapClaims) *mockoidc.Keypair { return other }, "id_token_invalid"},
		{"another audience", func(c jwt.MapClaims) *mockoidc.Keypair { c["aud"] = "someone-else"; return h.op.Keypair }, "id_token_invalid"},
		{"another issuer", func(c jwt.MapClaims) *mockoidc.Keypair { c["iss"] = "https://evil.example"; return h.op.Keypair }, "id_token_invalid"},
		{"expired", func(c jwt.MapClaims) *mockoidc.Keypair {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			return h.op.Keypair
		}, "id_token_invalid"},
		{"another nonce", func(c jwt.MapClaims) *mockoidc.Keypair { c["nonce"] = "not-this-flow"; return h.op.Keypair }, "nonce_mismatch"},
	} {
		h.op.Tamper(tc.tamper)
		r := h.signIn(alice, identity.StepUpPurpose("req-forged"), anna)
		if r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, tc.reason) {
			t.Errorf("%s: status %d, %s recorded %v", tc.name, r.Status, tc.reason, h.refused(audit.IdentityRefused, tc.reason))
		}
	}
	h.op.Tamper(nil)
	if got := h.signedIns(); len(got) != 0 {
		t.Fatalf("a forged id_token verified: %v", got)
	}
}

// Unlinking needs the linked identity itself to sign in: a Slack session
// alone cannot swap in another identity.
func TestUnlink(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	if r := h.signIn(alice, identity.PurposeUnlink, mark); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "wrong_identity") {
		t.Errorf("unlink as mark: %d", r.Status)
	}
	if _, ok := h.linked(alice); !ok {
		t.Fatal("another identity's sign-in unlinked alice")
	}
	if r := h.signIn(alice, identity.PurposeUnlink, anna); r.Status != http.StatusOK || !strings.Contains(r.Body, "unlinked") {
		t.Fatalf("unlink as anna: %d %s", r.Status, r.Body)
	}
	if _, ok := h.linked(alice); ok {
		t.Fatal("still linked")
	}
	if !slices.ContainsFunc(h.events(), func(e audit.Event) bool { return e.Kind == audit.IdentityUnlinked && e.Actor == alice.String() }) {
		t.Error("identity.unlinked is not on the record")
	}
	// The identity is free again: mallory's Slack user may now link it if
	// its email is anna's.
	h.idpEmailFor(mallory, anna.Email)
	h.link(mallory, anna)
}

// totpKey is the key the harness's Enrol hands out.
const totpKey = "JBSWY3DPEHPK3PXPJBSWY3DP"

// The enrolment gate: a fresh sign-in of the linked identity lets its
// person set up an authenticator (or replace one); another identity's does
// not, nor a sign-in of someone who linked none.
func TestEnrolGate(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	if r := h.signIn(alice, identity.EnrolPurpose("req-9", false), mark); r.Status != http.StatusForbidden {
		t.Errorf("enrolment gate passed by another identity: %d", r.Status)
	}
	if r := h.signIn(mallory, identity.EnrolPurpose("", true), mark); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "not_linked") {
		t.Errorf("reset gate passed without a link: %d", r.Status)
	}
	if got := h.signedIns(); len(got) != 0 {
		t.Fatalf("the gate opened: %v", got)
	}
	if r := h.signIn(alice, identity.EnrolPurpose("req-9", false), anna); r.Status != http.StatusOK || !strings.Contains(r.Body, totpKey) || !strings.Contains(r.Body, "Confirm") {
		t.Fatalf("enrolment sign-in: %d, want the key on the page", r.Status)
	}
	if r := h.signIn(alice, identity.EnrolPurpose("", true), anna); r.Status != http.StatusOK {
		t.Fatalf("reset sign-in: %d %s", r.Status, r.Body)
	}
	want := []string{
		fmt.Sprintf("enrol %s by oidc:%s for %q reset=false", alice, anna.Subject, "req-9"),
		fmt.Sprintf("enrol %s by oidc:%s for %q reset=true", alice, anna.Subject, ""),
	}
	if got := h.signedIns(); !slices.Equal(got, want) {
		t.Errorf("Enrol told %q, want %q", got, want)
	}
}

// Where the IdP says nothing of amr (OIDC_AMR=-), the acr it says it met
// must be the one asked for: acr_values alone is a wish.
func TestACRWhenAMRIsOff(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	idp, err := identity.New(h.ctx, identity.Options{
		Issuer: h.op.Issuer(), ClientID: h.op.ClientID, ClientSecret: h.op.ClientSecret, AMR: "-",
		Store: h.st, Audit: h.env.Audit,
		SignedIn: func(context.Context, broker.Principal, string) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	flows, err := connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.env.Vault, Refuser: h.env.Broker, Audit: h.env.Audit,
		Providers: map[string]connect.Provider{identity.Service: idp.Provider()},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.flows = flows
	h.srv.Config.Handler = flows.Handler()
	noAMR := anna
	noAMR.AMR = nil
	if r := h.signIn(alice, identity.StepUpPurpose("req-acr"), noAMR); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "factor_missing") {
		t.Errorf("a sign-in with neither amr nor acr: %d", r.Status)
	}
	h.op.Tamper(func(c jwt.MapClaims) *mockoidc.Keypair { c["acr"] = identity.DefaultACR; return h.op.Keypair })
	defer h.op.Tamper(nil)
	if r := h.signIn(alice, identity.StepUpPurpose("req-acr"), noAMR); r.Status != http.StatusOK {
		t.Errorf("a sign-in whose acr is the one asked for: %d %s", r.Status, r.Body)
	}
}

// An email is compared as ASCII without case: Unicode case folding would
// let a look-alike address (a Kelvin sign for a K) match.
func TestLinkEmailIsASCII(t *testing.T) {
	h := newHarness(t)
	h.idpEmailFor(mallory, "kim@example.com")
	lookalike := oidctest.Person{Subject: "idp|kim", Email: "\u212aim@example.com", AMR: anna.AMR}
	if r := h.signIn(mallory, identity.PurposeLink, lookalike); r.Status != http.StatusForbidden || !h.refused(audit.IdentityRefused, "email_mismatch") {
		t.Errorf("a look-alike email linked: %d", r.Status)
	}
	upper := lookalike
	upper.Email = "KIM@EXAMPLE.COM"
	h.link(mallory, upper)
}

// A sign-in for a request that no longer waits for it (it ran, expired,
// was denied) says so, instead of "Verified".
func TestStepUpForARequestGone(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	r := h.signIn(alice, identity.StepUpPurpose("req-gone"), anna)
	if r.Status != http.StatusOK || strings.Contains(r.Body, "<h1>Verified") || !strings.Contains(r.Body, "nothing ran") {
		t.Errorf("page for a request that did not take the sign-in: %d %s", r.Status, r.Body)
	}
}

// With an identity provider, connecting GitHub starts with a sign-in of
// the identity linked to the link's Slack user: the link opened by its
// person connects; the same link's flow signed in as someone else (a
// forwarded link) connects nothing.
func TestConnectAfterSignIn(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	c := sim.DefaultClients()[sim.ServiceGitHub]
	github := connect.Provider{Name: "GitHub", LoginHint: true, SignInFirst: true,
		Config: &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, Scopes: []string{"repo"},
			Endpoint: oauth2.Endpoint{AuthURL: h.env.URL + sim.AuthorizePath(sim.ServiceGitHub), TokenURL: h.env.URL + sim.TokenPath(sim.ServiceGitHub),
				AuthStyle: oauth2.AuthStyleInParams}}}
	flows, err := connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.env.Vault, Refuser: h.env.Broker, Audit: h.env.Audit,
		Providers: map[string]connect.Provider{identity.Service: h.idp.Provider(), sim.ServiceGitHub: github}, SignIn: identity.Service,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.flows = flows
	h.srv.Config.Handler = flows.Handler()
	connected := func(p broker.Principal) bool {
		_, err := h.env.Vault.Connection(h.ctx, p.String(), sim.ServiceGitHub)
		return err == nil
	}
	open := func(who oidctest.Person) connecttest.Response {
		link, err := flows.Link(alice, sim.ServiceGitHub)
		if err != nil {
			t.Fatal(err)
		}
		h.op.SignInAs(who)
		return connecttest.New(t, h.srv.URL).Open(link)
	}
	// The start page lets its form lead to the identity provider, where
	// Continue goes first, and says so.
	link, err := flows.Link(alice, sim.ServiceGitHub)
	if err != nil {
		t.Fatal(err)
	}
	start := connecttest.New(t, h.srv.URL).Do(http.MethodGet, link, nil)
	opURL, _ := url.Parse(h.op.Issuer())
	if csp := start.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' http://"+opURL.Host) || !strings.Contains(start.Body, "sign in at") {
		t.Errorf("start page CSP %q; want form-action to allow the identity provider, and the page to say it comes first", csp)
	}
	if r := open(mark); r.Status != http.StatusForbidden || connected(alice) || !h.refused(audit.IdentityRefused, "wrong_identity") {
		t.Fatalf("alice's link signed in as mark: %d, connected %v", r.Status, connected(alice))
	}
	if r := open(anna); r.Status != http.StatusOK || !strings.Contains(r.Body, "GitHub is connected") || !connected(alice) {
		t.Fatalf("alice's link signed in as anna: %d %s", r.Status, r.Body)
	}
	if !slices.ContainsFunc(h.events(), func(e audit.Event) bool {
		return e.Kind == audit.IdentityVerified && e.Actor == alice.String() && e.Detail["subject"] == anna.Subject
	}) {
		t.Error("the sign-in before the connection is not on the record")
	}
	if _, err := connect.New(connect.Options{PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.env.Vault,
		Refuser: h.env.Broker, Audit: h.env.Audit, Providers: map[string]connect.Provider{sim.ServiceGitHub: github}}); err == nil {
		t.Error("a provider that signs in first was accepted without an identity provider")
	}
}

// With Keep (AGENTHUB_VAULT=auth0), a sign-in asks for offline_access, and
// the refresh token of one that linked the person, or verified them before
// a connection, goes to Keep for them; a refused sign-in keeps nothing.
func TestKeepsTheSignInsRefreshToken(t *testing.T) {
	h := newHarness(t)
	var kept []string
	idp, err := identity.New(h.ctx, identity.Options{
		Issuer: h.op.Issuer(), ClientID: h.op.ClientID, ClientSecret: h.op.ClientSecret, Store: h.st, Audit: h.env.Audit,
		EmailOf: func(_ context.Context, p broker.Principal) (string, error) {
			return map[broker.Principal]string{alice: "anna@example.com"}[p], nil
		},
		Keep: func(_ context.Context, p broker.Principal, refresh secret.Secret) error {
			if refresh.IsZero() {
				t.Error("Keep was given no token")
			}
			kept = append(kept, p.String())
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if scopes := idp.Provider().PurposeScopes(identity.PurposeLink); !slices.Contains(scopes, "offline_access") {
		t.Errorf("a link's further scopes = %v, want offline_access", scopes)
	}
	flows, err := connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.env.Vault, Refuser: h.env.Broker, Audit: h.env.Audit,
		Providers: map[string]connect.Provider{identity.Service: idp.Provider()},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.flows = flows
	h.srv.Config.Handler = flows.Handler()
	if r := h.signIn(alice, identity.PurposeLink, mark); r.Status == http.StatusOK {
		t.Fatal("alice linked mark's identity")
	}
	if len(kept) != 0 {
		t.Fatalf("a refused sign-in kept %v", kept)
	}
	if r := h.signIn(alice, identity.PurposeLink, anna); r.Status != http.StatusOK {
		t.Fatalf("link: %d %s", r.Status, r.Body)
	}
	if len(kept) != 1 || kept[0] != alice.String() {
		t.Errorf("kept = %v, want alice's once", kept)
	}
}

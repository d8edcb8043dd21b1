// Package auth0test is an httptest fake of an Auth0 tenant's Token Vault
// exchange (POST /oauth/token with the federated connection grant), for
// the tests of the Auth0 client and of the vault's Auth0 backend. It
// checks every parameter the exchange must carry, answers as Auth0
// documents (401 for an account not connected, 400 invalid_grant for a
// refresh token it does not know, 403 for a tenant not set up), and
// issues provider access tokens a fake provider can check with Valid.
package auth0test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/auth0"
)

// The fake's application.
const (
	ClientID     = "agenthub-test-client"
	ClientSecret = "CANARY-auth0-client-secret"
)

// Exchange is one exchange the fake answered, its parameters as sent
// (the subject token and client secret masked).
type Exchange struct {
	Connection, LoginHint, Status string
}

// Tenant is the fake.
type Tenant struct {
	*httptest.Server
	// TTL is the provider access tokens' lifetime (expires_in).
	TTL time.Duration
	// Delay widens the window in which concurrent exchanges would overlap.
	Delay time.Duration

	mu        sync.Mutex
	subjects  map[string]string // refresh token → user
	accounts  map[string]string // user + connection → account (login_hint)
	scopes    map[string]string // user + connection → scope granted
	forbidden map[string]bool   // connections without Token Vault
	issued    map[string]time.Time
	calls     []Exchange
}

// New starts a tenant on loopback.
func New(tb testing.TB) *Tenant {
	tb.Helper()
	t := &Tenant{TTL: time.Hour, subjects: map[string]string{}, accounts: map[string]string{}, scopes: map[string]string{},
		forbidden: map[string]bool{}, issued: map[string]time.Time{}}
	t.Server = httptest.NewServer(http.HandlerFunc(t.serve))
	tb.Cleanup(t.Close)
	return t
}

// URL of the tenant, as auth0.Options.BaseURL.
func (t *Tenant) BaseURL() string { return t.URL + "/" }

func random(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// SignIn issues user an Auth0 refresh token (offline_access).
func (t *Tenant) SignIn(user string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt := random("CANARY-a0rt-")
	t.subjects[rt] = user
	return rt
}

// RevokeRefresh makes Auth0 forget a refresh token (it expired, or was
// revoked): exchanges with it get invalid_grant.
func (t *Tenant) RevokeRefresh(rt string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subjects, rt)
}

// Connect connects user's account on connection, with scope.
func (t *Tenant) Connect(user, connection, account, scope string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accounts[user+"\x00"+connection] = account
	t.scopes[user+"\x00"+connection] = scope
}

// Disconnect removes user's account on connection: exchanges get 401.
func (t *Tenant) Disconnect(user, connection string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, user+"\x00"+connection)
}

// Forbid makes connection's exchanges answer 403, as a tenant whose
// connection has no Token Vault.
func (t *Tenant) Forbid(connection string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forbidden[connection] = true
}

// Valid reports whether access is a provider token the fake issued that
// has not expired.
func (t *Tenant) Valid(access string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.issued[access]
	return ok && time.Now().Before(exp)
}

// Expire makes a provider token issued by the fake expire now.
func (t *Tenant) Expire(access string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.issued[access]; ok {
		t.issued[access] = time.Now().Add(-time.Second)
	}
}

// ExpireAll makes every provider token issued so far expire now.
func (t *Tenant) ExpireAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.issued {
		t.issued[k] = time.Now().Add(-time.Second)
	}
}

// Exchanges are the exchanges answered, in order.
func (t *Tenant) Exchanges() []Exchange {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Exchange(nil), t.calls...)
}

func (t *Tenant) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" {
		http.NotFound(w, r)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || r.ParseForm() != nil {
		refuse(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if t.Delay > 0 {
		time.Sleep(t.Delay)
	}
	f := r.PostForm
	conn := f.Get("connection")
	status := t.answer(w, f)
	t.mu.Lock()
	t.calls = append(t.calls, Exchange{Connection: conn, LoginHint: f.Get("login_hint"), Status: status})
	t.mu.Unlock()
}

// answer answers one exchange and returns what it said.
func (t *Tenant) answer(w http.ResponseWriter, f map[string][]string) string {
	get := func(k string) string {
		if v := f[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	switch {
	case get("client_id") != ClientID || get("client_secret") != ClientSecret:
		return refuse(w, http.StatusUnauthorized, "invalid_client")
	case get("grant_type") != auth0.GrantTokenVault:
		return refuse(w, http.StatusBadRequest, "unsupported_grant_type")
	case get("subject_token_type") != auth0.SubjectRefresh || get("requested_token_type") != auth0.RequestedTokenType:
		return refuse(w, http.StatusBadRequest, "invalid_request")
	case get("connection") == "" || get("subject_token") == "":
		return refuse(w, http.StatusBadRequest, "invalid_request")
	}
	conn := get("connection")
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.forbidden[conn] {
		return refuse(w, http.StatusForbidden, "unauthorized_client")
	}
	user, ok := t.subjects[get("subject_token")]
	if !ok {
		return refuse(w, http.StatusBadRequest, "invalid_grant")
	}
	account, ok := t.accounts[user+"\x00"+conn]
	if !ok || (get("login_hint") != "" && get("login_hint") != account) {
		return refuse(w, http.StatusUnauthorized, "federated_connection_refresh_token_not_found")
	}
	access := random("CANARY-" + conn + "-")
	t.issued[access] = time.Now().Add(t.TTL)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(t.TTL / time.Second),
		"scope": t.scopes[user+"\x00"+conn], "issued_token_type": auth0.RequestedTokenType,
	})
	return "ok"
}

func refuse(w http.ResponseWriter, status int, code string) string {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "the request quoted " + code})
	return code
}

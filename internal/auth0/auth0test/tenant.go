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
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agenthub/agenthub/internal/auth0"
)

// The fake's application, and the tenant's domain (auth0.Options.Domain;
// the fake answers on loopback whatever the domain).
const (
	ClientID     = "agenthub-test-client"
	ClientSecret = "CANARY-auth0-client-secret"
	Domain       = "acme.eu.auth0.com"
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
	// PublicURL is where browsers reach the tenant, if not at its own
	// server (the tenant served under an OpenID Provider's issuer:
	// oidctest.OP.Also); "" is URL.
	PublicURL string
	// Subject, when set, names the user of a refresh token the fake did
	// not issue itself (one the identity provider issued at sign-in).
	Subject func(refresh string) (user string, ok bool)
	// CIBAInterval is the polling interval CIBA requests get (0: none is
	// enforced); a poll sooner than it gets slow_down.
	CIBAInterval time.Duration
	// IDIssuer and Sign make the CIBA ID tokens another issuer's (the
	// OpenID Provider the tenant is served under); by default they are
	// https://Domain/'s, signed with the fake's own key.
	IDIssuer string
	Sign     func(jwt.MapClaims) (string, error)

	mu        sync.Mutex
	subjects  map[string]string // refresh token → user
	accounts  map[string]string // user + connection → account (login_hint)
	scopes    map[string]string // user + connection → scope granted
	forbidden map[string]bool   // connections without Token Vault
	issued    map[string]time.Time
	calls     []Exchange
	// The My Account API: its tokens, connect sessions, and the
	// connected accounts by ID.
	myTokens  map[string]myToken
	sessions  map[string]*session
	connected map[string]connected
	// CIBA: users enrolled in push, requests by auth_req_id.
	push      map[string]bool
	ciba      map[string]*cibaState
	cibaOrder []string
	key       *rsa.PrivateKey
}

type myToken struct {
	user    string
	scopes  string
	expires time.Time
}

type session struct {
	user, connection, redirect, state, challenge, ticket, code string
	scopes                                                     []string
}

type connected struct{ user, connection string }

// New starts a tenant on loopback.
func New(tb testing.TB) *Tenant {
	tb.Helper()
	t := &Tenant{TTL: time.Hour, subjects: map[string]string{}, accounts: map[string]string{}, scopes: map[string]string{},
		forbidden: map[string]bool{}, issued: map[string]time.Time{},
		myTokens: map[string]myToken{}, sessions: map[string]*session{}, connected: map[string]connected{},
		push: map[string]bool{}, ciba: map[string]*cibaState{}, key: newKey()}
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
	switch {
	case r.URL.Path == "/connect" && r.Method == http.MethodGet:
		t.consent(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/me/v1/"):
		t.myAccount(w, r)
		return
	case r.URL.Path == "/bc-authorize" && r.Method == http.MethodPost:
		t.bcAuthorize(w, r)
		return
	case r.URL.Path == "/.well-known/jwks.json":
		t.jwks(w, r)
		return
	case r.Method != http.MethodPost || r.URL.Path != "/oauth/token":
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
	case get("grant_type") == "refresh_token":
		return t.myAccountToken(w, get)
	case get("grant_type") == auth0.GrantCIBA:
		return t.pollCIBA(w, get)
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
	user, ok := t.userOf(get("subject_token"))
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

// myAccountToken answers a refresh token grant for the My Account API
// (a multi-resource refresh token): its audience and scopes only.
func (t *Tenant) myAccountToken(w http.ResponseWriter, get func(string) string) string {
	if get("audience") != "https://"+Domain+"/me/" {
		return refuse(w, http.StatusForbidden, "access_denied")
	}
	for _, sc := range strings.Fields(get("scope")) {
		if !strings.HasSuffix(sc, ":me:connected_accounts") {
			return refuse(w, http.StatusForbidden, "access_denied")
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	user, ok := t.userOf(get("refresh_token"))
	if !ok {
		return refuse(w, http.StatusBadRequest, "invalid_grant")
	}
	tok := random("CANARY-ma-")
	t.myTokens[tok] = myToken{user: user, scopes: get("scope"), expires: time.Now().Add(10 * time.Minute)}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 600, "scope": get("scope")})
	return "ok"
}

// knownConnections have Token Vault (connected accounts) enabled.
var knownConnections = map[string]bool{"github": true, "google-oauth2": true, "sign-in-with-slack": true}

// myAccount serves the connected accounts of the My Account API.
func (t *Tenant) myAccount(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t.mu.Lock()
	defer t.mu.Unlock()
	mt, ok := t.myTokens[tok]
	if !ok || time.Now().After(mt.expires) {
		refuse(w, http.StatusUnauthorized, "invalid_token")
		return
	}
	need := "create:me:connected_accounts"
	if r.Method == http.MethodDelete {
		need = "delete:me:connected_accounts"
	}
	if !slices.Contains(strings.Fields(mt.scopes), need) {
		refuse(w, http.StatusForbidden, "insufficient_scope")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/me/v1/connected-accounts/connect":
		var in struct {
			Connection, RedirectURI, State, CodeChallenge, CodeChallengeMethod string
			Scopes                                                             []string
		}
		if !readJSON(r, &in) || !knownConnections[in.Connection] || in.RedirectURI == "" || in.State == "" ||
			in.CodeChallengeMethod != "S256" || len(in.CodeChallenge) != 43 {
			refuse(w, http.StatusBadRequest, "invalid_request")
			return
		}
		id, ticket := random("as_"), random("tk_")
		t.sessions[id] = &session{user: mt.user, connection: in.Connection, redirect: in.RedirectURI, state: in.State,
			challenge: in.CodeChallenge, ticket: ticket, scopes: in.Scopes}
		public := t.URL
		if t.PublicURL != "" {
			public = strings.TrimSuffix(t.PublicURL, "/")
		}
		writeJSON(w, http.StatusCreated, map[string]any{"connect_uri": public + "/connect", "auth_session": id,
			"connect_params": map[string]string{"ticket": ticket}, "expires_in": 300})
	case r.Method == http.MethodPost && r.URL.Path == "/me/v1/connected-accounts/complete":
		var in struct{ AuthSession, ConnectCode, RedirectURI, CodeVerifier string }
		if !readJSON(r, &in) {
			refuse(w, http.StatusBadRequest, "invalid_request")
			return
		}
		s, ok := t.sessions[in.AuthSession]
		sum := sha256.Sum256([]byte(in.CodeVerifier))
		if !ok || s.user != mt.user || s.code == "" || in.ConnectCode != s.code || in.RedirectURI != s.redirect ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != s.challenge {
			refuse(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(t.sessions, in.AuthSession) // single use
		id := random("cac_")
		t.connected[id] = connected{user: s.user, connection: s.connection}
		t.accounts[s.user+"\x00"+s.connection] = s.user + "@" + s.connection
		t.scopes[s.user+"\x00"+s.connection] = strings.Join(s.scopes, " ")
		writeJSON(w, http.StatusCreated, map[string]any{"id": id, "connection": s.connection, "access_type": "offline",
			"created_at": time.Now().UTC().Format(time.RFC3339), "scopes": s.scopes})
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/me/v1/connected-accounts/accounts/"):
		id := strings.TrimPrefix(r.URL.Path, "/me/v1/connected-accounts/accounts/")
		c, ok := t.connected[id]
		if !ok || c.user != mt.user {
			refuse(w, http.StatusNotFound, "not_found")
			return
		}
		delete(t.connected, id)
		delete(t.accounts, c.user+"\x00"+c.connection)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// consent is the page a person's browser is sent to: the fake consents
// at once, and sends the browser back with a connect code.
func (t *Tenant) consent(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	t.mu.Lock()
	var found *session
	for _, s := range t.sessions {
		if s.ticket == ticket && ticket != "" {
			found = s
		}
	}
	if found != nil {
		found.code = random("cc_")
		found.ticket = "" // single use
	}
	t.mu.Unlock()
	if found == nil {
		http.Error(w, "unknown ticket", http.StatusBadRequest)
		return
	}
	back, err := url.Parse(found.redirect)
	if err != nil {
		http.Error(w, "bad redirect", http.StatusBadRequest)
		return
	}
	q := back.Query()
	q.Set("connect_code", found.code)
	q.Set("state", found.state)
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// Connected are user's connected accounts, by connection.
func (t *Tenant) Connected(user string) map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]string{}
	for id, c := range t.connected {
		if c.user == user {
			out[c.connection] = id
		}
	}
	return out
}

// readJSON decodes a JSON body whose keys are snake_case into v's
// CamelCase fields.
func readJSON(r *http.Request, v any) bool {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return false
	}
	var raw map[string]json.RawMessage
	if json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&raw) != nil {
		return false
	}
	camel := map[string]json.RawMessage{}
	for k, val := range raw {
		camel[strings.ReplaceAll(k, "_", "")] = val
	}
	b, _ := json.Marshal(camel)
	return json.Unmarshal(b, v) == nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// userOf is the user of a refresh token; t.mu is held.
func (t *Tenant) userOf(rt string) (string, bool) {
	if user, ok := t.subjects[rt]; ok {
		return user, true
	}
	if t.Subject != nil {
		return t.Subject(rt)
	}
	return "", false
}

// Package providertest is an httptest fake of the real providers' OAuth
// endpoints (GitHub, Google, Slack), for the tests of the connect flow and
// the bot: each answers in its provider's own shapes.
package providertest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/provider"
	"github.com/agenthub/agenthub/internal/secret"
)

// Fake is an httptest fake of one provider's OAuth endpoints
// (consent, token, revocation) and of one API call, in the shapes GitHub,
// Google or Slack answer in. It checks what a real one checks: the
// client's credentials, the redirect URI, PKCE (S256), single-use codes,
// rotating refresh tokens, and it ends a whole grant on revocation.
// Every token it mints starts with "CANARY", so tests can look for them
// where they must never be.
type Fake struct {
	kind     string // github, google, slack
	Server   *httptest.Server
	ClientID string
	Secret   string // starts "client-secret-CANARY"

	mu      sync.Mutex
	n       int
	codes   map[string]*fakeCode
	access  map[string]int // live access token → grant
	refresh map[string]int // live refresh token → grant
	dead    map[int]bool   // grants ended
	// account is who is signed in at the provider; team, at Slack.
	account, team string
	deny          bool // the person declines consent
	revokeDown    bool // revocation answers 500
	authParams    url.Values
	revocations   []string // what was asked to revoke, described
	apiAuth       []string // Authorization headers the API saw
	exchanges     int
	// granted are the scopes the person granted at Google so far: with
	// include_granted_scopes a consent adds to them, as Google's
	// incremental authorization does.
	granted []string
	scopes  map[int]string // grant → the scope its token responses name
	// ids are the accounts' stable IDs (GitHub's user ID, Google's sub),
	// which a rename keeps.
	ids map[string]int
}

// idOf is account's stable ID, given on first sight.
func (f *Fake) idOf(account string) int {
	if f.ids == nil {
		f.ids = map[string]int{}
	}
	if _, ok := f.ids[account]; !ok {
		f.ids[account] = 1000 + len(f.ids)
	}
	return f.ids[account]
}

// Rename gives the signed-in account a new name, as a GitHub login
// renamed: its ID stays.
func (f *Fake) Rename(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idOf(f.account)
	f.ids[name] = f.ids[f.account]
	f.account = name
}

type fakeCode struct {
	challenge, redirect string
	grant               int
	used                bool
	scope               string // what the token response names (Google)
}

// New starts a fake of kind: github, google or slack.
func New(t testing.TB, kind string) *Fake {
	f := &Fake{kind: kind, ClientID: kind + "-client", Secret: "client-secret-CANARY-" + kind,
		codes: map[string]*fakeCode{}, access: map[string]int{}, refresh: map[string]int{}, dead: map[int]bool{},
		account: map[string]string{"github": "octocat", "google": "ana@example.com", "slack": "U1"}[kind], team: "T1"}
	mux := http.NewServeMux()
	switch kind {
	case "github":
		mux.HandleFunc("GET /login/oauth/authorize", f.authorize)
		mux.HandleFunc("POST /login/oauth/access_token", f.token)
		mux.HandleFunc("GET /api/v3/user", f.user)
		mux.HandleFunc("DELETE /api/v3/applications/{client}/grant", f.githubRevoke)
		mux.HandleFunc("GET /api/v3/probe", f.api)
	case "google":
		mux.HandleFunc("GET /o/oauth2/v2/auth", f.authorize)
		mux.HandleFunc("POST /token", f.token)
		mux.HandleFunc("POST /revoke", f.googleRevoke)
		mux.HandleFunc("GET /calendar/v3/probe", f.api)
	case "slack":
		mux.HandleFunc("GET /oauth/v2/authorize", f.authorize)
		mux.HandleFunc("POST /api/oauth.v2.access", f.token)
		mux.HandleFunc("POST /api/auth.revoke", f.slackRevoke)
		mux.HandleFunc("GET /api/probe", f.api)
	}
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Server.Close)
	return f
}

func (f *Fake) mint(what string) string {
	f.n++
	return fmt.Sprintf("CANARY-%s-%s-%d", f.kind, what, f.n)
}

func (f *Fake) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authParams = q
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("client_id") != f.ClientID || err != nil || q.Get("response_type") != "code":
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		http.Error(w, "PKCE required", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	if f.deny {
		back.Set("error", "access_denied")
	} else {
		code := f.mint("code")
		f.codes[code] = &fakeCode{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), grant: f.n, scope: f.consent(q)}
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// consent is what a Google consent grants: the scopes asked for ("email"
// named as Google names it), with those granted before when the request
// says include_granted_scopes.
func (f *Fake) consent(q url.Values) string {
	if f.kind != "google" {
		return ""
	}
	var now []string
	if q.Get("include_granted_scopes") == "true" {
		now = slices.Clone(f.granted)
	}
	for _, s := range strings.Fields(q.Get("scope")) {
		if s == "email" {
			s = "https://www.googleapis.com/auth/userinfo.email"
		}
		if !slices.Contains(now, s) {
			now = append(now, s)
		}
	}
	f.granted = now
	return strings.Join(now, " ")
}

// fail answers a token request as the provider does.
func (f *Fake) fail(w http.ResponseWriter, code string) {
	switch f.kind {
	case "github": // GitHub answers 200 with an error
		writeJSON(w, http.StatusOK, map[string]any{"error": code})
	case "slack":
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": code})
	}
}

func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.PostForm.Get("client_id") != f.ClientID || r.PostForm.Get("client_secret") != f.Secret {
		f.fail(w, "invalid_client")
		return
	}
	var grant int
	switch {
	case r.PostForm.Get("grant_type") == "refresh_token":
		g, ok := f.refresh[r.PostForm.Get("refresh_token")]
		if !ok || f.dead[g] {
			f.fail(w, map[string]string{"github": "bad_refresh_token", "slack": "invalid_refresh_token", "google": "invalid_grant"}[f.kind])
			return
		}
		delete(f.refresh, r.PostForm.Get("refresh_token")) // rotation
		grant = g
	case r.PostForm.Get("code") != "":
		c, ok := f.codes[r.PostForm.Get("code")]
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		switch {
		case !ok || c.used:
			f.fail(w, "bad_verification_code")
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
			c.used = true
			f.fail(w, "invalid_code_verifier")
			return
		case r.PostForm.Get("redirect_uri") != c.redirect:
			f.fail(w, "redirect_uri_mismatch")
			return
		}
		c.used = true
		grant = c.grant
		f.exchanges++
		if f.scopes == nil {
			f.scopes = map[int]string{}
		}
		f.scopes[grant] = c.scope
	default:
		f.fail(w, "unsupported_grant_type")
		return
	}
	access, refresh := f.mint("access"), f.mint("refresh")
	f.access[access], f.refresh[refresh] = grant, grant
	switch f.kind {
	case "github":
		writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "bearer", "scope": "",
			"expires_in": 28800, "refresh_token": refresh, "refresh_token_expires_in": 15811200})
	case "google":
		claims, _ := json.Marshal(map[string]any{"iss": "https://accounts.google.com", "sub": fmt.Sprint(f.idOf(f.account)), "email": f.account, "email_verified": true})
		idToken := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(claims) + ".c2ln"
		writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": 3599, "refresh_token": refresh,
			"scope": f.scopes[grant], "id_token": idToken})
	case "slack":
		if r.PostForm.Get("grant_type") == "refresh_token" {
			writeJSON(w, http.StatusOK, map[string]any{"ok": true, "access_token": access, "token_type": "user", "refresh_token": refresh,
				"expires_in": 43200, "team": map[string]any{"id": f.team}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "app_id": "A1", "team": map[string]any{"id": f.team},
			"authed_user": map[string]any{"id": f.account, "scope": "channels:read,chat:write,channels:manage", "access_token": access,
				"token_type": "user", "refresh_token": refresh, "expires_in": 43200}})
	}
}

// live reports whether the bearer token of r is a live access token.
func (f *Fake) live(r *http.Request) bool {
	g, ok := f.access[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	return ok && !f.dead[g]
}

func (f *Fake) user(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.live(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"login": f.account, "id": f.idOf(f.account)})
}

func (f *Fake) api(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apiAuth = append(f.apiAuth, r.Header.Get("Authorization"))
	if !f.live(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// end ends the grant tok belongs to (access or refresh); false if tok is
// not live.
func (f *Fake) end(tok string) bool {
	g, ok := f.access[tok]
	if !ok {
		g, ok = f.refresh[tok]
	}
	if !ok || f.dead[g] {
		return false
	}
	f.dead[g] = true
	return true
}

func (f *Fake) githubRevoke(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	if !ok || user != f.ClientID || pass != f.Secret || r.PathValue("client") != f.ClientID {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Requires authentication"})
		return
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	if f.revokeDown {
		f.revocations = append(f.revocations, "DELETE grant: down")
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if g, ok := f.access[body.AccessToken]; !ok || f.dead[g] {
		f.revocations = append(f.revocations, "DELETE grant: unknown token")
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	f.end(body.AccessToken)
	f.revocations = append(f.revocations, "DELETE grant: "+kindOf(body.AccessToken))
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) googleRevoke(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := r.PostForm.Get("token")
	if f.revokeDown {
		f.revocations = append(f.revocations, "revoke: down")
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if !f.end(tok) {
		f.revocations = append(f.revocations, "revoke: unknown token")
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_token", "error_description": "Token expired or revoked"})
		return
	}
	f.revocations = append(f.revocations, "revoke: "+kindOf(tok))
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (f *Fake) slackRevoke(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := r.PostForm.Get("token")
	if tok == "" {
		tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if f.revokeDown {
		f.revocations = append(f.revocations, "auth.revoke: down")
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if g, ok := f.access[tok]; !ok || f.dead[g] {
		f.revocations = append(f.revocations, "auth.revoke: unknown token")
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	f.end(tok)
	f.revocations = append(f.revocations, "auth.revoke: "+kindOf(tok))
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "revoked": true})
}

// kindOf is "access" or "refresh" for a minted token.
func kindOf(tok string) string {
	if parts := strings.Split(tok, "-"); len(parts) == 4 {
		return parts[2]
	}
	return "?"
}

// ExpireAccess makes every access token of the fake unknown, as 8 hours
// later; refresh tokens stay live.
func (f *Fake) ExpireAccess() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.access)
}

// GrantsAlive counts the grants not ended that still have a live token.
func (f *Fake) GrantsAlive() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	alive := map[int]bool{}
	for _, g := range f.access {
		if !f.dead[g] {
			alive[g] = true
		}
	}
	for _, g := range f.refresh {
		if !f.dead[g] {
			alive[g] = true
		}
	}
	return len(alive)
}

// URL is the fake's base URL.
func (f *Fake) URL() string { return f.Server.URL }

// Settings point provider.Real at the fake, with its client.
func (f *Fake) Settings() provider.Settings {
	c := provider.Client{ID: f.ClientID, Secret: secret.New(f.Secret)}
	switch f.kind {
	case "github":
		return provider.Settings{GitHub: c, GitHubWebURL: f.Server.URL, GitHubAPIURL: f.Server.URL + "/api/v3/"}
	case "google":
		return provider.Settings{Google: c, GoogleAuthURL: f.Server.URL + "/o/oauth2/v2/auth", GoogleTokenURL: f.Server.URL + "/token",
			GoogleRevokeURL: f.Server.URL + "/revoke", GoogleCalendarURL: f.Server.URL + "/calendar/v3/"}
	default:
		return provider.Settings{Slack: c, SlackAPIURL: f.Server.URL + "/api/"}
	}
}

// ProbePath is an API path under URL that answers 200 to a live access
// token and 401 to anything else.
func (f *Fake) ProbePath() string {
	return map[string]string{"github": "/api/v3/probe", "google": "/calendar/v3/probe", "slack": "/api/probe"}[f.kind]
}

// SignIn makes account (in team, at Slack) the person signed in at the
// provider, whom consent connects.
func (f *Fake) SignIn(account, team string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.account, f.team = account, team
}

// Deny makes the person decline consent.
func (f *Fake) Deny() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deny = true
}

// BreakRevocation makes revocation answer 500.
func (f *Fake) BreakRevocation() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeDown = true
}

// FixRevocation undoes BreakRevocation.
func (f *Fake) FixRevocation() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revokeDown = false
}

// AuthParams are the last consent request's parameters.
func (f *Fake) AuthParams() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authParams
}

// Revocations describe what was asked to be revoked, in order
// ("DELETE grant: access", "revoke: unknown token", …).
func (f *Fake) Revocations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.revocations)
}

// APIAuth are the Authorization headers the probe saw.
func (f *Fake) APIAuth() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.apiAuth)
}

// Exchanges counts the codes exchanged.
func (f *Fake) Exchanges() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exchanges
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

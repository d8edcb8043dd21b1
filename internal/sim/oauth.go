package sim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// CodeTTL is how long an authorization code from AuthorizeCode or the authorize endpoint stays
// redeemable.
const CodeTTL = 10 * time.Minute

// refreshTTLSeconds is what the GitHub token response reports as refresh_token_expires_in (the
// real six months); the sim itself never expires refresh tokens, it only rotates them.
const refreshTTLSeconds = 15811200

// Grant is one connection a person gave an OAuth client at a provider: the family of every access
// and refresh token minted from one authorization. It never holds a token.
type Grant struct {
	ID             int64
	Service        string
	Principal      string
	Scopes         []string
	Created        time.Time
	Refreshes      int       // successful refresh_token grants so far
	Revoked        bool      // no token of the family works any more
	RevokedAt      time.Time // by Options.Now
	RevokedBecause string    // "revocation endpoint", "refresh token reuse", "authorization code reuse" or "revoked at provider"
}

type grant struct {
	Grant
}

type tokenRec struct {
	g       *grant
	refresh bool
	expires time.Time // zero for refresh tokens
	used    bool      // refresh tokens are single-use
}

type codeRec struct {
	service, principal string
	scopes             []string
	redirectURI        string
	challenge          string
	expires            time.Time
	used               bool
	issued             *grant // the grant minted when the code was redeemed
}

// authState holds grants, tokens and codes. Tokens and codes are kept only as SHA-256 digests so
// that no dump of the world can show one.
type authState struct {
	grants     []*grant
	tokens     map[string]*tokenRec
	codes      map[string]*codeRec
	slackUsers map[string]string // principal → simulated Slack user ID
}

func (a *authState) init() {
	a.tokens = make(map[string]*tokenRec)
	a.codes = make(map[string]*codeRec)
	a.slackUsers = make(map[string]string)
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// tokenPrefixes mimic each provider's token shapes so that a leaked token is recognisable.
var tokenPrefixes = map[string][2]string{
	ServiceGitHub: {"ghu_", "ghr_"},
	ServiceGoogle: {"ya29.", "1//"},
	ServiceSlack:  {"xoxe.xoxp-1-", "xoxe-1-"},
}

func knownService(service string) bool {
	_, ok := tokenPrefixes[service]
	return ok
}

// randomSecret returns prefix followed by 40 hex digits from w.rand.
func (w *World) randomSecret(prefix string) (string, error) {
	b := make([]byte, 20)
	if _, err := io.ReadFull(w.rand, b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// mint creates a fresh access and refresh token for g; w.mu must be held.
func (w *World) mint(g *grant) (access, refresh string, err error) {
	p := tokenPrefixes[g.Service]
	if access, err = w.randomSecret(p[0]); err != nil {
		return "", "", err
	}
	if refresh, err = w.randomSecret(p[1]); err != nil {
		return "", "", err
	}
	w.auth.tokens[digest(access)] = &tokenRec{g: g, expires: w.now().Add(w.accessTTL)}
	w.auth.tokens[digest(refresh)] = &tokenRec{g: g, refresh: true}
	return access, refresh, nil
}

// newGrant records a grant; w.mu must be held.
func (w *World) newGrant(service, principal string, scopes []string) *grant {
	g := &grant{Grant{
		ID:        w.nextID(),
		Service:   service,
		Principal: principal,
		Scopes:    slices.Clone(scopes),
		Created:   w.now(),
	}}
	w.auth.grants = append(w.auth.grants, g)
	if service == ServiceSlack {
		w.slackUserID(principal)
	}
	return g
}

func (w *World) revokeGrant(g *grant, because string) {
	if g.Revoked {
		return
	}
	g.Revoked = true
	g.RevokedAt = w.now()
	g.RevokedBecause = because
}

// IssueTokens connects principal to service directly, as if they had just completed the OAuth
// dance, and returns the first access and refresh token. The demo uses it to start connected.
func (w *World) IssueTokens(service, principal string, scopes []string) (access, refresh string, err error) {
	if !knownService(service) {
		return "", "", fmt.Errorf("issue tokens: unknown service %q", service)
	}
	if principal == "" {
		return "", "", fmt.Errorf("issue tokens: empty principal")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.newGrant(service, principal, scopes)
	return w.mint(g)
}

// AuthorizeCode returns an authorization code, as the provider's consent page would after
// principal agreed to scopes. Redeeming it needs the same redirectURI and the PKCE verifier whose
// S256 challenge is codeChallenge; PKCE is mandatory here, as AgentHub always uses it.
func (w *World) AuthorizeCode(service, principal string, scopes []string, redirectURI, codeChallenge string) (string, error) {
	if !knownService(service) {
		return "", fmt.Errorf("authorize code: unknown service %q", service)
	}
	if principal == "" || redirectURI == "" || codeChallenge == "" {
		return "", fmt.Errorf("authorize code: principal, redirect URI and code challenge are required")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	code, err := w.randomSecret("code-")
	if err != nil {
		return "", fmt.Errorf("authorize code: %w", err)
	}
	w.auth.codes[digest(code)] = &codeRec{
		service:     service,
		principal:   principal,
		scopes:      slices.Clone(scopes),
		redirectURI: redirectURI,
		challenge:   codeChallenge,
		expires:     w.now().Add(CodeTTL),
	}
	return code, nil
}

// Grants returns the grants of one service ("" for all), oldest first.
func (w *World) Grants(service string) []Grant {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Grant
	for _, g := range w.auth.grants {
		if service == "" || g.Service == service {
			c := g.Grant
			c.Scopes = slices.Clone(c.Scopes)
			out = append(out, c)
		}
	}
	return out
}

// RevokeGrants revokes every grant principal holds at service, as if the person removed the app
// in the provider's settings, and returns how many were live.
func (w *World) RevokeGrants(service, principal string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, g := range w.auth.grants {
		if g.Service == service && g.Principal == principal && !g.Revoked {
			w.revokeGrant(g, "revoked at provider")
			n++
		}
	}
	return n
}

// Why an access token was refused.
const (
	authMissing = "missing"
	authUnknown = "unknown"
	authExpired = "expired"
	authRevoked = "revoked"
)

// authenticate resolves an access token presented to service; w.mu must be held. On failure it
// returns one of the auth* reasons and, when the token was known, its grant.
func (w *World) authenticate(service, token string) (*grant, string) {
	if token == "" {
		return nil, authMissing
	}
	rec := w.auth.tokens[digest(token)]
	if rec == nil || rec.refresh || rec.g.Service != service {
		return nil, authUnknown
	}
	if rec.g.Revoked {
		return rec.g, authRevoked
	}
	if !w.now().Before(rec.expires) {
		return rec.g, authExpired
	}
	return rec.g, ""
}

// bearer returns the token of an Authorization header ("Bearer x", or GitHub's legacy "token x").
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok {
		return ""
	}
	if strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "token") {
		return strings.TrimSpace(tok)
	}
	return ""
}

func hasScope(granted []string, anyOf ...string) bool {
	for _, s := range anyOf {
		if slices.Contains(granted, s) {
			return true
		}
	}
	return false
}

// splitScopes accepts both separators: Google uses spaces, GitHub and Slack use commas.
func splitScopes(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

func joinScopes(service string, scopes []string) string {
	if service == ServiceGoogle {
		return strings.Join(scopes, " ")
	}
	return strings.Join(scopes, ",")
}

func (w *World) routeOAuth(mux *http.ServeMux) {
	for service := range tokenPrefixes {
		base := "/oauth/" + service
		mux.Handle("POST "+base+"/token", w.recorded(service, w.tokenEndpoint(service)))
		mux.Handle("POST "+base+"/revoke", w.recorded(service, w.revokeEndpoint(service)))
		mux.Handle("GET "+base+"/authorize", w.recorded(service, w.authorizeEndpoint(service)))
	}
	mux.Handle("/oauth/", w.recorded("", func(rw http.ResponseWriter, r *http.Request, n *note) {
		n.err = "not_found"
		writeJSON(rw, http.StatusNotFound, oauthError{Error: "not_found", Description: "no such OAuth endpoint"})
	}))
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func oauthFail(rw http.ResponseWriter, n *note, status int, code, desc string) {
	n.err = code
	if status == http.StatusUnauthorized {
		rw.Header().Set("WWW-Authenticate", `Basic realm="sim"`)
	}
	writeJSON(rw, status, oauthError{Error: code, Description: desc})
}

// clientAuth checks client credentials sent as HTTP Basic (form-encoded, as RFC 6749 2.3.1 and
// x/oauth2 do) or as form parameters. present reports whether any credentials were sent.
func (w *World) clientAuth(service string, r *http.Request) (present, ok bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return true, false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if id == "" && secret == "" {
			return false, false
		}
	}
	want := w.clients[service]
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(want.ID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(want.Secret)) == 1
	return true, idOK && secretOK && want.ID != ""
}

func (w *World) tokenEndpoint(service string) noteHandler {
	return func(rw http.ResponseWriter, r *http.Request, n *note) {
		rw.Header().Set("Cache-Control", "no-store")
		if err := r.ParseForm(); err != nil {
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "malformed form body")
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.clientAuth(service, r); !ok {
			oauthFail(rw, n, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
		var g *grant
		switch r.PostForm.Get("grant_type") {
		case "refresh_token":
			g = w.redeemRefresh(service, r.PostForm.Get("refresh_token"), rw, n)
		case "authorization_code":
			g = w.redeemCode(service, r.PostForm, rw, n)
		case "":
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "grant_type is required")
		default:
			oauthFail(rw, n, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code and refresh_token are supported")
		}
		if g == nil {
			return
		}
		access, refresh, err := w.mint(g)
		if err != nil {
			oauthFail(rw, n, http.StatusInternalServerError, "server_error", "cannot mint tokens")
			return
		}
		writeJSON(rw, http.StatusOK, w.tokenResponse(g, access, refresh))
	}
}

// redeemRefresh consumes a refresh token. Each one works once: presenting a used one again means
// it leaked, so, like the providers' reuse detection, the whole family is revoked.
func (w *World) redeemRefresh(service, token string, rw http.ResponseWriter, n *note) *grant {
	if token == "" {
		oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return nil
	}
	rec := w.auth.tokens[digest(token)]
	if rec == nil || !rec.refresh || rec.g.Service != service {
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return nil
	}
	n.principal = rec.g.Principal
	switch {
	case rec.g.Revoked:
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "the grant was revoked")
		return nil
	case rec.used:
		w.revokeGrant(rec.g, "refresh token reuse")
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "refresh token already used; the grant is revoked")
		return nil
	}
	rec.used = true
	rec.g.Refreshes++
	return rec.g
}

// redeemCode consumes an authorization code, checking redirect URI and PKCE. A code works once,
// even when the attempt fails; presenting a redeemed code revokes what it issued (RFC 6749 4.1.2).
func (w *World) redeemCode(service string, form url.Values, rw http.ResponseWriter, n *note) *grant {
	code := form.Get("code")
	rec := w.auth.codes[digest(code)]
	if code == "" || rec == nil || rec.service != service {
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "unknown authorization code")
		return nil
	}
	n.principal = rec.principal
	if rec.used {
		if rec.issued != nil {
			w.revokeGrant(rec.issued, "authorization code reuse")
		}
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "authorization code already used")
		return nil
	}
	rec.used = true
	switch {
	case !w.now().Before(rec.expires):
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "authorization code expired")
		return nil
	case form.Get("redirect_uri") != rec.redirectURI:
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return nil
	case !pkceMatches(form.Get("code_verifier"), rec.challenge):
		oauthFail(rw, n, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
		return nil
	}
	rec.issued = w.newGrant(service, rec.principal, rec.scopes)
	return rec.issued
}

func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// tokenResponse is RFC 6749 5.1 JSON with each provider's extras. token_type is always a Bearer
// spelling: x/oauth2 puts token_type into the Authorization header, so Slack's "user" is kept to
// authed_user, where Slack's own oauth.v2.access puts it.
func (w *World) tokenResponse(g *grant, access, refresh string) map[string]any {
	ttl := int(w.accessTTL / time.Second)
	scope := joinScopes(g.Service, g.Scopes)
	resp := map[string]any{
		"access_token":  access,
		"token_type":    "Bearer",
		"expires_in":    ttl,
		"refresh_token": refresh,
		"scope":         scope,
	}
	switch g.Service {
	case ServiceGitHub:
		resp["token_type"] = "bearer"
		resp["refresh_token_expires_in"] = refreshTTLSeconds
	case ServiceSlack:
		resp["ok"] = true
		resp["team"] = map[string]string{"id": slackTeamID, "name": slackTeamName}
		resp["authed_user"] = map[string]any{
			"id":            w.slackUserID(g.Principal),
			"scope":         scope,
			"access_token":  access,
			"token_type":    "user",
			"refresh_token": refresh,
			"expires_in":    ttl,
		}
	}
	return resp
}

// revokeEndpoint is RFC 7009: token=… revokes the token's whole family. Client credentials are
// optional (Google's endpoint takes none) but wrong ones are refused; an unknown token is not an
// error, as the RFC says.
func (w *World) revokeEndpoint(service string) noteHandler {
	return func(rw http.ResponseWriter, r *http.Request, n *note) {
		if err := r.ParseForm(); err != nil {
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "malformed form body")
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if present, ok := w.clientAuth(service, r); present && !ok {
			oauthFail(rw, n, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
		token := r.Form.Get("token")
		if token == "" {
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "token is required")
			return
		}
		if rec := w.auth.tokens[digest(token)]; rec != nil && rec.g.Service == service {
			n.principal = rec.g.Principal
			w.revokeGrant(rec.g, "revocation endpoint")
		}
		writeJSON(rw, http.StatusOK, struct{}{})
	}
}

// authorizeEndpoint stands in for the provider's consent page: there is no login, so login_hint
// names the person, who always consents. It redirects to redirect_uri with code and state.
func (w *World) authorizeEndpoint(service string) noteHandler {
	return func(rw http.ResponseWriter, r *http.Request, n *note) {
		q := r.URL.Query()
		switch {
		case q.Get("client_id") != w.clients[service].ID:
			oauthFail(rw, n, http.StatusBadRequest, "invalid_client", "unknown client_id")
			return
		case q.Get("response_type") != "code":
			oauthFail(rw, n, http.StatusBadRequest, "unsupported_response_type", "only response_type=code")
			return
		case q.Get("code_challenge_method") != "S256":
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "PKCE with code_challenge_method=S256 is required")
			return
		}
		redirect, err := url.Parse(q.Get("redirect_uri"))
		if err != nil || !redirect.IsAbs() {
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "redirect_uri must be an absolute URL")
			return
		}
		principal := q.Get("login_hint")
		scopes := splitScopes(q.Get("scope"))
		if service == ServiceSlack && q.Get("user_scope") != "" {
			scopes = splitScopes(q.Get("user_scope"))
		}
		code, err := w.AuthorizeCode(service, principal, scopes, q.Get("redirect_uri"), q.Get("code_challenge"))
		if err != nil {
			oauthFail(rw, n, http.StatusBadRequest, "invalid_request", "login_hint and code_challenge are required")
			return
		}
		n.principal = principal
		v := redirect.Query()
		v.Set("code", code)
		if s := q.Get("state"); s != "" {
			v.Set("state", s)
		}
		redirect.RawQuery = v.Encode()
		http.Redirect(rw, r, redirect.String(), http.StatusFound)
	}
}

// Package oidctest runs a real OpenID Provider (github.com/oauth2-proxy/
// mockoidc) on loopback for tests, with people whose id_tokens carry the
// claims step-up checks (auth_time, amr, a verified email), and a way to
// tamper with the id_tokens its token endpoint hands out.
package oidctest

import (
	"encoding/json"
	"net"
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
)

// SecretCanary is the OP's client secret: it must appear nowhere.
const SecretCanary = "client-secret-CANARY-oidc-0123456789"

// Person is someone at the identity provider. The OP signs the claims
// Claims returns into the id_token, beside the standard ones it sets.
type Person struct {
	Subject, Email string
	Unverified     bool          // email_verified false
	AuthAgo        time.Duration // how long before the token the login was
	NoAuthTime     bool          // no auth_time claim
	AMR            []string
}

type claims struct {
	*mockoidc.IDTokenClaims
	AuthTime      *int64   `json:"auth_time,omitempty"`
	AMR           []string `json:"amr,omitempty"`
	Email         string   `json:"email,omitempty"`
	EmailVerified bool     `json:"email_verified"`
}

// ID is the subject.
func (p Person) ID() string { return p.Subject }

// Userinfo is what the userinfo endpoint says.
func (p Person) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"sub": p.Subject, "email": p.Email})
}

// Claims are the id_token's claims.
func (p Person) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	c := &claims{IDTokenClaims: base, AMR: p.AMR, Email: p.Email, EmailVerified: !p.Unverified}
	if !p.NoAuthTime {
		at := base.IssuedAt.Add(-p.AuthAgo).Unix()
		c.AuthTime = &at
	}
	return c, nil
}

// OP is a running OpenID Provider.
type OP struct {
	*mockoidc.MockOIDC
	t      testing.TB
	mu     sync.Mutex
	auth   []url.Values
	issued []string
	tamper func(jwt.MapClaims) *mockoidc.Keypair
	// also serves the paths under the issuer it was given for (Also).
	also      http.Handler
	alsoPaths []string
}

// Also makes the OP serve paths under its issuer with h (the issuer's
// path taken off): an Auth0 tenant's other endpoints (auth0test), so that
// one issuer is both the identity provider and the tenant.
func (o *OP) Also(h http.Handler, paths ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.also, o.alsoPaths = h, paths
}

// offlineAccess lets the OP take offline_access (Auth0 does, and issues a
// refresh token for it; mockoidc's list of scopes lacks it).
var offlineAccess sync.Once

// Start runs an OP on loopback until the test ends.
func Start(t testing.TB) *OP {
	t.Helper()
	return StartFor(t, "", SecretCanary)
}

// StartFor is Start with the client's ID ("": mockoidc's own) and secret:
// an application that is also an Auth0 tenant's (auth0test).
func StartFor(t testing.TB, clientID, clientSecret string) *OP {
	t.Helper()
	offlineAccess.Do(func() {
		if !slices.Contains(mockoidc.ScopesSupported, "offline_access") {
			mockoidc.ScopesSupported = append(mockoidc.ScopesSupported, "offline_access")
		}
	})
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.ClientSecret = clientSecret
	if clientID != "" {
		m.ClientID = clientID
	}
	op := &OP{MockOIDC: m, t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// mockoidc's own Start, with a mux that also serves what Also names
	// under the issuer.
	mux := http.NewServeMux()
	for path, h := range map[string]http.HandlerFunc{
		mockoidc.AuthorizationEndpoint: m.Authorize, mockoidc.TokenEndpoint: m.Token, mockoidc.UserinfoEndpoint: m.Userinfo,
		mockoidc.JWKSEndpoint: m.JWKS, mockoidc.DiscoveryEndpoint: m.Discovery,
	} {
		mux.Handle(path, op.watch(h))
	}
	mux.Handle("/", op.watch(http.NotFoundHandler()))
	m.Server = &http.Server{Addr: ln.Addr().String(), Handler: mux}
	go m.Server.Serve(ln)
	t.Cleanup(func() { m.Shutdown() })
	return op
}

// SignInAs makes the next login at the OP be p's.
func (o *OP) SignInAs(p Person) { o.QueueUser(p) }

// AuthRequests are the authorization requests the OP saw, in order.
func (o *OP) AuthRequests() []url.Values {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.auth)
}

// Issued are the tokens the OP's token endpoint issued (access, refresh
// and id tokens), for checks that none leaks.
func (o *OP) Issued() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.issued)
}

// Tamper rewrites the claims of every id_token the token endpoint hands
// out from now on, signing them with the key it returns; nil stops it.
func (o *OP) Tamper(f func(jwt.MapClaims) *mockoidc.Keypair) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tamper = f
}

func (o *OP) watch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		also, paths := o.also, o.alsoPaths
		o.mu.Unlock()
		if rest, ok := strings.CutPrefix(r.URL.Path, mockoidc.IssuerBase); ok && also != nil {
			for _, p := range paths {
				if strings.HasPrefix(rest, p) {
					r2 := r.Clone(r.Context())
					r2.URL.Path = rest
					also.ServeHTTP(w, r2)
					return
				}
			}
		}
		switch {
		case strings.HasSuffix(r.URL.Path, mockoidc.AuthorizationEndpoint):
			o.mu.Lock()
			o.auth = append(o.auth, r.URL.Query())
			o.mu.Unlock()
		case strings.HasSuffix(r.URL.Path, mockoidc.TokenEndpoint):
			o.token(next, w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// token serves the token endpoint, keeping what it issues and tampering
// with the id_token when asked.
func (o *OP) token(next http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		o.t.Errorf("oidctest: token response: %v", err)
		return
	}
	o.mu.Lock()
	for _, k := range []string{"access_token", "refresh_token", "id_token"} {
		if v, ok := body[k].(string); ok {
			o.issued = append(o.issued, v)
		}
	}
	tamper := o.tamper
	o.mu.Unlock()
	if raw, ok := body["id_token"].(string); ok && tamper != nil {
		c := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(raw, c); err != nil {
			o.t.Errorf("oidctest: id_token: %v", err)
			return
		}
		signed, err := tamper(c).SignJWT(c)
		if err != nil {
			o.t.Errorf("oidctest: sign: %v", err)
			return
		}
		body["id_token"] = signed
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	json.NewEncoder(w).Encode(body)
}

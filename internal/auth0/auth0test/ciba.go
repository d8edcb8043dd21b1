package auth0test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agenthub/agenthub/internal/auth0"
)

// Push is a CIBA request the fake sent to a person's phone.
type Push struct {
	ID, User, Binding string
	Expiry            int // requested_expiry, seconds
}

type cibaState struct {
	Push
	expires  time.Time
	interval time.Duration
	polled   time.Time
	answer   string // "", "approved", "denied"
	amr      []string
	spent    bool
}

// EnrolPush enrols user in push notifications (Guardian): CIBA requests
// for them are accepted.
func (t *Tenant) EnrolPush(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.push[user] = true
}

// Pushes are the CIBA requests sent, in order.
func (t *Tenant) Pushes() []Push {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Push, 0, len(t.cibaOrder))
	for _, id := range t.cibaOrder {
		out = append(out, t.ciba[id].Push)
	}
	return out
}

// Approve is the person approving CIBA request id on their phone, with
// the factors amr says were used.
func (t *Tenant) Approve(id string, amr ...string) { t.answerCIBA(id, "approved", amr) }

// Deny is the person denying it.
func (t *Tenant) Deny(id string) { t.answerCIBA(id, "denied", nil) }

// ExpireCIBA makes request id expire now.
func (t *Tenant) ExpireCIBA(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.ciba[id]; ok {
		c.expires = time.Now().Add(-time.Second)
	}
}

func (t *Tenant) answerCIBA(id, answer string, amr []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.ciba[id]; ok {
		c.answer, c.amr = answer, amr
	}
}

// bcAuthorize is POST /bc-authorize: the client, a login_hint in the
// iss_sub format naming a user enrolled in push, scope openid, a binding
// message within Auth0's bounds, a requested expiry.
func (t *Tenant) bcAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.ParseForm() != nil {
		refuse(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f := r.PostForm
	var hint struct{ Format, Iss, Sub string }
	exp, _ := strconv.Atoi(f.Get("requested_expiry"))
	switch {
	case f.Get("client_id") != ClientID || f.Get("client_secret") != ClientSecret:
		refuse(w, http.StatusUnauthorized, "invalid_client")
		return
	case json.Unmarshal([]byte(f.Get("login_hint")), &hint) != nil || hint.Format != "iss_sub" || hint.Iss != "https://"+Domain+"/":
		refuse(w, http.StatusBadRequest, "invalid_request")
		return
	case !strings.Contains(" "+f.Get("scope")+" ", " openid "):
		refuse(w, http.StatusBadRequest, "invalid_scope")
		return
	case f.Get("binding_message") == "" || auth0.BindingMessage("", f.Get("binding_message")) != f.Get("binding_message") ||
		len(f.Get("binding_message")) > auth0.MaxBindingMessage:
		refuse(w, http.StatusBadRequest, "invalid_binding_message")
		return
	case exp < 1 || exp > 300:
		refuse(w, http.StatusBadRequest, "invalid_request")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.push[hint.Sub] {
		refuse(w, http.StatusBadRequest, "unknown_user_id")
		return
	}
	id := random("ciba_")
	t.ciba[id] = &cibaState{Push: Push{ID: id, User: hint.Sub, Binding: f.Get("binding_message"), Expiry: exp},
		expires: time.Now().Add(time.Duration(exp) * time.Second), interval: t.CIBAInterval}
	t.cibaOrder = append(t.cibaOrder, id)
	writeJSON(w, http.StatusOK, map[string]any{"auth_req_id": id, "expires_in": exp, "interval": int(t.CIBAInterval / time.Second)})
}

// pollCIBA answers a token request of the CIBA grant.
func (t *Tenant) pollCIBA(w http.ResponseWriter, get func(string) string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.ciba[get("auth_req_id")]
	switch {
	case !ok || c.spent:
		return refuse(w, http.StatusBadRequest, "invalid_grant")
	case time.Now().After(c.expires):
		return refuse(w, http.StatusBadRequest, "expired_token")
	case c.interval > 0 && !c.polled.IsZero() && time.Since(c.polled) < c.interval:
		c.interval += 5 * time.Second // as the spec says a server may
		c.polled = time.Now()
		return refuse(w, http.StatusBadRequest, "slow_down")
	}
	c.polled = time.Now()
	switch c.answer {
	case "":
		return refuse(w, http.StatusBadRequest, "authorization_pending")
	case "denied":
		return refuse(w, http.StatusBadRequest, "access_denied")
	}
	c.spent = true
	now := time.Now()
	claims := jwt.MapClaims{"iss": t.Issuer(), "sub": c.User, "aud": ClientID, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"auth_time": now.Unix()}
	if len(c.amr) > 0 {
		claims["amr"] = c.amr
	}
	idToken, err := t.sign(claims)
	if err != nil {
		return refuse(w, http.StatusInternalServerError, "server_error")
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": random("CANARY-ciba-at-"), "id_token": idToken, "token_type": "Bearer", "expires_in": 86400})
	return "ok"
}

// Issuer is what the fake's ID tokens name as their issuer: IDIssuer, or
// https://Domain/.
func (t *Tenant) Issuer() string {
	if t.IDIssuer != "" {
		return t.IDIssuer
	}
	return "https://" + Domain + "/"
}

// sign signs an ID token: with Sign when set, else with the fake's own
// key, whose JWKS it serves at /.well-known/jwks.json.
func (t *Tenant) sign(claims jwt.MapClaims) (string, error) {
	if t.Sign != nil {
		return t.Sign(claims)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "fake-tenant"
	return tok.SignedString(t.key)
}

func (t *Tenant) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := t.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "fake-tenant", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// newKey is the fakes' signing key, one for all (making one is slow).
var newKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

package connect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
)

// LinkTTL is how long a connect link is good for.
const LinkTTL = 10 * time.Minute

// linkDomain separates the MAC of a link from any other use of the key.
const linkDomain = "agenthub connect link v1\x00"

// link is what a connect link says: who, which service, until when; Nonce
// makes it single-use.
type link struct {
	Principal broker.Principal `json:"p"`
	Service   string           `json:"s"`
	Purpose   string           `json:"f,omitempty"` // what a sign-in is for (LinkFor)
	Nonce     string           `json:"n"`
	Expires   int64            `json:"e"` // Unix seconds
}

// Reasons a link is refused; they are also the audit record's reason.
var (
	errLinkInvalid = errors.New("link_invalid")
	errLinkExpired = errors.New("link_expired")
)

// sign returns the link's token: its JSON and its MAC, each base64url.
func sign(key []byte, l link) (string, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac(key, payload)), nil
}

func mac(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(linkDomain))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// verify returns the link a token carries when its MAC is right and it has
// not expired at now. It says nothing of whether it was used.
func verify(key []byte, token string, now time.Time) (link, error) {
	payload, sum, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 {
		return link{}, errLinkInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sum)
	if err != nil || !hmac.Equal(got, mac(key, payload)) {
		return link{}, errLinkInvalid
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return link{}, errLinkInvalid
	}
	var l link
	if err := json.Unmarshal(body, &l); err != nil || l.Principal.Validate() != nil || l.Service == "" || l.Nonce == "" {
		return link{}, errLinkInvalid
	}
	if !now.Before(time.Unix(l.Expires, 0)) {
		return l, errLinkExpired
	}
	return l, nil
}

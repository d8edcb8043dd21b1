package auth0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Client-Initiated Backchannel Authentication (CIBA): AgentHub asks the
// tenant to have the person approve on their phone (Auth0 Guardian), and
// polls for the answer. The ID token it gets is for the caller to verify
// (go-oidc, in internal/identity): that it is the tenant's, and names the
// person who had to approve.

// GrantCIBA is the token endpoint's grant type for polling.
const GrantCIBA = "urn:openid:params:grant-type:ciba"

// MaxBindingMessage is Auth0's bound on a binding message.
const MaxBindingMessage = 64

// BindingMessage is what the person's phone shows beside the approval:
// the request's short code and its action, within Auth0's bounds
// (MaxBindingMessage; alphanumerics, whitespace and +-_.,:#). Other
// characters become spaces.
func BindingMessage(code, action string) string {
	msg := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" +-_.,:#", r):
			return r
		}
		return ' '
	}, code+" "+action)
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > MaxBindingMessage {
		msg = strings.TrimSpace(msg[:MaxBindingMessage])
	}
	return msg
}

// validBinding reports whether msg is within Auth0's bounds.
func validBinding(msg string) bool {
	return msg != "" && len(msg) <= MaxBindingMessage && BindingMessage("", msg) == msg
}

// BackchannelRequest is an approval asked of a person on their phone.
type BackchannelRequest struct {
	// Subject is the person's user ID at the tenant (their linked
	// identity's sub): login_hint in the iss_sub format.
	Subject string
	// Binding is the binding message (BindingMessage).
	Binding string
	// Expiry is requested_expiry: at most what is left of the request's
	// own time.
	Expiry time.Duration
}

// Backchannel is a started CIBA request: its auth_req_id (a handle only
// this client's credentials can poll with), when it expires, and how
// often it may be polled.
type Backchannel struct {
	ID       string
	Expires  time.Time
	Interval time.Duration
}

// StartBackchannel asks the tenant (POST /bc-authorize) to have the
// person approve on their phone.
func (c *Client) StartBackchannel(ctx context.Context, r BackchannelRequest) (Backchannel, error) {
	switch {
	case r.Subject == "":
		return Backchannel{}, errors.New("auth0: ciba: no subject to ask")
	case !validBinding(r.Binding):
		return Backchannel{}, fmt.Errorf("auth0: ciba: the binding message must be 1 to %d of alphanumerics, whitespace and +-_.,:#", MaxBindingMessage)
	case r.Expiry < time.Second:
		return Backchannel{}, errors.New("auth0: ciba: no time left to ask")
	}
	hint, err := json.Marshal(map[string]string{"format": "iss_sub", "iss": "https://" + c.opts.Domain + "/", "sub": r.Subject})
	if err != nil {
		return Backchannel{}, fmt.Errorf("auth0: ciba: %w", err)
	}
	form := url.Values{
		"client_id": {c.opts.ClientID}, "client_secret": {c.opts.ClientSecret.Reveal()},
		"login_hint": {string(hint)}, "scope": {"openid"}, "binding_message": {r.Binding},
		"requested_expiry": {strconv.Itoa(int(r.Expiry / time.Second))},
	}
	var out struct {
		AuthReqID string `json:"auth_req_id"`
		ExpiresIn int64  `json:"expires_in"`
		Interval  int64  `json:"interval"`
	}
	status, body, err := c.post(ctx, c.base.JoinPath("bc-authorize").String(), form)
	if err != nil {
		return Backchannel{}, err
	}
	if status != http.StatusOK {
		return Backchannel{}, c.refused(ctx, "ciba", status, body)
	}
	if json.Unmarshal(body, &out) != nil || out.AuthReqID == "" || out.ExpiresIn <= 0 {
		return Backchannel{}, &ExchangeError{Status: status, Code: "malformed_answer"}
	}
	interval := time.Duration(max(out.Interval, 1)) * time.Second
	if out.Interval == 0 {
		interval = 5 * time.Second // the spec's default
	}
	return Backchannel{ID: out.AuthReqID, Expires: c.opts.Now().Add(time.Duration(out.ExpiresIn) * time.Second), Interval: interval}, nil
}

// Outcome is what a poll found.
type Outcome int

// Poll outcomes.
const (
	Pending  Outcome = iota // authorization_pending: ask again after the interval
	SlowDown                // slow_down: ask again, 5 s further apart
	Approved                // the person approved: the token holds the ID token
	Denied                  // access_denied
	Expired                 // expired_token
)

func (o Outcome) String() string {
	return [...]string{"pending", "slow_down", "approved", "denied", "expired"}[o]
}

// PollBackchannel polls the token endpoint once for the CIBA request id.
// Approved comes with the token (its ID token under "id_token"); the
// other outcomes with none. An error is a fault or a refusal other than
// these.
func (c *Client) PollBackchannel(ctx context.Context, id string) (Outcome, *oauth2.Token, error) {
	form := url.Values{"grant_type": {GrantCIBA}, "auth_req_id": {id}, "client_id": {c.opts.ClientID}, "client_secret": {c.opts.ClientSecret.Reveal()}}
	status, body, err := c.post(ctx, c.tokenURL, form)
	if err != nil {
		return Pending, nil, err
	}
	if status == http.StatusOK {
		var out struct {
			AccessToken string `json:"access_token"`
			IDToken     string `json:"id_token"`
			TokenType   string `json:"token_type"`
		}
		if json.Unmarshal(body, &out) != nil || out.IDToken == "" {
			return Pending, nil, &ExchangeError{Status: status, Code: "malformed_answer"}
		}
		tok := (&oauth2.Token{AccessToken: out.AccessToken, TokenType: out.TokenType}).WithExtra(map[string]any{"id_token": out.IDToken})
		return Approved, tok, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	switch e.Error {
	case "authorization_pending":
		return Pending, nil, nil
	case "slow_down":
		return SlowDown, nil, nil
	case "access_denied":
		return Denied, nil, nil
	case "expired_token":
		return Expired, nil, nil
	}
	return Pending, nil, c.refused(ctx, "ciba", status, body)
}

// post sends form to u and returns the status and (bounded) body.
func (c *Client) post(ctx context.Context, u string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, fmt.Errorf("auth0: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("auth0: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, fmt.Errorf("auth0: read the answer: %w", err)
	}
	return resp.StatusCode, body, nil
}

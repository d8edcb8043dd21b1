// Package auth0 is Auth0 for AI agents as AgentHub uses it: Token Vault's
// exchange of a person's Auth0 refresh token for a provider's access token
// (the vault's backend when AGENTHUB_VAULT=auth0). It holds no token: the
// caller passes the refresh token in, as a secret.Secret, and gets the
// provider's access token back, which only the vault keeps.
package auth0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/secret"
)

// The Token Vault exchange's parameters (RFC 8693 token exchange with
// Auth0's grant type).
const (
	GrantTokenVault    = "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"
	SubjectRefresh     = "urn:ietf:params:oauth:token-type:refresh_token"
	RequestedTokenType = "http://auth0.com/oauth/token-type/federated-connection-access-token"
)

// Options configure a Client. Domain, ClientID and ClientSecret are
// required.
type Options struct {
	// Domain is the tenant's (or its custom domain): "acme.eu.auth0.com".
	Domain string
	// BaseURL overrides https://Domain/ (tests point it at a fake on
	// loopback; only https, or http to loopback, is taken).
	BaseURL      string
	ClientID     string
	ClientSecret secret.Secret
	// HTTPClient calls the tenant (default: 30 s timeout, no redirects).
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time // default time.Now
}

// Client calls one tenant. It is safe for concurrent use.
type Client struct {
	opts     Options
	base     *url.URL
	told     sync.Map // what a 403 was explained for: logged once each
	tokenURL string   // the token endpoint
}

// New returns a client of the tenant.
func New(opts Options) (*Client, error) {
	if opts.Domain == "" || opts.ClientID == "" || opts.ClientSecret.IsZero() {
		return nil, errors.New("auth0: the domain, client ID and client secret are required")
	}
	raw := opts.BaseURL
	if raw == "" {
		raw = "https://" + opts.Domain + "/"
	}
	base, err := url.Parse(raw)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("auth0: %q is not a URL of the tenant", raw)
	}
	if base.Scheme != "https" && !(base.Scheme == "http" && loopback(base.Hostname())) {
		return nil, fmt.Errorf("auth0: %s must be https", base.Redacted())
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Client{opts: opts, base: base, tokenURL: base.JoinPath("oauth", "token").String()}, nil
}

func loopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Errors of the exchange. A *ExchangeError carries the status and
// Auth0's error code, never its description (which may quote a request).
var (
	// ErrNotConnected: Auth0 has no account of the person for that
	// connection (and login_hint): they must connect it (again).
	ErrNotConnected = errors.New("auth0: the account is not connected for this connection")
	// ErrSubjectRefused: the person's Auth0 refresh token is expired,
	// revoked or unknown: they must sign in (and connect) again.
	ErrSubjectRefused = errors.New("auth0: the refresh token was refused")
	// ErrTenant: the tenant is not set up for the exchange (the grant is
	// not enabled for the application, the connection has no Token Vault):
	// an operator must fix it; see docs/auth0.md.
	ErrTenant = errors.New("auth0: the tenant refuses the exchange: check its set-up")
)

// Auth0's codes for an account Token Vault has no token of: never
// connected (or deleted), or its provider refused to refresh it.
const (
	notConnected            = "federated_connection_refresh_token_not_found"
	connectionRefreshFailed = "federated_connection_refresh_token_flow_failed"
)

// ExchangeError is a refused or failed exchange.
type ExchangeError struct {
	Status int
	Code   string // Auth0's error code ("invalid_grant", …), bounded
	err    error  // one of the sentinels above, or nil for a fault
}

func (e *ExchangeError) Error() string {
	msg := fmt.Sprintf("auth0: HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *ExchangeError) Unwrap() error { return e.err }

// Reconnect reports whether the person must connect again for this to
// work (the vault then marks the connection expired and offers Connect).
func (e *ExchangeError) Reconnect() bool {
	return errors.Is(e.err, ErrNotConnected) || errors.Is(e.err, ErrSubjectRefused)
}

// StatusCode is the tenant's HTTP status.
func (e *ExchangeError) StatusCode() int { return e.Status }

// Exchange gets the provider's access token for connection ("github",
// "google-oauth2", "sign-in-with-slack", …) from the person's Auth0
// refresh token, subject. loginHint names the account where a person has
// several for the connection ("" for none). The token has no refresh
// token: the subject is the one to keep.
func (c *Client) Exchange(ctx context.Context, subject secret.Secret, connection, loginHint string) (*oauth2.Token, error) {
	if subject.IsZero() || connection == "" {
		return nil, errors.New("auth0: an exchange needs a refresh token and a connection")
	}
	form := url.Values{
		"grant_type":           {GrantTokenVault},
		"subject_token_type":   {SubjectRefresh},
		"subject_token":        {subject.Reveal()},
		"requested_token_type": {RequestedTokenType},
		"connection":           {connection},
		"client_id":            {c.opts.ClientID},
		"client_secret":        {c.opts.ClientSecret.Reveal()},
	}
	if loginHint != "" {
		form.Set("login_hint", loginHint)
	}
	return c.token(ctx, form, connection)
}

// token posts form to the token endpoint and reads the token it gets;
// what names the refusals it explains (a connection, or "my_account").
func (c *Client) token(ctx context.Context, form url.Values, what string) (*oauth2.Token, error) {
	status, body, err := c.post(ctx, c.tokenURL, form)
	if err != nil {
		// The error names the URL, which holds no secret (the form does).
		return nil, err
	}
	if status != http.StatusOK {
		return nil, c.refused(ctx, what, status, body)
	}
	var out struct {
		AccessToken     string `json:"access_token"`
		TokenType       string `json:"token_type"`
		ExpiresIn       int64  `json:"expires_in"`
		Scope           string `json:"scope"`
		IssuedTokenType string `json:"issued_token_type"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.AccessToken == "" {
		return nil, &ExchangeError{Status: status, Code: "malformed_answer"}
	}
	tok := &oauth2.Token{AccessToken: out.AccessToken, TokenType: out.TokenType}
	if out.ExpiresIn > 0 {
		tok.Expiry = c.opts.Now().Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	if out.Scope != "" {
		tok = tok.WithExtra(map[string]any{"scope": out.Scope})
	}
	return tok, nil
}

// refused reads a refusal: its code, and what it means. A 403 is the
// tenant's set-up, explained to the operator once per connection and code.
func (c *Client) refused(ctx context.Context, connection string, status int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	x := &ExchangeError{Status: status, Code: code(e.Error)}
	switch {
	case x.Code == notConnected || x.Code == connectionRefreshFailed:
		// Only Auth0's own words for it: any other refusal is not a
		// reason to expire a person's connection.
		x.err = ErrNotConnected
	case status == http.StatusBadRequest && (x.Code == "invalid_grant" || x.Code == "expired_token"):
		x.err = ErrSubjectRefused
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		x.err = ErrTenant
		if _, told := c.told.LoadOrStore(connection+"\x00"+x.Code, true); !told {
			c.opts.Logger.ErrorContext(ctx, "auth0 refuses AgentHub's token requests: the tenant needs fixing (docs/auth0.md): "+
				"the application must have the Token Vault and refresh token grant types and a client secret, refresh-token rotation off, "+
				"the My Account API its connected-accounts scopes (multi-resource refresh token), "+
				"and the connection Token Vault (connected accounts) enabled",
				"for", connection, "status", status, "error_code", x.Code)
		}
	}
	return x
}

// code bounds an error code to the characters RFC 6749 allows for it.
func code(s string) string {
	if len(s) > 64 {
		return "unreadable"
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return "unreadable"
		}
	}
	return s
}

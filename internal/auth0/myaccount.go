package auth0

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/secret"
)

// The My Account API's connected accounts: how a person connects a
// provider's account to Token Vault. AgentHub calls it with a My Account
// access token of the person's, which only the vault holds: these
// functions take the HTTP client of a vault lease (which adds the token)
// and never see it.

// MyAccountScopes are what AgentHub asks of the My Account API: to
// create, read and delete the person's connected accounts.
var MyAccountScopes = []string{"create:me:connected_accounts", "read:me:connected_accounts", "delete:me:connected_accounts"}

// MyAccountAudience is the My Account API's audience on the tenant.
func (c *Client) MyAccountAudience() string { return "https://" + c.opts.Domain + "/me/" }

// MyAccountHost is the host its calls go to (the vault's API host for
// the lease).
func (c *Client) MyAccountHost() string { return c.base.Host }

// MyAccountToken gets a My Account API access token from the person's
// Auth0 refresh token (a multi-resource refresh token): the vault's Renew
// of the person's "auth0" connection.
func (c *Client) MyAccountToken(ctx context.Context, subject secret.Secret) (*oauth2.Token, error) {
	if subject.IsZero() {
		return nil, errors.New("auth0: a My Account token needs a refresh token")
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {subject.Reveal()},
		"audience":      {c.MyAccountAudience()},
		"scope":         {strings.Join(MyAccountScopes, " ")},
		"client_id":     {c.opts.ClientID},
		"client_secret": {c.opts.ClientSecret.Reveal()},
	}
	return c.token(ctx, form, "my_account")
}

// ConnectRequest starts connecting an account (connect).
type ConnectRequest struct {
	Connection  string   // "github", "google-oauth2", …
	RedirectURI string   // AgentHub's callback, where the browser returns
	State       string   // the flow's single-use state
	Challenge   string   // the PKCE S256 code challenge
	Scopes      []string // the provider's scopes to ask for
}

// Ticket is where to send the person's browser, and the session to
// complete with.
type Ticket struct {
	URL     string // connect_uri with its ticket
	Session string // auth_session
	Expires time.Time
}

// ConnectedAccount is an account connected to Token Vault.
type ConnectedAccount struct {
	ID         string   `json:"id"`
	Connection string   `json:"connection"`
	Scopes     []string `json:"scopes"`
}

// StartConnect asks the My Account API to connect an account, through
// the client of a lease on the person's "auth0" connection, and returns
// the page to send their browser to.
func (c *Client) StartConnect(ctx context.Context, lease *http.Client, r ConnectRequest) (Ticket, error) {
	if r.Connection == "" || r.RedirectURI == "" || r.State == "" || r.Challenge == "" {
		return Ticket{}, errors.New("auth0: connect needs a connection, a redirect URI, a state and a PKCE challenge")
	}
	body := map[string]any{"connection": r.Connection, "redirect_uri": r.RedirectURI, "state": r.State,
		"code_challenge": r.Challenge, "code_challenge_method": "S256"}
	if len(r.Scopes) > 0 {
		body["scopes"] = r.Scopes
	}
	var out struct {
		ConnectURI    string `json:"connect_uri"`
		AuthSession   string `json:"auth_session"`
		ConnectParams struct {
			Ticket string `json:"ticket"`
		} `json:"connect_params"`
		ExpiresIn int64 `json:"expires_in"`
	}
	if err := c.myAccount(ctx, lease, http.MethodPost, "connected-accounts/connect", body, &out); err != nil {
		return Ticket{}, err
	}
	u, err := url.Parse(out.ConnectURI)
	if err != nil || out.AuthSession == "" || out.ConnectParams.Ticket == "" || u.Host != c.base.Host || (u.Scheme != "https" && u.Scheme != c.base.Scheme) {
		// The browser goes only to the tenant itself.
		return Ticket{}, errors.New("auth0: connect: the answer has no usable connect URI on the tenant")
	}
	q := u.Query()
	q.Set("ticket", out.ConnectParams.Ticket)
	u.RawQuery = q.Encode()
	return Ticket{URL: u.String(), Session: out.AuthSession, Expires: c.opts.Now().Add(time.Duration(out.ExpiresIn) * time.Second)}, nil
}

// CompleteConnect completes it with the connect_code the browser came
// back with, and returns the account connected.
func (c *Client) CompleteConnect(ctx context.Context, lease *http.Client, session, code, redirectURI, verifier string) (ConnectedAccount, error) {
	if session == "" || code == "" || verifier == "" {
		return ConnectedAccount{}, errors.New("auth0: complete needs the session, the connect code and the PKCE verifier")
	}
	var out ConnectedAccount
	err := c.myAccount(ctx, lease, http.MethodPost, "connected-accounts/complete",
		map[string]any{"auth_session": session, "connect_code": code, "redirect_uri": redirectURI, "code_verifier": verifier}, &out)
	if err == nil && (out.ID == "" || out.Connection == "") {
		err = errors.New("auth0: complete: the answer names no connected account")
	}
	return out, err
}

// DeleteConnected deletes a connected account; one already gone counts
// as deleted.
func (c *Client) DeleteConnected(ctx context.Context, lease *http.Client, id string) error {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return errors.New("auth0: delete: not a connected account's ID")
	}
	err := c.myAccount(ctx, lease, http.MethodDelete, "connected-accounts/accounts/"+url.PathEscape(id), nil, nil)
	var x *ExchangeError
	if errors.As(err, &x) && x.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// myAccount calls the My Account API with the lease's client.
func (c *Client) myAccount(ctx context.Context, lease *http.Client, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("auth0: my account: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath("me", "v1", path).String(), body)
	if err != nil {
		return fmt.Errorf("auth0: my account: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := lease.Do(req)
	if err != nil {
		return fmt.Errorf("auth0: my account %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("auth0: my account: read the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return &ExchangeError{Status: resp.StatusCode, Code: code(e.Error)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &ExchangeError{Status: resp.StatusCode, Code: "malformed_answer"}
	}
	return nil
}

// DisconnectAccount deletes connected account id with the person's Auth0
// refresh token: the vault's RevokeAccount of a Token Vault connection,
// which must not revoke that refresh token (their other connections, and
// their Auth0 connection, hold it too). The My Account token it gets for
// this is used once and dropped.
func (c *Client) DisconnectAccount(ctx context.Context, id string, subject secret.Secret) error {
	tok, err := c.MyAccountToken(ctx, subject)
	if err != nil {
		return err
	}
	bearer := &http.Client{Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(tok), Base: c.opts.HTTPClient.Transport},
		Timeout: c.opts.HTTPClient.Timeout, CheckRedirect: c.opts.HTTPClient.CheckRedirect}
	return c.DeleteConnected(ctx, bearer, id)
}

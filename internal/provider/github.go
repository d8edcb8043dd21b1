package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/go-github/v62/github"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/secret"
)

// gitHub is a GitHub App's user-to-server tokens: 8-hour access tokens and
// 6-month refresh tokens that rotate on each use (when the app has token
// expiration on). A GitHub App has no OAuth scopes: what its tokens may do
// is the app's permissions (INSTALL.md lists them) intersected with the
// person's own access. The connection records the one scope the GitHub
// agent declares, "repo", which the app's permissions stand for.
func gitHub(s Settings, ep *agent.Endpoints) (Service, error) {
	api, apiHost, err := base(s.GitHubAPIURL, gitHubAPI)
	if err != nil {
		return Service{}, fmt.Errorf("GITHUB_API_URL: %w", err)
	}
	web, _, err := base(s.GitHubWebURL, gitHubWeb)
	if err != nil {
		return Service{}, fmt.Errorf("GITHUB_WEB_URL: %w", err)
	}
	ep.GitHub = api
	g := &gitHubApp{client: s.GitHub, http: s.HTTPClient, api: api, conf: &oauth2.Config{
		ClientID: s.GitHub.ID, ClientSecret: s.GitHub.Secret.Reveal(),
		Endpoint: oauth2.Endpoint{AuthURL: web + "login/oauth/authorize", TokenURL: web + "login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
	}}
	return Service{
		Name: "github", Title: "GitHub", APIHosts: []string{apiHost}, OAuth: g.conf,
		// allow_signup=false: a person without a GitHub account has
		// nothing to connect.
		AuthOptions: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("allow_signup", "false")},
		Exchange:    g.exchange, Revoke: g.revoke,
	}, nil
}

type gitHubApp struct {
	client Client
	http   *http.Client
	api    string
	conf   *oauth2.Config
}

// apiClient is go-github on the API URL, sending through rt.
func (g *gitHubApp) apiClient(rt http.RoundTripper) *github.Client {
	c := github.NewClient(&http.Client{Transport: rt, Timeout: g.http.Timeout, CheckRedirect: g.http.CheckRedirect})
	u, _ := url.Parse(g.api) // checked by base
	c.BaseURL = u
	return c
}

func (g *gitHubApp) transport() http.RoundTripper {
	if g.http.Transport != nil {
		return g.http.Transport
	}
	return http.DefaultTransport
}

// exchange swaps the code and asks GitHub whose account it is.
func (g *gitHubApp) exchange(ctx context.Context, x connect.Exchange) (connect.Grant, error) {
	grant, err := connect.StandardExchange(ctx, x)
	if err != nil {
		return connect.Grant{}, err
	}
	grant.Scopes = []string{githubagent.Scope}
	user, _, err := g.apiClient(&oauth2.Transport{Source: oauth2.StaticTokenSource(grant.Token), Base: g.transport()}).Users.Get(ctx, "")
	if err != nil {
		// A connection that cannot say whose it is is not stored: give
		// back what was obtained.
		g.revoke(ctx, secret.New(grant.Token.AccessToken), secret.New(grant.Token.RefreshToken))
		return connect.Grant{}, fmt.Errorf("github: who is this: %w", githubFailure(err))
	}
	grant.Account = user.GetLogin()
	if id := user.GetID(); id != 0 {
		grant.AccountID = strconv.FormatInt(id, 10) // a login can be renamed; the ID stays
	}
	return grant, nil
}

// revoke deletes the app's grant for the person: every token the app
// holds for them dies. GitHub needs a live access token to name the
// grant; when the one held has expired, the refresh token gets a fresh
// one first. A token GitHub no longer knows means the grant is gone.
func (g *gitHubApp) revoke(ctx context.Context, access, refresh secret.Secret) error {
	if !access.IsZero() {
		gone, err := g.deleteGrant(ctx, access)
		if err != nil || gone {
			return err
		}
	}
	if refresh.IsZero() {
		return nil
	}
	tok, err := g.conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, g.http), &oauth2.Token{RefreshToken: refresh.Reveal()}).Token()
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode == "bad_refresh_token" {
		return nil // the refresh token is dead: so is the grant it named
	}
	if err != nil {
		return fmt.Errorf("github: revoke: refresh to name the grant: %w", githubFailure(err))
	}
	gone, err := g.deleteGrant(ctx, secret.New(tok.AccessToken))
	if err == nil && !gone {
		err = &statusError{op: "github: delete grant with a fresh token", status: http.StatusNotFound}
	}
	if err != nil {
		// The refresh spent the old refresh token: a retry must use these.
		return &rotatedError{err: err, access: secret.New(tok.AccessToken), refresh: secret.New(tok.RefreshToken)}
	}
	return nil
}

// deleteGrant is DELETE /applications/{client_id}/grant with the client's
// credentials; gone is false when GitHub does not know the token (404,
// 422): it expired or was revoked.
func (g *gitHubApp) deleteGrant(ctx context.Context, access secret.Secret) (gone bool, err error) {
	c := g.apiClient(&github.BasicAuthTransport{Username: g.client.ID, Password: g.client.Secret.Reveal(), Transport: g.transport()})
	resp, err := c.Authorizations.DeleteGrant(ctx, g.client.ID, access.Reveal())
	switch {
	case err == nil:
		return true, nil
	case resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnprocessableEntity):
		return false, nil
	default:
		return false, fmt.Errorf("github: delete grant: %w", githubFailure(err))
	}
}

// githubFailure keeps an error's HTTP status and drops its text, which
// may quote a response body.
func githubFailure(err error) error {
	if er, ok := errors.AsType[*github.ErrorResponse](err); ok && er.Response != nil {
		return &statusError{op: "github", status: er.Response.StatusCode}
	}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		return &statusError{op: "github token endpoint", status: re.Response.StatusCode, code: re.ErrorCode}
	}
	return err
}

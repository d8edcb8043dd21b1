package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/secret"
)

// slackUserScopes are the user scopes the Slack agent's actions declare.
var slackUserScopes = []string{slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite, slackagent.ScopeChannelsManage}

// slackUser is the Slack app's client for user tokens (user_scope, not
// scope: AgentHub's bot token comes from installing the app, not from
// here). With token rotation on, a user token lasts 12 hours and its
// refresh token rotates; the vault refreshes it at oauth.v2.access, whose
// answer to a user token's refresh names that token at the top level.
//
// Slack is the one provider that knows who the person is in Slack: the
// account connected must be the Slack user the link was for, in the same
// workspace, or nothing is connected.
func slackUser(s Settings, ep *agent.Endpoints) (Service, error) {
	api, host, err := base(s.SlackAPIURL, slackAPI)
	if err != nil {
		return Service{}, fmt.Errorf("SLACK_API_URL: %w", err)
	}
	ep.Slack = api
	u, _ := url.Parse(api)              // checked by base
	origin := u.Scheme + "://" + u.Host // https://slack.com/api/ → https://slack.com
	c := &slackClient{client: s.Slack, http: s.HTTPClient, api: api}
	conf := &oauth2.Config{
		ClientID: s.Slack.ID, ClientSecret: s.Slack.Secret.Reveal(),
		Endpoint: oauth2.Endpoint{AuthURL: origin + "/oauth/v2/authorize", TokenURL: api + "oauth.v2.access", AuthStyle: oauth2.AuthStyleInParams},
	}
	return Service{
		Name: "slack", Title: "Slack", APIHosts: []string{host}, OAuth: conf,
		AuthOptions: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("user_scope", strings.Join(slackUserScopes, ","))},
		Exchange:    c.exchange, Revoke: c.revoke,
	}, nil
}

type slackClient struct {
	client Client
	http   *http.Client
	api    string
}

// exchange swaps the code at oauth.v2.access with slack-go: the user
// token is under authed_user. It is kept only when it is the link's
// person's, in the link's workspace; otherwise it is revoked at once.
func (c *slackClient) exchange(ctx context.Context, x connect.Exchange) (connect.Grant, error) {
	resp, err := slack.GetOAuthV2ResponseContext(ctx, c.http, c.client.ID, c.client.Secret.Reveal(), x.Code, x.Config.RedirectURL,
		slack.OAuthOptionAPIURL(c.api), slack.OAuthOptionCodeVerifier(x.Verifier))
	if err != nil {
		return connect.Grant{}, slackFailure("oauth.v2.access", err)
	}
	u := resp.AuthedUser
	if u.AccessToken == "" {
		return connect.Grant{}, fmt.Errorf("slack: oauth.v2.access: %w", errNoToken)
	}
	if u.ID != x.Principal.User || resp.Team.ID != x.Principal.Team {
		c.revoke(ctx, secret.New(u.AccessToken), secret.New(u.RefreshToken))
		return connect.Grant{}, fmt.Errorf("slack: the token is for another Slack user: %w", connect.ErrWrongAccount)
	}
	tok := &oauth2.Token{AccessToken: u.AccessToken, RefreshToken: u.RefreshToken, TokenType: "Bearer"}
	if u.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(u.ExpiresIn) * time.Second)
	}
	scopes := strings.FieldsFunc(u.Scope, func(r rune) bool { return r == ',' || r == ' ' })
	slices.Sort(scopes)
	return connect.Grant{Token: tok, Scopes: scopes, Account: u.ID + " in " + resp.Team.ID, AccountID: resp.Team.ID + "/" + u.ID}, nil
}

// revoke calls auth.revoke with the token itself (Slack revokes the token
// that calls it). Slack has no way to revoke a refresh token alone: with
// rotation on, an access token that has expired is refreshed first, so
// that the live token can be revoked. A token Slack no longer honours
// (invalid_auth, token_revoked, token_expired, account_inactive) is
// already revoked.
func (c *slackClient) revoke(ctx context.Context, access, refresh secret.Secret) error {
	if !access.IsZero() {
		err := c.authRevoke(ctx, access)
		if err == nil || !errors.Is(err, errDeadToken) || refresh.IsZero() {
			return ignoreDead(err)
		}
	}
	if refresh.IsZero() {
		return nil
	}
	resp, err := slack.RefreshOAuthV2TokenContext(ctx, c.http, c.client.ID, c.client.Secret.Reveal(), refresh.Reveal(), slack.OAuthOptionAPIURL(c.api))
	if err != nil {
		return ignoreDead(slackFailure("oauth.v2.access", err))
	}
	if err := c.authRevoke(ctx, secret.New(resp.AccessToken)); err != nil {
		// The refresh spent the old refresh token: a retry must use these.
		return &rotatedError{err: err, access: secret.New(resp.AccessToken), refresh: secret.New(resp.RefreshToken)}
	}
	return nil
}

// errDeadToken marks a token Slack no longer honours.
var errDeadToken = errors.New("slack: token no longer valid")

func ignoreDead(err error) error {
	if errors.Is(err, errDeadToken) {
		return nil
	}
	return err
}

func (c *slackClient) authRevoke(ctx context.Context, tok secret.Secret) error {
	api := slack.New(tok.Reveal(), slack.OptionAPIURL(c.api), slack.OptionHTTPClient(c.http))
	if _, err := api.SendAuthRevokeContext(ctx, ""); err != nil {
		return slackFailure("auth.revoke", err)
	}
	return nil
}

// slackFailure keeps Slack's error code or HTTP status and drops anything
// else; codes that mean the token is dead wrap errDeadToken.
func slackFailure(method string, err error) error {
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		switch se.Err {
		case "invalid_auth", "token_revoked", "token_expired", "account_inactive", "not_authed", "invalid_refresh_token":
			return fmt.Errorf("slack: %s: %s: %w", method, se.Err, errDeadToken)
		}
		return fmt.Errorf("slack: %s: %s", method, se.Err)
	}
	if se, ok := errors.AsType[slack.StatusCodeError](err); ok {
		return &statusError{op: "slack: " + method, status: se.Code}
	}
	return fmt.Errorf("slack: %s: %w", method, err)
}

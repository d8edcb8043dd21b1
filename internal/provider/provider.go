// Package provider is the real GitHub, Google and Slack as AgentHub talks
// to them: each one's OAuth client and endpoints, how an authorization
// code becomes a connection (and whose account it is), and how tokens are
// revoked there. The wiring (cmd/bot) turns each Service into the vault's
// service and the connect flow's provider; the simulated providers of the
// demo are internal/simenv's business.
//
// A service is on when its client ID and secret are both set; Real says
// which are off. Every URL can be pointed elsewhere: GitHub's at a GitHub
// Enterprise Server, all of them at httptest fakes in tests.
package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/secret"
)

// Client is an OAuth client: its ID and secret.
type Client struct {
	ID     string
	Secret secret.Secret
}

// Set reports whether both halves are there.
func (c Client) Set() bool { return c.ID != "" && !c.Secret.IsZero() }

// Settings say which clients AgentHub has and where the providers are.
// Empty URLs are the public services'.
type Settings struct {
	// GitHub is a GitHub App's client (its user-to-server tokens).
	GitHub Client
	// GitHubAPIURL is the REST API (default https://api.github.com/; a
	// GitHub Enterprise Server's is https://HOST/api/v3/), GitHubWebURL
	// where people sign in (default https://github.com).
	GitHubAPIURL, GitHubWebURL string

	// Google is an OAuth client of type "Web application".
	Google Client
	// Google's endpoints: consent, token, revocation, and the Calendar
	// API. Tests point them at fakes.
	GoogleAuthURL, GoogleTokenURL, GoogleRevokeURL, GoogleCalendarURL string

	// Slack is the Slack app's client, for user tokens.
	Slack Client
	// SlackAPIURL is Slack's Web API (default https://slack.com/api/);
	// the consent page is /oauth/v2/authorize on the same origin.
	SlackAPIURL string

	// HTTPClient exchanges codes, asks whose account it is and revokes
	// (default: 30 s timeout, no redirects, so that a redirect never
	// carries a client secret or token elsewhere).
	HTTPClient *http.Client
}

// Service is one provider as the vault and the connect flow need it.
type Service struct {
	Name  string // "github", "google", "slack": the connection's name
	Title string // what pages call it: "GitHub"
	// APIHosts are the hosts a lease's client may call.
	APIHosts []string
	// OAuth is the client with the provider's endpoints and the scopes
	// asked for; AuthStyle is set (the vault refreshes with it).
	OAuth *oauth2.Config
	// AuthOptions are the consent request's further parameters.
	AuthOptions []oauth2.AuthCodeOption
	// Exchange turns a code into a grant that names the account.
	Exchange connect.Exchanger
	// Revoke revokes tokens at the provider; "already revoked" is success.
	Revoke func(ctx context.Context, access, refresh secret.Secret) error
	// OptionalScopes are scopes not asked for on the first connection: an
	// action that needs one asks for it then (connect.Provider).
	OptionalScopes []string
	// Covers names the narrower scopes a granted scope includes
	// (vault.Service).
	Covers map[string][]string
}

// Public URLs of the providers.
const (
	gitHubAPI      = "https://api.github.com/"
	gitHubWeb      = "https://github.com"
	googleAuth     = "https://accounts.google.com/o/oauth2/v2/auth"
	googleToken    = "https://oauth2.googleapis.com/token"
	googleRevoke   = "https://oauth2.googleapis.com/revoke"
	googleCalendar = "https://www.googleapis.com/calendar/v3/"
	slackAPI       = "https://slack.com/api/"
)

// Off is a service that is not set up, and the settings it lacks.
type Off struct {
	Service string
	Missing []string // the settings' names, never a value
}

// Real returns the services whose clients are set, in the order GitHub,
// Google, Slack, with the agents' endpoints; off lists the others. It
// calls nothing.
func Real(s Settings) (services []Service, endpoints agent.Endpoints, off []Off, err error) {
	if s.HTTPClient == nil {
		s.HTTPClient = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	endpoints = agent.DefaultEndpoints()
	builders := []struct {
		name    string
		client  Client
		missing []string
		build   func(Settings, *agent.Endpoints) (Service, error)
	}{
		{"github", s.GitHub, []string{"GITHUB_APP_CLIENT_ID", "GITHUB_APP_CLIENT_SECRET"}, gitHub},
		{"google", s.Google, []string{"GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"}, google},
		{"slack", s.Slack, []string{"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"}, slackUser},
	}
	for _, b := range builders {
		if !b.client.Set() {
			var missing []string
			if b.client.ID == "" {
				missing = append(missing, b.missing[0])
			}
			if b.client.Secret.IsZero() {
				missing = append(missing, b.missing[1])
			}
			off = append(off, Off{Service: b.name, Missing: missing})
			continue
		}
		svc, err := b.build(s, &endpoints)
		if err != nil {
			return nil, agent.Endpoints{}, nil, fmt.Errorf("provider: %s: %w", b.name, err)
		}
		services = append(services, svc)
	}
	return services, endpoints, off, nil
}

// base parses a provider URL (def when raw is empty) and returns it with
// one trailing slash, and its host.
func base(raw, def string) (string, string, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q is not an http(s) URL with a host", raw)
	}
	return strings.TrimSuffix(u.String(), "/") + "/", u.Host, nil
}

// statusError is a provider's answer that was not what was asked for, by
// its HTTP status alone (its body may quote a token). The vault shows it
// by StatusCode.
type statusError struct {
	op     string
	status int
	code   string // the provider's error code, when it gave one
}

func (e *statusError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("%s: HTTP status %d (%s)", e.op, e.status, e.code)
	}
	return fmt.Sprintf("%s: HTTP status %d", e.op, e.status)
}

// StatusCode is the HTTP status.
func (e *statusError) StatusCode() int { return e.status }

// rotatedError is a revocation that refreshed the tokens first (to have a
// live one to revoke with) and then failed: the old refresh token is
// spent, so the vault queues these for the retry (vault.RotatedTokens).
type rotatedError struct {
	err             error
	access, refresh secret.Secret
}

func (e *rotatedError) Error() string { return e.err.Error() }
func (e *rotatedError) Unwrap() error { return e.err }

// RotatedTokens are the tokens the refresh gave.
func (e *rotatedError) RotatedTokens() (access, refresh secret.Secret) { return e.access, e.refresh }

// errNoToken is a token response without a token.
var errNoToken = errors.New("the token response holds no token")

package sim_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-github/v62/github"
	"github.com/slack-go/slack"
	"golang.org/x/oauth2"
	"google.golang.org/api/calendar/v3"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/sim"
)

// start is a fixed Tuesday morning, so seeded events are deterministic.
var start = time.Date(2026, time.March, 10, 10, 0, 0, 0, time.UTC)

type env struct {
	w     *sim.World
	clock *clocktest.Clock
	srv   *httptest.Server
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c := clocktest.New(start)
	w := sim.New(sim.Options{Now: c.Now})
	srv := sim.NewServer(w)
	tb.Cleanup(srv.Close)
	return &env{w: w, clock: c, srv: srv}
}

// connect issues tokens for principal and returns the access token.
func (e *env) connect(tb testing.TB, service, principal string, scopes ...string) string {
	tb.Helper()
	access, _, err := e.w.IssueTokens(service, principal, scopes)
	if err != nil {
		tb.Fatalf("IssueTokens(%s): %v", service, err)
	}
	return access
}

// bearerClient is how agents get a client: the token is injected by the transport.
func bearerClient(ctx context.Context, token string) *http.Client {
	if token == "" {
		return &http.Client{}
	}
	return oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
}

func (e *env) github(tb testing.TB, token string) *github.Client {
	tb.Helper()
	c := github.NewClient(bearerClient(context.Background(), token))
	u, err := url.Parse(e.srv.URL + "/github/")
	if err != nil {
		tb.Fatal(err)
	}
	c.BaseURL = u
	return c
}

func (e *env) calendar(tb testing.TB, token string) *calendar.Service {
	tb.Helper()
	svc, err := calendar.NewService(context.Background(),
		option.WithEndpoint(e.srv.URL+"/calendar/v3/"),
		option.WithHTTPClient(bearerClient(context.Background(), token)))
	if err != nil {
		tb.Fatalf("calendar.NewService: %v", err)
	}
	return svc
}

// slack returns a client whose token travels in the Authorization header, as the agents' will.
func (e *env) slack(token string) *slack.Client {
	return slack.New("", slack.OptionHTTPClient(bearerClient(context.Background(), token)),
		slack.OptionAPIURL(e.srv.URL+"/slack/api/"))
}

func (e *env) oauthConfig(service string) *oauth2.Config {
	c := sim.DefaultClients()[service]
	return &oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: c.Secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:  e.srv.URL + sim.AuthorizePath(service),
			TokenURL: e.srv.URL + sim.TokenPath(service),
		},
		RedirectURL: "https://agenthub.test/oauth/callback",
	}
}

// ghStatus is the HTTP status of a go-github error (0 for none).
func ghStatus(tb testing.TB, resp *github.Response, err error) int {
	tb.Helper()
	if err == nil {
		return resp.StatusCode
	}
	var er *github.ErrorResponse
	if errors.As(err, &er) {
		return er.Response.StatusCode
	}
	if resp != nil && resp.Response != nil {
		return resp.StatusCode
	}
	tb.Fatalf("not an HTTP error: %v", err)
	return 0
}

// googleCode is the HTTP status of a Google API error (0 for none).
func googleCode(tb testing.TB, err error) int {
	tb.Helper()
	if err == nil {
		return 0
	}
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		tb.Fatalf("not a googleapi error: %v", err)
	}
	return ge.Code
}

// slackCode is the Slack error code of err ("" for none).
func slackCode(tb testing.TB, err error) string {
	tb.Helper()
	if err == nil {
		return ""
	}
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		tb.Fatalf("not a Slack error response: %v", err)
	}
	return se.Err
}

func lastCall(tb testing.TB, w *sim.World) sim.Call {
	tb.Helper()
	calls := w.Calls()
	if len(calls) == 0 {
		tb.Fatal("no calls recorded")
	}
	return calls[len(calls)-1]
}

package sim_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v62/github"
	"github.com/slack-go/slack"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/sim"
)

func TestCallsRecordWhatReachedTheProvider(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gh := e.github(t, e.connect(t, sim.ServiceGitHub, "alice", sim.ScopePublicRepo))
	if _, _, err := gh.PullRequests.Get(ctx, "acme", "website", 12); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	if _, _, err := gh.PullRequests.Merge(ctx, "acme", "payments", 7, "", nil); err == nil {
		t.Fatal("merge of a private PR with public_repo succeeded")
	}
	api := e.slack(e.connect(t, sim.ServiceSlack, "bob", sim.ScopeChatWrite))
	if _, _, err := api.PostMessage("#deploys", slack.MsgOptionText("hi", false)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.calendar(t, "ya29.bogus").Events.List("primary").Do(); err == nil {
		t.Fatal("bogus token accepted")
	}

	want := []sim.Call{
		{Service: "github", Method: "GET", Path: "/github/repos/acme/website/pulls/12", Principal: "alice", Status: 200, Time: start},
		{Service: "github", Method: "PUT", Path: "/github/repos/acme/payments/pulls/7/merge", Principal: "alice", Status: 404, Error: "Not Found", Time: start.Add(time.Second)},
		{Service: "slack", Method: "POST", Path: "/slack/api/chat.postMessage", Principal: "bob", Status: 200, Time: start.Add(time.Second)},
		{Service: "google", Method: "GET", Path: "/calendar/v3/calendars/primary/events", Status: 401, Error: "authError", Time: start.Add(time.Second)},
	}
	if diff := cmp.Diff(want, e.w.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[:2], e.w.CallsFor(sim.ServiceGitHub)); diff != "" {
		t.Errorf("github calls (-want +got):\n%s", diff)
	}
	if got := e.w.CallsFor("nope"); len(got) != 0 {
		t.Errorf("calls for an unknown service = %v, want none", got)
	}
}

// TestTokensNeverRecorded drives every token path and then looks for each token, and each
// token's distinctive tail, in everything the world exposes about calls, grants and logs.
func TestTokensNeverRecorded(t *testing.T) {
	var logs bytes.Buffer
	c := clocktest.New(start)
	w := sim.New(sim.Options{Now: c.Now, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	srv := sim.NewServer(w)
	defer srv.Close()
	e := &env{w: w, clock: c, srv: srv}
	ctx := context.Background()

	var secrets []string
	for _, service := range []string{sim.ServiceGitHub, sim.ServiceGoogle, sim.ServiceSlack} {
		access, refresh, err := w.IssueTokens(service, "alice", scopesFor[service])
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, access, refresh)
		probe(t, e, service, access)
		cfg := e.oauthConfig(service)
		tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		probe(t, e, service, tok.AccessToken)
		_, _ = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token() // reuse
		probe(t, e, service, tok.AccessToken)                                     // revoked
		verifier := oauth2.GenerateVerifier()
		code, err := w.AuthorizeCode(service, "alice", scopesFor[service], cfg.RedirectURL, oauth2.S256ChallengeFromVerifier(verifier))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, code)
		tok, err = cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		resp, err := http.PostForm(srv.URL+"/oauth/"+service+"/revoke", url.Values{"token": {tok.AccessToken}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		probe(t, e, service, tok.AccessToken)
	}
	// Slack's form-parameter token path too.
	access, _, err := w.IssueTokens(sim.ServiceSlack, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, access)
	if _, err := slack.New(access, slack.OptionAPIURL(srv.URL+"/slack/api/")).AuthTest(); err != nil {
		t.Fatal(err)
	}

	exposed := fmt.Sprintf("%v\n%+v\n%#v\n%#v\n%s", w.Calls(), w.Calls(), w.Calls(), w.Grants(""), logs.String())
	if len(w.Calls()) < 20 || !strings.Contains(logs.String(), "sim call") {
		t.Fatalf("only %d calls recorded, or nothing logged; the test would prove nothing", len(w.Calls()))
	}
	for i, s := range secrets {
		tail := s[len(s)-16:]
		if strings.Contains(exposed, tail) {
			t.Errorf("secret #%d (%d chars) appears in calls, grants or logs", i, len(s))
		}
	}
}

func TestTransportServesInProcess(t *testing.T) {
	w := sim.New(sim.Options{Now: func() time.Time { return start }})
	access, _, err := w.IssueTokens(sim.ServiceGitHub, "alice", []string{sim.ScopeRepo})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &oauth2.Transport{
		Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: access}),
		Base:   w.Transport(),
	}}
	gh := github.NewClient(hc)
	gh.BaseURL, _ = url.Parse("http://sim.invalid/github/")
	ctx := context.Background()
	if _, _, err := gh.PullRequests.Merge(ctx, "acme", "payments", 7, "", nil); err != nil {
		t.Fatalf("Merge: %v", err)
	}
	if pr, _ := w.GitHub().PullRequest("acme/payments", 7); !pr.Merged {
		t.Error("PR 7 not merged")
	}
	_, resp, err := gh.PullRequests.Merge(ctx, "acme", "payments", 7, "", nil)
	if got, want := ghStatus(t, resp, err), http.StatusMethodNotAllowed; got != want {
		t.Errorf("second merge status = %d, want %d", got, want)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := gh.PullRequests.Get(cancelled, "acme", "payments", 7); err == nil {
		t.Error("request with a cancelled context succeeded")
	}
}

func TestEmptyWorld(t *testing.T) {
	w := sim.New(sim.Options{Empty: true})
	if _, ok := w.GitHub().Repo("acme/payments"); ok {
		t.Error("empty world has acme/payments")
	}
	if got := w.Calendar().Events(sim.PrimaryCalendar); len(got) != 0 {
		t.Errorf("empty world has %d events", len(got))
	}
	if got := w.Slack().Channels(); len(got) != 0 {
		t.Errorf("empty world has %d channels", len(got))
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	now := func() time.Time { return start }
	a, b := sim.New(sim.Options{Now: now}), sim.New(sim.Options{Now: now})
	pa, _ := a.GitHub().PullRequest("acme/payments", 7)
	pb, _ := b.GitHub().PullRequest("acme/payments", 7)
	if diff := cmp.Diff(pa, pb); diff != "" {
		t.Errorf("PR 7 differs between worlds (-a +b):\n%s", diff)
	}
	if diff := cmp.Diff(a.Calendar().Events("primary"), b.Calendar().Events("primary")); diff != "" {
		t.Errorf("events differ between worlds (-a +b):\n%s", diff)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	const n = 20
	tok := e.connect(t, sim.ServiceSlack, "alice", sim.ScopeChatWrite, sim.ScopeChannelsRead)
	ghTok := e.connect(t, sim.ServiceGitHub, "alice", sim.ScopeRepo)
	api, gh := e.slack(tok), e.github(t, ghTok)
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _, err := api.PostMessage("C0GENERAL1", slack.MsgOptionText(fmt.Sprint("msg ", i), false))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, _, err := gh.Issues.CreateComment(context.Background(), "acme", "website", 13,
				&github.IssueComment{Body: github.String(fmt.Sprint("comment ", i))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	msgs := e.w.Slack().Messages("#general")
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[m.TS] = true
	}
	if len(msgs) != n || len(seen) != n {
		t.Errorf("messages = %d with %d distinct ts, want %d", len(msgs), len(seen), n)
	}
	if pr, _ := e.w.GitHub().PullRequest("acme/website", 13); len(pr.Comments) != n {
		t.Errorf("comments = %d, want %d", len(pr.Comments), n)
	}
	if got, want := len(e.w.Calls()), 2*n; got != want {
		t.Errorf("calls = %d, want %d", got, want)
	}
}

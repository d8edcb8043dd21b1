package slackagent_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/agenttest"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/google/go-cmp/cmp"
)

var allScopes = []string{slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite, slackagent.ScopeChannelsManage}

func setup(t *testing.T, scopes ...string) (*sim.World, *agent.Registry, *http.Client) {
	t.Helper()
	if scopes == nil {
		scopes = allScopes
	}
	return agenttest.Setup(t, sim.Options{}, slackagent.Register, sim.ServiceSlack, scopes...)
}

type call struct{ Path, Error string }

func calls(w *sim.World) []call {
	var out []call
	for _, c := range w.CallsFor(sim.ServiceSlack) {
		out = append(out, call{c.Path, c.Error})
	}
	return out
}

func TestListChannels(t *testing.T) {
	w, r, c := setup(t)
	res, err := agenttest.Run(t, r, c, "slack.list_channels", nil)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got, want := res.Summary, "3 channels: #general, #eng, #deploys"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	if got := res.Data.([]slackagent.Channel)[2]; got.Members != 12 || got.ID != "C0DEPLOYS1" {
		t.Errorf("deploys = %+v, want 12 members and ID C0DEPLOYS1", got)
	}
	if diff := cmp.Diff([]call{{"/slack/api/conversations.list", ""}}, calls(w)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestPostMessage(t *testing.T) {
	w, r, c := setup(t)
	res, err := agenttest.Run(t, r, c, "slack.post_message", map[string]any{"channel": "#deploys", "text": " deploy done "})
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	if res.Summary != "Posted to #deploys" {
		t.Errorf("summary = %q", res.Summary)
	}
	msgs := w.Slack().Messages("#deploys")
	if len(msgs) != 1 || msgs[0].Text != "deploy done" {
		t.Fatalf("messages in #deploys = %+v, want one saying deploy done", msgs)
	}
	if id, _ := w.Slack().UserID(agenttest.Principal); msgs[0].User != id {
		t.Errorf("message posted by %q, want the person's user %q", msgs[0].User, id)
	}
	want := []call{{"/slack/api/conversations.list", ""}, {"/slack/api/chat.postMessage", ""}}
	if diff := cmp.Diff(want, calls(w)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestArchiveChannel(t *testing.T) {
	w, r, c := setup(t)
	if _, err := agenttest.Run(t, r, c, "slack.archive_channel", map[string]any{"channel": "#eng"}); err != nil {
		t.Fatalf("archive: %v", err)
	}
	if ch, _ := w.Slack().Channel("#eng"); !ch.Archived {
		t.Error("#eng is not archived")
	}
	_, err := agenttest.Run(t, r, c, "slack.archive_channel", map[string]any{"channel": "C0ENG00001"})
	checkErr(t, err, agent.Conflict, "slack: archive #eng: already_archived")
	_, err = agenttest.Run(t, r, c, "slack.archive_channel", map[string]any{"channel": "#general"})
	checkErr(t, err, agent.Conflict, "slack: archive #general: cant_archive_general")
	_, err = agenttest.Run(t, r, c, "slack.post_message", map[string]any{"channel": "#nope", "text": "hi"})
	checkErr(t, err, agent.NotFound, "slack: find channel #nope: channel_not_found")
}

func TestMissingScope(t *testing.T) {
	w, r, _ := setup(t)
	c, token := agenttest.ClientToken(t, w, sim.ServiceSlack, slackagent.ScopeChannelsRead)
	_, err := agenttest.Run(t, r, c, "slack.post_message", map[string]any{"channel": "#deploys", "text": "hi"})
	checkErr(t, err, agent.Forbidden, "slack: post to #deploys: missing_scope")
	if strings.Contains(err.Error(), token) {
		t.Error("the error text contains the access token")
	}
	if n := len(w.Slack().Messages("#deploys")); n != 0 {
		t.Errorf("%d messages posted without chat:write", n)
	}
}

func checkErr(t *testing.T, err error, kind agent.ErrorKind, msg string) {
	t.Helper()
	var pe *agent.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want *agent.ProviderError", err)
	}
	if pe.Kind != kind {
		t.Errorf("kind = %v, want %v", pe.Kind, kind)
	}
	if got := err.Error(); got != msg {
		t.Errorf("error = %q, want %q", got, msg)
	}
}

func TestResource(t *testing.T) {
	_, r, c := setup(t)
	got, err := agenttest.Resource(t, r, c, "slack.archive_channel", map[string]any{"channel": "#deploys"})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Resource{Kind: "channel", Name: "#deploys", Attrs: map[string]any{
		"id": "C0DEPLOYS1", "private": false, "audience": "workspace", "members": int64(12), "archived": false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resource (-want +got):\n%s", diff)
	}
}

// recorder captures what slack-go sends, after the agent's transport and before the sim.
type recorder struct {
	mu     sync.Mutex
	bodies []string
	auth   []string
	next   http.RoundTripper
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	rec.mu.Lock()
	rec.bodies = append(rec.bodies, string(body))
	rec.auth = append(rec.auth, r.Header.Get("Authorization"))
	rec.mu.Unlock()
	return rec.next.RoundTrip(r)
}

// TestNoBlankToken checks that the empty token slack-go would send never leaves the agent, and
// that only the lease's header carries a credential.
func TestNoBlankToken(t *testing.T) {
	w, r, leased := setup(t)
	rec := &recorder{next: leased.Transport}
	c := &http.Client{Transport: rec}
	if _, err := agenttest.Run(t, r, c, "slack.post_message", map[string]any{"channel": "#deploys", "text": "hi"}); err != nil {
		t.Fatalf("post: %v", err)
	}
	if len(rec.bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(rec.bodies))
	}
	for i, b := range rec.bodies {
		if strings.Contains(b, "token") {
			t.Errorf("request %d body has a token field: %q", i, b)
		}
		if rec.auth[i] != "" {
			t.Errorf("request %d reached the lease with an Authorization header of its own", i)
		}
	}
	if n := len(w.Slack().Messages("#deploys")); n != 1 {
		t.Errorf("%d messages posted, want 1", n)
	}
}

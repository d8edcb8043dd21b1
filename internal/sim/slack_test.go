package sim_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/sim"
)

var allSlackScopes = []string{sim.ScopeChannelsRead, sim.ScopeChatWrite, sim.ScopeChannelsManage}

func TestSlackAuthTest(t *testing.T) {
	e := newEnv(t)
	tok := e.connect(t, sim.ServiceSlack, "T0ACME0001/U123", allSlackScopes...)
	for _, tc := range []struct {
		name string
		api  *slack.Client
	}{
		{"token in header", e.slack(tok)},
		{"token in form", slack.New(tok, slack.OptionAPIURL(e.srv.URL+"/slack/api/"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.api.AuthTest()
			if err != nil {
				t.Fatalf("AuthTest: %v", err)
			}
			id, _ := e.w.Slack().UserID("T0ACME0001/U123")
			if got.UserID != id || got.User != "T0ACME0001/U123" || got.TeamID == "" {
				t.Errorf("auth.test = %+v, want user %s", got, id)
			}
			if got, want := lastCall(t, e.w).Principal, "T0ACME0001/U123"; got != want {
				t.Errorf("recorded principal = %q, want %q", got, want)
			}
		})
	}
}

func TestSlackConversations(t *testing.T) {
	e := newEnv(t)
	api := e.slack(e.connect(t, sim.ServiceSlack, "alice", allSlackScopes...))

	channels, _, err := api.GetConversations(&slack.GetConversationsParameters{Types: []string{"public_channel"}})
	if err != nil {
		t.Fatalf("GetConversations: %v", err)
	}
	var names []string
	for _, c := range channels {
		names = append(names, c.Name+"="+c.ID)
	}
	want := []string{"general=C0GENERAL1", "eng=C0ENG00001", "deploys=C0DEPLOYS1"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("channels (-want +got):\n%s", diff)
	}

	t.Run("post", func(t *testing.T) {
		for _, tc := range []struct {
			name, channel, text, wantErr string
		}{
			{"by ID", "C0DEPLOYS1", "deploy started", ""},
			{"by #name", "#deploys", "deploy done", ""},
			{"unknown channel", "#nope", "hello", "channel_not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ch, ts, err := api.PostMessage(tc.channel, slack.MsgOptionText(tc.text, false))
				if got := slackCode(t, err); got != tc.wantErr {
					t.Fatalf("error = %q, want %q", got, tc.wantErr)
				}
				if tc.wantErr == "" && (ch != "C0DEPLOYS1" || ts == "") {
					t.Errorf("posted to %q at %q, want C0DEPLOYS1 with a ts", ch, ts)
				}
			})
		}
		uid, _ := e.w.Slack().UserID("alice")
		msgs := e.w.Slack().Messages("#deploys")
		var got []string
		for _, m := range msgs {
			if m.User != uid || !m.Time.Equal(start) {
				t.Errorf("message %+v, want by %s at %v", m, uid, start)
			}
			got = append(got, m.Text)
		}
		if diff := cmp.Diff([]string{"deploy started", "deploy done"}, got); diff != "" {
			t.Errorf("messages in #deploys (-want +got):\n%s", diff)
		}
		if msgs[0].TS >= msgs[1].TS {
			t.Errorf("timestamps %q, %q are not increasing", msgs[0].TS, msgs[1].TS)
		}
	})

	t.Run("archive", func(t *testing.T) {
		for _, tc := range []struct {
			name, channel, wantErr string
		}{
			{"archive", "C0ENG00001", ""},
			{"again", "C0ENG00001", "already_archived"},
			{"by name", "eng", "channel_not_found"},
			{"general", "C0GENERAL1", "cant_archive_general"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := slackCode(t, api.ArchiveConversation(tc.channel)); got != tc.wantErr {
					t.Errorf("error = %q, want %q", got, tc.wantErr)
				}
			})
		}
		if c, _ := e.w.Slack().Channel("#eng"); !c.Archived {
			t.Error("#eng is not archived")
		}
		_, _, err := api.PostMessage("#eng", slack.MsgOptionText("anyone?", false))
		if got, want := slackCode(t, err), "is_archived"; got != want {
			t.Errorf("post to archived channel error = %q, want %q", got, want)
		}
		open, _, err := api.GetConversations(&slack.GetConversationsParameters{ExcludeArchived: true})
		if err != nil || len(open) != 2 {
			t.Errorf("unarchived channels = %d (err %v), want 2", len(open), err)
		}
	})
}

func TestSlackAuth(t *testing.T) {
	post := func(api *slack.Client) error {
		_, _, err := api.PostMessage("#general", slack.MsgOptionText("hi", false))
		return err
	}
	archive := func(api *slack.Client) error { return api.ArchiveConversation("C0DEPLOYS1") }
	for _, tc := range []struct {
		name    string
		token   func(tb testing.TB, e *env) string
		op      func(*slack.Client) error
		wantErr string
	}{
		{"no token", func(tb testing.TB, e *env) string { return "" }, post, "not_authed"},
		{"unknown token", func(tb testing.TB, e *env) string { return "xoxp-made-up" }, post, "invalid_auth"},
		{"github token", func(tb testing.TB, e *env) string { return e.connect(tb, sim.ServiceGitHub, "alice", "repo") }, post, "invalid_auth"},
		{"expired", func(tb testing.TB, e *env) string {
			tok := e.connect(tb, sim.ServiceSlack, "alice", allSlackScopes...)
			e.clock.Advance(time.Hour)
			return tok
		}, post, "token_expired"},
		{"revoked", func(tb testing.TB, e *env) string {
			tok := e.connect(tb, sim.ServiceSlack, "alice", allSlackScopes...)
			e.w.RevokeGrants(sim.ServiceSlack, "alice")
			return tok
		}, post, "token_revoked"},
		{"missing chat:write", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceSlack, "alice", sim.ScopeChannelsRead)
		}, post, "missing_scope"},
		{"missing channels:manage", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceSlack, "alice", sim.ScopeChannelsRead, sim.ScopeChatWrite)
		}, archive, "missing_scope"},
		{"channels:write archives", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceSlack, "alice", sim.ScopeChannelsWrite)
		}, archive, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			err := tc.op(e.slack(tc.token(t, e)))
			if got := slackCode(t, err); got != tc.wantErr {
				t.Fatalf("error = %q, want %q", got, tc.wantErr)
			}
			if got, want := lastCall(t, e.w), (sim.Call{Service: sim.ServiceSlack, Status: http.StatusOK, Error: tc.wantErr}); got.Status != want.Status || got.Error != want.Error || got.Service != want.Service {
				t.Errorf("recorded call = %+v, want status 200 and error %q", got, tc.wantErr)
			}
			if tc.wantErr != "" && len(e.w.Slack().Messages("#general")) != 0 {
				t.Error("a refused call posted a message")
			}
		})
	}
	t.Run("missing scope names what is needed", func(t *testing.T) {
		e := newEnv(t)
		err := post(e.slack(e.connect(t, sim.ServiceSlack, "alice", sim.ScopeChannelsRead)))
		var se slack.SlackErrorResponse
		if !errors.As(err, &se) || se.Needed != sim.ScopeChatWrite || se.Provided != sim.ScopeChannelsRead {
			t.Errorf("error = %#v, want needed %q provided %q", err, sim.ScopeChatWrite, sim.ScopeChannelsRead)
		}
	})
}

func TestSlackErrors(t *testing.T) {
	e := newEnv(t)
	tok := e.connect(t, sim.ServiceSlack, "alice", allSlackScopes...)
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		wantBody                 string
	}{
		{"unknown method", "POST", "/slack/api/users.list", "", http.StatusOK, `"error":"unknown_method"`},
		{"bad json", "POST", "/slack/api/chat.postMessage", "{", http.StatusOK, `"error":"invalid_json"`},
		{"json body", "POST", "/slack/api/chat.postMessage", `{"channel":"#general","text":"json"}`, http.StatusOK, `"ok":true`},
		{"outside the api", "GET", "/slack/other", "", http.StatusNotFound, `"error":"unknown_method"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawCall(t, e, tc.method, tc.path, tc.body, tok)
			if status != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tc.want, tc.wantBody)
			}
		})
	}
}

package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/command"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

func (f *flow) command(user, text string) (ack string, env slacktest.Envelope) {
	f.t.Helper()
	env = f.srv.SlashCommand(slacktest.Command{User: user, Channel: "C1", Command: Command, Text: text})
	return f.do(env), env
}

// responsesTo returns what was posted to an envelope's response_url.
func (f *flow) responsesTo(env slacktest.Envelope) []slacktest.Response {
	f.t.Helper()
	var p struct {
		ResponseURL string `json:"response_url"`
	}
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		f.t.Fatal(err)
	}
	var out []slacktest.Response
	for _, r := range f.srv.Responses() {
		if r.URL == p.ResponseURL {
			out = append(out, r)
		}
	}
	return out
}

func TestSlashAnsweredInTheAck(t *testing.T) {
	f := newFlow(t, flowOptions{})
	tests := []struct {
		text string
		want string // in the ack's text
	}{
		{"help", "`/agenthub revoke all`"},
		{"", "`/agenthub pending`"},
		{"  HELP ", "`/agenthub whoami`"},
		{"frobnicate the <!channel>", "I don't know `/agenthub frobnicate the &lt;!channel&gt;`"},
		{"frobnicate `x`", "I don't know `/agenthub frobnicate \u02cbx\u02cb`"},
		{"help me", "I don't know `/agenthub help me`. Try:\n`/agenthub help`"},
		{"revoke", "Try:\n`/agenthub revoke &lt;service&gt;`  revoke a service"},
		{"audit many", "audit takes a number of events from 1 to 1000"},
		{"audit 0", "audit takes a number of events from 1 to 1000"},
		{"code", "I don't know `/agenthub code`.\n*Commands:*"}, // the demo's alone
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			ack, env := f.command(alice, tt.text)
			var got map[string]string
			if err := json.Unmarshal([]byte(ack), &got); err != nil {
				t.Fatalf("ack %q: %v", ack, err)
			}
			if got["response_type"] != "ephemeral" || !strings.Contains(got["text"], tt.want) {
				t.Errorf("ack = %v, want an ephemeral text containing %q", got, tt.want)
			}
			if r := f.responsesTo(env); len(r) != 0 {
				t.Errorf("responses = %+v, want none: the ack answered", r)
			}
		})
	}
	if calls := f.srv.Calls(""); len(calls) != 0 {
		t.Errorf("Slack calls = %+v, want none", calls)
	}
}

func TestSlashAnsweredThroughResponseURL(t *testing.T) {
	f := newFlow(t, flowOptions{})
	askComment(t, f) // alice: connected, one pending request, some history
	tests := []struct {
		text string
		want []string
	}{
		{"pending", []string{"Waiting for you:", "github.comment", "acme/payments"}},
		{"grants", []string{"You have no grants"}},
		{"whoami", []string{"You are <@" + alice + ">", "github", "google", "slack"}},
		{"audit", []string{"audit event(s)", "policy.decided"}},
		{"audit 2", []string{"Your last 2 audit event(s)"}},
		{"connect github", []string{"Connected github."}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			ack, env := f.command(alice, tt.text)
			if ack != "" {
				t.Errorf("ack = %s, want a bare ack", ack)
			}
			rs := f.responsesTo(env)
			if len(rs) != 1 {
				t.Fatalf("responses = %+v, want one", rs)
			}
			if rs[0].ResponseType != "ephemeral" || rs[0].ReplaceOriginal {
				t.Errorf("response type %q, replace_original %v; want ephemeral, false", rs[0].ResponseType, rs[0].ReplaceOriginal)
			}
			for _, w := range tt.want {
				if !strings.Contains(rs[0].Text, w) {
					t.Errorf("response = %q, want it to contain %q", rs[0].Text, w)
				}
			}
		})
	}
	// Other people's requests are not shown.
	_, env := f.command(eve, "pending")
	if rs := f.responsesTo(env); len(rs) != 1 || rs[0].Text != "Nothing is waiting for you." {
		t.Errorf("eve's pending = %+v, want nothing", rs)
	}
}

func TestSlashConnectWithoutOAuth(t *testing.T) {
	f := newFlow(t, flowOptions{noConnect: true})
	_, env := f.command(alice, "connect github")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "not set up here") {
		t.Errorf("responses = %+v, want connecting said to be unavailable", rs)
	}
}

// TestSlashConnectGivesALinkForTheAskerAlone: with the OAuth flow on,
// "/agenthub connect" answers the asker alone with a link made out to them,
// and connects nothing by itself.
func TestSlashConnectGivesALinkForTheAskerAlone(t *testing.T) {
	var asked []string
	f := newFlow(t, flowOptions{connectLink: func(p broker.Principal, service string, _ []string) (string, error) {
		asked = append(asked, p.String()+" "+service)
		return "https://agenthub.example.com/connect?t=made-out-to-" + p.User, nil
	}})
	_, env := f.command(alice, "connect github")
	rs := f.responsesTo(env)
	if len(rs) != 1 || rs[0].ResponseType != "ephemeral" || !strings.Contains(rs[0].Text, "<https://agenthub.example.com/connect?t=made-out-to-"+alice+"|Connect github>") {
		t.Fatalf("responses = %+v, want an ephemeral link for alice", rs)
	}
	if want := testPrincipal(alice).String() + " github"; len(asked) != 1 || asked[0] != want {
		t.Errorf("links made for %q, want %q", asked, want)
	}
	if cs, err := f.env.Vault.Connections(f.ctx, testPrincipal(alice).String()); err != nil || len(cs) != 0 {
		t.Errorf("connections after asking for a link = %+v, %v; want none", cs, err)
	}
}

// A service this install has not set up is named as such, with the ones
// it has; no link is made for it.
func TestSlashConnectServiceNotSetUp(t *testing.T) {
	var asked int
	f := newFlow(t, flowOptions{connectLink: func(p broker.Principal, service string, _ []string) (string, error) {
		asked++
		return "https://agenthub.example.com/connect?t=x", nil
	}})
	f.app.opts.Services, f.app.opts.Off = []string{"github"}, []string{"google", "slack"}
	_, env := f.command(alice, "connect google")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "google is not set up here") || !strings.Contains(rs[0].Text, "I can connect github") {
		t.Errorf("responses = %+v, want google said not to be set up, and github offered", rs)
	}
	if asked != 0 {
		t.Errorf("links made = %d, want 0", asked)
	}
}

// The demo's connect names an unknown service as such, and a provider that
// fails as a failure, not as a misspelling.
func TestSlashConnectAnswers(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	_, env := f.command(alice, "connect gitlab")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, `don't know the service "gitlab"`) {
		t.Errorf("responses to connect gitlab = %+v, want the service named unknown", rs)
	}
	f.app.opts.Connect = func(context.Context, broker.Principal, string) error { return errors.New("unreachable") }
	_, env = f.command(alice, "connect github")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "did not answer") {
		t.Errorf("responses to connect github with the provider down = %+v, want it said to have failed", rs)
	}
}

func TestSlashRevokeCancelsPending(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, _ := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	homes := len(f.srv.Published(alice))

	_, env := f.command(alice, "revoke github")

	rs := f.responsesTo(env)
	if len(rs) != 1 || !strings.Contains(rs[0].Text, "Revoked github: 1 open request(s) canceled") {
		t.Errorf("responses = %+v, want the revoke's summary", rs)
	}
	now := f.message(dm)
	if b := flowButtons(now.Blocks); len(b) != 0 {
		t.Errorf("approval DM buttons after the revoke = %v, want none", b)
	}
	if texts := flowTexts(now.Blocks); !strings.Contains(texts, "Canceled: github was revoked") {
		t.Errorf("approval DM after the revoke = %q, want canceled", texts)
	}
	if r, err := f.env.Broker.Lookup(f.ctx, id); err != nil || r.Status != broker.StatusCanceled {
		t.Errorf("request after the revoke: %v, %v; want canceled", r.Status, err)
	}
	if got := len(f.srv.Published(alice)); got != homes+1 {
		t.Errorf("App Home published %d times after the revoke, want %d", got, homes+1)
	}
}

func TestHomeRevokeButtons(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, _ := askComment(t, f)
	f.do(f.srv.AppHomeOpened(alice))
	home := f.srv.Published(alice)
	var v struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(home[len(home)-1].JSON, &v); err != nil {
		t.Fatal(err)
	}
	// A click in App Home has no channel to answer in.
	f.do(f.srv.BlockAction(slacktest.Action{User: alice, ActionID: ActionRevokeAll, Value: flowButtons(v.Blocks)[ActionRevokeAll]}))

	if texts := flowTexts(f.message(dm).Blocks); !strings.Contains(texts, "Canceled") {
		t.Errorf("approval DM after revoke all = %q, want canceled", texts)
	}
	conns, err := f.env.Vault.Connections(f.ctx, testPrincipal(alice).String())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		if c.Status == "active" {
			t.Errorf("connection %s still active after revoke all", c.Service)
		}
	}
	if got := len(f.srv.Published(alice)); got != len(home)+1 {
		t.Errorf("App Home published %d times, want %d", got, len(home)+1)
	}
	// Slack gives an App Home click no response_url: the summary goes to
	// the person's DM with the bot.
	if got := f.srv.Responses(); len(got) != 0 {
		t.Errorf("%d answers to a response_url, want none (an App Home click has none)", len(got))
	}
	if last := f.lastDM(alice); !strings.Contains(last.Text, "Revoked all services") {
		t.Errorf("newest DM after the click = %q, want the revoke's summary", last.Text)
	}
}

// The grammar is internal/command's; what is the Slack app's is which
// commands it answers in the ack, and that it has no demo code.
func TestParseCommand(t *testing.T) {
	tests := []struct {
		name       string
		text       string
		want       command.Command
		wantAnswer string // "": work to do
	}{
		{"revoke a service", "revoke GitHub", command.Command{Verb: command.Revoke, Service: "github"}, ""},
		{"revoke all", "revoke ALL", command.Command{Verb: command.RevokeAll}, ""},
		{"connect", "connect google", command.Command{Verb: command.Connect, Service: "google"}, ""},
		{"audit", "audit", command.Command{Verb: command.Audit, Count: command.DefaultCount}, ""},
		{"audit n", "audit 1000", command.Command{Verb: command.Audit, Count: 1000}, ""},
		{"pending", "pending", command.Command{Verb: command.Pending}, ""},
		{"nothing", "", command.Command{Verb: command.Help}, helpText},
		{"help", "help", command.Command{Verb: command.Help}, helpText},
		{"no demo code", "code", command.Command{}, "I don't know `/agenthub code`.\n" + helpText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, answer := parseCommand(tt.text)
			if answer != tt.wantAnswer {
				t.Errorf("parseCommand(%q) answers %q, want %q", tt.text, answer, tt.wantAnswer)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseCommand(%q) (-want +got):\n%s", tt.text, diff)
			}
		})
	}
	if strings.Contains(helpText, "/agenthub code") {
		t.Errorf("the Slack help offers the demo's code:\n%s", helpText)
	}
}

// TestSlashPendingWaitingForConnection: a request waiting for its
// connection has no resource yet; pending names the connection it waits
// for instead.
func TestSlashPendingWaitingForConnection(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.mention(alice, "C1", listPulls) // first contact connects everything
	if _, err := f.env.Broker.Revoke(f.ctx, testPrincipal(alice), sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	f.mention(alice, "C1", listPulls)

	_, env := f.command(alice, "pending")
	rs := f.responsesTo(env)
	if len(rs) != 1 {
		t.Fatalf("responses = %+v, want one", rs)
	}
	if want := "waiting for the `github` connection, expires"; !strings.Contains(rs[0].Text, want) {
		t.Errorf("pending = %q, want it to contain %q", rs[0].Text, want)
	}
	for _, bad := range []string{"on ``", "waiting_connection", "waiting connection"} {
		if strings.Contains(rs[0].Text, bad) {
			t.Errorf("pending = %q, want no %q", rs[0].Text, bad)
		}
	}
}

// Tokens revoked at Slack revoke the Slack connection here too and tell
// the person; other connections stay. An uninstall revokes the team's.
func TestSlackTokensRevokedAtSlack(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.do(f.srv.AppHomeOpened(alice)) // first contact: the demo connects alice
	f.do(f.srv.TokensRevoked(alice))
	p := testPrincipal(alice).String()
	if c, err := f.env.Vault.Connection(f.ctx, p, "slack"); err != nil || c.Status != "revoked" {
		t.Errorf("slack connection after tokens_revoked = %s, %v; want revoked", c.Status, err)
	}
	if c, err := f.env.Vault.Connection(f.ctx, p, "github"); err != nil || c.Status != "active" {
		t.Errorf("github connection after tokens_revoked = %s, %v; want active", c.Status, err)
	}
	found := false
	for _, m := range f.dms(alice) {
		found = found || strings.Contains(m.Text, "You took back AgentHub's access at Slack, so I revoked slack here too.")
	}
	if !found {
		t.Errorf("alice was not told in her DM")
	}

	var uninstalled []string
	f.app.opts.Uninstalled = func(_ context.Context, team string) { uninstalled = append(uninstalled, team) }
	f.do(f.srv.AppUninstalled())
	if want := []string{slacktest.TeamID}; !slices.Equal(uninstalled, want) {
		t.Errorf("Uninstalled told of %q, want %q", uninstalled, want)
	}
}

// The Connect button of a step that needs more than the connection
// granted names the scopes it needs, and its link asks for them (Google's
// calendar.events for a write, asked only then).
func TestConnectButtonAsksForTheStepsScopes(t *testing.T) {
	var asked [][]string
	f := newFlow(t, flowOptions{connectLink: func(p broker.Principal, service string, scopes []string) (string, error) {
		asked = append(asked, append([]string{service}, scopes...))
		return "https://agenthub.example.com/connect?t=x", nil
	}})
	const write = "https://www.googleapis.com/auth/calendar.events"
	f.app.deliverAsked(f.ctx, testPrincipal(alice), thread{}, []broker.Output{{Kind: broker.KindConnect, Service: "google",
		Action: "calendar.create_event", Scopes: []string{write}, Text: "calendar.create_event needs your google account."}})
	f.do(f.click(alice, f.lastDM(alice), ActionConnect))
	_, env := f.command(alice, "connect google")
	f.responsesTo(env)
	if len(asked) != 2 || !slices.Equal(asked[0], []string{"google", write}) || !slices.Equal(asked[1], []string{"google"}) {
		t.Errorf("links asked for %q, want the write's scope from the button and none from the command", asked)
	}
}

// /agenthub forget clears what the LLM planner remembers of the person's
// conversations, theirs alone; without the LLM planner it says there is
// nothing to forget.
func TestSlashForget(t *testing.T) {
	var forgot []broker.Principal
	f := newFlow(t, flowOptions{})
	_, env := f.command(alice, "forget")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "not set up") {
		t.Errorf("forget without the LLM planner: %+v", rs)
	}
	f.app.opts.Forget = func(_ context.Context, p broker.Principal) (int, error) {
		forgot = append(forgot, p)
		return 2, nil
	}
	_, env = f.command(alice, "forget")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "our 2 conversation(s)") {
		t.Errorf("forget: %+v", rs)
	}
	if len(forgot) != 1 || forgot[0] != testPrincipal(alice) {
		t.Errorf("forgot %v, want alice's alone", forgot)
	}
}

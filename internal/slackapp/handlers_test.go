package slackapp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// People in the fake workspace; Slack user IDs look like these, and only
// IDs that do are rendered as mentions.
const (
	alice = "U0ALICE01"
	bob   = "U0BOB0002"
	eve   = "U0EVE0003"
)

const (
	listPulls = "list open pull requests in acme/website"
	comment   = "comment 'LGTM' on PR 7 in acme/payments"
	merge     = "merge PR 7 in acme/payments"
)

func TestMessageRepliesInThread(t *testing.T) {
	f := newFlow(t, flowOptions{})
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     func() slacktest.Envelope
		channel string
		thread  string // "" means the message's own ts
	}{
		{"mention at top level", func() slacktest.Envelope {
			return f.srv.AppMention(slacktest.Msg{User: alice, Channel: "C1", Text: "<@" + slacktest.BotUserID + "> " + listPulls})
		}, "C1", ""},
		{"mention in a thread", func() slacktest.Envelope {
			return f.srv.AppMention(slacktest.Msg{User: alice, Channel: "C1", ThreadTS: "1700000000.000100", Text: "<@" + slacktest.BotUserID + "> " + listPulls})
		}, "C1", "1700000000.000100"},
		{"direct message", func() slacktest.Envelope {
			return f.srv.DirectMessage(slacktest.Msg{User: alice, Channel: f.srv.DMChannel(alice), Text: listPulls})
		}, f.srv.DMChannel(alice), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env()
			f.do(env)
			threadTS := tt.thread
			if threadTS == "" {
				threadTS = env.MustEventTS(t)
			}
			got := f.replies(tt.channel, threadTS)
			if len(got) != 1 || !strings.HasPrefix(got[0], ":white_check_mark:") || !strings.Contains(got[0], "acme/website") {
				t.Errorf("replies in thread %s = %q, want one result about acme/website", threadTS, got)
			}
		})
	}
}

func TestBotsOwnMessagesAreIgnored(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm := f.srv.DMChannel(alice)
	bot := f.srv.DirectMessage(slacktest.Msg{User: slacktest.BotUserID, Channel: dm, Text: listPulls})
	f.do(bot)
	f.do(f.srv.AppMention(slacktest.Msg{User: slacktest.BotUserID, Channel: "C1", Text: "<@" + slacktest.BotUserID + "> " + listPulls}))

	// A message with a subtype (an edit) or a bot_id is no request either.
	for _, patch := range []map[string]any{{"subtype": "message_changed"}, {"bot_id": "B0OTHERBOT"}} {
		env := f.srv.DirectMessage(slacktest.Msg{User: alice, Channel: dm, Text: listPulls})
		var p map[string]any
		if err := json.Unmarshal(env.Payload, &p); err != nil {
			t.Fatal(err)
		}
		for k, v := range patch {
			p["event"].(map[string]any)[k] = v
		}
		env.Payload, _ = json.Marshal(p)
		f.do(env)
	}
	if calls := f.srv.Calls(""); len(calls) != 0 {
		t.Errorf("Slack calls = %+v, want none", calls)
	}
	if evs := f.events(audit.StepProposed); len(evs) != 0 {
		t.Errorf("step.proposed events = %d, want 0: the broker was asked", len(evs))
	}
}

// askComment has alice ask for a comment that needs approval and returns the
// approval DM and the mention's ts.
func askComment(t *testing.T, f *flow) (slacktest.Message, string) {
	t.Helper()
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	ts := f.mention(alice, "C1", comment)
	return f.lastDM(alice), ts
}

func TestApprovalFlow(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, ts := askComment(t, f)

	// The DM is an ApprovalMessage: its header, what would run, and one
	// button per choice, each carrying the request ID alone.
	buttons := flowButtons(dm.Blocks)
	id := buttons[ActionDecidePrefix+broker.ChoiceOnce]
	r, err := f.env.Broker.Lookup(f.ctx, id)
	if err != nil {
		t.Fatalf("the Approve button's value %q is no request: %v", id, err)
	}
	if r.Principal != testPrincipal(alice) || r.Status != broker.StatusPending {
		t.Fatalf("request = %+v, want alice's pending request", r)
	}
	if len(buttons) < 2 || buttons[ActionDecidePrefix+broker.ChoiceDeny] != id {
		t.Errorf("approval buttons = %v, want Approve once and Deny at least", buttons)
	}
	for action, value := range buttons {
		if !strings.HasPrefix(action, ActionDecidePrefix) || value != id {
			t.Errorf("approval button %s = %q, want a decide button carrying %s", action, value, id)
		}
	}
	if texts := flowTexts(dm.Blocks); !strings.Contains(texts, "Approval needed") || !strings.Contains(texts, r.Step.Action) {
		t.Errorf("approval DM texts = %q, want the header and the action", texts)
	}
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "in a DM") {
		t.Errorf("thread replies = %q, want the note that the approval is in a DM", got)
	}

	f.do(f.click(alice, dm, ActionDecidePrefix+broker.ChoiceOnce))

	// The comment is on a private repository: its result goes to the DM.
	replies := f.replies("C1", ts)
	if len(replies) != 2 || replies[1] != "I sent you the result in a DM." || !f.dmHas(alice, ":white_check_mark:") {
		t.Errorf("thread replies = %q, want the result in the DM and a note after the first", replies)
	}
	now := f.message(dm)
	if now.Updates != 1 {
		t.Errorf("approval DM updated %d times, want 1", now.Updates)
	}
	if b := flowButtons(now.Blocks); len(b) != 0 {
		t.Errorf("approval DM buttons after approving = %v, want none", b)
	}
	if texts := flowTexts(now.Blocks); !strings.Contains(texts, "Approved by <@"+alice+">") {
		t.Errorf("approval DM after approving = %q, want the Approved by line", texts)
	}
	if pub := f.srv.Published(alice); len(pub) == 0 {
		t.Error("App Home not republished after the decision")
	}
	if _, _, err := f.app.loadRecord(f.ctx, id); err == nil {
		t.Error("the request's message record outlived the request")
	}
}

func TestStrangersClickIsRefused(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, ts := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	before := len(f.srv.Calls(""))

	f.do(f.click(eve, dm, ActionDecidePrefix+broker.ChoiceOnce))

	eph := f.srv.Ephemerals(dm.Channel)
	if len(eph) != 1 || eph[0].User != eve || !strings.Contains(eph[0].Text, "Only the person who asked") {
		t.Errorf("ephemerals = %+v, want one refusal to eve", eph)
	}
	if got := f.replies("C1", ts); len(got) != 1 {
		t.Errorf("thread replies = %q, want only the DM note", got)
	}
	if now := f.message(dm); now.Updates != 0 {
		t.Errorf("approval DM updated %d times, want 0", now.Updates)
	}
	var methods []string
	for _, c := range f.srv.Calls("")[before:] {
		methods = append(methods, c.Method)
	}
	if !slices.Equal(methods, []string{"chat.postEphemeral"}) {
		t.Errorf("Slack calls after the click = %v, want just the ephemeral", methods)
	}
	rejected := f.events(audit.InteractionRejected)
	if len(rejected) != 1 || rejected[0].Actor != testPrincipal(eve).String() || rejected[0].RequestID != id {
		t.Errorf("interaction.rejected events = %+v, want one for eve on %s", rejected, id)
	}
	if r, err := f.env.Broker.Lookup(f.ctx, id); err != nil || r.Status != broker.StatusPending {
		t.Errorf("request after the stranger's click: %v, %v; want pending", r.Status, err)
	}
	if evs := f.events(audit.ActionSucceeded); len(evs) != 0 {
		t.Errorf("action.succeeded events = %d, want 0", len(evs))
	}
}

func TestDenyUpdatesTheMessage(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, ts := askComment(t, f)
	f.do(f.click(alice, dm, ActionDecidePrefix+broker.ChoiceDeny))
	if texts := flowTexts(f.message(dm).Blocks); !strings.Contains(texts, "Denied by <@"+alice+">") {
		t.Errorf("DM after deny = %q, want the Denied by line", texts)
	}
	if got := f.replies("C1", ts); len(got) != 2 || !strings.Contains(got[1], "Denied") {
		t.Errorf("thread replies = %q, want the denial", got)
	}
}

// otherCode returns a 6-digit code other than code.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+500000)%1000000)
}

func TestMergeNeedsStepUp(t *testing.T) {
	f := newFlow(t, flowOptions{})
	if err := f.env.EnrollDemo(f.ctx, testPrincipal(alice), alice); err != nil {
		t.Fatal(err)
	}
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	ts := f.mention(alice, "C1", merge)
	approval := f.lastDM(alice)
	id := flowButtons(approval.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]

	f.do(f.click(alice, approval, ActionDecidePrefix+broker.ChoiceOnce))
	stepUp := f.lastDM(alice)
	if stepUp.TS == approval.TS || flowButtons(stepUp.Blocks)[ActionStepUp] != id {
		t.Fatalf("after approving: last DM %q has buttons %v, want the step-up button for %s", stepUp.Text, flowButtons(stepUp.Blocks), id)
	}
	if b := flowButtons(f.message(approval).Blocks); len(b) != 0 {
		t.Errorf("approval DM buttons while step-up waits = %v, want none", b)
	}
	if texts := flowTexts(f.message(approval).Blocks); !strings.Contains(texts, "Approved by <@"+alice+">") {
		t.Errorf("approval DM while step-up waits = %q, want approved", texts)
	}
	if evs := f.events(audit.ActionSucceeded); len(evs) != 0 {
		t.Fatalf("the merge ran on a click alone: %+v", evs)
	}

	f.do(f.click(alice, stepUp, ActionStepUp))
	opened := f.srv.Opened()
	if len(opened) != 1 || !strings.Contains(string(opened[0].JSON), `"callback_id":"`+CallbackStepUp+`"`) ||
		!strings.Contains(string(opened[0].JSON), `"private_metadata":"`+id+`"`) {
		t.Fatalf("modals opened = %+v, want the step-up modal for %s", opened, id)
	}

	// The ack keeps the modal open on a malformed code, without the broker.
	if ack := f.submit(alice, "12ab"); !strings.Contains(ack, `"response_action":"errors"`) || !strings.Contains(ack, StepUpBlockID) {
		t.Errorf("ack of a malformed code = %s, want errors on %s", ack, StepUpBlockID)
	}
	if evs := f.events(audit.StepUpFailed); len(evs) != 0 {
		t.Errorf("a malformed code reached step-up: %+v", evs)
	}

	code := f.demoCode(alice)
	if ack := f.submit(alice, otherCode(code)); ack != "" {
		t.Errorf("ack of a wrong code = %s, want a bare ack", ack)
	}
	retry := f.lastDM(alice)
	if retry.TS == stepUp.TS || !strings.Contains(flowTexts(retry.Blocks), "not valid") || flowButtons(retry.Blocks)[ActionStepUp] != id {
		t.Fatalf("after a wrong code: last DM %q, want a new step-up message saying the code is not valid", flowTexts(retry.Blocks))
	}
	if evs := f.events(audit.ActionSucceeded); len(evs) != 0 {
		t.Fatalf("the merge ran with a wrong code: %+v", evs)
	}

	f.do(f.click(alice, retry, ActionStepUp))
	f.submit(alice, f.demoCode(alice))

	replies := f.replies("C1", ts)
	if len(replies) == 0 || replies[len(replies)-1] != "I sent you the result in a DM." || !f.dmHas(alice, "Merged acme/payments#7") {
		t.Errorf("thread replies = %q, want the merge's result in the DM and a note last", replies)
	}
	for _, m := range []slacktest.Message{approval, stepUp, retry} {
		now := f.message(m)
		if b := flowButtons(now.Blocks); len(b) != 0 {
			t.Errorf("message %q still has buttons %v after the merge", m.Text, b)
		}
		if !strings.Contains(flowTexts(now.Blocks), "Approved by <@"+alice+">") {
			t.Errorf("message %q after the merge = %q, want approved", m.Text, flowTexts(now.Blocks))
		}
	}
	if evs := f.events(audit.ActionSucceeded); len(evs) != 1 {
		t.Errorf("action.succeeded events = %d, want 1", len(evs))
	}
}

func TestAppHomeOpened(t *testing.T) {
	f := newFlow(t, flowOptions{})
	if err := f.env.Connect(f.ctx, testPrincipal(alice), "github"); err != nil {
		t.Fatal(err)
	}
	f.do(f.srv.AppHomeOpened(alice))
	pub := f.srv.Published(alice)
	if len(pub) != 1 {
		t.Fatalf("views published for alice = %d, want 1", len(pub))
	}
	var v struct {
		Type   string          `json:"type"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(pub[0].JSON, &v); err != nil {
		t.Fatal(err)
	}
	if v.Type != "home" {
		t.Errorf("view type = %q, want home", v.Type)
	}
	if b := flowButtons(v.Blocks); b[ActionRevokeService] != "github" || b[ActionRevokeAll] != "all" {
		t.Errorf("App Home buttons = %v, want github's revoke and revoke all", b)
	}
	if texts := flowTexts(v.Blocks); !strings.Contains(texts, "Nothing is waiting for you.") {
		t.Errorf("App Home = %q, want the empty pending list", texts)
	}
	if f.srv.Published(eve) != nil {
		t.Error("someone else's App Home was published")
	}
}

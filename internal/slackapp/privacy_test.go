package slackapp

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// Titles of the simulated private repository's pull requests, which must
// never appear in a channel.
var privateTitles = []string{"Fix rounding in refunds", "Add partial refunds"}

// channelLeaks returns the messages in channel (threads included) that
// quote a private title.
func (f *flow) channelLeaks(channel string) []string {
	var out []string
	for _, m := range f.srv.Messages(channel) {
		for _, title := range privateTitles {
			if strings.Contains(m.Text, title) || strings.Contains(string(m.Blocks), title) {
				out = append(out, m.Text)
			}
		}
	}
	return out
}

// dmHas reports whether user's DM holds a message that contains text.
func (f *flow) dmHas(user, text string) bool {
	for _, m := range f.srv.Messages(f.srv.DMChannel(user)) {
		if strings.Contains(m.Text, text) {
			return true
		}
	}
	return false
}

// TestPrivateResultsStayOutOfChannels: a read of a private repository
// asked in a channel is answered in the asker's DM, with a line in the
// thread, on every path: an approval, a grant that stands in for one, and a
// second approval; a public repository's answer stays in the thread.
func TestPrivateResultsStayOutOfChannels(t *testing.T) {
	const listPrivate = "list open pull requests in acme/payments"
	t.Run("approved once", func(t *testing.T) {
		f := newFlow(t, flowOptions{demo: true})
		ts := f.mention(alice, "C1", listPrivate)
		f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
		if got := f.replies("C1", ts); len(got) != 2 || got[1] != "I sent you the result in a DM." {
			t.Errorf("thread replies = %q, want the approval note and the DM note", got)
		}
		if !f.dmHas(alice, privateTitles[0]) {
			t.Error("the result is not in alice's DM")
		}
		if leaks := f.channelLeaks("C1"); len(leaks) > 0 {
			t.Errorf("private pull requests shown in the channel: %q", leaks)
		}
	})
	t.Run("a standing grant", func(t *testing.T) {
		f := newFlow(t, flowOptions{demo: true})
		f.mention(alice, "C1", listPrivate)
		f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceStanding))
		ts := f.mention(alice, "C1", listPrivate) // the grant answers at once
		if got := f.replies("C1", ts); len(got) != 1 || got[0] != "I sent you the result in a DM." {
			t.Errorf("thread replies = %q, want only the DM note", got)
		}
		if leaks := f.channelLeaks("C1"); len(leaks) > 0 {
			t.Errorf("private pull requests shown in the channel: %q", leaks)
		}
	})
	t.Run("asked in the DM", func(t *testing.T) {
		f := newFlow(t, flowOptions{demo: true})
		dm := f.srv.DMChannel(alice)
		f.do(f.srv.DirectMessage(slacktest.Msg{User: alice, Channel: dm, Text: listPrivate}))
		f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
		if f.dmHas(alice, "I sent you the result in a DM") {
			t.Error("the DM was told the result went to the DM")
		}
		if !f.dmHas(alice, privateTitles[0]) {
			t.Error("the result is not in the DM")
		}
	})
	t.Run("a public repository stays in the thread", func(t *testing.T) {
		f := newFlow(t, flowOptions{demo: true})
		ts := f.mention(alice, "C1", listPulls)
		if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "Add feature X") {
			t.Errorf("thread replies = %q, want the result", got)
		}
	})
	t.Run("the calendar is always private", func(t *testing.T) {
		f := newFlow(t, flowOptions{demo: true})
		ts := f.mention(alice, "C1", "what's on my calendar tomorrow")
		f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
		if got := f.replies("C1", ts); len(got) != 2 || got[1] != "I sent you the result in a DM." {
			t.Errorf("thread replies = %q, want the approval note and the DM note", got)
		}
	})
	t.Run("a second approval", func(t *testing.T) {
		f := newFlow(t, flowOptions{demo: true, policy: releasePolicy(t)})
		f.mention(alice, "C1", listPulls) // connects alice
		if err := f.env.EnrollDemo(f.ctx, testPrincipal(alice), alice); err != nil {
			t.Fatal(err)
		}
		ts := f.mention(alice, "C1", "deploy acme/payments to production")
		owners, bobs := f.lastDM(alice), f.lastDM(bob)
		f.do(f.click(alice, owners, ActionDecidePrefix+broker.ChoiceOnce))
		f.do(f.click(alice, f.lastDM(alice), ActionStepUp))
		f.submit(alice, f.demoCode(alice))
		f.do(f.click(bob, bobs, ActionDecidePrefix+broker.ChoiceOnce)) // bob's click runs it
		got := f.replies("C1", ts)
		if last := got[len(got)-1]; last != "I sent you the result in a DM." {
			t.Errorf("thread replies = %q, want the DM note last", got)
		}
		if !f.dmHas(alice, "Started deploy.yml") || f.dmHas(bob, "Started deploy.yml") {
			t.Error("the deploy's result is not in alice's DM alone")
		}
	})
}

// TestGuestsAreVisibleToThePolicy: users.info says who is a guest; the
// default policy lets a guest read but not write, and a member the same.
func TestGuestsAreVisibleToThePolicy(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.srv.SetUser(slacktest.User{ID: eve, Restricted: true})
	ts := f.mention(eve, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "Add feature X") {
		t.Fatalf("a guest's public read = %q, want its result", got)
	}
	ts = f.mention(eve, "C1", "comment 'hi' on PR 12 in acme/website")
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "guests-and-outsiders-do-not-write") {
		t.Errorf("a guest's write = %q, want the guests rule's refusal", got)
	}
	var denied bool
	for _, e := range f.events(audit.PolicyDecided) {
		denied = denied || e.Actor == testPrincipal(eve).String() && e.Rule == "guests-and-outsiders-do-not-write" && e.Decision == "deny"
	}
	if !denied {
		t.Error("no policy.decided deny by the guests rule for eve")
	}
	ts = f.mention(alice, "C1", "comment 'hi' on PR 12 in acme/website")
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "sent you the approval") {
		t.Errorf("a member's write = %q, want an approval", got)
	}
	if calls := f.srv.Calls("users.info"); len(calls) != 2 {
		t.Errorf("users.info calls = %d, want one per person (cached)", len(calls))
	}
}

// TestStrangersVerifyClickIsRecorded: someone else's click on the owner's
// "Verify it's you" button opens nothing, and is on the record.
func TestStrangersVerifyClickIsRecorded(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.mention(alice, "C1", merge)
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	verify := f.lastDM(alice)
	opened := len(f.srv.Opened())
	f.do(f.click(bob, verify, ActionStepUp))
	if got := len(f.srv.Opened()); got != opened {
		t.Errorf("a stranger's click opened %d modal(s)", got-opened)
	}
	var recorded bool
	for _, e := range f.events(audit.InteractionRejected) {
		recorded = recorded || e.Actor == testPrincipal(bob).String() && e.Result == "not_owner" && e.Detail["op"] == "stepup_button" && e.RequestID != ""
	}
	if !recorded {
		t.Error("no interaction.rejected for bob's click on alice's Verify button")
	}
}

// TestViewAllShowsLongArgumentsToDeciders: a comment too long for a card
// is approved after reading it whole in the View all modal; someone who
// may not decide the request is refused the modal, on the record.
func TestViewAllShowsLongArgumentsToDeciders(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	body := strings.Repeat("This changes the refund rounding. ", 120)
	f.mention(alice, "C1", "comment '"+body+"' on PR 12 in acme/website")
	card := f.lastDM(alice)
	if strings.Contains(string(card.Blocks), "refund rounding") {
		t.Fatal("the card shows part of a long body")
	}
	opened := len(f.srv.Opened())
	f.do(f.click(bob, card, ActionViewArgs))
	if len(f.srv.Opened()) != opened {
		t.Error("bob, who may not decide the request, was shown its arguments")
	}
	var refused bool
	for _, e := range f.events(audit.InteractionRejected) {
		refused = refused || e.Actor == testPrincipal(bob).String() && e.Detail["op"] == "view_args"
	}
	if !refused {
		t.Error("bob's View all click is not on the record")
	}
	f.do(f.click(alice, card, ActionViewArgs))
	views := f.srv.Opened()
	if len(views) != opened+1 {
		t.Fatalf("View all opened %d modal(s), want 1", len(views)-opened)
	}
	var shown strings.Builder
	walkObjects(views[len(views)-1].JSON, func(x map[string]any) {
		if x["type"] == "plain_text" {
			s, _ := x["text"].(string)
			shown.WriteString(s)
		}
	})
	if !strings.Contains(shown.String(), strings.TrimSpace(body)) {
		t.Errorf("the modal does not show the whole body (%d characters shown)", shown.Len())
	}
}

// TestAResultsChannelRuleStopsAtSharedChannels: a policy rule may let the
// asking channel see a private repository's pull requests, but not a
// channel shared with another company.
func TestAResultsChannelRuleStopsAtSharedChannels(t *testing.T) {
	p, err := policy.Parse("test", []byte(`version: 1
rules:
  - name: team-repos
    action: github.list_pull_requests
    effect: allow
    results: channel
  - name: default
    effect: deny
`))
	if err != nil {
		t.Fatal(err)
	}
	f := newFlow(t, flowOptions{demo: true, policy: p})
	ts := f.mention(alice, "C1", "list open pull requests in acme/payments")
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], privateTitles[0]) {
		t.Errorf("in the team's channel: %q, want the result there, as the rule says", got)
	}
	shared := edited(t, f.srv.AppMention(slacktest.Msg{User: alice, Channel: "C2", Text: "<@" + slacktest.BotUserID + "> list open pull requests in acme/payments"}),
		func(p map[string]any) { p["is_ext_shared_channel"] = true })
	f.do(shared)
	if got := f.replies("C2", shared.MustEventTS(t)); len(got) != 1 || got[0] != "I sent you the result in a DM." {
		t.Errorf("in a channel shared with another company: %q, want only the DM note", got)
	}
	if leaks := f.channelLeaks("C2"); len(leaks) > 0 {
		t.Errorf("private pull requests shown in the shared channel: %q", leaks)
	}
}

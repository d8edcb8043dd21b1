package slackapp

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// TestWaitingRequestGoesOnInItsThread: asked while GitHub is not
// connected, the bot DMs a Connect button; once the person connects (here
// with the slash command), the request goes on by itself and its result
// lands in the thread it was asked in, and the Connect DM says so.
func TestWaitingRequestGoesOnInItsThread(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	ts := f.mention(alice, "C1", listPulls) // first contact connects everything
	if _, err := f.env.Broker.Revoke(f.ctx, testPrincipal(alice), sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	ts = f.mention(alice, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "sent you a DM to connect") {
		t.Fatalf("thread replies = %q, want the note about the Connect DM", got)
	}
	connectDM := f.lastDM(alice)
	if _, ok := flowButtons(connectDM.Blocks)[ActionConnect]; !ok {
		t.Fatalf("the DM %q has no Connect button", connectDM.Text)
	}
	pending, err := f.env.Broker.Pending(f.ctx, testPrincipal(alice))
	if err != nil || len(pending) != 1 || pending[0].Status != broker.StatusWaitingConnection {
		t.Fatalf("pending = %+v, %v; want the request waiting for its connection", pending, err)
	}

	_, env := f.command(alice, "connect github")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "went on with the 1 request") {
		t.Errorf("answer to connect = %+v, want it to say the waiting request went on", rs)
	}
	got := f.replies("C1", ts)
	if len(got) != 2 || !strings.HasPrefix(got[1], ":white_check_mark:") || !strings.Contains(got[1], "acme/website") {
		t.Fatalf("thread replies after connecting = %q, want the result in the thread", got)
	}
	now := f.message(connectDM)
	if _, ok := flowButtons(now.Blocks)[ActionConnect]; ok || !strings.Contains(flowTexts(now.Blocks), "is connected") {
		t.Errorf("the Connect DM now reads %q with buttons %v, want it settled", flowTexts(now.Blocks), flowButtons(now.Blocks))
	}
}

// TestPlanGoesOnAfterApproval: the rest of a plan runs once the step it
// waited behind is approved, and its results land in the thread.
func TestPlanGoesOnAfterApproval(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	ts := f.mention(alice, "C1", "comment 'LGTM' on PR 12 in acme/website and then "+listPulls)
	if got := f.replies("C1", ts); len(got) != 2 || !strings.Contains(got[1], "will follow once it has run") {
		t.Fatalf("thread replies = %q, want the DM note and that one step will follow", got)
	}
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	got := f.replies("C1", ts)
	if len(got) != 4 || !strings.Contains(got[2], "Commented") || !strings.Contains(got[3], "acme/website") {
		t.Fatalf("thread replies after approving = %q, want the comment's result then the list's", got)
	}
}

// TestOneConnectButtonPerService: requests that wait for the same
// connection share one Connect button: the newest holds it (it expires
// last) and the earlier one is rewritten to point at it; connecting goes
// on with both. A button whose request no longer waits (a revoke canceled
// it) does not count.
func TestOneConnectButtonPerService(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.mention(alice, "C1", listPulls) // first contact connects everything
	if _, err := f.env.Broker.Revoke(f.ctx, testPrincipal(alice), sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	withButton := func() []slacktest.Message {
		var out []slacktest.Message
		for _, m := range f.dms(alice) {
			if now := f.message(m); flowButtons(now.Blocks)[ActionConnect] != "" {
				out = append(out, now)
			}
		}
		return out
	}
	first := f.mention(alice, "C1", listPulls)
	firstDM := f.lastDM(alice)
	second := f.mention(alice, "C2", listPulls)
	buttons := withButton()
	if len(buttons) != 1 || buttons[0].TS == firstDM.TS {
		t.Fatalf("Connect buttons for two waiting requests = %d, want 1, the newest", len(buttons))
	}
	if now := f.message(firstDM); !strings.Contains(now.Text, "newer button") {
		t.Errorf("the earlier Connect DM reads %q, want it pointed at the newer button", now.Text)
	}
	f.do(f.click(alice, buttons[0], ActionConnect))
	for ch, ts := range map[string]string{"C1": first, "C2": second} {
		if got := f.replies(ch, ts); len(got) != 2 || !strings.HasPrefix(got[1], ":white_check_mark:") {
			t.Errorf("%s replies after connecting = %q, want the result", ch, got)
		}
	}

	// A revoke cancels the waiting request; the next wait shows a button
	// of its own.
	f.command(alice, "revoke github")
	f.mention(alice, "C1", listPulls)
	f.command(alice, "revoke github")
	if n := len(withButton()); n != 0 {
		t.Fatalf("Connect buttons after the revoke canceled their request = %d, want 0", n)
	}
	f.mention(alice, "C1", listPulls)
	if n := len(withButton()); n != 1 {
		t.Errorf("Connect buttons after the waiting request was canceled = %d, want 1 (the new one)", n)
	}
}

// The newest button asks for every waiting request's scopes: a read's and
// a write's wait for one Google connection, and its link asks for both.
func TestConnectButtonAsksForEveryWaitingRequestsScopes(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	read := broker.Output{Kind: broker.KindConnect, Service: "google", Action: "calendar.list_events", Scopes: []string{"read-scope"}, Text: "x"}
	write := broker.Output{Kind: broker.KindConnect, Service: "google", Action: "calendar.create_event", Scopes: []string{"write-scope"}, Text: "y"}
	// Requests that wait, so that the first button counts while the
	// second is shown.
	f.mention(alice, "C1", listPulls)
	if _, err := f.env.Broker.Revoke(f.ctx, testPrincipal(alice), sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	f.mention(alice, "C1", listPulls)
	pending, err := f.env.Broker.Pending(f.ctx, testPrincipal(alice))
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %d, %v", len(pending), err)
	}
	read.RequestID, write.RequestID = pending[0].ID, pending[0].ID
	f.app.deliverAsked(f.ctx, testPrincipal(alice), thread{}, []broker.Output{read})
	f.app.deliverAsked(f.ctx, testPrincipal(alice), thread{}, []broker.Output{write})
	if v := flowButtons(f.lastDM(alice).Blocks)[ActionConnect]; v != "google write-scope read-scope" {
		t.Errorf("the newest button's value = %q, want google with both scopes", v)
	}
}

package slackapp

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/sim"
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
// connection share one Connect button: the second is told to use the
// first, and connecting goes on with both. Once its request no longer
// waits (a revoke canceled it), the next one gets a button again.
func TestOneConnectButtonPerService(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.mention(alice, "C1", listPulls) // first contact connects everything
	if _, err := f.env.Broker.Revoke(f.ctx, testPrincipal(alice), sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	buttons := func() int {
		n := 0
		for _, m := range f.dms(alice) {
			if _, ok := flowButtons(f.message(m).Blocks)[ActionConnect]; ok {
				n++
			}
		}
		return n
	}
	first := f.mention(alice, "C1", listPulls)
	second := f.mention(alice, "C2", listPulls)
	if n := buttons(); n != 1 {
		t.Fatalf("Connect buttons for two waiting requests = %d, want 1", n)
	}
	if got := f.replies("C2", second); len(got) != 1 || !strings.Contains(got[0], "waits for your github connection too") {
		t.Errorf("second request's reply = %q, want it pointed at the first button", got)
	}
	f.do(f.click(alice, f.lastDM(alice), ActionConnect))
	for ch, ts := range map[string]string{"C1": first, "C2": second} {
		if got := f.replies(ch, ts); len(got) != 2 || !strings.HasPrefix(got[1], ":white_check_mark:") {
			t.Errorf("%s replies after connecting = %q, want the result", ch, got)
		}
	}

	// A new wait after the connection landed shows a button again; a revoke
	// cancels its request, and the next wait shows one too.
	f.command(alice, "revoke github")
	f.mention(alice, "C1", listPulls)
	if n := buttons(); n != 1 {
		t.Fatalf("Connect buttons after connecting and revoking again = %d, want 1", n)
	}
	f.command(alice, "revoke github")
	if n := buttons(); n != 0 {
		t.Fatalf("Connect buttons after the revoke canceled their request = %d, want 0", n)
	}
	f.mention(alice, "C1", listPulls)
	if n := buttons(); n != 1 {
		t.Errorf("Connect buttons after the waiting request was canceled = %d, want 1 (the new one)", n)
	}
}

package slackapp

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

func statuses(ss []slacktest.SessionStatus, channel, ts string) []string {
	var out []string
	for _, s := range ss {
		if s.Channel == channel && s.ThreadTS == ts {
			out = append(out, s.Status)
		}
	}
	return out
}

// The thread a person asks in is an agent session: processing while the
// bot works, suspended while a request waits for them, closed when done.
func TestAgentSessionFollowsTheWork(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	read := f.mention(alice, "C1", listPulls)
	if got := statuses(f.srv.Sessions(), "C1", read); strings.Join(got, " ") != "processing closed" {
		t.Errorf("a read's session went %v, want processing then closed", got)
	}
	ask := f.mention(alice, "C1", "comment 'LGTM' on PR 12 in acme/website")
	if got := statuses(f.srv.Sessions(), "C1", ask); strings.Join(got, " ") != "processing suspended" {
		t.Fatalf("an approval's session went %v, want processing then suspended", got)
	}
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	if got := statuses(f.srv.Sessions(), "C1", ask); got[len(got)-1] != "closed" {
		t.Errorf("after the approval ran, the session is %v, want closed", got)
	}
	for _, s := range f.srv.Sessions() {
		if s.Initiator != alice {
			t.Errorf("a session set for %q, want the asker", s.Initiator)
		}
	}
}

// Stop on the agent session cancels the requests of that thread that wait,
// and only those; the session closes.
func TestAgentSessionStopCancels(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.mention(alice, "C1", listPulls)
	stop := f.mention(alice, "C1", "comment 'one' on PR 12 in acme/website")
	stopDM := f.lastDM(alice)
	other := f.mention(alice, "C2", "comment 'two' on PR 12 in acme/website")
	f.do(f.srv.AgentSessionStopped(alice, "C1", stop))
	pending, err := f.env.Broker.Pending(f.ctx, testPrincipal(alice))
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending after Stop = %d, %v; want the other thread's request alone", len(pending), err)
	}
	if th := f.app.threadOf(f.ctx, pending[0].ID); th.TS != other {
		t.Errorf("the request left waits in %s, want the other thread", th.TS)
	}
	if got := f.replies("C1", stop); len(got) == 0 || !strings.Contains(got[len(got)-1], "Stopped") {
		t.Errorf("thread replies = %q, want the stop told", got)
	}
	if b := flowButtons(f.message(stopDM).Blocks); len(b) != 0 {
		t.Errorf("the stopped request's DM still has buttons %v", b)
	}
	if got := statuses(f.srv.Sessions(), "C1", stop); got[len(got)-1] != "closed" {
		t.Errorf("the stopped session is %v, want closed", got)
	}
	// The Stop is on the record, for that thread, and marks it: what else
	// of it is under way (a plan, the rest of one) stops on any replica.
	if ev := f.events(audit.ConversationStopped); len(ev) != 1 || ev[0].Resource != "C1:"+stop || ev[0].Actor != testPrincipal(alice).String() {
		t.Errorf("conversation.stopped = %+v, want one for alice's thread", ev)
	}
	// Someone else's Stop on that thread stops nothing of alice's.
	f.do(f.srv.AgentSessionStopped(bob, "C2", other))
	if pending, _ := f.env.Broker.Pending(f.ctx, testPrincipal(alice)); len(pending) != 1 {
		t.Errorf("bob's Stop canceled alice's request")
	}
}

// A workspace without agent sessions is asked once, then left alone.
func TestNoAgentSessions(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.srv.NoAgents()
	f.mention(alice, "C1", listPulls)
	f.mention(alice, "C1", listPulls)
	if n := len(f.srv.Calls("agents.sessions.setStatus")); n != 1 {
		t.Errorf("agents.sessions.setStatus called %d times in a workspace without it, want 1", n)
	}
}

package broker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/planner"
)

const (
	thread1 = "C1:1700000000.000100"
	thread2 = "C1:1700000000.000200"
)

func (f *fixture) handleIn(p Principal, conversation, text string) []Output {
	f.t.Helper()
	outs, err := f.b.Handle(f.ctx, Message{Principal: p, Text: text, Conversation: conversation})
	if err != nil {
		f.t.Fatalf("Handle(%q): %v", text, err)
	}
	return outs
}

func (f *fixture) stop(p Principal, conversation string) {
	f.t.Helper()
	if err := f.b.StopConversation(f.ctx, p, conversation); err != nil {
		f.t.Fatalf("stop %s: %v", conversation, err)
	}
}

// stopOn makes alice press Stop on conversation just before the first
// event of kind for action is recorded.
func stopOn(f *fixture, kind audit.Kind, action, conversation string) {
	f.audit = &hookOn{kind: kind, action: action, next: f.rec, fn: func() {
		if err := f.b.StopConversation(f.ctx, alice, conversation); err != nil {
			f.t.Errorf("stop: %v", err)
		}
	}}
}

// stopPlanner stops alice's conversation while it plans, as a person
// pressing Stop while a model thinks, then answers.
type stopPlanner struct {
	f    *fixture
	plan planner.Plan
}

func (p stopPlanner) Plan(ctx context.Context, req planner.Request) (planner.Plan, error) {
	if err := p.f.b.StopConversation(ctx, alice, req.Conversation); err != nil {
		p.f.t.Errorf("stop: %v", err)
	}
	return p.plan, nil
}

// TestAStopEndsWhatItsConversationBegan: Slack's Stop on a thread stops
// whatever of it is under way, wherever the Stop lands — while the model
// plans, while a step runs (asked now, or continuing an approved
// request), while a request waits — and nothing else: another thread, a
// later message in the same thread, or another person's Stop.
func TestAStopEndsWhatItsConversationBegan(t *testing.T) {
	const (
		list    = "list open pull requests in acme/website"
		comment = "comment 'x' on PR 12 in acme/website"
		show    = "show PR 12 in acme/website"
	)
	t.Run("while the model plans steps", func(t *testing.T) {
		f := newFixture(t)
		f.planner = stopPlanner{f: f, plan: planner.Plan{Steps: []planner.Step{
			{Action: "github.list_pull_requests", Args: map[string]any{"repo": "acme/website"}},
		}}}
		f.b = f.newBroker()
		o := only(t, f.handleIn(alice, thread1, list), KindMessage)
		if !strings.Contains(o.Text, "You stopped this conversation, so I did not start the 1 step(s) left") {
			t.Fatalf("output = %q, want nothing started", o.Text)
		}
		if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
			t.Errorf("lists = %d, want 0", got)
		}
		if got := f.count("", ofKind(audit.ConversationStopped)); got != 1 {
			t.Errorf("conversation.stopped = %d, want 1", got)
		}
	})
	t.Run("while the model writes an answer", func(t *testing.T) {
		f := newFixture(t)
		f.planner = stopPlanner{f: f, plan: planner.Plan{Reply: "Here is what I found: …", Reads: 1}}
		f.b = f.newBroker()
		o := only(t, f.handleIn(alice, thread1, "what is open?"), KindMessage)
		if strings.Contains(o.Text, "what I found") || !strings.Contains(o.Text, "You stopped this conversation") {
			t.Fatalf("output = %q, want the answer dropped", o.Text)
		}
	})
	t.Run("while a step asked now runs", func(t *testing.T) {
		f := newFixture(t)
		stopOn(f, audit.ActionSucceeded, "github.list_pull_requests", thread1)
		outs := f.handleIn(alice, thread1, list+" and then "+comment)
		if got := kinds(outs); len(got) != 2 || got[0] != KindResult || !strings.Contains(outs[1].Text, "You stopped this conversation, so I did not start the 1 step(s) left") {
			t.Fatalf("outputs = %s, want the list's result and the comment not started", dump(outs))
		}
		if got := f.openRequests(); len(got) != 0 {
			t.Errorf("open requests = %+v, want none", got)
		}
	})
	t.Run("while an approved request runs, its plan's rest", func(t *testing.T) {
		f := newFixture(t)
		a := only(t, f.handleIn(alice, thread1, comment+" and then "+list+" and then "+show)[:1], KindApproval)
		if got := f.request(a.RequestID).Conversation; got != thread1 {
			t.Fatalf("request's conversation = %q, want %q", got, thread1)
		}
		stopOn(f, audit.ActionSucceeded, "github.comment", thread1)
		outs := f.decide(alice, a.RequestID, ChoiceOnce)
		if got := kinds(outs); len(got) != 2 || got[0] != KindResult || !strings.Contains(outs[1].Text, "did not start the 2 step(s) left") {
			t.Fatalf("outputs = %s, want the comment's result and the rest not started", dump(outs))
		}
		if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
			t.Errorf("lists = %d, want 0", got)
		}
	})
	t.Run("a waiting request, approved after the Stop", func(t *testing.T) {
		f := newFixture(t)
		a := only(t, f.handleIn(alice, thread1, comment), KindApproval)
		f.stop(alice, thread1)
		o := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
		if !strings.Contains(o.Text, "You stopped the conversation github.comment came from") {
			t.Errorf("output = %q, want the request canceled", o.Text)
		}
		if got := f.calls(http.MethodPost, commentPath); got != 0 {
			t.Errorf("comments = %d, want 0", got)
		}
		if got := f.request(a.RequestID).Status; got != StatusCanceled {
			t.Errorf("status = %s, want canceled", got)
		}
		if got := f.count(a.RequestID, func(e audit.Event) bool {
			return e.Kind == audit.RequestCanceled && e.Detail["reason"] == "stopped in Slack"
		}); got != 1 {
			t.Errorf("request.canceled with its reason = %d, want 1", got)
		}
	})
	t.Run("not another thread, a later message, or another person's Stop", func(t *testing.T) {
		f := newFixture(t)
		a := only(t, f.handleIn(alice, thread2, comment), KindApproval)
		b := only(t, f.handleIn(alice, thread1, comment), KindApproval)
		f.stop(alice, thread1)
		f.stop(bob, thread2)
		only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult)
		only(t, f.handleIn(alice, thread1, list), KindResult)
		if got := f.request(b.RequestID).Status; got != StatusPending {
			t.Errorf("the stopped thread's request = %s before it is touched, want pending", got)
		}
	})
}

// TestStopMarksAreBounded: a person's marks keep their latest
// maxStopMarks Stops (and every service's mark); a plan of a conversation
// whose mark was dropped stops, as after its Stop.
func TestStopMarksAreBounded(t *testing.T) {
	f := newFixture(t)
	if err := f.b.markRevoked(f.ctx, alice, "github"); err != nil {
		t.Fatal(err)
	}
	f.stop(alice, "C0:0")
	a := only(t, f.handleIn(alice, "C0:0", "comment 'x' on PR 12 in acme/website"), KindApproval)
	for i := 1; i <= maxStopMarks; i++ {
		f.stop(alice, fmt.Sprintf("C%d:%d", i, i))
	}
	marks, err := f.b.revocationMarks(f.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	stops := 0
	for k := range marks {
		if strings.HasPrefix(k, stopPrefix) {
			stops++
		}
	}
	if stops != maxStopMarks || marks[stopKey("C0:0")] != "" || marks[stopKey(fmt.Sprintf("C%d:%d", maxStopMarks, maxStopMarks))] == "" || marks["github"] == "" {
		t.Fatalf("marks = %d stops (want %d), oldest kept %v, github's kept %v", stops, maxStopMarks, marks[stopKey("C0:0")] != "", marks["github"] != "")
	}
	if got := len(f.request(a.RequestID).Revoked); got != 3 {
		t.Errorf("the request keeps %d marks, want 3 (github's, its conversation's, the last Stop's number)", got)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
}

package broker

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/sim"
)

// revokeAllOn makes alice press the panic button just before the first
// event of kind for action is recorded.
func revokeAllOn(f *fixture, kind audit.Kind, action string) {
	f.audit = &hookOn{kind: kind, action: action, next: f.rec, fn: func() {
		if _, err := f.b.RevokeAll(f.ctx, alice); err != nil {
			f.t.Errorf("revoke all: %v", err)
		}
	}}
}

// requests are all of alice's requests, and open those that still wait
// for something.
func (f *fixture) requests() (all, open []Request) {
	f.t.Helper()
	items, err := f.st.List(f.ctx, alice.String(), requestKind)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, it := range items {
		r, err := decodeRequest(alice, it.Key.ID, it.Value)
		if err != nil {
			f.t.Fatal(err)
		}
		all = append(all, r)
		if !r.Status.Terminal() {
			open = append(open, r)
		}
	}
	return all, open
}

func (f *fixture) openRequests() []Request {
	_, open := f.requests()
	return open
}

// revokePlanner revokes everything of alice's while it plans, as a person
// might while a model thinks, then proposes its steps.
type revokePlanner struct {
	f     *fixture
	steps []planner.Step
}

func (p revokePlanner) Plan(ctx context.Context, _ planner.Request) (planner.Plan, error) {
	if _, err := p.f.b.RevokeAll(ctx, alice); err != nil {
		p.f.t.Errorf("revoke all: %v", err)
	}
	return planner.Plan{Steps: p.steps}, nil
}

// TestARevocationStopsAPlanMidway: revoking while a plan runs at once
// stops it there, wherever the revocation lands: while the model plans,
// while a step runs (asked now, or continuing from an approved request),
// or while a step is being stored as a request (after the revocation
// listed the requests it cancels). Nothing asked before the revocation is
// left waiting to run once the person connects again.
func TestARevocationStopsAPlanMidway(t *testing.T) {
	const (
		list    = "list open pull requests in acme/website"
		comment = "comment 'x' on PR 12 in acme/website"
		show    = "show PR 12 in acme/website"
	)
	t.Run("while the model plans", func(t *testing.T) {
		f := newFixture(t)
		f.planner = revokePlanner{f: f, steps: []planner.Step{
			{Action: "github.list_pull_requests", Args: map[string]any{"repo": "acme/website"}},
		}}
		f.b = f.newBroker()
		outs := f.handle(alice, list)
		if len(outs) != 1 || !strings.Contains(outs[0].Text, "did not start the 1 step(s) left") {
			t.Fatalf("outputs = %s, want nothing started", dump(outs))
		}
		if got := f.openRequests(); len(got) != 0 {
			t.Errorf("open requests = %+v, want none", got)
		}
	})
	t.Run("while a step asked now runs", func(t *testing.T) {
		f := newFixture(t)
		revokeAllOn(f, audit.ActionSucceeded, "github.list_pull_requests")
		outs := f.handle(alice, list+" and then "+comment)
		if got := kinds(outs); len(got) != 2 || got[0] != KindResult || !strings.Contains(outs[1].Text, "did not start the 1 step(s) left") {
			t.Fatalf("outputs = %s, want the list's result and the comment not started", dump(outs))
		}
		if got := f.openRequests(); len(got) != 0 {
			t.Errorf("open requests = %+v, want none", got)
		}
	})
	t.Run("while a step continuing an approved request runs", func(t *testing.T) {
		f := newFixture(t)
		a := f.handle(alice, comment+" and then "+list+" and then "+show)
		revokeAllOn(f, audit.ActionSucceeded, "github.list_pull_requests")
		outs := f.decide(alice, a[0].RequestID, ChoiceOnce)
		if got := kinds(outs); len(got) != 3 || got[0] != KindResult || got[1] != KindResult || !strings.Contains(outs[2].Text, "did not start the 1 step(s) left") {
			t.Fatalf("outputs = %s, want the comment's and the list's results and the last step not started", dump(outs))
		}
		if got := f.openRequests(); len(got) != 0 {
			t.Errorf("open requests = %+v, want none", got)
		}
	})
	t.Run("while a step is stored", func(t *testing.T) {
		f := newFixture(t)
		revokeAllOn(f, audit.StepProposed, "github.comment")
		outs := f.handle(alice, comment)
		o := only(t, outs, KindMessage)
		if !strings.Contains(o.Text, "You revoked your github access") {
			t.Errorf("output = %q, want the request canceled", o.Text)
		}
		all, open := f.requests()
		if len(all) != 1 || all[0].Status != StatusCanceled || len(open) != 0 {
			t.Fatalf("requests = %+v, want the comment's, canceled", all)
		}
		if got := f.count(all[0].ID, ofKind(audit.RequestCanceled)); got != 1 {
			t.Errorf("request.canceled = %d, want 1", got)
		}
	})
}

// TestARevocationReachesRequestsItDidNotCancel: a revocation whose process
// was killed after it marked its principal, before it canceled anything,
// still stops the requests asked before it: an approved one does not run,
// one waiting for its connection does not resume when the person connects
// again. And revoking one service drops that service's steps from the
// plan of a request of another (which the revocation does not cancel).
func TestARevocationReachesRequestsItDidNotCancel(t *testing.T) {
	t.Run("approved after the revocation", func(t *testing.T) {
		f := newFixture(t)
		a := f.approval("comment 'x' on PR 12 in acme/website")
		if err := f.b.markRevoked(f.ctx, alice, sim.ServiceGitHub); err != nil {
			t.Fatal(err)
		}
		o := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
		if !strings.Contains(o.Text, "You revoked your github access") {
			t.Errorf("output = %q, want the request canceled", o.Text)
		}
		if got := f.calls(http.MethodPost, commentPath); got != 0 {
			t.Errorf("comments = %d, want 0", got)
		}
		if got := f.request(a.RequestID).Status; got != StatusCanceled {
			t.Errorf("status = %s, want canceled", got)
		}
	})
	t.Run("resumed after the revocation", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.b.Revoke(f.ctx, alice, sim.ServiceGitHub); err != nil {
			t.Fatal(err)
		}
		w := only(t, f.handle(alice, "list open pull requests in acme/website"), KindConnect)
		if err := f.b.markRevoked(f.ctx, alice, ""); err != nil { // revoke all, killed after its mark
			t.Fatal(err)
		}
		f.connect(alice, sim.ServiceGitHub, githubagent.Scope)
		outs, err := f.b.Connected(f.ctx, alice, sim.ServiceGitHub)
		if err != nil || len(outs) != 1 || !strings.Contains(outs[0].Text, "You revoked your github access") {
			t.Fatalf("Connected = %s, %v; want the request canceled", dump(outs), err)
		}
		if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
			t.Errorf("lists = %d, want 0", got)
		}
		if got := f.request(w.RequestID).Status; got != StatusCanceled {
			t.Errorf("status = %s, want canceled", got)
		}
	})
	t.Run("another service's steps in a plan", func(t *testing.T) {
		f := newFixture(t)
		f.connect(alice, sim.ServiceSlack, slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite)
		a := f.handle(alice, "comment 'x' on PR 12 in acme/website and then list channels")
		if _, err := f.b.Revoke(f.ctx, alice, sim.ServiceSlack); err != nil {
			t.Fatal(err)
		}
		if got := f.request(a[0].RequestID).Status; got != StatusPending {
			t.Fatalf("the github request after revoking slack = %s, want still pending", got)
		}
		outs := f.decide(alice, a[0].RequestID, ChoiceOnce)
		if got := kinds(outs); len(got) != 2 || got[0] != KindResult || !strings.Contains(outs[1].Text, "did not start the 1 step(s) left") {
			t.Fatalf("outputs = %s, want the comment's result and the slack step not started", dump(outs))
		}
		if got := f.openRequests(); len(got) != 0 {
			t.Errorf("open requests = %+v, want none", got)
		}
	})
}

package broker

import (
	"context"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/planner"
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

// openRequests are alice's requests that still wait for something.
func (f *fixture) openRequests() []Request {
	f.t.Helper()
	items, err := f.st.List(f.ctx, alice.String(), requestKind)
	if err != nil {
		f.t.Fatal(err)
	}
	var open []Request
	for _, it := range items {
		r, err := decodeRequest(alice, it.Key.ID, it.Value)
		if err != nil {
			f.t.Fatal(err)
		}
		if !r.Status.Terminal() {
			open = append(open, r)
		}
	}
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
		if !strings.Contains(o.Text, "You revoked access while I asked for this") {
			t.Errorf("output = %q, want the request canceled", o.Text)
		}
		if got := f.request(o.RequestID).Status; got != StatusCanceled {
			t.Errorf("status = %s, want canceled", got)
		}
		if got := f.count(o.RequestID, ofKind(audit.RequestCanceled)); got != 1 {
			t.Errorf("request.canceled = %d, want 1", got)
		}
		if got := f.openRequests(); len(got) != 0 {
			t.Errorf("open requests = %+v, want none", got)
		}
	})
}

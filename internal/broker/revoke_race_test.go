package broker

import (
	"context"
	"net/http"
	"testing"

	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/sim"
)

// TestGrantDoesNotOutliveConcurrentRevoke: a revoke that lands between an
// approval and the writing of its 1-hour grant cancels the request; the
// grant must not survive it and authorize a later step after a reconnect.
func TestGrantDoesNotOutliveConcurrentRevoke(t *testing.T) {
	f := newFixture(t)
	fired := false
	f.audit = auditFunc(func(ctx context.Context, e audit.Event) (audit.Event, error) {
		ev, err := f.rec.Record(ctx, e)
		if e.Kind == audit.ApprovalGranted && !fired {
			fired = true
			if _, rerr := f.b.Revoke(ctx, alice, sim.ServiceGitHub); rerr != nil {
				t.Logf("revoke: %v", rerr)
			}
		}
		return ev, err
	})
	a := f.approval("comment 'first' on PR 12 in acme/website")
	outs, _ := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceHour})
	t.Logf("decide: %s; status=%s", dump(outs), f.request(a.RequestID).Status)
	gs, _ := f.b.Grants(f.ctx, alice)
	if len(gs) != 0 {
		t.Errorf("after revoke, grants = %+v; want none", gs)
	}
	// Reconnect (new tokens); the stale grant now authorizes without asking.
	f.connect(alice, sim.ServiceGitHub, githubagent.Scope)
	before := f.calls(http.MethodPost, "/comments")
	outs = f.handle(alice, "comment 'second' on PR 12 in acme/website")
	if outs[0].Kind == KindResult {
		t.Errorf("comment ran without approval after revoke+reconnect: %s (calls %d->%d)", dump(outs), before, f.calls(http.MethodPost, "/comments"))
	}
}

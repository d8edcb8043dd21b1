package broker

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/sim"
)

// kinds lists the outputs' kinds, for failure messages and comparisons.
func kinds(outs []Output) []Kind {
	out := make([]Kind, len(outs))
	for i, o := range outs {
		out[i] = o.Kind
	}
	return out
}

// TestPlanResumesFromTheStore: a plan's later steps are stored with the
// request that waits for an approval, and run, from the store, once it is
// approved: on another process, with nobody asking again.
func TestPlanResumesFromTheStore(t *testing.T) {
	f := newFixture(t)
	outs := f.handle(alice, "comment 'LGTM' on PR 12 in acme/website and then list open pull requests in acme/website")
	if len(outs) != 2 || outs[0].Kind != KindApproval || !strings.Contains(outs[1].Text, "1 step(s) after this one will follow") {
		t.Fatalf("outputs = %s, want the approval and a note that one step follows", dump(outs))
	}
	if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
		t.Fatalf("the list ran before the comment was approved (%d calls)", got)
	}
	if rest := f.request(outs[0].RequestID).Rest; len(rest) != 1 || rest[0].Action != "github.list_pull_requests" {
		t.Fatalf("stored rest of the plan = %+v, want the list", rest)
	}

	f.b = f.newBroker() // another process decides
	done, err := f.b.Decide(f.ctx, Decision{RequestID: outs[0].RequestID, Actor: alice, Choice: ChoiceOnce})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 2 || done[0].Kind != KindResult || done[1].Kind != KindResult || done[1].Action != "github.list_pull_requests" {
		t.Fatalf("outputs of the approval = %s, want the comment's result, then the list's", dump(done))
	}
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Errorf("comments = %d, want 1", got)
	}
	if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 1 {
		t.Errorf("lists = %d, want 1", got)
	}
}

// TestPlanWaitsAgainBehindALaterApproval: a later step that needs its own
// approval becomes a request of its own, with what comes after it.
func TestPlanWaitsAgainBehindALaterApproval(t *testing.T) {
	f := newFixture(t)
	outs := f.handle(alice, "comment 'one' on PR 12 in acme/website and then comment 'two' on PR 13 in acme/website and then list open pull requests in acme/website")
	first := outs[0]
	second := f.decide(alice, first.RequestID, ChoiceOnce)
	if got := kinds(second); len(got) != 3 || got[0] != KindResult || got[1] != KindApproval || got[2] != KindMessage {
		t.Fatalf("outputs after the first approval = %s, want a result, the second approval and a note", dump(second))
	}
	r := f.request(second[1].RequestID)
	if r.Status != StatusPending || len(r.Rest) != 1 {
		t.Fatalf("the second request = %s with rest %+v, want pending with the list after it", r.Status, r.Rest)
	}
	last := f.decide(alice, r.ID, ChoiceOnce)
	if got := kinds(last); len(got) != 2 || got[0] != KindResult || got[1] != KindResult {
		t.Fatalf("outputs after the second approval = %s, want two results", dump(last))
	}
}

// TestFailedStepStopsThePlan: a step that fails ends its plan, whether it
// ran at once or from a stored request.
func TestFailedStepStopsThePlan(t *testing.T) {
	t.Run("at once", func(t *testing.T) {
		f := newFixture(t)
		// PR 99 does not exist: the read is allowed (public repository),
		// and fails at the provider.
		outs := f.handle(alice, "show PR 99 in acme/website and then comment 'x' on PR 12 in acme/website")
		if len(outs) != 2 || outs[0].Kind != KindError || !strings.Contains(outs[1].Text, "did not start the 1 step") {
			t.Fatalf("outputs = %s, want the failure and a note that the next step did not start", dump(outs))
		}
		all, err := f.rec.Tail(f.ctx, 10000)
		if err != nil {
			t.Fatal(err)
		}
		proposed := 0
		for _, e := range all {
			if e.Kind == audit.StepProposed {
				proposed++
			}
		}
		if proposed != 1 {
			t.Errorf("steps proposed = %d, want 1: the comment was never proposed", proposed)
		}
	})
	t.Run("from a stored request", func(t *testing.T) {
		f := newFixture(t)
		outs := f.handle(alice, "comment 'LGTM' on PR 99 in acme/website and then list open pull requests in acme/website")
		done := f.decide(alice, outs[0].RequestID, ChoiceOnce)
		if len(done) != 2 || done[0].Kind != KindError || !strings.Contains(done[1].Text, "did not run the 1 later step") {
			t.Fatalf("outputs = %s, want the failure and the rest dropped", dump(done))
		}
		if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
			t.Errorf("lists = %d, want 0", got)
		}
		if got := f.request(outs[0].RequestID).Status; got != StatusFailed {
			t.Errorf("status = %s, want failed", got)
		}
	})
	t.Run("denied", func(t *testing.T) {
		f := newFixture(t)
		outs := f.handle(alice, "comment 'LGTM' on PR 12 in acme/website and then list open pull requests in acme/website")
		done := f.decide(alice, outs[0].RequestID, ChoiceDeny)
		if len(done) != 2 || !strings.Contains(done[1].Text, "did not run the 1 later step") {
			t.Fatalf("outputs = %s, want the denial and the rest dropped", dump(done))
		}
		if len(f.world.Calls()) != 1 { // the comment's lookup of the repository
			t.Errorf("sim calls = %d, want only the lookup", len(f.world.Calls()))
		}
	})
}

// TestWaitingForAConnectionResumes: a step whose service is not connected
// waits in the store, and goes on by itself once it is: the person does not
// ask again.
func TestWaitingForAConnectionResumes(t *testing.T) {
	f := newFixture(t)
	if _, err := f.b.Revoke(f.ctx, alice, sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	read := only(t, f.handle(alice, "list open pull requests in acme/website"), KindConnect)
	write := only(t, f.handle(alice, "comment 'LGTM' on PR 12 in acme/website"), KindConnect)
	for _, o := range []Output{read, write} {
		if o.RequestID == "" || f.request(o.RequestID).Status != StatusWaitingConnection {
			t.Fatalf("connect output %s does not name a waiting request", dump([]Output{o}))
		}
		if !strings.Contains(o.Text, "carry on") {
			t.Errorf("connect text = %q, want it to say it carries on", o.Text)
		}
	}
	pending, err := f.b.Pending(f.ctx, alice)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending = %d, %v; want the two waiting requests", len(pending), err)
	}
	if outs, err := f.b.Connected(f.ctx, alice, sim.ServiceSlack); err != nil || len(outs) != 0 {
		t.Fatalf("another service connected: %s, %v; want nothing to go on", dump(outs), err)
	}

	f.connect(alice, sim.ServiceGitHub, githubagent.Scope)
	f.b = f.newBroker() // the connection may land on another process
	outs, err := f.b.Connected(f.ctx, alice, sim.ServiceGitHub)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Output{}
	for _, o := range outs {
		byID[o.RequestID] = o
	}
	if o := byID[read.RequestID]; o.Kind != KindResult {
		t.Errorf("the waiting read gave %s, want its result", dump([]Output{o}))
	}
	if o := byID[write.RequestID]; o.Kind != KindApproval {
		t.Errorf("the waiting write gave %s, want its approval", dump([]Output{o}))
	}
	if got := f.request(read.RequestID).Status; got != StatusSucceeded {
		t.Errorf("read status = %s, want succeeded", got)
	}
	if got := f.request(write.RequestID).Status; got != StatusPending {
		t.Errorf("write status = %s, want pending", got)
	}
	decided := f.count(read.RequestID, func(e audit.Event) bool { return e.Kind == audit.PolicyDecided && e.Detail["at"] == "connected" })
	if decided != 1 {
		t.Errorf("policy.decided at=connected for the read = %d, want 1", decided)
	}
	// Connected again: nothing waits any more.
	if outs, err := f.b.Connected(f.ctx, alice, sim.ServiceGitHub); err != nil || len(outs) != 0 {
		t.Errorf("a second Connected = %s, %v; want nothing", dump(outs), err)
	}
	only(t, f.decide(alice, write.RequestID, ChoiceOnce), KindResult)
}

// TestWaitingForAConnectionExpires: a request nobody connected for in time
// expires, on the record, and does not run when the connection comes late.
func TestWaitingForAConnectionExpires(t *testing.T) {
	f := newFixture(t)
	if _, err := f.b.Revoke(f.ctx, alice, sim.ServiceGitHub); err != nil {
		t.Fatal(err)
	}
	o := only(t, f.handle(alice, "list open pull requests in acme/website"), KindConnect)
	f.clock.Advance(DefaultRequestTTL + time.Minute)
	f.connect(alice, sim.ServiceGitHub, githubagent.Scope)
	outs, err := f.b.Connected(f.ctx, alice, sim.ServiceGitHub)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || !strings.Contains(outs[0].Text, "expired") {
		t.Fatalf("outputs = %s, want it said to have expired", dump(outs))
	}
	if got := f.request(o.RequestID).Status; got != StatusExpired {
		t.Errorf("status = %s, want expired", got)
	}
	if got := f.count(o.RequestID, ofKind(audit.RequestExpired)); got != 1 {
		t.Errorf("request.expired events = %d, want 1", got)
	}
	if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
		t.Errorf("lists = %d, want 0", got)
	}
}

// TestRecoverExpiresWaitingRequests: the sweeper's Recover settles a
// request past its expiry as expired, once, on the record.
func TestRecoverExpiresWaitingRequests(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	if outs := f.recover(a.RequestID); len(outs) != 0 || f.request(a.RequestID).Status != StatusPending {
		t.Fatalf("Recover before expiry = %s, status %s", dump(outs), f.request(a.RequestID).Status)
	}
	f.clock.Advance(DefaultRequestTTL)
	f.recover(a.RequestID)
	f.recover(a.RequestID)
	if got := f.request(a.RequestID).Status; got != StatusExpired {
		t.Errorf("status = %s, want expired", got)
	}
	if got := f.count(a.RequestID, ofKind(audit.RequestExpired)); got != 1 {
		t.Errorf("request.expired events = %d, want 1", got)
	}
	o := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
	if !strings.Contains(o.Text, "already decided (expired)") {
		t.Errorf("a click on the expired request = %q", o.Text)
	}
}

// TestRevocationCancelsOnTheRecord: every request a revocation cancels
// leaves request.canceled, and a waiting one among them never runs.
func TestRevocationCancelsOnTheRecord(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	outs, err := f.b.Revoke(f.ctx, alice, sim.ServiceGitHub)
	if err != nil || len(outs) != 1 || len(outs[0].Requests) != 1 {
		t.Fatalf("revoke = %s, %v", dump(outs), err)
	}
	if got := f.count(a.RequestID, func(e audit.Event) bool {
		return e.Kind == audit.RequestCanceled && e.Detail["reason"] == "the service was revoked"
	}); got != 1 {
		t.Errorf("request.canceled events = %d, want 1", got)
	}
	w := only(t, f.handle(alice, "list open pull requests in acme/website"), KindConnect)
	if _, err := f.b.RevokeAll(f.ctx, alice); err != nil {
		t.Fatal(err)
	}
	if got := f.request(w.RequestID).Status; got != StatusCanceled {
		t.Errorf("waiting request after revoke all = %s, want canceled", got)
	}
	f.connect(alice, sim.ServiceGitHub, githubagent.Scope)
	if outs, err := f.b.Connected(f.ctx, alice, sim.ServiceGitHub); err != nil || len(outs) != 0 {
		t.Errorf("Connected after the cancel = %s, %v; want nothing", dump(outs), err)
	}
}

// scriptedPlanner proposes the steps it was given, whatever it is asked.
type scriptedPlanner []planner.Step

func (p scriptedPlanner) Plan(context.Context, planner.Request) (planner.Plan, error) {
	return planner.Plan{Steps: p}, nil
}

// TestPlansAreBounded: a plan of more steps than MaxPlanSteps, or too big
// to keep with a waiting request, is refused whole, on the record, and
// runs nothing.
func TestPlansAreBounded(t *testing.T) {
	list := planner.Step{Action: "github.list_pull_requests", Args: map[string]any{"repo": "acme/website"}}
	huge := planner.Step{Action: "github.comment", Args: map[string]any{"repo": "acme/website", "number": 12, "body": strings.Repeat("x", 60_000)}}
	tests := []struct {
		name  string
		steps []planner.Step
	}{
		{"too many steps", slices.Repeat([]planner.Step{list}, MaxPlanSteps+1)},
		{"too much to keep", slices.Repeat([]planner.Step{huge}, 5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.planner = scriptedPlanner(tt.steps)
			f.b = f.newBroker()
			o := only(t, f.handle(alice, "anything"), KindError)
			if !strings.Contains(o.Text, "Nothing was done") {
				t.Errorf("output = %q", o.Text)
			}
			if n := len(f.world.Calls()); n != 0 {
				t.Errorf("sim calls = %d, want 0", n)
			}
			all, _ := f.rec.Tail(f.ctx, 1000)
			refused := 0
			for _, e := range all {
				if e.Kind == audit.StepProposed {
					t.Errorf("a step of a refused plan was proposed")
				}
				if e.Kind == audit.RequestRefused && e.Result == "plan_too_big" {
					refused++
				}
			}
			if refused != 1 {
				t.Errorf("request.refused plan_too_big = %d, want 1", refused)
			}
		})
	}
	f := newFixture(t)
	f.planner = scriptedPlanner(slices.Repeat([]planner.Step{list}, MaxPlanSteps))
	f.b = f.newBroker()
	if outs := f.handle(alice, "anything"); len(outs) != MaxPlanSteps {
		t.Errorf("a plan of %d steps gave %d outputs, want one result each", MaxPlanSteps, len(outs))
	}
}

// onPost is a transport that calls hook once, just before it forwards the
// first POST whose path ends with suffix: something that happens while a
// step's provider call is on its way.
type onPost struct {
	next   http.RoundTripper
	suffix string
	hook   func()
	done   bool
}

func (o *onPost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, o.suffix) && !o.done {
		o.done = true
		o.hook()
	}
	return o.next.RoundTrip(r)
}

// TestThePlanEndsWhenItsRequestIsSettledMeanwhile: while a plan's step
// runs, a revocation of everything, or another process settling the
// request as interrupted (which tells the owner the rest will not run),
// ends the plan: its later steps do not run, nor wait for a connection.
func TestThePlanEndsWhenItsRequestIsSettledMeanwhile(t *testing.T) {
	const text = "comment 'LGTM' on PR 12 in acme/website and then list open pull requests in acme/website"
	for _, tt := range []struct {
		name string
		hook func(f *fixture, other *Broker, id string)
	}{
		{"revoke all", func(f *fixture, other *Broker, _ string) {
			if _, err := other.RevokeAll(f.ctx, alice); err != nil {
				t.Errorf("revoke all: %v", err)
			}
		}},
		{"settled as interrupted", func(f *fixture, other *Broker, id string) {
			f.clock.Advance(ExecutingStaleAfter)
			if outs, err := other.Recover(f.ctx, id); err != nil || len(outs) == 0 {
				t.Errorf("Recover = %s, %v; want the request settled", dump(outs), err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureWith(t, nil, true)
			other := f.newBroker()
			a := f.handle(alice, text)[0]
			f.simTime.next = &onPost{next: f.simTime.next, suffix: commentPath, hook: func() { tt.hook(f, other, a.RequestID) }}
			f.decide(alice, a.RequestID, ChoiceOnce)
			if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 0 {
				t.Errorf("the later step ran %d time(s)", got)
			}
			if pending, err := f.b.Pending(f.ctx, alice); err != nil || len(pending) != 0 {
				t.Errorf("pending after the plan ended = %d, %v; want none", len(pending), err)
			}
		})
	}
}

// TestAPlanApprovalIsOnceOnly: approving a step that later steps follow
// offers no grant, and the card names the steps that follow.
func TestAPlanApprovalIsOnceOnly(t *testing.T) {
	f := newFixture(t)
	outs := f.handle(alice, "comment 'one' on PR 12 in acme/website and then comment 'two' on PR 13 in acme/website")
	a := outs[0]
	if got := len(a.Choices); got != 2 || a.Choices[0].Key != ChoiceOnce || a.Choices[1].Key != ChoiceDeny {
		t.Errorf("choices = %+v, want once and deny", a.Choices)
	}
	if !strings.Contains(a.Reason, "goes on with github.comment") {
		t.Errorf("reason = %q, want the later step named", a.Reason)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceHour), KindError)
	if gs, _ := f.b.Grants(f.ctx, alice); len(gs) != 0 {
		t.Errorf("grants = %+v, want none", gs)
	}
}

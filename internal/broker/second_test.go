package broker

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
)

var (
	carol        = Principal{Team: "T1", User: "U3"}
	bobElsewhere = Principal{Team: "T2", User: "U2"} // bob's user ID in another team
)

const deployPath = "/repos/acme/website/actions/workflows/deploy.yml/dispatches"

// withReleaseManager switches the fixture to the default policy with bob
// (U2) as the release manager who may second a production deploy.
func withReleaseManager(t *testing.T, f *fixture) {
	t.Helper()
	withReleaseManagers(t, f, "U2")
}

// withReleaseManagers switches the fixture to the default policy with the
// given release managers, as a new broker on the same store: another
// replica, or this one after its policy file was edited.
func withReleaseManagers(t *testing.T, f *fixture, users ...string) {
	t.Helper()
	list := []byte("release-managers: [" + strings.Join(users, ", ") + "]")
	withPolicy(t, f, bytes.Replace(policy.DefaultSource(), []byte("release-managers: []"), list, 1))
}

// withPolicy switches the fixture's broker to the policy in src.
func withPolicy(t *testing.T, f *fixture, src []byte) {
	t.Helper()
	e, err := policy.Parse("test-policy.yaml", src)
	if err != nil {
		t.Fatalf("parse policy: %v", err)
	}
	f.policy = e
	f.b = f.newBroker()
}

func TestSecondApprover(t *testing.T) {
	const text = "deploy acme/website to production"
	tests := []struct {
		name  string
		play  func(t *testing.T, f *fixture, id string)
		runs  int
		final Status
	}{
		{"second approver first", func(t *testing.T, f *fixture, id string) {
			only(t, f.decide(bob, id, ChoiceOnce), KindMessage)
			only(t, f.decide(bob, id, ChoiceOnce), KindMessage) // already decided
			if f.calls(http.MethodPost, deployPath) != 0 {
				t.Fatal("the second approval alone deployed")
			}
			only(t, f.decide(alice, id, ChoiceOnce), KindStepUp)
			only(t, f.stepUp(id, alice), KindResult)
		}, 1, StatusSucceeded},
		{"owner first", func(t *testing.T, f *fixture, id string) {
			only(t, f.decide(alice, id, ChoiceOnce), KindStepUp)
			only(t, f.stepUp(id, alice), KindMessage) // waiting for the second approver
			if got := f.request(id).Status; got != StatusAwaitingSecond {
				t.Fatalf("status = %s, want awaiting_second", got)
			}
			only(t, f.stepUp(id, bob), KindError) // step-up is the owner's alone
			only(t, f.decide(bob, id, ChoiceOnce), KindResult)
		}, 1, StatusSucceeded},
		{"second approver denies", func(t *testing.T, f *fixture, id string) {
			only(t, f.decide(bob, id, ChoiceDeny), KindMessage)
			only(t, f.decide(alice, id, ChoiceOnce), KindMessage)
			if got := f.request(id).DeniedBy; got != bob {
				t.Errorf("DeniedBy = %q, want %q (the second approver)", got, bob)
			}
		}, 0, StatusDenied},
		{"strangers refused", func(t *testing.T, f *fixture, id string) {
			for _, actor := range []Principal{carol, bobElsewhere} {
				only(t, f.decide(actor, id, ChoiceOnce), KindError)
			}
			only(t, f.decide(alice, id, ChoiceOnce), KindStepUp)
			only(t, f.stepUp(id, alice), KindMessage)
		}, 0, StatusAwaitingSecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			withReleaseManager(t, f)
			a := f.approval(text)
			if a.Rule != "production-deploys-need-two" || a.Risk != "critical" {
				t.Errorf("rule, risk = %s, %s; want production-deploys-need-two, critical", a.Rule, a.Risk)
			}
			if diff := cmp.Diff([]string{"U2"}, a.Approvers); diff != "" {
				t.Errorf("approvers (-want +got):\n%s", diff)
			}
			tt.play(t, f, a.RequestID)
			if got := f.calls(http.MethodPost, deployPath); got != tt.runs {
				t.Errorf("deploys = %d, want %d", got, tt.runs)
			}
			if got := f.request(a.RequestID).Status; got != tt.final {
				t.Errorf("status = %s, want %s", got, tt.final)
			}
		})
	}
}

func TestSecondApprovalIsAudited(t *testing.T) {
	f := newFixture(t)
	withReleaseManager(t, f)
	a := f.approval("deploy acme/website to production")
	only(t, f.decide(carol, a.RequestID, ChoiceOnce), KindError)
	only(t, f.decide(bob, a.RequestID, ChoiceOnce), KindMessage)
	var got []string
	for _, e := range f.events(a.RequestID) {
		if e.Kind == audit.ApprovalGranted || e.Kind == audit.InteractionRejected {
			got = append(got, string(e.Kind)+" by "+e.Actor)
		}
	}
	want := []string{"interaction.rejected by " + carol.String(), "approval.granted by " + bob.String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestAGuestIsNoSecondApprover: a release manager the directory now says
// is a guest (or from another workspace) cannot second a production
// deploy, whatever list still names them; the refusal is counted and the
// request still waits for a member's second approval.
func TestAGuestIsNoSecondApprover(t *testing.T) {
	for _, traits := range []Traits{{Guest: true}, {External: true}} {
		t.Run(fmt.Sprintf("%+v", traits), func(t *testing.T) {
			f := newFixture(t)
			dir := &directory{}
			f.dir = dir
			withReleaseManagers(t, f, "U2", "U3")
			a := f.approval("deploy acme/website to production")
			only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
			only(t, f.stepUp(a.RequestID, alice), KindMessage)
			dir.set(bob, traits, nil)
			before := f.refusals(bob.String())
			for _, choice := range []string{ChoiceOnce, ChoiceDeny} {
				o := only(t, f.decide(bob, a.RequestID, choice), KindMessage)
				if !strings.Contains(o.Text, "second approval") {
					t.Errorf("refusal of %s = %q, want it to say why", choice, o.Text)
				}
			}
			f.clock.Advance(RefusalWindow)
			if err := f.b.FlushRefusals(f.ctx); err != nil {
				t.Fatal(err)
			}
			if got := f.refusals(bob.String()) - before; got != 2 {
				t.Errorf("refusals counted = %d, want 2", got)
			}
			if got := f.calls(http.MethodPost, deployPath); got != 0 {
				t.Fatalf("deploys = %d, want 0", got)
			}
			if got := f.request(a.RequestID).Status; got != StatusAwaitingSecond {
				t.Fatalf("status = %s, want still awaiting_second", got)
			}
			only(t, f.decide(carol, a.RequestID, ChoiceOnce), KindResult)
			if got := f.calls(http.MethodPost, deployPath); got != 1 {
				t.Errorf("deploys after a member's second approval = %d, want 1", got)
			}
		})
	}
}

// TestASecondApproverWhoBecameAGuestNoLongerCounts: bob seconded a
// production deploy while a member, and was made a guest before it ran:
// his approval no longer covers it, and it does not run.
func TestASecondApproverWhoBecameAGuestNoLongerCounts(t *testing.T) {
	f := newFixture(t)
	dir := &directory{}
	f.dir = dir
	withReleaseManagers(t, f, "U2")
	a := f.approval("deploy acme/website to production")
	only(t, f.decide(bob, a.RequestID, ChoiceOnce), KindMessage)
	dir.set(bob, Traits{Guest: true}, nil)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	o := only(t, f.stepUp(a.RequestID, alice), KindError)
	if !strings.Contains(o.Text, "now a guest") {
		t.Errorf("output = %q, want the second approval refused", o.Text)
	}
	if got := f.calls(http.MethodPost, deployPath); got != 0 {
		t.Errorf("deploys = %d, want 0", got)
	}
	if got := f.count(a.RequestID, failedWith("approver_not_a_member")); got != 1 {
		t.Errorf("action.failed approver_not_a_member = %d, want 1", got)
	}
}

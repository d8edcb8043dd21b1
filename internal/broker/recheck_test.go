package broker

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
)

// withBusinessHours switches the fixture to the default policy with its
// business-hours example rule switched on (high-risk actions only on
// weekdays from 09:00 to 18:00 Berlin time).
func withBusinessHours(t *testing.T, f *fixture) {
	t.Helper()
	src := policy.DefaultSource()
	begin := bytes.Index(src, []byte("# BEGIN business-hours"))
	end := bytes.Index(src, []byte("# END business-hours"))
	if begin < 0 || end < begin {
		t.Fatal("the default policy has no business-hours example")
	}
	block := bytes.ReplaceAll(src[begin:end], []byte("  # "), []byte("  "))
	withPolicy(t, f, slicesConcat(src[:begin], block, src[end:]))
}

func slicesConcat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// executionEvents returns the policy decisions recorded for request id at
// execution, and whether an action.failed event with result policy_changed
// was recorded.
func executionEvents(f *fixture, id string) (decisions []audit.Event, failed bool) {
	for _, e := range f.events(id) {
		if e.Kind == audit.PolicyDecided && e.Detail["at"] == "execution" {
			decisions = append(decisions, e)
		}
	}
	return decisions, f.count(id, failedWith("policy_changed")) > 0
}

// TestApprovedStepRunsOnlyIfThePolicyStillAllowsIt: the policy decides on
// every call, so a merge approved at 17:50 whose code is entered at 18:05,
// after the business-hours rule closes, does not run.
func TestApprovedStepRunsOnlyIfThePolicyStillAllowsIt(t *testing.T) {
	for _, tt := range []struct {
		name   string
		wait   time.Duration // between the approval and the code
		merges int
		status Status
	}{
		{"still open", 5 * time.Minute, 1, StatusSucceeded},
		{"closed meanwhile", 15 * time.Minute, 0, StatusFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			withBusinessHours(t, f)
			// start is Wednesday 10:00 UTC; 16:50 UTC is 17:50 in Berlin.
			f.clock.Advance(6*time.Hour + 50*time.Minute)
			a := f.approval("merge PR 7 in acme/payments")
			only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
			f.clock.Advance(tt.wait)
			outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, f.code())
			if err != nil {
				t.Fatalf("StepUp: %v", err)
			}
			if got := f.calls(http.MethodPut, mergePath); got != tt.merges {
				t.Errorf("merges = %d, want %d", got, tt.merges)
			}
			if got := f.request(a.RequestID).Status; got != tt.status {
				t.Errorf("status = %s, want %s", got, tt.status)
			}
			decisions, failed := executionEvents(f, a.RequestID)
			if len(decisions) != 1 {
				t.Fatalf("policy decisions recorded at execution = %d, want 1", len(decisions))
			}
			if tt.merges == 1 {
				only(t, outs, KindResult)
				if failed {
					t.Error("an action.failed policy_changed event for a step that ran")
				}
				return
			}
			o := only(t, outs, KindError)
			if !strings.Contains(o.Text, "no-high-risk-after-hours") || !strings.Contains(o.Text, "Not run") {
				t.Errorf("output = %q, want it to name the rule that refuses it now", o.Text)
			}
			if d := decisions[0]; d.Decision != "deny" || d.Rule != "no-high-risk-after-hours" {
				t.Errorf("decision at execution = %s by %s, want deny by no-high-risk-after-hours", d.Decision, d.Rule)
			}
			if !failed {
				t.Error("no action.failed policy_changed event")
			}
		})
	}
}

// TestSecondApprovalFromSomeoneNoLongerNamed: bob seconded a production
// deploy as release manager; by the time alice has approved and entered
// her code the policy names carol instead, so bob's approval no longer
// counts and nothing is deployed.
func TestSecondApprovalFromSomeoneNoLongerNamed(t *testing.T) {
	f := newFixture(t)
	withReleaseManager(t, f)
	a := f.approval("deploy acme/website to production")
	only(t, f.decide(bob, a.RequestID, ChoiceOnce), KindMessage)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	withReleaseManagers(t, f, "U3")
	o := only(t, f.stepUp(a.RequestID, alice), KindError)
	if !strings.Contains(o.Text, "asks for more") {
		t.Errorf("output = %q, want it to say the policy asks for more now", o.Text)
	}
	if got := f.calls(http.MethodPost, deployPath); got != 0 {
		t.Errorf("deploys = %d, want 0", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusFailed {
		t.Errorf("status = %s, want failed", got)
	}
	if decisions, failed := executionEvents(f, a.RequestID); len(decisions) != 1 || decisions[0].Decision != "second_approver" || !failed {
		t.Errorf("events at execution: %d decisions (%v), policy_changed recorded %v; want one second_approver decision and the failure", len(decisions), decisions, failed)
	}
}

// TestCovers pins which decisions at execution a request's history covers.
func TestCovers(t *testing.T) {
	approved := Request{Principal: alice, Decision: StoredDecision{Effect: policy.Approve}}
	steppedUp := Request{Principal: alice, Decision: StoredDecision{Effect: policy.StepUp, StepUp: true}}
	seconded := Request{Principal: alice, Decision: StoredDecision{Effect: policy.SecondApprover, StepUp: true}, Approvers: []string{"U2"}, SecondBy: bob}
	allowed := Request{Principal: alice, Decision: StoredDecision{Effect: policy.Allow}}
	granted := Request{Principal: alice, Decision: StoredDecision{Effect: policy.Approve, GrantOK: true}, Grant: "g1"}
	second := func(users ...string) policy.Decision {
		return policy.Decision{Effect: policy.SecondApprover, StepUp: true, SecondApprover: users}
	}
	for _, tt := range []struct {
		name string
		r    Request
		d    policy.Decision
		want bool
	}{
		{"approved, now allowed", approved, policy.Decision{Effect: policy.Allow}, true},
		{"approved, still approve", approved, policy.Decision{Effect: policy.Approve}, true},
		{"approved, now step-up", approved, policy.Decision{Effect: policy.StepUp, StepUp: true}, false},
		{"approved, now denied", approved, policy.Decision{Effect: policy.Deny}, false},
		{"approved, no usable answer", approved, policy.Decision{}, false},
		{"stepped up, still step-up", steppedUp, policy.Decision{Effect: policy.StepUp, StepUp: true}, true},
		{"stepped up, now a second approver", steppedUp, second("U2"), false},
		{"seconded by a named approver", seconded, second("U2", "U3"), true},
		{"seconded by someone no longer named", seconded, second("U3"), false},
		{"seconded, now step-up only", seconded, policy.Decision{Effect: policy.StepUp, StepUp: true}, true},
		{"allowed when connected, still allowed", allowed, policy.Decision{Effect: policy.Allow}, true},
		{"allowed when connected, now approve", allowed, policy.Decision{Effect: policy.Approve, GrantOK: true}, false},
		{"granted when connected, still grantable", granted, policy.Decision{Effect: policy.Approve, GrantOK: true}, true},
		{"granted when connected, grants no longer count", granted, policy.Decision{Effect: policy.Approve}, false},
		{"granted when connected, now step-up", granted, policy.Decision{Effect: policy.StepUp, StepUp: true, GrantOK: true}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := covers(tt.r, tt.d); got != tt.want {
				t.Errorf("covers = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRecheckSeesTheResourceAsLookedUp: the policy decides again on the
// resource the agent has just described, not on the stored request's copy,
// whose numbers came back from JSON as floats: a condition doing integer
// arithmetic on an attribute still holds.
func TestRecheckSeesTheResourceAsLookedUp(t *testing.T) {
	f := newFixture(t)
	withPolicy(t, f, bytes.Replace(policy.DefaultSource(), []byte("rules:\n"), []byte(`rules:
  - name: odd-pull-requests
    action: github.merge_pull_request
    when: "has(resource.attrs.pull_request) && resource.attrs.pull_request % 2 == 1"
    effect: stepup
    reason: Odd pull requests need a code.
`), 1))
	a := f.approval("merge PR 7 in acme/payments")
	if a.Rule != "odd-pull-requests" {
		t.Fatalf("rule = %q, want odd-pull-requests", a.Rule)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	only(t, f.stepUp(a.RequestID, alice), KindResult)
	if got := f.calls(http.MethodPut, mergePath); got != 1 {
		t.Errorf("merges = %d, want 1", got)
	}
}

package broker

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
)

// TestApprovalOnThePhone: a step whose rule says approval: ciba is
// approved on its owner's phone alone. A click in Slack (a Slack session
// alone) approves nothing and is on the record; the phone's answer runs it
// once, for this one step, on the record as such; someone else's phone
// answer is refused; a denial on the phone denies it.
func TestApprovalOnThePhone(t *testing.T) {
	setUp := func(t *testing.T) *fixture {
		f := newFixture(t)
		f.factors = []string{policy.FactorTOTP, policy.FactorCIBA}
		withPolicy(t, f, []byte("version: 1\nrules:\n  - name: comments-on-the-phone\n    action: github.comment\n    effect: approve\n    approval: ciba\n"))
		return f
	}
	t.Run("approved", func(t *testing.T) {
		f := setUp(t)
		a := f.approval("comment 'x' on PR 12 in acme/website")
		if len(a.Choices) != 2 || a.Choices[0].Key != ChoiceOnce {
			t.Errorf("choices = %+v, want once and deny", a.Choices)
		}
		o := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
		if !strings.Contains(o.Text, "approved on your phone") || f.request(a.RequestID).Status != StatusPending {
			t.Fatalf("a click in Slack: %q, status %s; want refused, still pending", o.Text, f.request(a.RequestID).Status)
		}
		if got := f.count(a.RequestID, func(e audit.Event) bool {
			return e.Kind == audit.InteractionRejected && e.Result == "approval_on_phone"
		}); got != 1 {
			t.Errorf("the refused click on the record %d times, want 1", got)
		}
		if outs, err := f.b.PhoneApproved(f.ctx, a.RequestID, bob); err != nil || f.request(a.RequestID).Status != StatusPending {
			t.Fatalf("bob's phone answer: %s, %v; status %s", dump(outs), err, f.request(a.RequestID).Status)
		}
		outs, err := f.b.PhoneApproved(f.ctx, a.RequestID, alice)
		if err != nil {
			t.Fatal(err)
		}
		only(t, outs, KindResult)
		if got := f.calls(http.MethodPost, commentPath); got != 1 {
			t.Errorf("comments = %d, want 1", got)
		}
		if got := f.count(a.RequestID, func(e audit.Event) bool {
			return e.Kind == audit.ApprovalGranted && e.Detail["via"] == policy.ApprovalCIBA
		}); got != 1 {
			t.Errorf("approval.granted via ciba = %d, want 1", got)
		}
	})
	t.Run("denied", func(t *testing.T) {
		f := setUp(t)
		a := f.approval("comment 'x' on PR 12 in acme/website")
		if _, err := f.b.PhoneDenied(f.ctx, a.RequestID, alice); err != nil {
			t.Fatal(err)
		}
		if got := f.request(a.RequestID).Status; got != StatusDenied {
			t.Errorf("status = %s, want denied", got)
		}
	})
	t.Run("a denial in Slack still counts", func(t *testing.T) {
		f := setUp(t)
		a := f.approval("comment 'x' on PR 12 in acme/website")
		f.decide(alice, a.RequestID, ChoiceDeny)
		if got := f.request(a.RequestID).Status; got != StatusDenied {
			t.Errorf("status = %s, want denied", got)
		}
	})
}

// TestStepUpOnThePhone: a step-up whose rule names factor: ciba takes no
// code, however right, and runs once its owner's phone answer is verified.
func TestStepUpOnThePhone(t *testing.T) {
	f := newFixture(t)
	f.factors = []string{policy.FactorTOTP, policy.FactorCIBA}
	src := bytes.Replace(policy.DefaultSource(), []byte("    effect: stepup\n    risk: high\n"),
		[]byte("    effect: stepup\n    risk: high\n    factor: ciba\n"), 1)
	withPolicy(t, f, src)
	a := f.approval("merge PR 7 in acme/payments")
	s := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	if s.Factor != policy.FactorCIBA || !strings.Contains(s.Text, "on your phone") {
		t.Fatalf("step-up output = %+v, want the phone", s)
	}
	outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, f.code())
	if err != nil {
		t.Fatal(err)
	}
	if o := only(t, outs, KindError); !strings.Contains(o.Text, "approve on your phone") {
		t.Errorf("a code for a phone step-up: %q", o.Text)
	}
	if _, err := f.b.SignedIn(f.ctx, a.RequestID, alice); err != nil {
		t.Fatal(err)
	}
	if got := f.request(a.RequestID).Status; got != StatusAwaitingStepUp {
		t.Fatalf("after a code and a sign-in: %s, want still awaiting the phone", got)
	}
	outs, err = f.b.PhoneVerified(f.ctx, a.RequestID, alice)
	if err != nil {
		t.Fatal(err)
	}
	only(t, outs, KindResult)
}

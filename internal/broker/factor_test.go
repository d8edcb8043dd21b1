package broker

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
)

// withFactor switches the fixture to the default policy with its step-up
// rule naming factor, and a deployment that offers TOTP and OIDC.
func withFactor(t *testing.T, f *fixture, factor string) {
	t.Helper()
	f.factors = []string{policy.FactorTOTP, policy.FactorOIDC}
	src := bytes.Replace(policy.DefaultSource(), []byte("    effect: stepup\n    risk: high\n"),
		[]byte("    effect: stepup\n    risk: high\n    factor: "+factor+"\n"), 1)
	if bytes.Equal(src, policy.DefaultSource()) {
		t.Fatal("the default policy's step-up rule moved: the test cannot name its factor")
	}
	withPolicy(t, f, src)
}

// TestSignInStepUp: a request whose rule asks for a sign-in takes no code,
// however right, and runs once its owner's sign-in is reported; a sign-in
// of someone else moves nothing.
func TestSignInStepUp(t *testing.T) {
	f := newFixture(t)
	withFactor(t, f, policy.FactorOIDC)
	a := f.approval("merge PR 7 in acme/payments")
	s := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	if s.Factor != policy.FactorOIDC || !strings.Contains(s.Text, "sign in") {
		t.Fatalf("step-up output = %+v, want a sign-in", s)
	}
	outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, f.code())
	if err != nil {
		t.Fatalf("StepUp: %v", err)
	}
	only(t, outs, KindError)
	if got := f.request(a.RequestID).Status; got != StatusAwaitingStepUp {
		t.Fatalf("after a code: status %s, want awaiting_stepup", got)
	}
	if f.count(a.RequestID, func(e audit.Event) bool { return e.Result == "wrong_factor" }) == 0 {
		t.Error("the code offered for a sign-in is not on the record")
	}
	outs, err = f.b.SignedIn(f.ctx, a.RequestID, bob)
	if err != nil {
		t.Fatalf("SignedIn(bob): %v", err)
	}
	only(t, outs, KindError)
	if f.calls(http.MethodPut, mergePath) != 0 {
		t.Fatal("merged without the owner's sign-in")
	}
	outs, err = f.b.SignedIn(f.ctx, a.RequestID, alice)
	if err != nil {
		t.Fatalf("SignedIn: %v", err)
	}
	only(t, outs, KindResult)
	if got := f.calls(http.MethodPut, mergePath); got != 1 {
		t.Errorf("merge calls = %d, want 1", got)
	}
	// A second report of the same sign-in finds the request finished.
	outs, _ = f.b.SignedIn(f.ctx, a.RequestID, alice)
	if o := outs[0]; o.Kind == KindResult {
		t.Errorf("a repeated sign-in ran the step again: %+v", o)
	}
	if got := f.calls(http.MethodPut, mergePath); got != 1 {
		t.Errorf("merge calls after a repeat = %d, want 1", got)
	}
}

// TestCodeStepUpTakesNoSignIn: a rule that names TOTP is not satisfied by a
// sign-in.
func TestCodeStepUpTakesNoSignIn(t *testing.T) {
	f := newFixture(t)
	withFactor(t, f, policy.FactorTOTP)
	a := f.approval("merge PR 7 in acme/payments")
	if s := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp); s.Factor != policy.FactorTOTP {
		t.Fatalf("factor = %q, want totp", s.Factor)
	}
	outs, err := f.b.SignedIn(f.ctx, a.RequestID, alice)
	if err != nil {
		t.Fatalf("SignedIn: %v", err)
	}
	only(t, outs, KindError)
	only(t, f.stepUp(a.RequestID, alice), KindResult)
}

// TestDefaultFactor: with OIDC offered, a rule naming no factor asks for a
// sign-in; a policy naming a factor the deployment lacks does not start.
func TestDefaultFactor(t *testing.T) {
	f := newFixture(t)
	f.factors = []string{policy.FactorTOTP, policy.FactorOIDC}
	f.b = f.newBroker()
	a := f.approval("merge PR 7 in acme/payments")
	if s := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp); s.Factor != policy.FactorOIDC {
		t.Errorf("default factor with OIDC offered = %q, want oidc", s.Factor)
	}
	e, err := policy.Parse("p.yaml", []byte("version: 1\nrules:\n  - name: a\n    effect: stepup\n    factor: oidc\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Store: f.st, Vault: f.vault, Audit: f.rec, Policy: e, Registry: f.registry, Planner: f.plannerOrRules(), StepUp: f.stepup})
	if err == nil || !strings.Contains(err.Error(), `"oidc"`) {
		t.Errorf("New with a policy naming an absent factor: %v, want a refusal naming it", err)
	}
}

// TestExpiredConnectionAsksToReconnect: when the provider refuses the
// refresh token for good, the step asks the person to connect again, and
// says it is a reconnection, so the adapter can offer one Reconnect button.
func TestExpiredConnectionAsksToReconnect(t *testing.T) {
	f := newFixture(t)
	f.connect(alice, sim.ServiceGitHub, "repo")
	if n := f.world.RevokeGrants(sim.ServiceGitHub, alice.String()); n == 0 {
		t.Fatal("no grant to revoke at the simulated GitHub")
	}
	f.clock.Advance(sim.DefaultAccessTTL + time.Minute)
	o := only(t, f.handle(alice, "list open pull requests in acme/website"), KindConnect)
	if !o.Reconnect || !strings.Contains(o.Text, "expired") || o.Service != sim.ServiceGitHub {
		t.Errorf("output = %+v, want a reconnection of github", o)
	}
	if f.count("", ofKind(audit.ConnectionExpired)) == 0 {
		t.Error("connection.expired is not on the record")
	}
}

// A step the planner proposed after reading untrusted content is tainted:
// a grant that covers the same step untainted does not stand in for its
// owner's approval, the card says where the content came from, and the
// trail keeps it.
func TestTaintedStepIgnoresGrants(t *testing.T) {
	f := newFixture(t)
	g := f.approval("comment 'third' on PR 12 in acme/website")
	only(t, f.decide(alice, g.RequestID, ChoiceHour), KindResult)
	only(t, f.handle(alice, "comment 'fourth' on PR 12 in acme/website"), KindResult) // the grant covers it

	const source = "github.get_pull_request on acme/website"
	f.planner = scriptedPlanner{{Action: "github.comment", Args: map[string]any{"repo": "acme/website", "number": 12, "body": "LGTM, merging"}, Tainted: source}}
	f.b = f.newBroker()
	a := only(t, f.handle(alice, "whatever the model read"), KindApproval)
	if !strings.Contains(a.Reason, "Proposed after reading content from "+source) {
		t.Errorf("approval reason = %q, want the untrusted source named", a.Reason)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 2 {
		t.Fatalf("comments = %d, want 2: the tainted comment ran on the grant", got)
	}
	if a.Choices[0].Key != ChoiceOnce || len(a.Choices) != 2 {
		t.Errorf("choices for a tainted step = %+v, want once or deny", a.Choices)
	}
	if f.count(a.RequestID, func(e audit.Event) bool { return e.Kind == audit.StepProposed && e.Detail["tainted"] == source }) != 1 {
		t.Error("step.proposed does not say the step is tainted")
	}
	if r := f.request(a.RequestID); r.Step.Tainted != source {
		t.Errorf("stored step taint = %q", r.Step.Tainted)
	}
}

// The owner stops a request (Slack's Stop button): it does not run, and
// it says so on the record; nobody else can stop it.
func TestCancel(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	outs, err := f.b.Cancel(f.ctx, a.RequestID, bob, "stopped in Slack")
	if err != nil || outs[0].Kind != KindError {
		t.Fatalf("bob's cancel = %+v, %v; want refused", outs, err)
	}
	outs, err = f.b.Cancel(f.ctx, a.RequestID, alice, "stopped in Slack")
	if err != nil || !strings.Contains(outs[0].Text, "Stopped") {
		t.Fatalf("alice's cancel = %+v, %v", outs, err)
	}
	if got := f.request(a.RequestID).Status; got != StatusCanceled {
		t.Fatalf("status = %s, want canceled", got)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage) // too late
	if f.calls(http.MethodPost, commentPath) != 0 {
		t.Fatal("a stopped request ran")
	}
	if f.count(a.RequestID, func(e audit.Event) bool {
		return e.Kind == audit.RequestCanceled && e.Detail["reason"] == "stopped in Slack"
	}) != 1 {
		t.Error("request.canceled with the reason is not on the record")
	}
}

package slackapp

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/stepup"
)

const carol = "U0CAROL03"

// ephemeralWith reports whether user was told, ephemerally in channel,
// something holding s.
func (f *flow) ephemeralWith(channel, user, s string) bool {
	for _, m := range f.srv.Ephemerals(channel) {
		if m.User == user && strings.Contains(m.Text, s) {
			return true
		}
	}
	return false
}

// refusedFor reports whether a refusal for reason is on the record.
func (f *flow) refusedFor(reason string) bool {
	f.t.Helper()
	for _, e := range f.events(audit.InteractionRejected) {
		if e.Result == reason {
			return true
		}
	}
	return false
}

// TestEnrolmentGateByAdmin: where enrolment is gated and no identity
// provider is set up, "Verify it's you" of someone without an
// authenticator shows no secret: it asks the administrators, never the
// person even if they are one. A stranger's or the person's own answer
// counts for nothing; the first administrator's approval starts the
// enrolment in the person's DM, once.
func TestEnrolmentGateByAdmin(t *testing.T) {
	f := newFlow(t, flowOptions{gated: true, admins: []string{alice, bob}})
	stepUp, _ := askMerge(t, f)
	if m := f.lastDM(alice); m.TS != stepUp.TS {
		t.Fatalf("a DM after Verify it's you ungated: %q", m.Text)
	}
	if !f.ephemeralWith(stepUp.Channel, alice, "I asked an administrator") {
		t.Fatal("alice is not told that an administrator was asked")
	}
	ask := f.lastDM(bob)
	if v := flowButtons(ask.Blocks)[ActionGateAllow]; v != testPrincipal(alice).String() {
		t.Fatalf("bob's DM %q has no Approve for alice (%v)", ask.Text, flowButtons(ask.Blocks))
	}
	// Asking again does not ask again.
	f.do(f.click(alice, stepUp, ActionStepUp))
	if got := len(f.dms(bob)); got != 1 {
		t.Errorf("bob has %d DMs after alice asked twice, want 1", got)
	}

	// Alice is an administrator too: she cannot approve herself, and
	// carol, who is none, cannot approve anyone.
	f.do(f.srv.BlockAction(slacktest.Action{User: alice, Channel: ask.Channel, MessageTS: ask.TS, ActionID: ActionGateAllow, Value: testPrincipal(alice).String()}))
	f.do(f.srv.BlockAction(slacktest.Action{User: carol, Channel: ask.Channel, MessageTS: ask.TS, ActionID: ActionGateAllow, Value: testPrincipal(alice).String()}))
	if ok, _ := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); ok || len(f.events(stepup.KindAllowed)) != 0 {
		t.Fatal("alice's own approval, or carol's, let her enrol")
	}
	for _, reason := range []string{"own_enrolment", "not_an_admin"} {
		if !f.refusedFor(reason) {
			t.Errorf("refusal %s is not on the record", reason)
		}
	}

	f.do(f.click(bob, ask, ActionGateAllow))
	enrolment := f.lastDM(alice)
	secret := enrolmentSecret(t, enrolment)
	if v := flowButtons(enrolment.Blocks)[ActionEnrolConfirm]; v != flowButtons(stepUp.Blocks)[ActionStepUp] {
		t.Errorf("the enrolment is not for the waiting request: Confirm value %q", v)
	}
	evs := f.events(stepup.KindAllowed)
	if len(evs) != 1 || evs[0].Detail["by"] != "admin:"+testPrincipal(bob).String() || evs[0].Actor != testPrincipal(alice).String() {
		t.Fatalf("stepup.enrol_allowed events = %+v", evs)
	}
	// The first answer decided: a second click changes nothing.
	f.do(f.click(bob, ask, ActionGateAllow))
	if m := f.lastDM(alice); m.TS != enrolment.TS && strings.Contains(flowTexts(m.Blocks), "`") && !strings.Contains(flowTexts(m.Blocks), secret) {
		t.Error("a second approval started a second enrolment")
	}
	if got := len(f.events(stepup.KindAllowed)); got != 1 {
		t.Errorf("stepup.enrol_allowed events after a second click = %d, want 1", got)
	}
}

// TestResetThroughTheGate: /agenthub reset asks the same gate, and an
// approval replaces the confirmed authenticator; a refusal tells the
// person and is on the record.
func TestResetThroughTheGate(t *testing.T) {
	f := newFlow(t, flowOptions{gated: true, admins: []string{bob}})
	if err := f.env.StepUp.Allow(f.ctx, testPrincipal(alice).String(), "operator", false); err != nil {
		t.Fatal(err)
	}
	enr, err := f.env.StepUp.Enroll(f.ctx, testPrincipal(alice).String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.env.StepUp.Confirm(f.ctx, testPrincipal(alice).String(), f.demoCode(alice)); err != nil {
		t.Fatal(err)
	}
	_, env := f.command(alice, "reset")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "I asked an administrator") {
		t.Fatalf("answer to /agenthub reset = %v", rs)
	}
	ask := f.lastDM(bob)
	if !strings.Contains(ask.Text, "replace their authenticator") {
		t.Errorf("bob's DM = %q, want it to say it is a reset", ask.Text)
	}
	f.do(f.click(bob, ask, ActionGateRefuse))
	if !f.dmHas(alice, "refused setting up your authenticator") || !f.refusedFor("enrolment_refused") {
		t.Error("a refused reset is not told to alice, or not on the record")
	}
	if ok, _ := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); !ok {
		t.Fatal("a refused reset removed the authenticator")
	}

	f.command(alice, "reset")
	f.do(f.click(bob, f.lastDM(bob), ActionGateAllow))
	fresh := enrolmentSecret(t, f.lastDM(alice))
	if fresh == enr.Secret.Reveal() {
		t.Fatal("the reset showed the old secret")
	}
	if ok, _ := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); ok {
		t.Error("after an approved reset the lost authenticator still counts")
	}
}

// TestEnrolmentGateBySignIn: with an identity provider, the gate is a
// sign-in link for the person alone, and no administrator is asked.
func TestEnrolmentGateBySignIn(t *testing.T) {
	var purposes []string
	f := newFlow(t, flowOptions{gated: true, admins: []string{bob}, signInLink: func(p broker.Principal, purpose string) (string, error) {
		purposes = append(purposes, p.String()+" "+purpose)
		return "https://agenthub.example.com/connect?t=signed", nil
	}})
	stepUp, _ := askMerge(t, f)
	id := flowButtons(stepUp.Blocks)[ActionStepUp]
	if !f.ephemeralWith(stepUp.Channel, alice, "Sign in to set up your authenticator") {
		t.Fatal("alice got no sign-in link")
	}
	if want := testPrincipal(alice).String() + " " + identity.EnrolPurpose(id, false); len(purposes) != 1 || purposes[0] != want {
		t.Errorf("sign-in link made for %q, want %q", purposes, want)
	}
	if len(f.dms(bob)) != 0 {
		t.Error("an administrator was asked although a sign-in is the gate")
	}
	// The sign-in (internal/identity) lets her, and the set-up follows.
	if err := f.env.StepUp.Allow(f.ctx, testPrincipal(alice).String(), "oidc:idp|anna", false); err != nil {
		t.Fatal(err)
	}
	f.app.EnrolAllowed(f.ctx, testPrincipal(alice), id)
	enrolmentSecret(t, f.lastDM(alice))
	if evs := f.events(stepup.KindAllowed); len(evs) != 1 {
		t.Errorf("stepup.enrol_allowed events = %d", len(evs))
	}
}

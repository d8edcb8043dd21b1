package slackapp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/stepup"
)

const (
	carol = "U0CAROL03"
	dave  = "U0DAVE004"
)

// ephemeralWith returns what user was told, ephemerally in channel, that
// holds s ("" if nothing).
func (f *flow) ephemeralWith(channel, user, s string) string {
	for _, m := range f.srv.Ephemerals(channel) {
		if m.User == user && strings.Contains(m.Text, s) {
			return m.Text
		}
	}
	return ""
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

// noKeyInSlack fails when a DM to user shows an authenticator's key.
func (f *flow) noKeyInSlack(user string) {
	f.t.Helper()
	for _, m := range f.srv.Messages(f.srv.DMChannel(user)) {
		if base32Secret.MatchString(flowTexts(m.Blocks)) || strings.Contains(m.Text+string(m.Blocks), "otpauth://") {
			f.t.Fatalf("a DM to %s shows a key: %q", user, m.Text)
		}
	}
}

// linkRecorder is Options.EnrolLink for tests: it remembers what it was
// asked for and makes a link that says so.
type linkRecorder struct{ asked []string }

func (l *linkRecorder) link(_ context.Context, p broker.Principal, by string, reset bool) (string, error) {
	what := fmt.Sprintf("%s by %s reset=%v", p, by, reset)
	l.asked = append(l.asked, what)
	return "https://agenthub.example.com/connect?t=" + strings.NewReplacer(" ", "_", ":", "-").Replace(what), nil
}

// TestEnrolmentGateByAdmin: where enrolment is gated and no identity
// provider is set up, "Verify it's you" of someone without an
// authenticator shows no key anywhere in Slack: it asks the
// administrators, never the person even if they are one. A stranger's or
// the person's own answer counts for nothing; the first administrator's
// approval gives them a single-use link to hand over out of band, and
// every administrator's question is settled without its buttons.
func TestEnrolmentGateByAdmin(t *testing.T) {
	links := &linkRecorder{}
	f := newFlow(t, flowOptions{gated: true, admins: []string{alice, bob, dave}, enrolLink: links.link})
	stepUp, _ := askMerge(t, f)
	if m := f.lastDM(alice); m.TS != stepUp.TS {
		t.Fatalf("a DM after Verify it's you, gated: %q", m.Text)
	}
	if f.ephemeralWith(stepUp.Channel, alice, "I asked an administrator") == "" {
		t.Fatal("alice is not told that an administrator was asked")
	}
	ask, askDave := f.lastDM(bob), f.lastDM(dave)
	value := flowButtons(ask.Blocks)[ActionGateAllow]
	if !strings.HasPrefix(value, testPrincipal(alice).String()+"|") {
		t.Fatalf("bob's DM %q has no Approve for alice (%v)", ask.Text, flowButtons(ask.Blocks))
	}
	// Asking again does not ask again.
	f.do(f.click(alice, stepUp, ActionStepUp))
	if got := len(f.dms(bob)); got != 1 {
		t.Errorf("bob has %d DMs after alice asked twice, want 1", got)
	}

	// Alice is an administrator too: she cannot approve herself; carol,
	// who is none, cannot approve anyone; buttons of another wish do not
	// answer this one.
	click := func(user, value string) {
		f.do(f.srv.BlockAction(slacktest.Action{User: user, Channel: ask.Channel, MessageTS: ask.TS, ActionID: ActionGateAllow, Value: value}))
	}
	click(alice, value)
	click(carol, value)
	click(bob, testPrincipal(alice).String()+"|another-wish")
	if len(links.asked) != 0 {
		t.Fatalf("links made after refused answers: %q", links.asked)
	}
	for _, reason := range []string{"own_enrolment", "not_an_admin"} {
		if !f.refusedFor(reason) {
			t.Errorf("refusal %s is not on the record", reason)
		}
	}

	f.do(f.click(bob, ask, ActionGateAllow))
	want := testPrincipal(alice).String() + " by admin:" + testPrincipal(bob).String() + " reset=false"
	if len(links.asked) != 1 || links.asked[0] != want {
		t.Fatalf("links made = %q, want %q", links.asked, want)
	}
	if told := f.ephemeralWith(ask.Channel, bob, "outside Slack"); !strings.Contains(told, "https://agenthub.example.com/connect?t=") {
		t.Errorf("bob is told %q, want the link to hand over", told)
	}
	if !f.dmHas(alice, "will hand you a set-up link outside Slack") {
		t.Error("alice is not told a link is coming")
	}
	f.noKeyInSlack(alice)
	for _, m := range []slacktest.Message{ask, askDave} {
		if now := f.message(m); len(flowButtons(now.Blocks)) != 0 || !strings.Contains(now.Text, "approved by") {
			t.Errorf("an administrator's question after the answer reads %q with buttons %v, want it settled", now.Text, flowButtons(now.Blocks))
		}
	}
	// The first answer decided: dave's click on his (settled) question is
	// too late.
	f.do(f.srv.BlockAction(slacktest.Action{User: dave, Channel: askDave.Channel, MessageTS: askDave.TS, ActionID: ActionGateAllow, Value: value}))
	if len(links.asked) != 1 {
		t.Errorf("links made after a second approval = %d, want 1", len(links.asked))
	}
}

// TestResetThroughTheGate: /agenthub reset asks the same gate; a refusal
// tells the person and is on the record; a stale Approve of an earlier
// wish does not approve the reset; an approval gives a reset link.
func TestResetThroughTheGate(t *testing.T) {
	links := &linkRecorder{}
	f := newFlow(t, flowOptions{gated: true, admins: []string{bob}, enrolLink: links.link})
	if _, err := f.app.EnrolOnPage(f.ctx, testPrincipal(alice), "link:operator", "", false); err != nil {
		t.Fatal(err)
	}
	if err := f.env.StepUp.Confirm(f.ctx, testPrincipal(alice).String(), f.demoCode(alice)); err != nil {
		t.Fatal(err)
	}
	_, env := f.command(alice, "reset")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "I asked an administrator") {
		t.Fatalf("answer to /agenthub reset = %v", rs)
	}
	first := f.lastDM(bob)
	if !strings.Contains(first.Text, "replace their authenticator") {
		t.Errorf("bob's DM = %q, want it to say it is a reset", first.Text)
	}
	f.do(f.click(bob, first, ActionGateRefuse))
	if !f.dmHas(alice, "refused setting up your authenticator") || !f.refusedFor("enrolment_refused") {
		t.Error("a refused reset is not told to alice, or not on the record")
	}
	if ok, _ := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); !ok {
		t.Fatal("a refused reset removed the authenticator")
	}

	f.command(alice, "reset")
	second := f.lastDM(bob)
	f.do(f.srv.BlockAction(slacktest.Action{User: bob, Channel: second.Channel, MessageTS: second.TS, ActionID: ActionGateAllow,
		Value: flowButtons(first.Blocks)[ActionGateAllow]}))
	if len(links.asked) != 0 {
		t.Fatalf("the first wish's Approve answered the second: %q", links.asked)
	}
	f.do(f.click(bob, second, ActionGateAllow))
	if want := testPrincipal(alice).String() + " by admin:" + testPrincipal(bob).String() + " reset=true"; len(links.asked) != 1 || links.asked[0] != want {
		t.Fatalf("links made = %q, want %q", links.asked, want)
	}
}

// TestEnrolmentGateBySignIn: with an identity provider, the gate is a
// sign-in link for the person alone, and no administrator is asked; after
// the sign-in the key is on its page, and the DM asks only for the first
// code.
func TestEnrolmentGateBySignIn(t *testing.T) {
	var purposes []string
	f := newFlow(t, flowOptions{gated: true, admins: []string{bob}, signInLink: func(p broker.Principal, purpose string) (string, error) {
		purposes = append(purposes, p.String()+" "+purpose)
		return "https://agenthub.example.com/connect?t=signed", nil
	}})
	stepUp, _ := askMerge(t, f)
	id := flowButtons(stepUp.Blocks)[ActionStepUp]
	if f.ephemeralWith(stepUp.Channel, alice, "Sign in to set up your authenticator") == "" {
		t.Fatal("alice got no sign-in link")
	}
	if want := testPrincipal(alice).String() + " " + identity.EnrolPurpose(id, false); len(purposes) != 1 || purposes[0] != want {
		t.Errorf("sign-in link made for %q, want %q", purposes, want)
	}
	if len(f.dms(bob)) != 0 {
		t.Error("an administrator was asked although a sign-in is the gate")
	}
	// The sign-in's page (internal/identity) enrols her.
	enr, err := f.app.EnrolOnPage(f.ctx, testPrincipal(alice), "oidc:idp|anna", id, false)
	if err != nil {
		t.Fatal(err)
	}
	f.noKeyInSlack(alice)
	confirm := f.lastDM(alice)
	if v, ok := flowButtons(confirm.Blocks)[ActionEnrolConfirm]; !ok || v != id {
		t.Fatalf("the DM after the sign-in %q has no Confirm for the request (%v)", confirm.Text, flowButtons(confirm.Blocks))
	}
	f.do(f.click(alice, confirm, ActionEnrolConfirm))
	code, err := totp.GenerateCode(enr.Secret.Reveal(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.submit(alice, code)
	if ok, _ := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); !ok {
		t.Fatal("the first code did not confirm the authenticator")
	}
	if e := f.events(stepup.KindEnrolled); len(e) != 1 || e[0].Detail["by"] != "oidc:idp|anna" {
		t.Errorf("stepup.enrolled events = %+v, want one saying how the gate was passed", e)
	}
}

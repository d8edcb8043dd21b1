package slackapp

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/stepup"
)

// askMerge has alice (connected, not enrolled) ask for a merge, approve it
// and click "Verify it's you"; it returns the step-up DM and the thread.
func askMerge(t *testing.T, f *flow) (slacktest.Message, string) {
	t.Helper()
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	ts := f.mention(alice, "C1", merge)
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	stepUp := f.lastDM(alice)
	f.do(f.click(alice, stepUp, ActionStepUp))
	return stepUp, ts
}

var base32Secret = regexp.MustCompile("`([A-Z2-7]{16,})`")

// enrolmentSecret reads the secret out of the enrolment DM.
func enrolmentSecret(t *testing.T, m slacktest.Message) string {
	t.Helper()
	s := base32Secret.FindStringSubmatch(flowTexts(m.Blocks))
	if s == nil {
		t.Fatalf("enrolment DM %q shows no secret", flowTexts(m.Blocks))
	}
	return s[1]
}

func TestEnrolmentFlow(t *testing.T) {
	f := newFlow(t, flowOptions{})
	stepUp, ts := askMerge(t, f)
	id := flowButtons(stepUp.Blocks)[ActionStepUp]

	enrolment := f.lastDM(alice)
	if enrolment.TS == stepUp.TS {
		t.Fatal("no enrolment DM after clicking Verify it's you unenrolled")
	}
	if len(f.srv.Opened()) != 0 {
		t.Error("the step-up modal opened for someone with no authenticator")
	}
	secret := enrolmentSecret(t, enrolment)
	if texts := flowTexts(enrolment.Blocks); !strings.Contains(texts, "otpauth://totp/") {
		t.Errorf("enrolment DM = %q, want the otpauth URI too", texts)
	}
	if v := flowButtons(enrolment.Blocks)[ActionEnrolConfirm]; v != id {
		t.Fatalf("Confirm button value = %q, want the request ID %s", v, id)
	}

	// A wrong code: told so, and the Confirm button stays.
	f.do(f.click(alice, enrolment, ActionEnrolConfirm))
	right, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.submit(alice, otherCode(right))
	last := f.lastDM(alice)
	if !strings.Contains(last.Text, "didn't work") {
		t.Errorf("after a wrong first code, last DM = %q, want to be told", last.Text)
	}
	if now := f.message(enrolment); now.Updates != 0 || flowButtons(now.Blocks)[ActionEnrolConfirm] != id {
		t.Errorf("enrolment DM after a wrong code: %d updates, buttons %v; want it unchanged", now.Updates, flowButtons(now.Blocks))
	}

	// The right code: the secret leaves the conversation and the step-up
	// comes back.
	f.do(f.click(alice, enrolment, ActionEnrolConfirm))
	right, err = totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.submit(alice, right)
	now := f.message(enrolment)
	if now.Updates != 1 || strings.Contains(string(now.Blocks), secret) || strings.Contains(now.Text, secret) || strings.Contains(string(now.Blocks), "otpauth") {
		t.Errorf("enrolment DM after confirming (%d updates) still shows the secret, want it rewritten without it", now.Updates)
	}
	if b := flowButtons(now.Blocks); len(b) != 0 {
		t.Errorf("enrolment DM buttons after confirming = %v, want none", b)
	}
	again := f.lastDM(alice)
	if flowButtons(again.Blocks)[ActionStepUp] != id {
		t.Fatalf("after confirming, last DM %q, want the step-up message for %s", again.Text, id)
	}
	ok, err := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String())
	if err != nil || !ok {
		t.Fatalf("Enrolled = %v, %v; want true", ok, err)
	}

	// And the waiting merge runs with the next code.
	f.do(f.click(alice, again, ActionStepUp))
	f.submit(alice, f.demoCode(alice))
	// acme/payments is private: the result goes to alice's DM.
	if replies := f.replies("C1", ts); len(replies) == 0 || replies[len(replies)-1] != "I sent you the result in a DM." || !f.dmHas(alice, "Merged acme/payments#7") {
		t.Errorf("thread replies = %q, want the merge's result in the DM and a note last", replies)
	}
	if evs := f.events(audit.ActionSucceeded); len(evs) != 1 {
		t.Errorf("action.succeeded events = %d, want 1", len(evs))
	}
}

func TestEnrolAgainReplacesTheOldSecret(t *testing.T) {
	f := newFlow(t, flowOptions{})
	stepUp, _ := askMerge(t, f)
	first := f.lastDM(alice)
	secret := enrolmentSecret(t, first)

	f.do(f.click(alice, stepUp, ActionStepUp))
	second := f.lastDM(alice)
	if second.TS == first.TS || enrolmentSecret(t, second) == secret {
		t.Fatal("a second click made no new enrolment")
	}
	if now := f.message(first); strings.Contains(string(now.Blocks), secret) || now.Updates != 1 {
		t.Errorf("the first enrolment DM still shows its secret (%d updates)", now.Updates)
	}
}

func TestStepUpWithoutEnroller(t *testing.T) {
	f := newFlow(t, flowOptions{noEnroller: true})
	if err := f.env.EnrollDemo(f.ctx, testPrincipal(alice), alice); err != nil {
		t.Fatal(err)
	}
	askMerge(t, f)
	if n := len(f.srv.Opened()); n != 1 {
		t.Errorf("modals opened = %d, want the step-up modal", n)
	}
}

func TestEnrolmentGolden(t *testing.T) {
	enr := stepup.Enrolment{
		Secret: secret.New("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
		URI:    secret.New("otpauth://totp/AgentHub:T1%3AU1?algorithm=SHA1&digits=6&issuer=AgentHub&period=30&secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
	}
	golden(t, "enrolment_message", EnrolmentMessage(enr, "0123456789abcdef0123456789abcdef"))
	golden(t, "enrolment_modal", EnrolModal(enrolmentDM{Channel: "D0ALICE01", TS: "1764252180.000042", RequestID: "0123456789abcdef0123456789abcdef"}))
}

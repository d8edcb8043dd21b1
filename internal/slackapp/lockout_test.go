package slackapp

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/stepup"
)

// TestLockoutIsToldInTheOwnersDM: when wrong codes lock step-up, the owner
// is told in their DM (not in the channel thread) that someone failed
// codes on their account, and /agenthub revoke all still works.
func TestLockoutIsToldInTheOwnersDM(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.mention(alice, "C1", listPulls) // connects alice
	if err := f.env.EnrollDemo(f.ctx, testPrincipal(alice), alice); err != nil {
		t.Fatal(err)
	}
	ts := f.mention(alice, "C1", merge)
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	for range stepup.MaxFailures {
		f.do(f.click(alice, f.lastDM(alice), ActionStepUp))
		code := f.demoCode(alice)
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		f.submit(alice, wrong)
	}
	if !f.dmHas(alice, "Someone entered 5 wrong codes for your account") {
		t.Error("alice's DM has no lockout notice")
	}
	for _, r := range f.replies("C1", ts) {
		if strings.Contains(r, "wrong codes") {
			t.Errorf("the lockout notice went to the channel: %q", r)
		}
	}
	_, env := f.command(alice, "revoke all")
	if rs := f.responsesTo(env); len(rs) != 1 || !strings.Contains(rs[0].Text, "Revoked all services") {
		t.Errorf("revoke all while locked = %+v, want it done", rs)
	}
}

package broker

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/stepup"
)

// wrongCode is a six-digit code that is not code.
func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

// TestLockoutTellsTheOwnerAndRevokeStillWorks: the wrong code that locks
// step-up tells the owner, privately, that someone failed codes on their
// account; attempts while locked say until when; and revoking everything
// works all the same.
func TestLockoutTellsTheOwnerAndRevokeStillWorks(t *testing.T) {
	f := newFixture(t)
	a := f.approval("merge PR 7 in acme/payments")
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	var last []Output
	for i := range stepup.MaxFailures {
		outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, wrongCode(f.code()))
		if err != nil {
			t.Fatal(err)
		}
		if i < stepup.MaxFailures-1 && len(outs) != 1 {
			t.Fatalf("attempt %d: outputs = %s, want the one refusal", i+1, dump(outs))
		}
		last = outs
	}
	if len(last) != 2 || !last[1].Private || !strings.Contains(last[1].Text, "Someone entered 5 wrong codes for your account") ||
		!strings.Contains(last[1].Text, "/agenthub revoke all") {
		t.Fatalf("the locking attempt's outputs = %s, want the refusal and a private notice for the owner", dump(last))
	}
	locked := only(t, mustStepUp(t, f, a.RequestID, f.code()), KindStepUp)
	if !strings.Contains(locked.Text, "locked until") {
		t.Errorf("an attempt while locked = %q, want it to say until when", locked.Text)
	}
	if f.calls("PUT", mergePath) != 0 {
		t.Fatal("the merge ran")
	}
	outs, err := f.b.RevokeAll(f.ctx, alice)
	if err != nil || len(outs) != 1 || outs[0].Kind != KindMessage || len(outs[0].Requests) != 1 {
		t.Fatalf("revoke all while locked = %s, %v; want it done, the merge canceled", dump(outs), err)
	}
}

func mustStepUp(t *testing.T, f *fixture, id, code string) []Output {
	t.Helper()
	outs, err := f.b.StepUp(f.ctx, id, alice, code)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

package broker

import (
	"strconv"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
)

// refusals adds up the refusals of actor that the audit trail counts.
func (f *fixture) refusals(actor string) int {
	f.t.Helper()
	all, err := f.rec.Tail(f.ctx, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range all {
		if (e.Kind == audit.InteractionRejected || e.Kind == audit.RequestRefused) && e.Actor == actor {
			c, err := strconv.Atoi(e.Detail["count"])
			if err != nil {
				f.t.Fatalf("refusal event %d without a count: %+v", e.Seq, e)
			}
			n += c
		}
	}
	return n
}

// trailLen is the number of events in the trail.
func (f *fixture) trailLen() int {
	f.t.Helper()
	all, err := f.rec.Tail(f.ctx, 100000)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(all)
}

// TestRefusalsAreCountedNotWrittenOneByOne: a flood of refusals from one
// actor costs the trail two events per window, and every refusal is
// counted in it, whether the next refusal or a flush closes the window.
func TestRefusalsAreCountedNotWrittenOneByOne(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	before := f.trailLen()
	for range 500 {
		only(t, f.decide(bob, a.RequestID, ChoiceOnce), KindError)
	}
	if got := f.trailLen() - before; got != 1 {
		t.Fatalf("500 refused clicks added %d events, want 1", got)
	}
	// The window ends; the next refusal records the last window's count
	// and starts a new one.
	f.clock.Advance(RefusalWindow)
	only(t, f.decide(bob, a.RequestID, ChoiceOnce), KindError)
	if got := f.trailLen() - before; got != 3 {
		t.Errorf("after the next window's first refusal: %d events, want 3", got)
	}
	for range 9 {
		f.decide(bob, a.RequestID, ChoiceDeny)
	}
	f.clock.Advance(RefusalWindow + time.Second)
	if err := f.b.FlushRefusals(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.b.FlushRefusals(f.ctx); err != nil { // nothing left to flush
		t.Fatal(err)
	}
	if got := f.refusals(bob.String()); got != 510 {
		t.Errorf("refusals counted in the trail = %d, want 510", got)
	}
	if got := f.trailLen() - before; got != 4 {
		t.Errorf("events for 510 refusals = %d, want 4", got)
	}
}

// TestRequestsRefusedBeforeProposalAreRecorded: a message nothing could be
// planned from, an unknown action and arguments the schema refuses each
// leave request.refused, and no step.proposed.
func TestRequestsRefusedBeforeProposalAreRecorded(t *testing.T) {
	f := newFixture(t)
	f.handle(alice, "dance the tango")
	f.handle(alice, "merge PR 0 in acme/payments")
	outs, err := f.b.runPlan(f.ctx, asker{Principal: alice}, []Step{{Action: "github.format_disk", Args: []byte(`{}`)}})
	if err != nil || len(outs) != 1 || outs[0].Kind != KindError {
		t.Fatalf("an unknown action = %s, %v", dump(outs), err)
	}
	all, err := f.rec.Tail(f.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range all {
		if e.Kind == audit.StepProposed {
			t.Errorf("a refused request was proposed: %+v", e)
		}
		if e.Kind == audit.RequestRefused && e.Actor == alice.String() {
			got[e.Result] = true
		}
	}
	for _, want := range []string{"no_plan", "invalid_arguments", "unknown_action"} {
		if !got[want] {
			t.Errorf("no request.refused %s", want)
		}
	}
}

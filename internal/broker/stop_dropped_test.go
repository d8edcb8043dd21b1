package broker

import (
	"fmt"
	"net/http"
	"testing"
)

// TestADroppedStopMarkStillStopsItsRequest: a request asked in a thread
// before any Stop there keeps no mark of it. Its owner presses Stop, and
// the mark alone guards it (the app died before it canceled the request,
// or Pending or Cancel failed). After 64 more Stops in other threads the
// thread's mark is dropped: approving the request still runs nothing.
func TestADroppedStopMarkStillStopsItsRequest(t *testing.T) {
	f := newFixture(t)
	a := only(t, f.handleIn(alice, "C0:0", "comment 'x' on PR 12 in acme/website"), KindApproval)
	f.stop(alice, "C0:0") // the Stop lands; the cancel of the waiting request never happens
	for i := 1; i <= maxStopMarks; i++ {
		f.stop(alice, fmt.Sprintf("C%d:%d", i, i))
	}
	outs := f.decide(alice, a.RequestID, ChoiceOnce)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("a comment stopped in Slack ran after 64 later Stops: comments = %d, outputs = %s", got, dump(outs))
	}
}

// TestADroppedStopMarkStillStopsItsPlan: the same for a plan in flight
// whose conversation had no mark when it began.
func TestADroppedStopMarkStillStopsItsPlan(t *testing.T) {
	f := newFixture(t)
	marks, err := f.b.revocationMarks(f.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	p := asker{Principal: alice, revoked: planMarks(marks, "C0:0"), conversation: "C0:0"}
	f.stop(alice, "C0:0")
	if why, _ := f.b.interrupted(f.ctx, p, "github"); why != whyStopped {
		t.Fatalf("right after the Stop: why = %q, want stopped", why)
	}
	for i := 1; i <= maxStopMarks; i++ {
		f.stop(alice, fmt.Sprintf("C%d:%d", i, i))
	}
	if why, _ := f.b.interrupted(f.ctx, p, "github"); why != whyStopped {
		t.Errorf("after 64 later Stops the stopped plan may go on again: why = %q, want stopped", why)
	}
}

// Dropping Stop marks stops nothing begun after them: a plan asked once
// 65 Stops are behind runs as usual.
func TestDroppedStopMarksStopNothingAskedAfter(t *testing.T) {
	f := newFixture(t)
	for i := 0; i <= maxStopMarks; i++ {
		f.stop(alice, fmt.Sprintf("C%d:%d", i, i))
	}
	a := only(t, f.handleIn(alice, "C0:0", "comment 'x' on PR 12 in acme/website"), KindApproval)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult)
	only(t, f.handleIn(alice, "C99:99", "list open pull requests in acme/website"), KindResult)
}

// Approving for an hour a request whose thread was stopped since (or
// whose service was revoked) creates no grant: the approval was for
// something the person no longer wants.
func TestNoGrantFromAStoppedRequest(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(f *fixture)
	}{
		{"stopped", func(f *fixture) { f.stop(alice, thread1) }},
		{"revoked", func(f *fixture) {
			if err := f.b.markRevoked(f.ctx, alice, "github"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			a := only(t, f.handleIn(alice, thread1, "comment 'x' on PR 12 in acme/website"), KindApproval)
			tt.end(f)
			only(t, f.decide(alice, a.RequestID, ChoiceHour), KindMessage)
			if gs, err := f.b.Grants(f.ctx, alice); err != nil || len(gs) != 0 {
				t.Errorf("grants = %+v, %v; want none", gs, err)
			}
			if got := f.calls(http.MethodPost, commentPath); got != 0 {
				t.Errorf("comments = %d, want 0", got)
			}
		})
	}
}

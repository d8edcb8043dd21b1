package broker

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/store"
)

// leaveAt moves pending request id to status st as a process that stopped
// right after the move would have left it (approved: the owner's approval
// is in, the step was not started; executing: the step had started).
func (f *fixture) leaveAt(id string, st Status) {
	f.t.Helper()
	r, raw, err := f.b.loadRequest(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	events := []Event{{Type: EventApprove, By: r.Principal, Lifetime: policy.Once}}
	if st == StatusExecuting {
		events = append(events, Event{Type: EventStart})
	}
	for _, e := range events {
		if r, raw, err = f.b.move(f.ctx, r, raw, e, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	if r.Status != st {
		f.t.Fatalf("left the request %s, want %s", r.Status, st)
	}
}

func (f *fixture) recover(id string) []Output {
	f.t.Helper()
	outs, err := f.b.Recover(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Recover: %v", err)
	}
	return outs
}

// TestRecoverSettlesAnApprovalThatNeverStarted: a process that stopped
// between the approval and the start of the step (or whose store failed
// there, after telling the person that nothing was done) leaves the request
// approved. It is not run later, since the request does not tell whether
// the approval reached the audit trail: after ApprovedStaleAfter, Recover
// fails it as interrupted, once, however many replicas sweep at once.
func TestRecoverSettlesAnApprovalThatNeverStarted(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Fatalf("Recover of a pending request = %s, want nothing", dump(outs))
	}
	f.leaveAt(a.RequestID, StatusApproved)
	f.clock.Advance(ApprovedStaleAfter - time.Second)
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Fatalf("Recover of a request approved %v ago = %s, want nothing: the approving process may still be on it", ApprovedStaleAfter-time.Second, dump(outs))
	}

	f.clock.Advance(time.Second)
	other := f.newBroker()
	var wg sync.WaitGroup
	results := make(chan []Output, 8)
	for i := range 8 {
		b := f.b
		if i%2 == 1 {
			b = other
		}
		wg.Go(func() {
			outs, err := b.Recover(f.ctx, a.RequestID)
			if err != nil {
				t.Errorf("Recover: %v", err)
			}
			results <- outs
		})
	}
	wg.Wait()
	close(results)
	var told []Output
	for outs := range results {
		told = append(told, outs...)
	}
	if len(told) != 1 || told[0].Kind != KindError || !strings.Contains(told[0].Text, "never started") {
		t.Errorf("outputs of 8 concurrent Recovers = %s, want one error saying it never started", dump(told))
	}
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusInterrupted {
		t.Errorf("status = %s, want interrupted", got)
	}
	if got := f.count(a.RequestID, func(e audit.Event) bool {
		return e.Kind == audit.ActionFailed && e.Result == "interrupted" && e.Detail["status"] == "approved"
	}); got != 1 {
		t.Errorf("action.failed interrupted events = %d, want 1", got)
	}
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Errorf("Recover of a finished request = %s, want nothing", dump(outs))
	}
}

// TestRecoverSettlesAnInterruptedStep: a process that stopped during the
// call leaves the request executing. Whether the provider acted cannot be
// known, so Recover does not call again: after ExecutingStaleAfter it fails
// the request as interrupted, on the record, and says so.
func TestRecoverSettlesAnInterruptedStep(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	f.leaveAt(a.RequestID, StatusExecuting)
	f.clock.Advance(ExecutingStaleAfter - time.Second)
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Fatalf("Recover of a request executing for %v = %s, want nothing", ExecutingStaleAfter-time.Second, dump(outs))
	}
	f.clock.Advance(time.Second)
	o := only(t, f.recover(a.RequestID), KindError)
	if !strings.Contains(o.Text, "interrupted") || !strings.Contains(o.Text, "acme/website") {
		t.Errorf("output = %q, want it to say the step was interrupted and what to check", o.Text)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0: an interrupted step is not run again", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusInterrupted {
		t.Errorf("status = %s, want interrupted", got)
	}
	if interrupted := f.count(a.RequestID, failedWith("interrupted")); interrupted != 1 {
		t.Errorf("action.failed interrupted events = %d, want 1", interrupted)
	}
}

// TestRecoverLeavesRecordsWithoutUpdated: a request written by a version
// that did not keep Request.Updated cannot say how long it has waited, and
// may still be running on an old replica: Recover leaves it alone.
func TestRecoverLeavesRecordsWithoutUpdated(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	f.leaveAt(a.RequestID, StatusExecuting)
	r, raw, err := f.b.loadRequest(f.ctx, a.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	r.Updated = time.Time{}
	old, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CompareAndSwap(f.ctx, requestKey(r.Principal, r.ID), raw, old, store.KeepTTL); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(ExecutingStaleAfter + time.Hour)
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Errorf("Recover of a record without Updated = %s, want nothing", dump(outs))
	}
	if got := f.request(a.RequestID).Status; got != StatusExecuting {
		t.Errorf("status = %s, want executing, untouched", got)
	}
}

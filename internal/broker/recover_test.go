package broker

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/policy"
)

// leaveAt stores request id in status st as a process that stopped right
// after writing it would have left it (approved: the owner's approval is
// in, the step was not started; executing: the step had started).
func (f *fixture) leaveAt(id string, st Status) {
	f.t.Helper()
	r, raw, err := f.b.loadRequest(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	r.Status, r.Lifetime, r.Decided = st, policy.Once, f.clock.Now()
	if _, err := f.b.transition(f.ctx, r, raw); err != nil {
		f.t.Fatal(err)
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

// TestRecoverResumesAnApprovedStep: a process that stopped between the
// approval and the start of the step leaves the request approved; after
// ResumeAfter, Recover runs it, once.
func TestRecoverResumesAnApprovedStep(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Fatalf("Recover of a pending request = %s, want nothing", dump(outs))
	}
	f.leaveAt(a.RequestID, StatusApproved)
	if outs := f.recover(a.RequestID); len(outs) != 0 || f.calls(http.MethodPost, commentPath) != 0 {
		t.Fatalf("Recover right after the approval = %s, want nothing: the approving process may still be on it", dump(outs))
	}

	f.clock.Advance(ResumeAfter)
	// Several replicas sweeping at once: the step runs once.
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
	ran := 0
	for outs := range results {
		for _, o := range outs {
			if o.Kind == KindResult {
				ran++
			}
		}
	}
	if ran != 1 {
		t.Errorf("results from 8 concurrent Recovers = %d, want 1", ran)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Errorf("comments = %d, want 1", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusSucceeded {
		t.Errorf("status = %s, want succeeded", got)
	}
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Errorf("Recover of a finished request = %s, want nothing", dump(outs))
	}
}

// TestRecoverSettlesAnInterruptedStep: a process that stopped during the
// call leaves the request executing. Whether the provider acted cannot be
// known, so Recover does not call again: after InterruptedAfter it fails
// the request as interrupted, on the record, and says so.
func TestRecoverSettlesAnInterruptedStep(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	f.leaveAt(a.RequestID, StatusExecuting)
	f.clock.Advance(InterruptedAfter - time.Second)
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Fatalf("Recover of a request executing for %v = %s, want nothing", InterruptedAfter-time.Second, dump(outs))
	}
	f.clock.Advance(time.Second)
	o := only(t, f.recover(a.RequestID), KindError)
	if !strings.Contains(o.Text, "interrupted") || !strings.Contains(o.Text, "acme/website") {
		t.Errorf("output = %q, want it to say the step was interrupted and what to check", o.Text)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0: an interrupted step is not run again", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusFailed {
		t.Errorf("status = %s, want failed", got)
	}
	if interrupted := f.count(a.RequestID, failedWith("interrupted")); interrupted != 1 {
		t.Errorf("action.failed interrupted events = %d, want 1", interrupted)
	}
}

// TestRecoverExpiresAnApprovalPastItsTime: an approval left over past the
// request's expiry is not carried out: the request's record is gone with
// its time.
func TestRecoverExpiresAnApprovalPastItsTime(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	f.leaveAt(a.RequestID, StatusApproved)
	f.clock.Advance(DefaultRequestTTL)
	if outs := f.recover(a.RequestID); len(outs) != 0 {
		t.Errorf("Recover past the expiry = %s, want nothing", dump(outs))
	}
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
	if _, err := f.b.Lookup(f.ctx, a.RequestID); !errors.Is(err, ErrNoRequest) {
		t.Errorf("Lookup past the expiry: %v, want ErrNoRequest", err)
	}
}

package broker

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/sim"
)

// dieOn is a recorder that stands for a process killed just before it
// records the first event of kind: the goroutine recording it ends there,
// nothing after it runs.
type dieOn struct {
	kind audit.Kind
	next Recorder
	mu   sync.Mutex
	died bool
}

func (d *dieOn) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	d.mu.Lock()
	die := e.Kind == d.kind && !d.died
	d.died = d.died || die
	d.mu.Unlock()
	if die {
		runtime.Goexit()
	}
	return d.next.Record(ctx, e)
}

// killedWhile runs fn as a process that dies on recording kind; the clock
// then moves past outboxGrace, as it does before anyone finds what a
// process that died left.
func (f *fixture) killedWhile(kind audit.Kind, fn func()) {
	f.t.Helper()
	d := &dieOn{kind: kind, next: f.rec}
	f.audit = d
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.audit = f.rec
	if !d.died {
		f.t.Fatalf("nothing recorded %s", kind)
	}
	f.clock.Advance(outboxGrace)
}

// TestAMoveIsRecordedBeforeAnythingBuildsOnIt: a process that dies after
// storing a move but before the trail has it leaves the move's events in
// the request; the next move records them before it takes the request on,
// so an approval is in the trail before the step it approved runs.
func TestAMoveIsRecordedBeforeAnythingBuildsOnIt(t *testing.T) {
	t.Run("the owner's approval", func(t *testing.T) {
		f := newFixture(t)
		a := f.approval("merge PR 7 in acme/payments")
		f.killedWhile(audit.ApprovalGranted, func() { f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce}) })
		r := f.request(a.RequestID)
		if r.Status != StatusAwaitingStepUp || len(r.Unrecorded) != 1 {
			t.Fatalf("after the crash: %s with %d unrecorded, want awaiting_stepup with the approval", r.Status, len(r.Unrecorded))
		}
		only(t, f.stepUp(a.RequestID, alice), KindResult)
		kinds := kindsOf(f.events(a.RequestID))
		if i, j := indexOfKind(kinds, audit.ApprovalGranted), lastIndexOfKind(kinds, audit.ProviderRequested); i < 0 || j < 0 || i > j {
			t.Errorf("trail %v: want approval.granted before the merge was sent", kinds)
		}
		if got := f.request(a.RequestID); len(got.Unrecorded) != 0 {
			t.Errorf("outbox after the run = %v, want empty", got.Unrecorded)
		}
	})
	t.Run("a second approval", func(t *testing.T) {
		f := newFixture(t)
		withReleaseManager(t, f)
		a := f.approval("deploy acme/website to production")
		f.killedWhile(audit.ApprovalGranted, func() { f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: bob, Choice: ChoiceOnce}) })
		only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
		only(t, f.stepUp(a.RequestID, alice), KindResult)
		var bobs int
		for _, e := range f.events(a.RequestID) {
			if e.Kind == audit.ApprovalGranted && e.Actor == bob.String() {
				bobs++
			}
		}
		if bobs != 1 {
			t.Errorf("bob's approval.granted = %d, want 1 before the deploy", bobs)
		}
	})
	t.Run("a request nobody moves again", func(t *testing.T) {
		f := newFixture(t)
		a := f.approval("comment 'LGTM' on PR 12 in acme/website")
		f.killedWhile(audit.ApprovalDenied, func() { f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceDeny}) })
		f.recover(a.RequestID)
		if got := f.count(a.RequestID, ofKind(audit.ApprovalDenied)); got != 1 {
			t.Errorf("approval.denied after Recover = %d, want 1", got)
		}
	})
	t.Run("a grant", func(t *testing.T) {
		f := newFixture(t)
		f.connect(alice, sim.ServiceGitHub, "repo")
		a := f.approval("comment 'one' on PR 12 in acme/website")
		f.killedWhile(audit.GrantCreated, func() { f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceHour}) })
		if gs, err := f.b.Grants(f.ctx, alice); err != nil || len(gs) != 0 {
			t.Fatalf("grants after a crash before grant.created = %+v, %v; want none", gs, err)
		}
	})
}

func kindsOf(evs []audit.Event) []audit.Kind {
	out := make([]audit.Kind, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

func indexOfKind(kinds []audit.Kind, k audit.Kind) int {
	for i, x := range kinds {
		if x == k {
			return i
		}
	}
	return -1
}

func lastIndexOfKind(kinds []audit.Kind, k audit.Kind) int {
	for i := len(kinds) - 1; i >= 0; i-- {
		if kinds[i] == k {
			return i
		}
	}
	return -1
}

// TestAFreshOutboxIsLeftToItsProcess: a move that finds the outbox of a
// move made a moment ago (its process is recording it) does not record it
// a second time: it waits, and gives up rather than duplicate it; a
// step-up waits before it checks the code, so the code is not spent.
func TestAFreshOutboxIsLeftToItsProcess(t *testing.T) {
	f := newFixture(t)
	a := f.approval("merge PR 7 in acme/payments")
	d := &dieOn{kind: audit.ApprovalGranted, next: f.rec}
	f.audit = d
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
	}()
	<-done
	f.audit = f.rec
	code := f.code()
	outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, code)
	if err == nil || len(outs) != 1 || outs[0].Kind != KindStepUp || !strings.Contains(outs[0].Text, "still being recorded") {
		t.Fatalf("step-up on a fresh outbox = %s, %v; want to be asked again in a moment", dump(outs), err)
	}
	if got := f.count(a.RequestID, ofKind(audit.ApprovalGranted)); got != 0 {
		t.Errorf("approval.granted = %d, want 0: the fresh outbox is its process's to record", got)
	}
	if got := f.calls(http.MethodPut, mergePath); got != 0 {
		t.Errorf("merges = %d, want 0", got)
	}
	// The code was not spent on it: once the outbox is stale, the same
	// code goes through, and the approval is recorded first.
	f.clock.Advance(outboxGrace)
	only(t, mustStepUp(t, f, a.RequestID, code), KindResult)
	if got := f.count(a.RequestID, ofKind(audit.ApprovalGranted)); got != 1 {
		t.Errorf("approval.granted after the step-up = %d, want 1", got)
	}
}

// hookOn is a recorder that, the first time it is asked to record kind
// (of action, if set), runs fn (what happens meanwhile, elsewhere) and then
// fails that record if fail is set, or passes it on.
type hookOn struct {
	kind   audit.Kind
	action string
	fn     func()
	fail   bool
	next   Recorder
	mu     sync.Mutex
	done   bool
}

func (h *hookOn) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	h.mu.Lock()
	first := e.Kind == h.kind && (h.action == "" || e.Action == h.action) && !h.done
	h.done = h.done || first
	h.mu.Unlock()
	if first {
		h.fn()
		if h.fail {
			return audit.Event{}, errors.New("audit store unavailable")
		}
	}
	return h.next.Record(ctx, e)
}

// TestOutboxesAreRecordedOnceAndFailedOnlyWhileTheirs: a revocation that
// lands while the approval is being recorded records only its own events
// (the approval is recorded once); and an approval whose recording hangs,
// then fails, after another process found it stale, recorded it and ran
// the step, does not fail the request that ran.
func TestOutboxesAreRecordedOnceAndFailedOnlyWhileTheirs(t *testing.T) {
	t.Run("revoked while recording", func(t *testing.T) {
		f := newFixture(t)
		other := f.newBroker()
		a := f.approval("merge PR 7 in acme/payments")
		f.audit = &hookOn{kind: audit.ApprovalGranted, next: f.rec, fn: func() {
			if _, err := other.RevokeAll(f.ctx, alice); err != nil {
				t.Errorf("revoke all: %v", err)
			}
		}}
		f.decide(alice, a.RequestID, ChoiceOnce)
		f.audit = f.rec
		if got := f.count(a.RequestID, ofKind(audit.ApprovalGranted)); got != 1 {
			t.Errorf("approval.granted = %d, want 1", got)
		}
		if got := f.count(a.RequestID, ofKind(audit.RequestCanceled)); got != 1 {
			t.Errorf("request.canceled = %d, want 1", got)
		}
		if r := f.request(a.RequestID); r.Status != StatusCanceled || len(r.Unrecorded) != 0 {
			t.Errorf("request = %s with outbox %v, want canceled and empty", r.Status, r.Unrecorded)
		}
	})
	t.Run("taken on by another process while recording hung", func(t *testing.T) {
		f := newFixture(t)
		other := f.newBroker()
		a := f.approval("merge PR 7 in acme/payments")
		code := f.code()
		f.audit = &hookOn{kind: audit.ApprovalGranted, next: f.rec, fail: true, fn: func() {
			f.clock.Advance(outboxGrace)
			outs, err := other.StepUp(f.ctx, a.RequestID, alice, code)
			if err != nil || len(outs) != 1 || outs[0].Kind != KindResult {
				t.Errorf("the other process's step-up = %s, %v; want the merge", dump(outs), err)
			}
		}}
		outs, _ := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
		f.audit = f.rec
		for _, o := range outs {
			if strings.Contains(o.Text, "Nothing was done") {
				t.Errorf("the owner was told %q after the merge ran", o.Text)
			}
		}
		if r := f.request(a.RequestID); r.Status != StatusSucceeded {
			t.Errorf("status = %s (%s), want succeeded", r.Status, r.Result)
		}
		if got := f.calls(http.MethodPut, mergePath); got != 1 {
			t.Errorf("merges = %d, want 1", got)
		}
		if got := f.count(a.RequestID, ofKind(audit.ApprovalGranted)); got != 1 {
			t.Errorf("approval.granted = %d, want 1", got)
		}
	})
}

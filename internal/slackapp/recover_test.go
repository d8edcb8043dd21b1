package slackapp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/store"
)

// startFails fails, once, the store write that moves a request to
// executing: the process that approved it is left with an approved request
// it could not start, as if it had stopped at that moment.
type startFails struct {
	store.Store
	armed atomic.Bool
}

func (s *startFails) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	if bytes.Contains(next, []byte(`"status":"executing"`)) && s.armed.CompareAndSwap(true, false) {
		return errors.New("store unavailable")
	}
	return s.Store.CompareAndSwap(ctx, k, old, next, ttl)
}

// laterReplica is the App's broker, but recovering requests as a replica
// whose sweep runs broker.ApprovedStaleAfter later would.
type laterReplica struct {
	*broker.Broker
	later *broker.Broker
}

func (l laterReplica) Recover(ctx context.Context, id string) ([]broker.Output, error) {
	return l.later.Recover(ctx, id)
}

// TestSweepSettlesAnApprovalThatNeverStarted: the approval went in, but the
// step could not start, and the person was told nothing was done. The
// approval DM shows it approved without buttons and keeps its record; a
// sweep once the request is stale does not run it (it says so in the
// thread, once) and settles the record.
func TestSweepSettlesAnApprovalThatNeverStarted(t *testing.T) {
	faulty := &startFails{}
	f := newFlow(t, flowOptions{stackStore: func(s store.Store) store.Store { faulty.Store = s; return faulty }})
	later, err := broker.New(broker.Options{
		Store: faulty, Vault: f.env.Vault, Audit: f.env.Audit, Policy: policy.Default(), Registry: f.env.Registry,
		Planner: planner.NewRules(), StepUp: f.env.StepUp,
		Now: func() time.Time { return time.Now().Add(broker.ApprovedStaleAfter) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.app.opts.Broker = laterReplica{Broker: f.env.Broker, later: later}

	dm, ts := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	faulty.armed.Store(true)
	// The click's handler reports the failure, so that Slack's redelivery
	// (were it an event) could try again.
	if err := f.app.handleWork(f.ctx, workOf(t, f.click(alice, dm, ActionDecidePrefix+broker.ChoiceOnce))); err == nil {
		t.Error("the click whose step could not start reported no error")
	}
	if faulty.armed.Load() {
		t.Fatal("the approval never tried to start the step")
	}
	if r, err := f.env.Broker.Lookup(f.ctx, id); err != nil || r.Status != broker.StatusApproved {
		t.Fatalf("request after the failed start = %+v, %v; want approved", r.Status, err)
	}
	if got := f.env.World.Calls(); countComments(got) != 0 {
		t.Fatalf("comments after the failed start = %d, want 0", countComments(got))
	}
	now := f.message(dm)
	if len(flowButtons(now.Blocks)) != 0 || !strings.Contains(flowTexts(now.Blocks), "Approved by") {
		t.Errorf("approval DM after the failed start = %q with buttons %v, want approved without buttons", flowTexts(now.Blocks), flowButtons(now.Blocks))
	}
	if _, _, err := f.app.loadRecord(f.ctx, id); err != nil {
		t.Fatalf("record after the failed start: %v, want it kept for the sweep", err)
	}

	for range 2 { // the second sweep finds nothing left to do
		if err := f.app.sweepOnce(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := countComments(f.env.World.Calls()); got != 0 {
		t.Errorf("comments after the sweeps = %d, want 0", got)
	}
	replies := f.replies("C1", ts)
	// acme/payments is private: the word that it never started goes to
	// alice's DM, and the thread is told so.
	if len(replies) != 3 || !strings.Contains(replies[1], "Nothing was done") || replies[2] != "I sent you the result in a DM." ||
		!f.dmHas(alice, "never started") {
		t.Errorf("thread replies = %q, want the DM note, the failed start, then a note that the word it never started is in the DM", replies)
	}
	if r, err := f.env.Broker.Lookup(f.ctx, id); err != nil || r.Status != broker.StatusInterrupted {
		t.Errorf("request after the sweep = %+v, %v; want interrupted", r.Status, err)
	}
	if _, _, err := f.app.loadRecord(f.ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after the sweep: %v, want it deleted", err)
	}
}

// countComments counts the comments posted to the simulated GitHub.
func countComments(calls []sim.Call) int {
	n := 0
	for _, c := range calls {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/comments") {
			n++
		}
	}
	return n
}

package slackapp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store"
)

func TestSweepExpiresMessages(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, _ := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]

	// Before the expiry, a sweep leaves an open request alone.
	if err := f.app.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	if now := f.message(dm); now.Updates != 0 {
		t.Fatalf("a sweep before the expiry updated the DM %d times", now.Updates)
	}

	f.clock.Advance(broker.DefaultRequestTTL + time.Minute)
	if err := f.app.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	now := f.message(dm)
	if now.Updates != 1 || len(flowButtons(now.Blocks)) != 0 || !strings.Contains(flowTexts(now.Blocks), "Expired at") {
		t.Errorf("DM after the sweep (%d updates) = %q, want it expired without buttons", now.Updates, flowTexts(now.Blocks))
	}
	if _, _, err := f.app.loadRecord(f.ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record after the sweep: %v, want it deleted", err)
	}
	// Nothing is left to do: a second sweep changes nothing.
	if err := f.app.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.message(dm).Updates; got != 1 {
		t.Errorf("updates after a second sweep = %d, want 1", got)
	}
}

func TestSweepLoop(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, _ := askComment(t, f)
	f.clock.Advance(broker.DefaultRequestTTL + time.Minute)

	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.app.sweepEvery(ctx, 5*time.Millisecond) }()
	for f.message(dm).Updates == 0 {
		select {
		case <-f.ctx.Done():
			t.Fatal("the sweeper never updated the expired request's DM")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("sweep returned %v, want nil once its context ended", err)
	}
}

func TestSweepSettlesRequestsDecidedElsewhere(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, _ := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	// Decided through the broker directly, as another replica whose
	// update failed would leave it.
	if _, err := f.env.Broker.Decide(f.ctx, broker.Decision{RequestID: id, Actor: testPrincipal(alice), Choice: broker.ChoiceDeny}); err != nil {
		t.Fatal(err)
	}
	if err := f.app.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	if texts := flowTexts(f.message(dm).Blocks); !strings.Contains(texts, "Denied by") {
		t.Errorf("DM after the sweep = %q, want denied", texts)
	}
}

func TestRememberConcurrently(t *testing.T) {
	f := newFlow(t, flowOptions{})
	const n = 20
	base := requestRecord{RequestID: "0123456789abcdef0123456789abcdef", Owner: testPrincipal(alice),
		Thread: thread{Channel: "C1", TS: "1.000001"}, Expires: f.clock.Now().Add(time.Hour)}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := f.app.appendShown(f.ctx, base, shown{Channel: "D1", TS: strings.Repeat("1", i+1), What: whatApprover}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	rec, _, err := f.app.loadRecord(f.ctx, base.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Messages) != n || rec.Thread != base.Thread {
		t.Errorf("record has %d messages, thread %+v; want %d and %+v", len(rec.Messages), rec.Thread, n, base.Thread)
	}
}

// releasePolicy is the default policy with bob as the release manager.
func releasePolicy(t *testing.T) *policy.Engine {
	t.Helper()
	const empty = "\n  release-managers: []\n"
	src := string(policy.DefaultSource())
	if strings.Count(src, empty) != 1 {
		t.Skip("the default policy no longer declares an empty release-managers group")
	}
	p, err := policy.Parse("test", []byte(strings.Replace(src, empty, "\n  release-managers: ["+bob+"]\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecondApprover(t *testing.T) {
	f := newFlow(t, flowOptions{policy: releasePolicy(t)})
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	if err := f.env.EnrollDemo(f.ctx, testPrincipal(alice), alice); err != nil {
		t.Fatal(err)
	}
	ts := f.mention(alice, "C1", "deploy acme/payments to production")
	owners, bobs := f.lastDM(alice), f.lastDM(bob)
	id := flowButtons(owners.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	if id == "" || flowButtons(bobs.Blocks)[ActionDecidePrefix+broker.ChoiceOnce] != id {
		t.Fatalf("approval DMs: alice %v, bob %v; want both with the request's buttons", flowButtons(owners.Blocks), flowButtons(bobs.Blocks))
	}
	if got := f.replies("C1", ts); len(got) != 1 || !strings.Contains(got[0], "<@"+bob+">") {
		t.Errorf("thread replies = %q, want the note naming bob", got)
	}

	// bob first: his message settles, alice's keeps its buttons.
	f.do(f.click(bob, bobs, ActionDecidePrefix+broker.ChoiceOnce))
	if b := flowButtons(f.message(bobs).Blocks); len(b) != 0 {
		t.Errorf("bob's DM buttons after his approval = %v, want none", b)
	}
	if b := flowButtons(f.message(owners).Blocks); b[ActionDecidePrefix+broker.ChoiceOnce] != id {
		t.Errorf("alice's DM buttons after bob's approval = %v, want them kept", b)
	}

	f.do(f.click(alice, owners, ActionDecidePrefix+broker.ChoiceOnce))
	stepUp := f.lastDM(alice)
	f.do(f.click(alice, stepUp, ActionStepUp))
	f.submit(alice, f.demoCode(alice))
	if replies := f.replies("C1", ts); replies[len(replies)-1] != "I sent you the result in a DM." || !f.dmHas(alice, "Started deploy.yml") {
		t.Errorf("thread replies = %q, want the deploy's result in alice's DM and a note last", replies)
	}
	for _, m := range []slacktest.Message{owners, bobs, stepUp} {
		if b := flowButtons(f.message(m).Blocks); len(b) != 0 {
			t.Errorf("message %q keeps buttons %v after the deploy ran", m.Text, b)
		}
	}
}

// When the demo cannot connect anyone at first contact (the simulated
// providers of AGENTHUB_SIM_URL are down), the contact is forgotten, and
// the person's next message connects them.
func TestDemoFirstContactRetriedAfterFailure(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.app.opts.Connect = func(context.Context, broker.Principal, string) error {
		return errors.New("simulated providers unreachable")
	}
	ts := f.mention(alice, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || strings.HasPrefix(got[0], ":white_check_mark:") {
		t.Fatalf("replies while nothing connects = %q, want no result", got)
	}
	f.app.opts.Connect = f.env.Connect
	ts = f.mention(alice, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || !strings.HasPrefix(got[0], ":white_check_mark:") {
		t.Errorf("replies once the providers answer = %q, want the result: the demo connected alice after all", got)
	}
}

func TestDemoFirstContact(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	grants := func() int {
		n := 0
		for _, g := range f.env.World.Grants(sim.ServiceGitHub) {
			if g.Principal == testPrincipal(alice).String() {
				n++
			}
		}
		return n
	}
	ts := f.mention(alice, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || !strings.HasPrefix(got[0], ":white_check_mark:") {
		t.Errorf("first contact replies = %q, want the result: the demo connected alice", got)
	}
	if n := grants(); n != 1 {
		t.Fatalf("github grants for alice = %d, want 1", n)
	}
	f.mention(alice, "C1", listPulls)
	f.command(alice, "revoke all")
	ts = f.mention(alice, "C1", listPulls)
	if n := grants(); n != 1 {
		t.Errorf("github grants for alice = %d, want still 1: no reconnecting after a revoke", n)
	}
	if got := f.replies("C1", ts); len(got) != 1 || strings.HasPrefix(got[0], ":white_check_mark:") {
		t.Errorf("replies after the revoke = %q, want no result", got)
	}
	dm := f.lastDM(alice)
	if v := strings.Fields(flowButtons(dm.Blocks)[ActionConnect]); len(v) == 0 || v[0] != sim.ServiceGitHub {
		t.Fatalf("last DM %q, want the Connect github button", dm.Text)
	}

	// The Connect button connects at once in the demo, and says so.
	f.do(f.click(alice, dm, ActionConnect))
	if eph := f.srv.Ephemerals(dm.Channel); len(eph) != 1 || !strings.Contains(eph[0].Text, "Connected github") {
		t.Errorf("ephemerals = %+v, want the connection confirmed", eph)
	}
	ts = f.mention(alice, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || !strings.HasPrefix(got[0], ":white_check_mark:") {
		t.Errorf("replies after connecting = %q, want the result", got)
	}
}

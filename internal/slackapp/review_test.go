package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
)

// The tests of this file pin what a security review found: clicks lost to
// a transient failure, a TOTP secret left in Slack, a step-up prompt lost
// to a lookup blip, enrolments racing or left unconfirmed, sweepers
// repeating each other, and guests from another workspace.

// flakyDecide is the real broker whose first Decide fails the way
// broker.Decide does when the store cannot be read (a Redis blip).
type flakyDecide struct {
	Broker
	failed atomic.Bool
}

func (b *flakyDecide) Decide(ctx context.Context, d broker.Decision) ([]broker.Output, error) {
	if b.failed.CompareAndSwap(false, true) {
		return []broker.Output{{Kind: broker.KindError, Text: "Nothing was done: the request could not be read."}},
			errors.New("broker: read request owner: i/o timeout")
	}
	return b.Broker.Decide(ctx, d)
}

// flakyLookup is the real broker whose first Lookup fails (a store blip).
type flakyLookup struct {
	Broker
	failed atomic.Bool
}

func (b *flakyLookup) Lookup(ctx context.Context, id string) (broker.Request, error) {
	if b.failed.CompareAndSwap(false, true) {
		return broker.Request{}, errors.New("broker: read request owner: i/o timeout")
	}
	return b.Broker.Lookup(ctx, id)
}

// runThroughTransport handles env the way a worker does: claim the dedupe
// key, then the handler (forgetting the key when the handler fails).
func runThroughTransport(t *testing.T, f *flow, env slacktest.Envelope, envelopeID string) {
	t.Helper()
	s := &session{a: f.app, t: &f.app.tr, m: f.app.tr.m}
	w := workOf(t, env)
	w.envelopeID = envelopeID
	w.dedupe, w.order = routeKeys(&w, env.Payload)
	s.run(f.ctx, w)
}

// slackProxy puts a proxy in front of the fake Slack and returns a client
// that goes through it. hook sees each Web API method before it is passed
// on; it may block, and returning true fails the call with internal_error.
func slackProxy(t *testing.T, f *flow, hook func(method string) (fail bool)) *slack.Client {
	t.Helper()
	target, err := url.Parse(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook(path.Base(r.URL.Path)) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":false,"error":"internal_error"}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	return slack.New(flowBotToken, slack.OptionAPIURL(proxy.URL+"/api/"))
}

// ephemeralTexts returns the texts of the ephemerals posted in ch.
func ephemeralTexts(f *flow, ch string) []string {
	var out []string
	for _, m := range f.srv.Ephemerals(ch) {
		out = append(out, m.Text)
	}
	return out
}

// A click whose decision failed for a transient reason is told "Nothing was
// done"; clicking the same button again must decide the request, so the
// failed click must not keep its dedupe key.
func TestRetryClickAfterTransientFailure(t *testing.T) {
	f := newFlow(t, flowOptions{})
	dm, _ := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceDeny]
	real := f.app.opts.Broker
	f.app.opts.Broker = &flakyDecide{Broker: real}

	runThroughTransport(t, f, f.click(alice, dm, ActionDecidePrefix+broker.ChoiceDeny), "env-1")
	if r, err := real.Lookup(f.ctx, id); err != nil || r.Status != broker.StatusPending {
		t.Fatalf("after the failed Deny, request = %v, %v; want it still pending", r.Status, err)
	}
	runThroughTransport(t, f, f.click(alice, dm, ActionDecidePrefix+broker.ChoiceDeny), "env-2") // the retry

	r, err := real.Lookup(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != broker.StatusDenied {
		t.Errorf("after a failed Deny and a second Deny click, status = %s, want denied (the retry was swallowed by the dedupe key)", r.Status)
	}
}

// chat.update failing once when the enrolment is confirmed must not leave
// the TOTP secret in the DM for good: the record stays, and the sweeper's
// next pass rewrites the DM.
func TestEnrolmentSecretRemovedWhenUpdateFailsOnce(t *testing.T) {
	f := newFlow(t, flowOptions{})
	askMerge(t, f)
	enrolment := f.lastDM(alice)
	secret := enrolmentSecret(t, enrolment)

	var failures atomic.Int32 // chat.update calls still to fail
	f.app.opts.API = slackProxy(t, f, func(method string) bool {
		return method == "chat.update" && failures.Add(-1) >= 0
	})
	f.do(f.click(alice, enrolment, ActionEnrolConfirm))
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	failures.Store(1)
	f.submit(alice, code)
	if n := failures.Load(); n != 0 {
		t.Fatalf("chat.update failures left = %d, want the confirmation to have tried a rewrite", n)
	}
	if ok, err := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); err != nil || !ok {
		t.Fatalf("Enrolled = %v, %v; want true", ok, err)
	}
	if !strings.Contains(flowTexts(f.message(enrolment).Blocks), secret) {
		t.Fatal("the enrolment DM lost its secret although its rewrite failed: the test no longer tests anything")
	}
	if _, err := f.store.Get(f.ctx, enrolmentKey(testPrincipal(alice))); err != nil {
		t.Fatalf("enrolment record after the failed rewrite: %v, want it kept for the sweeper", err)
	}

	if err := f.app.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	now := f.message(enrolment)
	if texts := flowTexts(now.Blocks); strings.Contains(texts, secret) || strings.Contains(now.Text, secret) || !strings.Contains(texts, "Your authenticator is set up") {
		t.Errorf("enrolment DM after the sweep = %q, want it rewritten as set up, without the secret", texts)
	}
	if _, err := f.store.Get(f.ctx, enrolmentKey(testPrincipal(alice))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("enrolment record after the sweep: %v, want it deleted", err)
	}
}

// enrolmentStoreDown is a store whose enrolment records cannot be written.
type enrolmentStoreDown struct{ store.Store }

var errStoreDown = errors.New("redis: i/o timeout")

func (s enrolmentStoreDown) Create(ctx context.Context, k store.Key, v []byte, ttl time.Duration) error {
	if k.Kind == enrolmentKind {
		return errStoreDown
	}
	return s.Store.Create(ctx, k, v, ttl)
}

func (s enrolmentStoreDown) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	if k.Kind == enrolmentKind {
		return errStoreDown
	}
	return s.Store.CompareAndSwap(ctx, k, old, next, ttl)
}

// An enrolment DM that could not be recorded loses its secret at once:
// nothing would ever rewrite it later.
func TestUnrecordedEnrolmentRemovesSecret(t *testing.T) {
	f := newFlow(t, flowOptions{})
	f.app.opts.Store = enrolmentStoreDown{f.store}
	stepUp, _ := askMerge(t, f)
	enrolment := f.lastDM(alice)
	if enrolment.TS == stepUp.TS {
		t.Fatal("no enrolment DM was posted")
	}
	now := f.message(enrolment)
	if texts := flowTexts(now.Blocks); base32Secret.MatchString(texts) || strings.Contains(texts, "otpauth") || !strings.Contains(texts, "couldn't save") || now.Updates != 1 {
		t.Errorf("unrecorded enrolment DM (%d updates) = %q, want it rewritten once without the secret", now.Updates, texts)
	}
	if got := ephemeralTexts(f, stepUp.Channel); len(got) != 1 || !strings.Contains(got[0], "Verify it's you") {
		t.Errorf("ephemerals = %q, want alice told to start over", got)
	}
}

// The owner approves a merge; the Lookup that follows Decide fails once.
// The owner must still get the "Verify it's you" button, or the request is
// stuck in awaiting_stepup with no way on.
func TestApproveWithLookupBlipStillPromptsStepUp(t *testing.T) {
	f := newFlow(t, flowOptions{})
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	f.mention(alice, "C1", merge)
	dm := f.lastDM(alice)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	real := f.app.opts.Broker
	f.app.opts.Broker = &flakyLookup{Broker: real}
	f.do(f.click(alice, dm, ActionDecidePrefix+broker.ChoiceOnce))
	f.app.opts.Broker = real

	r, err := real.Lookup(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != broker.StatusAwaitingStepUp {
		t.Fatalf("request status = %s, want %s", r.Status, broker.StatusAwaitingStepUp)
	}
	if last := f.lastDM(alice); flowButtons(last.Blocks)[ActionStepUp] != id {
		t.Errorf("no DM has the Verify button (last DM %q); approval buttons %v, ephemerals %q",
			last.Text, flowButtons(f.message(dm).Blocks), ephemeralTexts(f, dm.Channel))
	}
}

// clockedEnroller is a step-up service on the flow's store and clock, so
// that a test can let a pending enrolment expire.
func clockedEnroller(t *testing.T, f *flow) *stepup.Service {
	t.Helper()
	svc, err := stepup.New(stepup.Options{Store: f.store, Key: []byte("0123456789abcdef0123456789abcdef"),
		Audit: f.env.Audit, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// pendingEnrolment starts alice's TOTP enrolment, on the flow's clock, by
// asking for a merge, and returns its DM and secret.
func pendingEnrolment(t *testing.T) (*flow, *stepup.Service, slacktest.Message, string) {
	t.Helper()
	f := newFlow(t, flowOptions{})
	enroller := clockedEnroller(t, f)
	f.app.opts.Enroller = enroller
	askMerge(t, f)
	enrolment := f.lastDM(alice)
	return f, enroller, enrolment, enrolmentSecret(t, enrolment)
}

// An enrolment nobody confirmed within stepup.PendingTTL cannot be
// confirmed, and its DM loses the secret: at once when the late code comes,
// or by the sweeper when none does.
func TestExpiredEnrolment(t *testing.T) {
	t.Run("late code", func(t *testing.T) {
		f, enroller, enrolment, secret := pendingEnrolment(t)

		f.clock.Advance(stepup.PendingTTL + time.Second)
		f.do(f.click(alice, enrolment, ActionEnrolConfirm))
		code, err := totp.GenerateCode(secret, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		f.submit(alice, code)
		if ok, err := enroller.Enrolled(f.ctx, testPrincipal(alice).String()); err != nil || ok {
			t.Errorf("Enrolled after a code for an expired set-up = %v, %v; want false", ok, err)
		}
		now := f.message(enrolment)
		if texts := flowTexts(now.Blocks); strings.Contains(texts, secret) || !strings.Contains(texts, "This set-up expired") || now.Updates != 1 {
			t.Errorf("enrolment DM after the late code (%d updates) = %q, want it rewritten once as expired", now.Updates, texts)
		}
		if last := f.lastDM(alice); !strings.Contains(last.Text, "expired") {
			t.Errorf("last DM = %q, want alice told the set-up expired", last.Text)
		}
		if _, err := f.store.Get(f.ctx, enrolmentKey(testPrincipal(alice))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("enrolment record: %v, want it deleted", err)
		}
	})

	t.Run("sweeper", func(t *testing.T) {
		f, enroller, enrolment, secret := pendingEnrolment(t)

		// Still confirmable: the sweeper leaves it alone.
		f.clock.Advance(stepup.PendingTTL - time.Minute)
		if err := f.app.sweepOnce(f.ctx); err != nil {
			t.Fatal(err)
		}
		if now := f.message(enrolment); now.Updates != 0 {
			t.Fatalf("a sweep before the expiry rewrote the enrolment DM %d times", now.Updates)
		}

		f.clock.Advance(time.Minute + enrolmentGrace)
		if err := f.app.sweepOnce(f.ctx); err != nil {
			t.Fatal(err)
		}
		now := f.message(enrolment)
		if texts := flowTexts(now.Blocks); strings.Contains(texts, secret) || !strings.Contains(texts, "This set-up expired") || now.Updates != 1 {
			t.Errorf("enrolment DM after the sweep (%d updates) = %q, want it rewritten once as expired", now.Updates, texts)
		}
		if _, err := f.store.Get(f.ctx, enrolmentKey(testPrincipal(alice))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("enrolment record after the sweep: %v, want it deleted", err)
		}
		code, err := totp.GenerateCode(secret, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := enroller.Confirm(f.ctx, testPrincipal(alice).String(), code); !errors.Is(err, stepup.ErrExpired) {
			t.Errorf("Confirm after the expiry = %v, want %v", err, stepup.ErrExpired)
		}
	})
}

// heldEnroller holds the first Enroll, once it has enrolled, until
// release is closed: the first of two concurrent starts enrols first but
// records its DM last.
type heldEnroller struct {
	Enroller
	first    atomic.Bool
	enrolled chan struct{}
	release  chan struct{}
}

func (e *heldEnroller) Enroll(ctx context.Context, principal, accountName string) (stepup.Enrolment, error) {
	enr, err := e.Enroller.Enroll(ctx, principal, accountName)
	if e.first.CompareAndSwap(false, true) {
		close(e.enrolled)
		<-e.release
	}
	return enr, err
}

// awaitStepUp has alice (connected, not enrolled) ask for a merge and
// approve it; it returns the step-up DM.
func awaitStepUp(t *testing.T, f *flow) slacktest.Message {
	t.Helper()
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	f.mention(alice, "C1", merge)
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	return f.lastDM(alice)
}

// shownSecrets returns the enrolment DMs posted after the step-up DM and
// the secret each still shows ("" when rewritten).
func shownSecrets(f *flow, stepUp slacktest.Message) (dms []slacktest.Message, secrets []string) {
	for _, m := range f.dms(alice) {
		if m.TS <= stepUp.TS {
			continue
		}
		dms = append(dms, m)
		s := ""
		if sub := base32Secret.FindStringSubmatch(flowTexts(m.Blocks)); sub != nil {
			s = sub[1]
		}
		secrets = append(secrets, s)
	}
	return dms, secrets
}

// Enrolment starts racing on two replicas leave exactly one DM showing a
// secret, and it is the live one.
func TestConcurrentEnrolmentStarts(t *testing.T) {
	// liveSecret checks that exactly one of the enrolment DMs shows a
	// secret and that confirming with it works; it returns its index.
	liveSecret := func(t *testing.T, f *flow, stepUp slacktest.Message, starts int) int {
		t.Helper()
		dms, secrets := shownSecrets(f, stepUp)
		if len(dms) != starts {
			t.Fatalf("enrolment DMs = %d, want %d", len(dms), starts)
		}
		live := -1
		for i, s := range secrets {
			if s == "" {
				if !strings.Contains(flowTexts(dms[i].Blocks), "replaced by a newer one") {
					t.Errorf("enrolment DM %d = %q, want it marked replaced", i, flowTexts(dms[i].Blocks))
				}
				continue
			}
			if live >= 0 {
				t.Fatalf("enrolment DMs %d and %d both show a secret", live, i)
			}
			live = i
		}
		if live < 0 {
			t.Fatal("no enrolment DM shows a secret: the live one was marked replaced")
		}
		code, err := totp.GenerateCode(secrets[live], time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := f.env.StepUp.Confirm(f.ctx, testPrincipal(alice).String(), code); err != nil {
			t.Errorf("Confirm with the secret shown = %v, want nil: a dead secret is shown", err)
		}
		return live
	}

	t.Run("first enrolled records last", func(t *testing.T) {
		f := newFlow(t, flowOptions{})
		held := &heldEnroller{Enroller: f.app.opts.Enroller, enrolled: make(chan struct{}), release: make(chan struct{})}
		f.app.opts.Enroller = held
		stepUp := awaitStepUp(t, f)
		first := workOf(t, f.click(alice, stepUp, ActionStepUp))
		second := f.click(alice, stepUp, ActionStepUp)

		done := make(chan error, 1)
		go func() { done <- f.app.handleWork(f.ctx, first) }()
		select {
		case <-held.enrolled:
		case <-f.ctx.Done():
			t.Fatal("the first start never enrolled")
		}
		f.do(second) // enrols after the first, records before it
		close(held.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if live := liveSecret(t, f, stepUp, 2); live != 0 {
			t.Errorf("live enrolment DM = %d, want 0 (the second start's, posted first)", live)
		}
	})

	t.Run("many at once", func(t *testing.T) {
		f := newFlow(t, flowOptions{})
		stepUp := awaitStepUp(t, f)
		const n = 4
		works := make([]work, n)
		for i := range works {
			works[i] = workOf(t, f.click(alice, stepUp, ActionStepUp))
		}
		var wg sync.WaitGroup
		for _, w := range works {
			wg.Go(func() {
				if err := f.app.handleWork(f.ctx, w); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		liveSecret(t, f, stepUp, n)
	})
}

// Two replicas sweeping the same store update each expired request's
// message once: while one holds the sweep lock, the other skips its pass.
func TestSweepOneReplicaAtATime(t *testing.T) {
	f := newFlow(t, flowOptions{})
	askComment(t, f)
	f.mention(alice, "C1", comment)
	f.mention(alice, "C1", comment)
	dms := f.dms(alice)
	if len(dms) != 3 {
		t.Fatalf("approval DMs = %d, want 3", len(dms))
	}
	f.clock.Advance(broker.DefaultRequestTTL + time.Minute)

	// Replica A's first chat.update waits until replica B has made its
	// pass, so without the lock both would update every message.
	arrived, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	f.app.opts.API = slackProxy(t, f, func(method string) bool {
		if method == "chat.update" && first.CompareAndSwap(false, true) {
			close(arrived)
			<-release
		}
		return false
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the proxy closes: it waits for held calls

	b, err := New(Options{Broker: f.env.Broker, Store: f.store, Logger: f.app.log, Now: f.clock.Now,
		API: slack.New(flowBotToken, slack.OptionAPIURL(f.srv.APIURL()))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.app.sweepOnce(f.ctx) }()
	select {
	case <-arrived:
	case <-f.ctx.Done():
		t.Fatal("replica A never updated a message")
	}
	if err := b.sweepOnce(f.ctx); err != nil {
		t.Errorf("replica B's sweep: %v", err)
	}
	unblock()
	if err := <-done; err != nil {
		t.Errorf("replica A's sweep: %v", err)
	}
	for i, dm := range dms {
		if got := f.message(dm).Updates; got != 1 {
			t.Errorf("approval DM %d updated %d times, want once", i, got)
		}
	}
	if got := len(f.srv.Calls("chat.update")); got != len(dms) {
		t.Errorf("chat.update calls = %d, want %d", got, len(dms))
	}
	// The lock was released: the next pass runs, and finds nothing to do.
	if err := b.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	if items, err := f.store.List(f.ctx, "", slackRequestKind); err != nil || len(items) != 0 {
		t.Errorf("request records after the sweeps: %d, %v; want none", len(items), err)
	}
	if strings.Contains(f.logs.String(), flowBotToken) {
		t.Error("the bot token is in the log")
	}
}

// otherTeam is a Slack Connect guest's home workspace.
const otherTeam = "T0OTHER01"

// edited returns env with its payload changed by edit.
func edited(t *testing.T, env slacktest.Envelope, edit func(p map[string]any)) slacktest.Envelope {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		t.Fatal(err)
	}
	edit(p)
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	env.Payload = raw
	return env
}

// In a channel shared with another workspace, a mention that does not say
// which workspace its author is from, or that was sent from another one, is
// refused; one that names this workspace as the author's is served.
func TestSharedChannelMentionWithoutItsAuthorsTeam(t *testing.T) {
	f := newFlow(t, flowOptions{})
	f.app.botTeam = slacktest.TeamID
	shared := func(edit func(ev map[string]any)) slacktest.Envelope {
		return edited(t, f.srv.AppMention(slacktest.Msg{User: eve, Channel: "C1", Text: "<@" + slacktest.BotUserID + "> " + listPulls}),
			func(p map[string]any) { p["is_ext_shared_channel"] = true; edit(p["event"].(map[string]any)) })
	}
	for name, edit := range map[string]func(map[string]any){
		"no user_team":           func(map[string]any) {},
		"sent from another team": func(ev map[string]any) { ev["source_team"] = otherTeam; ev["user_team"] = slacktest.TeamID },
	} {
		env := shared(edit)
		f.do(env)
		if got := strings.Join(f.replies("C1", env.MustEventTS(t)), "\n"); !strings.Contains(got, notAMember) {
			t.Errorf("%s: replies = %q, want %q", name, got, notAMember)
		}
	}
	if evs := f.events(audit.StepProposed); len(evs) != 0 {
		t.Fatalf("step.proposed events = %d, want 0: the broker was asked for an unplaced author", len(evs))
	}
	env := shared(func(ev map[string]any) { ev["user_team"] = slacktest.TeamID; ev["source_team"] = slacktest.TeamID })
	f.do(env)
	if evs := f.events(audit.StepProposed); len(evs) != 1 {
		t.Errorf("step.proposed events after a member's mention in the shared channel = %d, want 1", len(evs))
	}
}

// The app acts only for members of its workspace: a Slack Connect guest's
// mention, click and slash command are refused, and the broker never hears
// of them.
func TestSlackConnectGuestRefused(t *testing.T) {
	f := newFlow(t, flowOptions{})
	f.app.botTeam = slacktest.TeamID // Run sets it from auth.test

	mention := edited(t, f.srv.AppMention(slacktest.Msg{User: eve, Channel: "C1", Text: "<@" + slacktest.BotUserID + "> " + comment}),
		func(p map[string]any) { p["event"].(map[string]any)["user_team"] = otherTeam })
	f.do(mention)
	if evs := f.events(audit.StepProposed); len(evs) != 0 {
		t.Errorf("step.proposed events after a guest's mention = %d, want 0: the broker was asked", len(evs))
	}
	if got := strings.Join(f.replies("C1", mention.MustEventTS(t)), "\n"); !strings.Contains(got, notAMember) {
		t.Errorf("replies to the guest's mention = %q, want %q", got, notAMember)
	}

	// A guest clicks alice's Approve button.
	dm, _ := askComment(t, f)
	id := flowButtons(dm.Blocks)[ActionDecidePrefix+broker.ChoiceOnce]
	click := edited(t, f.click(eve, dm, ActionDecidePrefix+broker.ChoiceOnce),
		func(p map[string]any) { p["user"].(map[string]any)["team_id"] = otherTeam })
	f.do(click)
	if got := f.srv.Ephemerals(dm.Channel); len(got) != 1 || got[0].User != eve || got[0].Text != notAMember {
		t.Errorf("ephemerals after a guest's click = %+v, want %q to the guest alone", got, notAMember)
	}
	if r, err := f.env.Broker.Lookup(f.ctx, id); err != nil || r.Status != broker.StatusPending {
		t.Errorf("request after a guest's click = %v, %v; want it still pending", r.Status, err)
	}
	if now := f.message(dm); now.Updates != 0 {
		t.Errorf("alice's approval DM updated %d times by a guest's click, want 0", now.Updates)
	}
	// Refused, but on the record, by the person's own workspace.
	ops := map[string]bool{}
	for _, e := range f.events(audit.InteractionRejected) {
		if e.Result == "not_a_member" && e.Actor == otherTeam+":"+eve {
			ops[e.Detail["op"]] = true
		}
	}
	if !ops["mention"] || !ops["click"] {
		t.Errorf("interaction.rejected not_a_member ops for the guest = %v, want mention and click", ops)
	}

	// And a guest's slash command.
	cmd := edited(t, f.srv.SlashCommand(slacktest.Command{User: eve, Channel: "C1", Command: Command, Text: "pending"}),
		func(p map[string]any) { p["team_id"] = otherTeam })
	f.do(cmd)
	var texts []string
	for _, r := range f.responsesTo(cmd) {
		texts = append(texts, r.Text)
	}
	if len(texts) != 1 || texts[0] != notAMember {
		t.Errorf("answers to a guest's slash command = %q, want [%q]", texts, notAMember)
	}
	var commandRecorded bool
	for _, e := range f.events(audit.InteractionRejected) {
		commandRecorded = commandRecorded || e.Actor == otherTeam+":"+eve && e.Detail["op"] == "command"
	}
	if !commandRecorded {
		t.Error("the guest's refused slash command is not on the record")
	}
}

// flakyEnrolmentStore fails enrolment-record writes while down is set.
type flakyEnrolmentStore struct {
	store.Store
	down *atomic.Bool
}

func (s flakyEnrolmentStore) Create(ctx context.Context, k store.Key, v []byte, ttl time.Duration) error {
	if k.Kind == enrolmentKind && s.down.Load() {
		return errStoreDown
	}
	return s.Store.Create(ctx, k, v, ttl)
}

// An enrolment DM whose record write failed (a blip) and whose "unsaved"
// rewrite failed too still shows a live secret and a working Confirm
// button. Confirming from it activates that secret, so the DM the button
// was pressed in (named by the modal's metadata) must lose it, though no
// record named it (a second review's finding).
func TestUntrackedEnrolmentDMLosesItsSecretOnConfirm(t *testing.T) {
	f := newFlow(t, flowOptions{})
	var down atomic.Bool
	down.Store(true)
	f.app.opts.Store = flakyEnrolmentStore{Store: f.store, down: &down}
	f.app.opts.API = slackProxy(t, f, func(method string) bool {
		return method == "chat.update" && down.Load()
	})
	askMerge(t, f)
	enrolment := f.lastDM(alice)
	secret := enrolmentSecret(t, enrolment)
	if !strings.Contains(flowTexts(f.message(enrolment).Blocks), secret) {
		t.Fatal("setup: the DM lost its secret")
	}
	down.Store(false) // the blip is over

	f.do(f.click(alice, enrolment, ActionEnrolConfirm))
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.submit(alice, code)
	if ok, err := f.env.StepUp.Enrolled(f.ctx, testPrincipal(alice).String()); err != nil || !ok {
		t.Fatalf("Enrolled = %v, %v; want true (confirmed from the untracked DM)", ok, err)
	}
	if err := f.app.sweepOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	if texts := flowTexts(f.message(enrolment).Blocks); strings.Contains(texts, secret) {
		t.Errorf("the ACTIVE TOTP secret is still shown in the enrolment DM after confirmation and a sweep")
	}
}

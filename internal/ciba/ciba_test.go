package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

const alice = "T1:U1"

// verifier is the linked identities: alice is auth0|alice; an ID token
// counts unless refuse says otherwise.
type verifier struct{ refuse error }

func (v *verifier) Subject(_ context.Context, p string) (string, error) {
	if p != alice {
		return "", errors.New("not linked")
	}
	return "auth0|alice", nil
}

func (v *verifier) Verify(_ context.Context, p, idToken string, _ bool) error {
	if idToken == "" {
		return errors.New("no id_token")
	}
	return v.refuse
}

type answer struct {
	principal, id string
	stepUp        bool
	result        Result
}

type fixture struct {
	t       *testing.T
	tenant  *auth0test.Tenant
	st      store.Store
	clock   *clocktest.Clock
	v       *verifier
	mu      sync.Mutex
	answers []answer
	fail    error // Answered fails with it
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, tenant: auth0test.New(t), st: redistest.Open(t)(), clock: clocktest.New(time.Now()), v: &verifier{}}
	f.tenant.EnrolPush("auth0|alice")
	return f
}

func (f *fixture) poller() *Poller {
	c, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: f.tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New(auth0test.ClientSecret), Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := New(Options{Store: f.st, Tenant: c, Verifier: f.v, Now: f.clock.Now,
		Answered: func(_ context.Context, principal, id string, stepUp bool, r Result) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.fail != nil {
				return f.fail
			}
			f.answers = append(f.answers, answer{principal, id, stepUp, r})
			return nil
		}})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) got() []answer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]answer(nil), f.answers...)
}

func (f *fixture) ask(p *Poller, id string, stepUp bool, expires time.Duration) auth0test.Push {
	f.t.Helper()
	if err := p.Ask(context.Background(), alice, id, "K7Q2", "github.merge_pull_request", stepUp, f.clock.Now().Add(expires)); err != nil {
		f.t.Fatal(err)
	}
	pushes := f.tenant.Pushes()
	return pushes[len(pushes)-1]
}

func (f *fixture) poll(p *Poller) int {
	f.t.Helper()
	n, err := p.Poll(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// A request asked on the phone: one push, with its code and action; it is
// polled only when due; the approval, verified, is answered once, and the
// request is then forgotten.
func TestAskAndApprove(t *testing.T) {
	f := newFixture(t)
	p := f.poller()
	push := f.ask(p, "req-1", true, 10*time.Minute)
	if push.User != "auth0|alice" || push.Binding != "K7Q2 github.merge_pull_request" || push.Expiry != 300 {
		t.Errorf("push = %+v", push)
	}
	f.ask(p, "req-1", true, 10*time.Minute)
	if n := len(f.tenant.Pushes()); n != 1 {
		t.Errorf("asked twice: %d pushes", n)
	}
	if n := f.poll(p); n != 0 {
		t.Errorf("polled %d before the interval", n)
	}
	f.clock.Advance(6 * time.Second)
	if n := f.poll(p); n != 1 || len(f.got()) != 0 {
		t.Errorf("pending: polled %d, answers %v", n, f.got())
	}
	f.tenant.Approve(push.ID, "mfa")
	f.clock.Advance(6 * time.Second)
	f.poll(p)
	if got := f.got(); len(got) != 1 || got[0] != (answer{alice, "req-1", true, Approved}) {
		t.Fatalf("answers = %+v", got)
	}
	if w, _ := p.Waiting(context.Background(), "req-1"); w {
		t.Error("still waiting after the answer")
	}
	f.clock.Advance(time.Minute)
	if n := f.poll(p); n != 0 {
		t.Errorf("polled %d after the answer", n)
	}
}

// Denied, expired at the provider, expired with its request, and an answer
// that does not verify are told apart; slow_down widens the interval.
func TestOutcomes(t *testing.T) {
	f := newFixture(t)
	p := f.poller()
	d := f.ask(p, "denied", false, 10*time.Minute)
	e := f.ask(p, "expired", false, 10*time.Minute)
	f.ask(p, "short", false, 8*time.Second)
	r := f.ask(p, "refused", false, 10*time.Minute)
	f.tenant.Deny(d.ID)
	f.tenant.ExpireCIBA(e.ID)
	f.tenant.Approve(r.ID, "mfa")
	f.v.refuse = errors.New("someone else's")
	f.clock.Advance(10 * time.Second)
	f.poll(p)
	want := map[string]Result{"denied": Denied, "expired": Expired, "short": Expired, "refused": Refused}
	got := map[string]Result{}
	for _, a := range f.got() {
		got[a.id] = a.result
	}
	if len(got) != 4 || got["denied"] != Denied || got["expired"] != Expired || got["short"] != Expired || got["refused"] != Refused {
		t.Errorf("results = %v, want %v", got, want)
	}

	// The provider's interval is in real time: the second poll, made at
	// once, is too soon.
	f.tenant.CIBAInterval = 10 * time.Second
	f.ask(p, "slow", false, 10*time.Minute)
	for range 2 {
		f.clock.Advance(11 * time.Second)
		f.poll(p)
	}
	it, err := f.st.Get(context.Background(), key("slow"))
	if err != nil {
		t.Fatal(err)
	}
	var a asked
	json.Unmarshal(it.Value, &a)
	if a.Interval != 15*time.Second {
		t.Errorf("interval after slow_down = %v, want 5 s more", a.Interval)
	}
}

// An answer the provider gives once is kept until it is taken: Answered
// failing is told again, without asking the provider again. Two replicas
// polling at once answer once. A request forgotten (decided in Slack)
// takes no later answer.
func TestAnswersAreKeptAndTakenOnce(t *testing.T) {
	f := newFixture(t)
	p1, p2 := f.poller(), f.poller()
	a := f.ask(p1, "req-1", false, 10*time.Minute)
	f.tenant.Approve(a.ID)
	f.fail = errors.New("store unavailable")
	f.clock.Advance(6 * time.Second)
	f.poll(p1)
	f.fail = nil
	f.clock.Advance(6 * time.Second)
	var wg sync.WaitGroup
	for _, p := range []*Poller{p1, p2} {
		wg.Go(func() { p.Poll(context.Background()) })
	}
	wg.Wait()
	if got := f.got(); len(got) != 1 || got[0].result != Approved {
		t.Errorf("answers = %+v, want the approval once", got)
	}

	b := f.ask(p1, "req-2", false, 10*time.Minute)
	if err := p1.Forget(context.Background(), "req-2"); err != nil {
		t.Fatal(err)
	}
	f.tenant.Approve(b.ID)
	f.clock.Advance(time.Minute)
	f.poll(p1)
	if got := f.got(); len(got) != 1 {
		t.Errorf("a forgotten request was answered: %+v", got)
	}
	if err := p1.Ask(context.Background(), "T1:U9", "req-3", "K", "merge", false, f.clock.Now().Add(time.Minute)); err == nil {
		t.Error("asked someone with no linked identity")
	}
}

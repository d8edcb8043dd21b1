package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/agenttest"
	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/vault"
)

var (
	alice = Principal{Team: "T1", User: "U1"}
	bob   = Principal{Team: "T1", User: "U2"}
)

// start is a Wednesday morning, so no time-of-day rule gets in the way.
var start = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fixture is a broker wired to real parts: a memstore, a real audit
// recorder (on its own memstore, so a test can break the audit trail
// alone), a real vault whose services are the sim's, real agents, the rules
// planner, the default policy and real TOTP step-up.
type fixture struct {
	t        testing.TB
	ctx      context.Context
	clock    *clocktest.Clock
	world    *sim.World
	srv      *httptest.Server // nil when the sim is reached in-process
	simURL   string           // the sim's base URL
	simHTTP  *http.Client     // the vault's client: nil for loopback, else the in-process transport
	simTime  *timedTransport  // times the in-process transport; nil for loopback
	st       store.Store      // requests, grants, connections, enrolments
	auditSt  *memstore.Store
	rec      *audit.Recorder
	audit    Recorder // what the broker records through; rec unless a test wraps it
	vault    *vault.Vault
	stepup   *stepup.Service
	registry *agent.Registry
	b        *Broker
	secrets  []string      // tokens and client secrets that must never show
	logs     *bytes.Buffer // everything the broker, vault and recorder logged
	logger   *slog.Logger
	policy   *policy.Engine // default: policy.Default()
	planner  Planner        // default: the rules planner
	dir      Directory      // default: none
	factors  []string       // the second factors offered; default TOTP alone
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureOn(t, nil)
}

// newFixtureOn is newFixture with the broker's, vault's and step-up's
// records in st (nil: a memstore on the fixture's clock).
func newFixtureOn(t testing.TB, st store.Store) *fixture {
	t.Helper()
	return newFixtureWith(t, st, false)
}

// newFixtureWith is newFixtureOn; inProcess reaches the sim through
// sim.(*World).Transport, with no socket, instead of over loopback.
func newFixtureWith(t testing.TB, st store.Store, inProcess bool) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: t.Context(), clock: clocktest.New(start), logs: new(bytes.Buffer)}
	// JSONHandler serializes its writes, so the buffer needs no lock of its own.
	f.logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.world = sim.New(sim.Options{Now: f.clock.Now})
	if inProcess {
		// https, as the vault sends plain http only to loopback; the
		// in-process transport ignores scheme and host.
		f.simURL = "https://sim.invalid"
		f.simTime = &timedTransport{next: f.world.Transport()}
		f.simHTTP = &http.Client{Transport: f.simTime}
	} else {
		f.srv = sim.NewServer(f.world)
		t.Cleanup(f.srv.Close)
		f.simURL = f.srv.URL
	}
	f.st = st
	if f.st == nil {
		f.st = memstore.New(memstore.Options{Now: f.clock.Now})
	}
	f.auditSt = memstore.New(memstore.Options{Now: f.clock.Now})
	rec, err := audit.NewRecorder(f.auditSt, []byte(strings.Repeat("k", 32)), audit.Options{Now: f.clock.Now, Logger: f.logger})
	if err != nil {
		t.Fatalf("audit recorder: %v", err)
	}
	f.rec, f.audit = rec, rec
	f.registry = agent.NewRegistry()
	ends := agenttest.EndpointsAt(f.simURL)
	for _, reg := range []func(*agent.Registry, agent.Endpoints) error{githubagent.Register, calendaragent.Register, slackagent.Register} {
		if err := reg(f.registry, ends); err != nil {
			t.Fatalf("register agents: %v", err)
		}
	}
	for _, c := range sim.DefaultClients() {
		f.secrets = append(f.secrets, c.Secret)
	}
	f.vault = f.newVault()
	su, err := stepup.New(stepup.Options{Store: f.st, Key: []byte(strings.Repeat("s", 32)), Audit: rec, Now: f.clock.Now, Demo: true})
	if err != nil {
		t.Fatalf("stepup: %v", err)
	}
	f.stepup = su
	if _, err := su.Enroll(f.ctx, alice.String(), "alice"); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if err := su.Confirm(f.ctx, alice.String(), f.code()); err != nil {
		t.Fatalf("confirm enrolment: %v", err)
	}
	f.policy = policy.Default()
	f.b = f.newBroker()
	f.connect(alice, sim.ServiceGitHub, githubagent.Scope)
	return f
}

// newVault returns a vault on the fixture's store; a second one stands for
// another process.
func (f *fixture) newVault() *vault.Vault {
	f.t.Helper()
	keys, err := secret.ParseKeys(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("v", 32))), nil)
	if err != nil {
		f.t.Fatalf("vault keys: %v", err)
	}
	u, err := url.Parse(f.simURL)
	if err != nil {
		f.t.Fatalf("sim url: %v", err)
	}
	var services []vault.Service
	for name, c := range sim.DefaultClients() {
		services = append(services, vault.Service{
			Name: name, APIHosts: []string{u.Host},
			OAuth: &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, Endpoint: oauth2.Endpoint{
				TokenURL: f.simURL + sim.TokenPath(name), AuthStyle: oauth2.AuthStyleInParams}},
		})
	}
	v, err := vault.New(vault.Options{Store: f.st, Keys: keys, Audit: f.rec, Services: services, Now: f.clock.Now, Logger: f.logger, HTTPClient: f.simHTTP})
	if err != nil {
		f.t.Fatalf("vault: %v", err)
	}
	return v
}

// newBroker returns a broker on the fixture's store, with its own vault
// instance, as a freshly started process would have.
func (f *fixture) newBroker() *Broker {
	f.t.Helper()
	b, err := New(Options{
		Store: f.st, Vault: f.newVault(), Audit: auditFunc(func(ctx context.Context, e audit.Event) (audit.Event, error) {
			return f.audit.Record(ctx, e)
		}),
		Policy: f.policy, Registry: f.registry, Planner: f.plannerOrRules(), StepUp: f.stepup, Directory: f.dir, Now: f.clock.Now, Logger: f.logger,
		Factors: f.factors,
	})
	if err != nil {
		f.t.Fatalf("broker: %v", err)
	}
	return b
}

// plannerOrRules is the fixture's planner: the rules planner unless a test
// set its own.
func (f *fixture) plannerOrRules() Planner {
	if f.planner != nil {
		return f.planner
	}
	return planner.NewRules()
}

// auditFunc lets a test swap the recorder after the broker is built.
type auditFunc func(ctx context.Context, e audit.Event) (audit.Event, error)

func (fn auditFunc) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	return fn(ctx, e)
}

// failingKind is a recorder that refuses events of one kind and passes the
// rest to next.
type failingKind struct {
	kind audit.Kind
	next Recorder
}

func (r failingKind) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	if e.Kind == r.kind {
		return audit.Event{}, errors.New("audit store unavailable")
	}
	return r.next.Record(ctx, e)
}

func (f *fixture) connect(p Principal, service string, scopes ...string) {
	principal := p.String()
	f.t.Helper()
	access, refresh, err := f.world.IssueTokens(service, principal, scopes)
	if err != nil {
		f.t.Fatalf("issue tokens: %v", err)
	}
	f.secrets = append(f.secrets, access, refresh)
	tok := &oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: f.clock.Now().Add(sim.DefaultAccessTTL)}
	if err := f.vault.Connect(f.ctx, principal, service, scopes, tok); err != nil {
		f.t.Fatalf("connect: %v", err)
	}
}

// code returns the code alice's authenticator shows now, moving the clock
// past any step already used, as a person waits for the next code.
func (f *fixture) code() string {
	f.t.Helper()
	code, err := f.stepup.DemoCode(f.ctx, alice.String())
	if errors.Is(err, stepup.ErrReplay) {
		f.clock.Advance(30 * time.Second)
		code, err = f.stepup.DemoCode(f.ctx, alice.String())
	}
	if err != nil {
		f.t.Fatalf("demo code: %v", err)
	}
	return code
}

func (f *fixture) handle(principal Principal, text string) []Output {
	f.t.Helper()
	outs, err := f.b.Handle(f.ctx, Message{Principal: principal, Text: text})
	if err != nil {
		f.t.Fatalf("Handle(%q): %v", text, err)
	}
	return outs
}

func (f *fixture) decide(actor Principal, id, choice string) []Output {
	f.t.Helper()
	outs, err := f.b.Decide(f.ctx, Decision{RequestID: id, Actor: actor, Choice: choice})
	if err != nil {
		f.t.Fatalf("Decide(%s, %s): %v", actor, choice, err)
	}
	return outs
}

// only returns the single output, failing unless it has the wanted kind.
func only(tb testing.TB, outs []Output, want Kind) Output {
	tb.Helper()
	if len(outs) != 1 || outs[0].Kind != want {
		tb.Fatalf("outputs = %s, want one %s", dump(outs), want)
	}
	return outs[0]
}

// approval handles text and returns the approval it must produce.
func (f *fixture) approval(text string) Output {
	f.t.Helper()
	o := only(f.t, f.handle(alice, text), KindApproval)
	if o.RequestID == "" {
		f.t.Fatalf("approval for %q has no request ID", text)
	}
	return o
}

// calls counts the sim calls with method whose path ends with suffix.
func (f *fixture) calls(method, suffix string) int {
	n := 0
	for _, c := range f.world.Calls() {
		if c.Method == method && strings.HasSuffix(c.Path, suffix) {
			n++
		}
	}
	return n
}

func (f *fixture) request(id string) Request {
	f.t.Helper()
	r, _, err := f.b.loadRequest(f.ctx, id)
	if err != nil {
		f.t.Fatalf("load request %s: %v", id, err)
	}
	return r
}

// events returns the kinds of the audit events about one request.
// stepUp has actor enter the code their authenticator shows now for
// request id.
func (f *fixture) stepUp(id string, actor Principal) []Output {
	f.t.Helper()
	outs, err := f.b.StepUp(f.ctx, id, actor, f.code())
	if err != nil {
		f.t.Fatalf("StepUp: %v", err)
	}
	return outs
}

// count counts request id's audit events that match.
func (f *fixture) count(id string, match func(audit.Event) bool) int {
	f.t.Helper()
	n := 0
	for _, e := range f.events(id) {
		if match(e) {
			n++
		}
	}
	return n
}

// failedWith matches action.failed events with result.
func failedWith(result string) func(audit.Event) bool {
	return func(e audit.Event) bool { return e.Kind == audit.ActionFailed && e.Result == result }
}

// ofKind matches events of kind.
func ofKind(kind audit.Kind) func(audit.Event) bool {
	return func(e audit.Event) bool { return e.Kind == kind }
}

func (f *fixture) events(id string) []audit.Event {
	f.t.Helper()
	all, err := f.rec.Tail(f.ctx, 10000)
	if err != nil {
		f.t.Fatalf("audit tail: %v", err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.RequestID == id {
			out = append(out, e)
		}
	}
	return out
}

// dump renders outputs for failure messages. Outputs never hold secrets
// (the canary test checks it), so printing them is safe.
func dump(outs []Output) string {
	b, _ := json.Marshal(outs)
	return string(b)
}

const (
	commentPath = "/repos/acme/website/issues/12/comments"
	mergePath   = "/merge"
)

package simenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/agenttest"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func TestStackServesAReadAndAStepUp(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	env, err := Start(ctx, Options{Store: st})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer env.Close()
	p := broker.Principal{Team: "T1", User: "U1"}
	if err := env.ConnectAll(ctx, p); err != nil {
		t.Fatalf("ConnectAll: %v", err)
	}
	if err := env.EnrollDemo(ctx, p, "@u1"); err != nil {
		t.Fatalf("EnrollDemo: %v", err)
	}
	// A second enrolment replaces the first, as a restarted demo does.
	if err := env.EnrollDemo(ctx, p, "@u1"); err != nil {
		t.Fatalf("EnrollDemo again: %v", err)
	}
	outs, err := env.Broker.Handle(ctx, broker.Message{Principal: p, Text: "list open pull requests in acme/website"})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindResult {
		t.Fatalf("Handle = %+v, %v; want one result", outs, err)
	}
	outs, err = env.Broker.Handle(ctx, broker.Message{Principal: p, Text: "merge PR 7 in acme/payments"})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindApproval {
		t.Fatalf("merge = %+v, %v; want an approval", outs, err)
	}
	outs, err = env.Broker.Decide(ctx, broker.Decision{RequestID: outs[0].RequestID, Actor: p, Choice: broker.ChoiceOnce})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindStepUp {
		t.Fatalf("Decide = %+v, %v; want a step-up", outs, err)
	}
	code, err := env.StepUp.DemoCode(ctx, p.String())
	if err != nil {
		t.Fatal(err)
	}
	outs, err = env.Broker.StepUp(ctx, outs[0].RequestID, p, code)
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindResult {
		t.Fatalf("StepUp = %+v, %v; want a result", outs, err)
	}
	if err := env.Connect(ctx, p, "nope"); err == nil {
		t.Error("Connect to an unknown service succeeded")
	}
}

// TestStacksShareProvidersServedElsewhere: two stacks (two bot replicas)
// on one store, with the simulated providers in "another process" reached
// by URL. People are connected through the providers' OAuth flow, both
// stacks call the one world, and a revoke through either reaches it.
func TestStacksShareProvidersServedElsewhere(t *testing.T) {
	ctx := context.Background()
	world := sim.New(sim.Options{})
	srv := httptest.NewServer(world.Handler())
	defer srv.Close()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	keys := Options{Store: st, ProvidersURL: srv.URL + "/", AuditKey: make([]byte, 32), VaultKey: make([]byte, 32), StepUpKey: make([]byte, 32)}
	a, err := Start(ctx, keys)
	if err != nil {
		t.Fatalf("Start a: %v", err)
	}
	defer a.Close()
	b, err := Start(ctx, keys)
	if err != nil {
		t.Fatalf("Start b: %v", err)
	}
	defer b.Close()
	if a.World != nil || a.URL != srv.URL {
		t.Fatalf("stack a: World %v, URL %q; want no world of its own and URL %q", a.World, a.URL, srv.URL)
	}

	p := broker.Principal{Team: "T1", User: "U1"}
	if err := a.ConnectAll(ctx, p); err != nil {
		t.Fatalf("ConnectAll: %v", err)
	}
	for _, svc := range Services {
		gs := world.Grants(svc)
		if len(gs) != 1 || gs[0].Principal != p.String() {
			t.Fatalf("%s grants = %+v, want one for %s", svc, gs, p)
		}
		var authorized, exchanged bool
		for _, c := range world.CallsFor(svc) {
			authorized = authorized || c.Path == sim.AuthorizePath(svc) && c.Status == http.StatusFound
			exchanged = exchanged || c.Path == sim.TokenPath(svc) && c.Status == http.StatusOK
		}
		if !authorized || !exchanged {
			t.Errorf("%s: authorize redirected %v, token exchanged %v; want both (the OAuth flow)", svc, authorized, exchanged)
		}
	}
	before := len(world.CallsFor(sim.ServiceGitHub))
	for name, env := range map[string]*Env{"a": a, "b": b} {
		outs, err := env.Broker.Handle(ctx, broker.Message{Principal: p, Text: "list open pull requests in acme/website"})
		if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindResult {
			t.Fatalf("read through %s = %+v, %v; want one result", name, outs, err)
		}
	}
	if got := len(world.CallsFor(sim.ServiceGitHub)) - before; got < 2 {
		t.Errorf("github calls from both stacks = %d, want at least 2 in the shared world", got)
	}
	if err := b.Vault.Revoke(ctx, p.String(), sim.ServiceGitHub); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if gs := world.Grants(sim.ServiceGitHub); len(gs) != 1 || !gs[0].Revoked {
		t.Errorf("github grants after revoke = %+v, want the one revoked at the provider", gs)
	}

	for _, bad := range []string{"https://127.0.0.1:1", "http://example.com", "http://10.0.0.1:8090", "127.0.0.1:8090"} {
		opts := keys
		opts.ProvidersURL = bad
		if env, err := Start(ctx, opts); err == nil {
			env.Close()
			t.Errorf("Start with providers at %q succeeded, want refused (loopback http only)", bad)
		}
	}
}

func TestEndpoints(t *testing.T) {
	got := Endpoints("http://127.0.0.1:1234/")
	want := agent.Endpoints{GitHub: "http://127.0.0.1:1234/github/", Calendar: "http://127.0.0.1:1234/calendar/v3/", Slack: "http://127.0.0.1:1234/slack/api/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Endpoints (-want +got):\n%s", diff)
	}
	// The agents' tests reach the simulated providers the way the wiring
	// does.
	if diff := cmp.Diff(got, agenttest.EndpointsAt("http://127.0.0.1:1234")); diff != "" {
		t.Errorf("agenttest.EndpointsAt differs from Endpoints (-Endpoints +agenttest):\n%s", diff)
	}
}

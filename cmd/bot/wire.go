package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/planner/llm"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/provider"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/stack"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// hooks let a test see into and steer one run of the program; main passes
// none. They are passed in rather than kept in package variables, so that
// what one test sets cannot reach another.
type hooks struct {
	// random is the source of the demo's keys and the simulated providers'
	// tokens (default crypto/rand): a test that records it knows every
	// secret the run made, and checks that none is ever shown.
	random io.Reader
	// providers are simulated providers for the bot to share with another
	// run in the same test, as real replicas share the real GitHub.
	providers *simenv.Providers
	// wrapStore wraps the demo's store before anything uses it (to make
	// its writes fail).
	wrapStore func(store.Store) store.Store
	// sweepEvery is how often the embedded store sweeps expired records;
	// zero is boltstore's default.
	sweepEvery time.Duration
	// botStarted sees the Slack bot's parts once it runs; demoStarted and
	// demoStopping the demo's, before the console starts and before they
	// are closed.
	botStarted                func(*botEnv)
	demoStarted, demoStopping func(*demoEnv)
}

func (h hooks) rand() io.Reader {
	if h.random != nil {
		return h.random
	}
	return rand.Reader
}

// providers are what the core talks to, and how people get connected to
// them.
type providers struct {
	stack stack.Providers
	// names are the services people may connect, in order.
	names []string
	// oauth are the connect flow's providers, by service: their OAuth
	// clients, consent parameters and code exchange.
	oauth map[string]connect.Provider
	// off are the real services that are not set up, and what they lack.
	off []provider.Off
	// connect links a person to a service at once, sealing the tokens in
	// v (the simulated providers issue them on request); nil where people
	// connect through the providers' OAuth flow.
	connect func(ctx context.Context, v *vault.Vault, p broker.Principal, service string) error
	// sim is the simulated world, for the demo and the tests; nil for
	// real providers.
	sim *simenv.Sim
	// tokenVault is Auth0 Token Vault, when it is the vault's backend.
	tokenVault *tokenVault
	close      func() error
}

// providersFor returns the providers the configuration names. With
// AGENTHUB_DEMO=1 they are the simulated ones: this process's own, the
// ones a test shares (hooks.providers), or those "bot sim" serves at
// AGENTHUB_SIM_URL. Without it they are the real GitHub, Google and Slack
// whose OAuth clients are set, which people connect through the public
// listener's flow.
func providersFor(cfg *config.Config, h hooks, logger *slog.Logger) (*providers, error) {
	if !cfg.Demo {
		return realProviders(cfg, logger)
	}
	return simulated(simenv.SimOptions{Logger: logger, Rand: h.rand(), Providers: h.providers, ProvidersURL: cfg.SimURL})
}

// simulated are internal/sim's providers, as opts says where to find them.
func simulated(opts simenv.SimOptions) (*providers, error) {
	s, err := simenv.Simulate(opts)
	if err != nil {
		return nil, err
	}
	p := &providers{stack: s.Stack(), names: simenv.Services, connect: s.Connect, sim: s, close: s.Close,
		oauth: make(map[string]connect.Provider)}
	for _, svc := range p.stack.Services {
		// The simulated consent page consents at once for whoever
		// login_hint names.
		p.oauth[svc.Name] = connect.Provider{Name: serviceNames[svc.Name], Config: svc.OAuth, LoginHint: true}
	}
	return p, nil
}

// serviceNames are what pages call the simulated services.
var serviceNames = map[string]string{"github": "GitHub", "google": "Google", "slack": "Slack"}

// realProviders are the real GitHub, Google and Slack whose OAuth clients
// are set. People connect them through the connect flow, so the public
// listener is required; at least one service must be set up, and each one
// that is not is named with the settings it lacks (never a value).
func realProviders(cfg *config.Config, logger *slog.Logger) (*providers, error) {
	if cfg.PublicURL == "" {
		return nil, &exitError{code: 2, msg: "AGENTHUB_PUBLIC_URL and AGENTHUB_PUBLIC_ADDR are required without AGENTHUB_DEMO: " +
			"people connect their GitHub, Google and Slack accounts through that listener (see docs/INSTALL.md), " +
			"or set AGENTHUB_DEMO=1 to run against simulated providers"}
	}
	// No redirects: a token exchange or revocation answered with a 307
	// would resend the client secret and tokens wherever it points.
	client := &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if cfg.Auth0.On() {
		return tokenVaultProviders(cfg, client, logger)
	}
	services, endpoints, off, err := provider.Real(provider.Settings{
		GitHub: provider.Client(cfg.GitHubApp), GitHubAPIURL: cfg.GitHubAPIURL, GitHubWebURL: cfg.GitHubWebURL,
		Google: provider.Client(cfg.Google), Slack: provider.Client(cfg.SlackClient), SlackAPIURL: cfg.SlackAPIURL,
		HTTPClient: client,
	})
	if err != nil {
		return nil, err
	}
	if len(services) == 0 {
		var b strings.Builder
		b.WriteString("no service is set up to connect: set the OAuth client of at least one (see docs/INSTALL.md):")
		for _, o := range off {
			fmt.Fprintf(&b, "\n  %-7s %s", o.Service, strings.Join(o.Missing, ", "))
		}
		b.WriteString("\nor set AGENTHUB_DEMO=1 to run against simulated providers")
		return nil, &exitError{code: 2, msg: b.String()}
	}
	p := &providers{stack: stack.Providers{Endpoints: endpoints, Client: client}, oauth: make(map[string]connect.Provider), off: off,
		close: func() error { client.CloseIdleConnections(); return nil }}
	for _, svc := range services {
		p.names = append(p.names, svc.Name)
		p.stack.Services = append(p.stack.Services, vault.Service{Name: svc.Name, APIHosts: svc.APIHosts, OAuth: svc.OAuth, Revoke: svc.Revoke, Covers: svc.Covers})
		p.oauth[svc.Name] = connect.Provider{Name: svc.Title, Config: svc.OAuth, AuthOptions: svc.AuthOptions, Exchange: svc.Exchange,
			OptionalScopes: svc.OptionalScopes}
	}
	for _, o := range off {
		logger.Warn("service not set up: people cannot connect it", "service", o.Service, "missing", o.Missing)
	}
	return p, nil
}

// offNames are the names of the services that are not set up.
func (p *providers) offNames() []string {
	out := make([]string, 0, len(p.off))
	for _, o := range p.off {
		out = append(out, o.Service)
	}
	return out
}

// core is AgentHub's core on its providers, as wire assembled it.
type core struct {
	*stack.Stack
	providers *providers
	// forget clears the LLM planner's memory of a person's conversations;
	// nil without the LLM planner.
	forget func(ctx context.Context, principal string) (int, error)
}

// wiring is what wire needs besides the providers.
type wiring struct {
	store    store.Store
	keys     stack.Keys
	policy   *policy.Engine
	logger   *slog.Logger
	onRecord func(audit.Event) // the metrics hook; nil: none
	// directory says what people are (Slack's users.info) each time the
	// policy decides; nil where only the person at the terminal asks.
	directory broker.Directory
	factors   []string // the second factors step-up may ask for; nil: TOTP alone
	llm       config.LLM
	// registerer takes the LLM planner's metrics; nil: not registered.
	registerer prometheus.Registerer
	// memory is set by wire to the LLM planner's Forget, when there is one.
	memory func(ctx context.Context, principal string) (int, error)
}

// wire assembles the core on the providers: the one assembly of the Slack
// bot and the terminal demo, for real providers and simulated ones alike.
// It is stack.Build, which the end-to-end tests' simulated stack uses too.
// The demo's step-up has a demo authenticator (the demo plays the person's
// phone); a bot on real providers never does.
func wire(p *providers, w wiring) (*core, error) {
	s, err := stack.Build(stack.Options{
		Store: w.store, Providers: p.stack, Keys: w.keys, Policy: w.policy,
		Logger: w.logger, OnRecord: w.onRecord, DemoStepUp: p.sim != nil, Directory: w.directory,
		Factors: w.factors, GatedEnrolment: p.sim == nil, NewPlanner: llmPlanner(w, &w.memory),
	})
	if err != nil {
		return nil, err
	}
	return &core{Stack: s, providers: p, forget: w.memory}, nil
}

// llmPlanner makes the LLM planner on the registry when a model is set up
// (nil: the rules planner plans), with the rules planner to fall back on.
func llmPlanner(w wiring, forget *func(context.Context, string) (int, error)) func(*agent.Registry) (broker.Planner, error) {
	c := w.llm
	if !c.On() {
		return nil
	}
	return func(reg *agent.Registry) (broker.Planner, error) {
		p, err := llm.New(llm.Options{APIKey: c.APIKey.Reveal(), BaseURL: c.BaseURL, Model: c.Model, Registry: reg,
			Fallback: planner.NewRules(), Store: w.store, Registerer: w.registerer, Logger: w.logger})
		if err == nil {
			*forget = p.Forget
		}
		return p, err
	}
}

// connect links principal to service where the providers can do it at
// once (the simulated ones).
func (c *core) connect(ctx context.Context, principal broker.Principal, service string) error {
	if c.providers.connect == nil {
		return fmt.Errorf("%s is connected through its OAuth flow", service)
	}
	return c.providers.connect(ctx, c.Vault, principal, service)
}

// drawKeys draws fresh keys, for a demo that keeps nothing across
// restarts that a new key could not make again.
func drawKeys(random io.Reader) (stack.Keys, error) {
	var k stack.Keys
	for _, dst := range []*[]byte{&k.Audit, &k.Vault, &k.StepUp} {
		*dst = make([]byte, 32)
		if _, err := io.ReadFull(random, *dst); err != nil {
			return stack.Keys{}, fmt.Errorf("draw keys: %w", err)
		}
	}
	return k, nil
}

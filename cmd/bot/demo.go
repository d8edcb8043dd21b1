package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/console"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// The demo person, and a colleague in the same workspace, so the demo can
// show that only a request's owner may decide it: a line starting "@bob "
// is typed by him.
var (
	demoPrincipal      = broker.Principal{Team: "T0DEMO", User: "U0DEMO"}
	demoOtherPrincipal = broker.Principal{Team: "T0DEMO", User: "U0BOB"}
)

const (
	demoName      = "@demo"
	demoOtherName = "@bob"
)

const demoUsage = `Usage:
  bot demo [-store URL] [-policy FILE] [-json]

An offline session in the terminal: simulated GitHub, Calendar and Slack on a
loopback port, the demo person (@demo) connected to all three and enrolled in
TOTP step-up, the rules planner and the default policy (in which @bob, a
colleague you can type as with "@bob …", is the release manager). Type messages and
/agenthub commands; when asked for a code, the demo shows what your
authenticator would. The policy is the embedded default unless -policy
or $AGENTHUB_POLICY names a file; a bad file stops the demo before it starts.
$AGENTHUB_LOG_LEVEL (debug, info, warn, error; default warn) sets how much
is logged, as JSON, to stderr. The store is a temporary file removed at exit unless
-store is given (then requests and the audit trail persist; connections and
the step-up enrolment are made anew with fresh keys at each start).
`

const demoBanner = `AgentHub demo: you are @demo, connected to simulated GitHub, Calendar and Slack.
Nothing leaves this machine. Things to try:
  list open pull requests in acme/website
  comment 'LGTM' on PR 7 in acme/payments
  merge PR 7 in acme/payments
  deploy acme/payments to production   (needs @bob, the release manager, too)
  /agenthub grants
  /agenthub revoke github
  /agenthub audit
  /agenthub help
Start a line with "@bob " to type as your colleague @bob: his click on your
request is refused, except as the second approver a rule asks for.
End with Ctrl-D.
`

// demoEnv is a running demo's parts.
type demoEnv struct {
	core    *core
	world   *sim.World
	st      store.Store
	rec     *audit.Recorder
	vault   *vault.Vault
	stepup  *stepup.Service
	broker  *broker.Broker
	tempDir string
	// stopStore ends the store's background work (runStore) and waits for
	// it; nil until it runs.
	stopStore func() error
}

func (h hooks) runDemo(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), demoUsage) }
	storeURL := fs.String("store", "", "state store: bolt:PATH, redis://… or rediss://… (default: a temporary file)")
	policyFile := fs.String("policy", getenv("AGENTHUB_POLICY"), "policy file (default: $AGENTHUB_POLICY, else the embedded default)")
	jsonOut := fs.Bool("json", false, "print each output as one JSON object per line")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	// Logs go to stderr as JSON, warnings only unless AGENTHUB_LOG_LEVEL
	// says otherwise: stdout is the conversation.
	level := slog.LevelWarn
	if v := getenv("AGENTHUB_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return usageError("AGENTHUB_LOG_LEVEL must be debug, info, warn or error, not %q", v)
		}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	// The policy first: a bad file stops start-up before anything is
	// connected, with the file, line and rule in the message.
	var pol *policy.Engine
	if *policyFile != "" {
		var err error
		if pol, err = policy.Load(*policyFile); err != nil {
			return err
		}
	} else {
		var err error
		if pol, err = demoPolicy(); err != nil {
			return err
		}
	}

	env, err := h.startDemo(ctx, *storeURL, pol, getenv, logger)
	if err != nil {
		return err
	}
	defer func() {
		if h.demoStopping != nil {
			h.demoStopping(env)
		}
		if cerr := env.close(); cerr != nil {
			logger.Warn("demo: cleaning up", "err", cerr)
		}
	}()
	if h.demoStarted != nil {
		h.demoStarted(env)
	}

	bannerTo := stdout
	if *jsonOut {
		bannerTo = stderr
	}
	fmt.Fprint(bannerTo, demoBanner)

	err = console.Run(ctx, console.Options{
		Broker: env.broker, Commands: env.broker, Connections: env.connections,
		History: func(ctx context.Context, principal broker.Principal, n int) ([]audit.Event, error) {
			return env.rec.TailOf(ctx, principal.String(), n, historyWindow)
		},
		Principal: demoPrincipal, Name: demoName, In: stdin, Out: stdout, JSON: *jsonOut,
		Connect: env.connect,
		DemoCode: func(ctx context.Context) (string, error) {
			return env.stepup.DemoCode(ctx, demoPrincipal.String())
		},
		Logger: logger,
		Others: map[string]broker.Principal{demoOtherName: demoOtherPrincipal},
	})
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C ends the demo as EOF does
	}
	return err
}

// demoPolicy is the embedded default policy with @bob as the release
// manager, so that the demo can show a production deploy waiting for a
// second approver (the shipped default names no one and so denies them).
func demoPolicy() (*policy.Engine, error) {
	const empty = "\n  release-managers: []\n"
	src := string(policy.DefaultSource())
	if strings.Count(src, empty) != 1 {
		return nil, errors.New("demo: the default policy no longer declares an empty release-managers group")
	}
	src = strings.Replace(src, empty, "\n  release-managers: ["+demoOtherPrincipal.User+"]\n", 1)
	return policy.Parse("default.yaml (demo: @bob is a release manager)", []byte(src))
}

// startDemo builds the demo's world; the caller closes it.
func (h hooks) startDemo(ctx context.Context, storeURL string, pol *policy.Engine, getenv func(string) string, logger *slog.Logger) (_ *demoEnv, err error) {
	env := &demoEnv{}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.close())
		}
	}()
	if storeURL == "" {
		env.tempDir, err = os.MkdirTemp("", "agenthub-demo-")
		if err != nil {
			return nil, fmt.Errorf("demo: temporary store: %w", err)
		}
		storeURL = "bolt:" + filepath.Join(env.tempDir, "demo.db")
	}
	// The Redis prefix, as every command reads it; the URL is the demo's
	// own (-store, else a temporary file), never $AGENTHUB_STORE.
	settings, err := loadStoreSettings(getenv)
	if err != nil {
		return nil, err
	}
	// The LLM planner, when OPENAI_API_KEY is set, against the simulated
	// services; the rules planner otherwise.
	llmConf, err := config.LoadLLM(getenv, os.ReadFile)
	if ce, ok := errors.AsType[*config.Error](err); ok {
		return nil, usageError("%s: %s", ce.Problems[0].Name, ce.Problems[0].Message)
	}
	if err != nil {
		return nil, err
	}
	settings.URL = storeURL
	env.st, err = h.openStore(ctx, settings, true, logger)
	if err != nil {
		return nil, err
	}
	// The embedded store sweeps its expired records (dedupe keys, leases,
	// lapsed requests) while the demo runs, as the bot's does.
	sctx, cancel := context.WithCancel(ctx)
	var g errgroup.Group
	st := env.st
	g.Go(func() error { return runStore(sctx, st) })
	env.stopStore = func() error { cancel(); return g.Wait() }
	if h.wrapStore != nil {
		env.st = h.wrapStore(env.st)
	}
	// The demo's own simulated providers and fresh keys, wired as the bot
	// wires its own.
	provs, err := simulated(simenv.SimOptions{Logger: logger, Rand: h.rand()})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	keys, err := drawKeys(h.rand())
	if err != nil {
		provs.close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	env.core, err = wire(provs, wiring{store: env.st, keys: keys, policy: pol, logger: logger, llm: llmConf})
	if err != nil {
		provs.close()
		return nil, fmt.Errorf("demo: %w", err)
	}
	env.world, env.rec, env.vault, env.stepup, env.broker = provs.sim.World, env.core.Audit, env.core.Vault, env.core.StepUp, env.core.Broker
	for _, svc := range provs.names {
		if err := env.core.connect(ctx, demoPrincipal, svc); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if err := simenv.EnrollDemo(ctx, env.stepup, demoPrincipal, demoName); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return env, nil
}

// connections lists principal's connections for whoami, in the console's
// view of them.
func (env *demoEnv) connections(ctx context.Context, principal broker.Principal) ([]console.Connection, error) {
	cs, err := env.vault.Connections(ctx, principal.String())
	if err != nil {
		return nil, err
	}
	out := make([]console.Connection, 0, len(cs))
	for _, c := range cs {
		out = append(out, console.Connection{Service: c.Service, Status: string(c.Status), Scopes: c.Scopes})
	}
	return out, nil
}

// connect reconnects a service, as "/agenthub connect" asks.
func (env *demoEnv) connect(ctx context.Context, principal broker.Principal, service string) error {
	return env.core.connect(ctx, principal, service)
}

// close stops the simulated services and the store's sweeper, closes the
// store and removes a temporary store.
func (env *demoEnv) close() error {
	var errs []error
	if env.core != nil {
		errs = append(errs, env.core.providers.close())
	}
	if env.stopStore != nil {
		errs = append(errs, env.stopStore())
	}
	if env.st != nil {
		errs = append(errs, env.st.Close())
	}
	if env.tempDir != "" {
		errs = append(errs, os.RemoveAll(env.tempDir))
	}
	return errors.Join(errs...)
}

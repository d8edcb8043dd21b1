// Package stack assembles AgentHub's core on a store and the providers it
// is given: the audit recorder, the vault, TOTP step-up, the agents and the
// broker. The bot (cmd/bot, for Slack and for the terminal demo) and the
// simulated stack of the end-to-end tests (internal/simenv) both build the
// core through Build, so the tests run the parts the bot runs, put together
// the same way; what differs is only what they pass in: real providers or
// simulated ones, keys from the environment or drawn for a demo.
//
// Only cmd/bot and internal/simenv build a stack (internal/deptest holds
// them to it), and a stack knows nothing of which providers it talks to:
// it imports neither the simulated providers nor an adapter.
package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// Providers are what the core talks to: one vault service per provider
// (its API hosts, its OAuth client for refreshing tokens, its revocation)
// and the agents' API base URLs.
type Providers struct {
	Services  []vault.Service
	Endpoints agent.Endpoints
	// Client calls the providers' token and revocation endpoints and is the
	// base transport of every lease's client; nil: http.DefaultClient.
	Client *http.Client
}

// Keys are the core's keys, 32 bytes each. The old ones opened records
// before a rotation and seal nothing ("bot rekey" moves the records).
type Keys struct {
	Audit               []byte // the HMAC key of the arguments in the audit trail (at least 32 bytes)
	Vault, StepUp       []byte
	VaultOld, StepUpOld [][]byte
}

// Options configure Build. Store, Keys and Providers' endpoints are
// required.
type Options struct {
	Store     store.Store
	Providers Providers
	Keys      Keys
	Policy    *policy.Engine // default: policy.Default()
	Planner   broker.Planner // default: the rules planner
	Logger    *slog.Logger   // default: discard
	// OnRecord, when set, sees every audit event once it is stored (the
	// metrics hook).
	OnRecord func(audit.Event)
	// DemoStepUp turns on step-up's demo authenticator, with which the
	// terminal demo plays the person's phone. Simulated stacks only.
	DemoStepUp bool
	// Directory says what people are (guests, from other workspaces) each
	// time the policy decides; nil where only members ask (the terminal).
	Directory broker.Directory
	// Factors are the second factors step-up may ask for (default: TOTP
	// alone); with policy.FactorOIDC, a rule that names none asks for a
	// sign-in at the identity provider.
	Factors []string
	// NewPlanner, when set, makes the planner from the action registry
	// (the LLM planner's tools); it replaces Planner.
	NewPlanner func(*agent.Registry) (broker.Planner, error)
	// GatedEnrolment makes setting up or replacing an authenticator need
	// more than a Slack session (stepup.Options.Gated). Real providers only.
	GatedEnrolment bool
}

// Stack is the assembled core.
type Stack struct {
	Audit    *audit.Recorder
	Vault    *vault.Vault
	StepUp   *stepup.Service
	Registry *agent.Registry
	Broker   *broker.Broker
}

// Build assembles the core. It touches no store and calls no provider:
// what it builds does, when asked.
func Build(opts Options) (*Stack, error) {
	if opts.Store == nil {
		return nil, errors.New("stack: Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Policy == nil {
		opts.Policy = policy.Default()
	}
	if opts.Planner == nil {
		opts.Planner = planner.NewRules()
	}
	s := &Stack{}
	var err error
	s.Audit, err = audit.NewRecorder(opts.Store, opts.Keys.Audit, audit.Options{OnRecord: opts.OnRecord, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("stack: audit: %w", err)
	}
	keyring, err := secret.NewKeyring(opts.Keys.Vault, opts.Keys.VaultOld)
	if err != nil {
		return nil, fmt.Errorf("stack: vault keys: %w", err)
	}
	s.Vault, err = vault.New(vault.Options{Store: opts.Store, Keys: keyring, Audit: s.Audit, Services: opts.Providers.Services,
		Logger: opts.Logger, HTTPClient: opts.Providers.Client})
	if err != nil {
		return nil, fmt.Errorf("stack: vault: %w", err)
	}
	s.StepUp, err = stepup.New(stepup.Options{Store: opts.Store, Key: opts.Keys.StepUp, OldKeys: opts.Keys.StepUpOld,
		Audit: s.Audit, Logger: opts.Logger, Demo: opts.DemoStepUp, Gated: opts.GatedEnrolment})
	if err != nil {
		return nil, fmt.Errorf("stack: step-up: %w", err)
	}
	s.Registry = agent.NewRegistry()
	for _, register := range []func(*agent.Registry, agent.Endpoints) error{githubagent.Register, calendaragent.Register, slackagent.Register} {
		if err := register(s.Registry, opts.Providers.Endpoints); err != nil {
			return nil, fmt.Errorf("stack: agents: %w", err)
		}
	}
	if opts.NewPlanner != nil {
		if opts.Planner, err = opts.NewPlanner(s.Registry); err != nil {
			return nil, fmt.Errorf("stack: planner: %w", err)
		}
	}
	s.Broker, err = broker.New(broker.Options{
		Store: opts.Store, Vault: s.Vault, Audit: s.Audit, Policy: opts.Policy, Registry: s.Registry,
		Planner: opts.Planner, StepUp: s.StepUp, Logger: opts.Logger, Directory: opts.Directory, Factors: opts.Factors,
	})
	if err != nil {
		return nil, fmt.Errorf("stack: broker: %w", err)
	}
	return s, nil
}

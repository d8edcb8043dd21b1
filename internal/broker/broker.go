package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// Defaults and limits.
const (
	// DefaultRequestTTL is how long a request waits for a decision.
	DefaultRequestTTL = 24 * time.Hour
	// DefaultStandingGrantTTL bounds a "standing" grant: standing grants
	// expire too, just late.
	DefaultStandingGrantTTL = 30 * 24 * time.Hour
	// executeLease is the lifetime of the lease one execution runs under.
	executeLease = 10 * time.Minute
	// discoveryLease is the lifetime of the read-only lease that finds a
	// step's resource.
	discoveryLease = time.Minute
	// oneHour is the lifetime of a "1h" grant.
	oneHour = time.Hour
)

// Store kinds the broker writes.
const (
	requestKind = "request"
	ownerKind   = "request-owner"
	grantKind   = "grant"
)

// Recorder stores audit events; *audit.Recorder implements it. Record
// returns only after the event is stored; its failure means "do not
// proceed".
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Planner turns a message into steps; *planner.Rules implements it.
type Planner interface {
	Plan(ctx context.Context, req planner.Request) (planner.Plan, error)
}

// StepUpVerifier checks a fresh second factor bound to one request;
// *stepup.Service implements it. It audits every attempt itself.
type StepUpVerifier interface {
	Verify(ctx context.Context, principal, requestID, code string) error
}

// Vault is the part of *vault.Vault the broker uses.
type Vault interface {
	Connection(ctx context.Context, principal, service string) (vault.Connection, error)
	Lease(ctx context.Context, req vault.LeaseRequest) (*vault.Lease, error)
	Revoke(ctx context.Context, principal, service string) error
	RevokeAll(ctx context.Context, principal string) error
}

// Options configure a Broker.
type Options struct {
	Store    store.Store     // required: requests, grants
	Vault    Vault           // required
	Audit    Recorder        // required
	Policy   *policy.Engine  // required; policy.Default() for the embedded policy
	Registry *agent.Registry // required
	Planner  Planner         // required
	StepUp   StepUpVerifier  // required
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand supplies request IDs; default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives operational detail; default discard.
	Logger *slog.Logger
	// RequestTTL is how long a request waits for a decision; default
	// DefaultRequestTTL.
	RequestTTL time.Duration
	// StandingGrantTTL bounds standing grants; default
	// DefaultStandingGrantTTL.
	StandingGrantTTL time.Duration
	// Location is the people's time zone for the planner; nil means UTC.
	Location *time.Location
	// Directory, when set, is asked what a principal is (a guest, from
	// another workspace) each time the policy decides for them: when a step
	// is proposed, when a waiting one resumes, and just before a stored one
	// runs. Nil: only what the adapter said with the message counts.
	Directory Directory
	// Factors are the second factors this deployment offers for step-up
	// (policy.FactorTOTP, policy.FactorOIDC); default TOTP alone. A
	// policy naming another one is refused by New. Factor is the one a
	// rule that names none asks for: default OIDC when offered, else TOTP.
	Factors []string
	Factor  string
}

// Broker is the state machine described in the package documentation. It
// holds no per-request state in memory, so any number of Brokers, in any
// number of processes, may share one store.
type Broker struct {
	store      store.Store
	vault      Vault
	audit      Recorder
	policy     *policy.Engine
	registry   *agent.Registry
	planner    Planner
	stepup     StepUpVerifier
	now        func() time.Time
	rand       io.Reader
	log        *slog.Logger
	requestTTL time.Duration
	standing   time.Duration
	loc        *time.Location
	dir        Directory
	factor     string // the default second factor for step-up

	// instance names this Broker in the keys it counts refusals on, and
	// refusing serializes the counting of each key (refuse.go).
	instance string
	refusing [refusalStripes]sync.Mutex
}

// New returns a Broker.
func New(opts Options) (*Broker, error) {
	var missing []string
	for _, m := range []struct {
		ok   bool
		name string
	}{
		{opts.Store != nil, "store"}, {opts.Vault != nil, "vault"}, {opts.Audit != nil, "audit"},
		{opts.Policy != nil, "policy"}, {opts.Registry != nil, "registry"},
		{opts.Planner != nil, "planner"}, {opts.StepUp != nil, "step-up"},
	} {
		if !m.ok {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("broker: missing %s", strings.Join(missing, ", "))
	}
	if len(opts.Factors) == 0 {
		opts.Factors = []string{policy.FactorTOTP}
	}
	if opts.Factor == "" {
		opts.Factor = policy.FactorTOTP
		if slices.Contains(opts.Factors, policy.FactorOIDC) {
			opts.Factor = policy.FactorOIDC
		}
	}
	for _, f := range append(opts.Policy.Factors(), opts.Factor) {
		if !slices.Contains(opts.Factors, f) {
			return nil, fmt.Errorf("broker: the policy or the default asks for the second factor %q, which is not set up here (offered: %s)", f, strings.Join(opts.Factors, ", "))
		}
	}
	if opts.RequestTTL < 0 || opts.StandingGrantTTL < 0 {
		return nil, errors.New("broker: negative ttl")
	}
	b := &Broker{
		store: opts.Store, vault: opts.Vault, audit: opts.Audit, policy: opts.Policy,
		registry: opts.Registry, planner: opts.Planner, stepup: opts.StepUp,
		now: opts.Now, rand: opts.Rand, log: opts.Logger,
		requestTTL: opts.RequestTTL, standing: opts.StandingGrantTTL, loc: opts.Location, dir: opts.Directory,
		factor: opts.Factor,
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.rand == nil {
		b.rand = rand.Reader
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.requestTTL == 0 {
		b.requestTTL = DefaultRequestTTL
	}
	if b.standing == 0 {
		b.standing = DefaultStandingGrantTTL
	}
	if b.loc == nil {
		b.loc = time.UTC
	}
	id, err := b.newID()
	if err != nil {
		return nil, err
	}
	b.instance = id[:12]
	return b, nil
}

// newID returns a random request ID: 128 bits, hex.
func (b *Broker) newID() (string, error) {
	var buf [16]byte
	if _, err := io.ReadFull(b.rand, buf[:]); err != nil {
		return "", fmt.Errorf("broker: random id: %w", err)
	}
	return hex.EncodeToString(buf[:]), nil
}

// record stores an audit event, wrapping its failure.
func (b *Broker) record(ctx context.Context, e audit.Event) error {
	if _, err := b.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("broker: audit %s: %w", e.Kind, err)
	}
	return nil
}

// traitsOf is what the policy may know of p now: what was known when they
// asked, and what the directory says now, whichever is stricter. A
// directory that cannot answer fails the decision: nobody is taken for a
// member unchecked.
func (b *Broker) traitsOf(ctx context.Context, p asker) (Traits, error) {
	if b.dir == nil {
		return p.traits, nil
	}
	now, err := b.dir.Traits(ctx, p.Principal)
	if err != nil {
		return Traits{}, fmt.Errorf("broker: who %s is: %w", p.Principal, err)
	}
	return p.traits.or(now), nil
}

// validPrincipal refuses principals that cannot be a store scope.
func validPrincipal(p Principal) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := (store.Key{Scope: p.String(), Kind: requestKind, ID: "x"}).Validate(); err != nil {
		return fmt.Errorf("broker: invalid principal: %w", err)
	}
	return nil
}

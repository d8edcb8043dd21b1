// Package simenv is AgentHub on the simulated providers of internal/sim:
// Simulate starts them on a loopback port (or reaches the ones "bot sim"
// serves) and hands them to a stack as vault services and agent endpoints,
// with a way to connect people to them; Start also builds the core on
// them, with stack.Build, the assembly the bot uses for every kind of
// provider. The terminal demo and the Slack app's demo mode
// (AGENTHUB_DEMO=1) use the simulated providers through cmd/bot's wiring,
// and the adapters' end-to-end tests use Start, so all show the same
// behaviour.
//
// Keys the caller does not give Start are drawn fresh from Options.Rand: a
// test keeps nothing across restarts that a new key could not re-create.
package simenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/loopback"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/stack"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// Services are the simulated services, in the order the demo connects them.
var Services = []string{sim.ServiceGitHub, sim.ServiceGoogle, sim.ServiceSlack}

// scopes are the provider scopes a simulated connection grants: everything
// the agents declare.
var scopes = map[string][]string{
	sim.ServiceGitHub: {githubagent.Scope},
	sim.ServiceGoogle: calendaragent.Scopes,
	sim.ServiceSlack:  {slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite, slackagent.ScopeChannelsManage},
}

// Options configure Start. Store is required; the caller closes it.
type Options struct {
	Store  store.Store
	Policy *policy.Engine // default: policy.Default()
	Logger *slog.Logger   // default: discard
	// Rand is the source of the keys and of the simulated providers'
	// tokens (default crypto/rand); tests replace it to learn every secret
	// the stack made and check that none is ever shown.
	Rand io.Reader
	// OnRecord, when set, sees every audit event once it is stored (the
	// metrics hook).
	OnRecord func(audit.Event)
	// Keys of the audit chain's HMAC, the vault and the step-up secrets;
	// each one nil is drawn from Rand. Processes that share a store must
	// share them.
	AuditKey, VaultKey, StepUpKey []byte
	// VaultOldKeys and StepUpOldKeys are the keys VaultKey and StepUpKey
	// replaced, 32 bytes each: they open what was sealed before a rotation
	// and seal nothing, until "bot rekey" has moved every record to the
	// current keys.
	VaultOldKeys, StepUpOldKeys [][]byte
	// Providers are simulated providers to share with other stacks (two
	// bot processes on one store must call the same simulated GitHub);
	// nil starts new ones, which Close stops.
	Providers *Providers
	// ProvidersURL, instead of Providers, is the base URL of simulated
	// providers another process serves (bot sim): replicas of the Slack
	// bot share one simulated world that way. It must be a loopback
	// address, since the vault sends tokens over plain HTTP only there.
	// People are then connected through the providers' OAuth flow
	// (authorize with PKCE, then the token endpoint), as a real person
	// would be.
	ProvidersURL string
	// Directory says what people are, for the policy (nil: everyone is a
	// member).
	Directory broker.Directory
	// GatedEnrolment gates enrolment in step-up as with real providers
	// (stepup.Options.Gated), for the tests of the gate.
	GatedEnrolment bool
	// Planner plans people's messages (default: the rules planner).
	Planner broker.Planner
}

// Providers are the simulated providers on a loopback port.
type Providers struct {
	World  *sim.World
	Server *httptest.Server
}

// StartProviders starts simulated providers; the caller closes Server.
func StartProviders(logger *slog.Logger, random io.Reader) *Providers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if random == nil {
		random = rand.Reader
	}
	w := sim.New(sim.Options{Logger: logger, Rand: random})
	return &Providers{World: w, Server: sim.NewServer(w)}
}

// SimOptions configure Simulate.
type SimOptions struct {
	Logger *slog.Logger // default: discard
	// Rand is the source of the simulated providers' tokens (default
	// crypto/rand).
	Rand io.Reader
	// Providers are simulated providers to share with other stacks (two
	// bot processes on one store must call the same simulated GitHub);
	// nil starts new ones, which Close stops.
	Providers *Providers
	// ProvidersURL, instead of Providers, is the base URL of simulated
	// providers another process serves (bot sim): replicas of the Slack
	// bot share one simulated world that way. It must be a loopback
	// address, since the vault sends tokens over plain HTTP only there.
	// People are then connected through the providers' OAuth flow
	// (authorize with PKCE, then the token endpoint), as a real person
	// would be.
	ProvidersURL string
}

// Sim is simulated providers as the core sees them: vault services and
// agent endpoints for a stack (Stack), and a way to connect people to them.
type Sim struct {
	World  *sim.World       // nil when the providers are another process's (SimOptions.ProvidersURL)
	Server *httptest.Server // the simulated providers, loopback only; nil likewise
	URL    string           // the simulated providers' base URL

	ownServer bool
	client    *http.Client // the vault's, to the simulated providers
	oauth     map[string]*oauth2.Config
	services  []vault.Service
}

// Simulate starts simulated providers, or reaches the ones opts names; Close
// stops what it started.
func Simulate(opts SimOptions) (_ *Sim, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	switch {
	case opts.ProvidersURL != "":
		if opts.Providers != nil {
			return nil, errors.New("simenv: Providers and ProvidersURL are exclusive")
		}
		u, err := url.Parse(opts.ProvidersURL)
		if err != nil || u.Scheme != "http" || u.Host == "" || !loopback.Is(u.Hostname()) {
			return nil, fmt.Errorf("simenv: providers URL must be http:// on a loopback address, like http://127.0.0.1:8090")
		}
		s.URL = strings.TrimSuffix(u.String(), "/")
	case opts.Providers == nil:
		opts.Providers, s.ownServer = StartProviders(opts.Logger, opts.Rand), true
		fallthrough
	default:
		s.World, s.Server, s.URL = opts.Providers.World, opts.Providers.Server, opts.Providers.Server.URL
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("simenv: sim url: %w", err)
	}
	// A pool that keeps as many idle connections as a busy bot has calls
	// in flight (the default two would make the rest dial anew each time),
	// and no redirects: a token exchange or revocation answered with a 307
	// would resend the client secret and tokens wherever it points.
	s.client = &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.oauth = make(map[string]*oauth2.Config)
	for name, c := range sim.DefaultClients() {
		s.oauth[name] = &oauth2.Config{ClientID: c.ID, ClientSecret: c.Secret, Scopes: scopes[name],
			RedirectURL: demoRedirect, Endpoint: oauth2.Endpoint{
				AuthURL: s.URL + sim.AuthorizePath(name), TokenURL: s.URL + sim.TokenPath(name), AuthStyle: oauth2.AuthStyleInParams}}
		s.services = append(s.services, vault.Service{
			Name: name, APIHosts: []string{u.Host}, OAuth: s.oauth[name],
			Revoke: revoker(s.client, s.URL+sim.RevokePath(name), c),
		})
	}
	return s, nil
}

// Stack returns the simulated providers as a stack takes them.
func (s *Sim) Stack() stack.Providers {
	return stack.Providers{Services: s.services, Endpoints: Endpoints(s.URL), Client: s.client}
}

// Env is a running simulated stack: the simulated providers and the core
// stack.Build assembles on them, as the bot does.
type Env struct {
	*Sim
	Audit    *audit.Recorder
	Vault    *vault.Vault
	StepUp   *stepup.Service
	Registry *agent.Registry
	Broker   *broker.Broker
}

// Start builds the stack; Close stops it.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if opts.Store == nil {
		return nil, errors.New("simenv: Store is required")
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	s, err := Simulate(SimOptions{Logger: opts.Logger, Rand: opts.Rand, Providers: opts.Providers, ProvidersURL: opts.ProvidersURL})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	keys := stack.Keys{Audit: opts.AuditKey, Vault: opts.VaultKey, StepUp: opts.StepUpKey,
		VaultOld: opts.VaultOldKeys, StepUpOld: opts.StepUpOldKeys}
	for _, k := range []*[]byte{&keys.Audit, &keys.Vault, &keys.StepUp} {
		if *k != nil {
			continue
		}
		*k = make([]byte, 32)
		if _, err := io.ReadFull(opts.Rand, *k); err != nil {
			return nil, fmt.Errorf("simenv: keys: %w", err)
		}
	}
	core, err := stack.Build(stack.Options{Store: opts.Store, Providers: s.Stack(), Keys: keys, Policy: opts.Policy,
		Logger: opts.Logger, OnRecord: opts.OnRecord, DemoStepUp: true, Directory: opts.Directory, GatedEnrolment: opts.GatedEnrolment,
		Planner: opts.Planner})
	if err != nil {
		return nil, fmt.Errorf("simenv: %w", err)
	}
	return &Env{Sim: s, Audit: core.Audit, Vault: core.Vault, StepUp: core.StepUp, Registry: core.Registry, Broker: core.Broker}, nil
}

// Endpoints returns the agents' endpoints for the simulated providers
// served at base, an httptest.Server URL or the address of "bot sim".
func Endpoints(base string) agent.Endpoints {
	base = strings.TrimSuffix(base, "/")
	return agent.Endpoints{
		GitHub:   base + sim.GitHubPrefix,
		Calendar: base + sim.CalendarPrefix,
		Slack:    base + sim.SlackPrefix,
	}
}

// Connect connects principal to service: the simulated provider issues
// tokens and the vault seals them. With the providers in this process the
// world issues them directly, as after a completed OAuth flow; with the
// providers in another process (Options.ProvidersURL) Connect goes through
// the flow itself.
func (s *Sim) Connect(ctx context.Context, v *vault.Vault, p broker.Principal, service string) error {
	principal := p.String()
	sc, ok := scopes[service]
	if !ok {
		return fmt.Errorf("simenv: connect: unknown service %q", service)
	}
	var tok *oauth2.Token
	if s.World != nil {
		access, refresh, err := s.World.IssueTokens(service, principal, sc)
		if err != nil {
			return fmt.Errorf("simenv: connect %s: %w", service, err)
		}
		tok = &oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: time.Now().Add(sim.DefaultAccessTTL)}
	} else {
		var err error
		if tok, err = s.authorize(ctx, principal, service); err != nil {
			return fmt.Errorf("simenv: connect %s: %w", service, err)
		}
	}
	if err := v.Connect(ctx, principal, service, sc, tok); err != nil {
		return fmt.Errorf("simenv: connect %s: %w", service, err)
	}
	return nil
}

// demoRedirect is the redirect URI of the simulated OAuth flow. Nothing
// serves it: authorize reads the code from the redirect's Location rather
// than following it.
const demoRedirect = "http://127.0.0.1/agenthub/oauth/callback"

// authorize runs the authorization code flow with PKCE against the
// simulated provider: its consent page consents at once for the person
// named in login_hint and redirects with a code, which the token endpoint
// exchanges for tokens. The state and the verifier are fresh each time.
func (s *Sim) authorize(ctx context.Context, principal, service string) (*oauth2.Token, error) {
	conf := s.oauth[service]
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	state := base64.RawURLEncoding.EncodeToString(raw[:])
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", principal))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req) // which does not follow the redirect

	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("authorize: status %d, want a redirect", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		// The error would quote the Location, code and all.
		return nil, errors.New("authorize: the redirect is not a URL")
	}
	q := back.Query()
	if q.Get("state") != state {
		return nil, errors.New("authorize: the redirect's state is not the one sent")
	}
	if q.Get("code") == "" {
		return nil, errors.New("authorize: no code in the redirect")
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.client), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		// oauth2's errors carry the provider's response body; say only
		// what failed.
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
			return nil, fmt.Errorf("token exchange: status %d %s", re.Response.StatusCode, re.ErrorCode)
		}
		return nil, errors.New("token exchange failed")
	}
	return tok, nil
}

// ConnectAll connects principal to every simulated service.
func (s *Sim) ConnectAll(ctx context.Context, v *vault.Vault, principal broker.Principal) error {
	for _, svc := range Services {
		if err := s.Connect(ctx, v, principal, svc); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the simulated providers Simulate started.
func (s *Sim) Close() error {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	if s.ownServer && s.Server != nil {
		s.Server.Close()
	}
	return nil
}

// Connect connects principal to service, sealing the tokens in env's vault.
func (env *Env) Connect(ctx context.Context, p broker.Principal, service string) error {
	return env.Sim.Connect(ctx, env.Vault, p, service)
}

// ConnectAll connects principal to every simulated service.
func (env *Env) ConnectAll(ctx context.Context, p broker.Principal) error {
	return env.Sim.ConnectAll(ctx, env.Vault, p)
}

// EnrollDemo enrols principal in env's step-up: see the function EnrollDemo.
func (env *Env) EnrollDemo(ctx context.Context, p broker.Principal, name string) error {
	return EnrollDemo(ctx, env.StepUp, p, name)
}

// EnrollDemo enrols principal in TOTP step-up and confirms it with the
// demo authenticator's code (su must be in demo mode), replacing an
// enrolment an earlier run left in a persistent store (its key is gone).
func EnrollDemo(ctx context.Context, su *stepup.Service, p broker.Principal, name string) error {
	principal := p.String()
	_, err := su.Enroll(ctx, principal, name)
	if errors.Is(err, stepup.ErrAlreadyEnrolled) {
		if err = su.Reset(ctx, principal); err == nil {
			_, err = su.Enroll(ctx, principal, name)
		}
	}
	if err != nil {
		return fmt.Errorf("simenv: step-up enrolment: %w", err)
	}
	code, err := su.DemoCode(ctx, principal)
	if err != nil {
		return fmt.Errorf("simenv: step-up enrolment: %w", err)
	}
	if err := su.Confirm(ctx, principal, code); err != nil {
		return fmt.Errorf("simenv: step-up enrolment: %w", err)
	}
	return nil
}

// revoker is a vault revocation hook for a simulated provider: RFC 7009
// with the client's credentials in the form. Revoking the refresh token
// revokes its whole family; the access token is sent too in case there is
// no refresh token.
func revoker(client *http.Client, endpoint string, c sim.Client) func(ctx context.Context, access, refresh secret.Secret) error {
	return func(ctx context.Context, access, refresh secret.Secret) error {
		for _, tok := range []secret.Secret{refresh, access} {
			if tok.IsZero() {
				continue
			}
			form := url.Values{"token": {tok.Reveal()}, "client_id": {c.ID}, "client_secret": {c.Secret}}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
			if err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("revoke: %w", err)
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("revoke: status %d", resp.StatusCode)
			}
		}
		return nil
	}
}

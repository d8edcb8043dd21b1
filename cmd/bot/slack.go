package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/sync/errgroup"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/slackapp/auditchannel"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
	"github.com/agenthub/agenthub/internal/web"
)

// historyWindow is how far back App Home and "/agenthub audit" look for a
// person's own events.
const historyWindow = 1000

// botEnv is a running Slack bot's parts.
type botEnv struct {
	cfg  *config.Config
	st   store.Store
	core *core
	app  *slackapp.App
	web  *web.Server
	// public serves the connect flow, when AGENTHUB_PUBLIC_URL is set and
	// its address is not the operator's.
	public *web.Server
}

// runBot runs the Slack bot until ctx ends or Slack refuses its tokens.
func (h hooks) runBot(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv, os.ReadFile, config.NeedSlack|config.NeedVault|config.NeedAudit)
	if ce, ok := errors.AsType[*config.Error](err); ok {
		fmt.Fprintln(stderr, "AgentHub needs these settings before it can connect to Slack:")
		for _, p := range ce.Problems {
			fmt.Fprintf(stderr, "  %-26s %s\n", p.Name, p.Message)
		}
		fmt.Fprintln(stderr, "\nGenerate keys with: openssl rand -base64 32")
		fmt.Fprintln(stderr, "The offline terminal demo needs none of them: try 'bot demo'.")
		fmt.Fprintln(stderr, "Install steps: docs/INSTALL.md.")
		return &exitError{code: 2}
	}
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	provs, err := providersFor(cfg, h, logger)
	if err != nil {
		return err
	}
	defer provs.close()

	pol := policy.Default()
	if cfg.Policy != "" {
		if pol, err = policy.Load(cfg.Policy); err != nil {
			return err
		}
	}
	st, err := h.openStore(ctx, cfg.StoreSettings(), true, logger)
	if err != nil {
		return err
	}
	defer st.Close()

	k, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	keyring, err := k.vaultKeyring()
	if err != nil {
		return err
	}

	registry := web.NewRegistry()
	onRecord, err := web.AuditMetrics(registry)
	if err != nil {
		return err
	}
	apiOpts := []slack.Option{slack.OptionAppLevelToken(cfg.SlackAppToken.Reveal()),
		slack.OptionHTTPClient(slackapp.HTTPClient())}
	if cfg.SlackAPIURL != "" {
		apiOpts = append(apiOpts, slack.OptionAPIURL(cfg.SlackAPIURL))
	}
	api := slack.New(cfg.SlackBotToken.Reveal(), apiOpts...)

	if err := noteSealingKey(ctx, st, keyring); err != nil {
		return err
	}
	env := &botEnv{cfg: cfg, st: st}
	directory := slackapp.NewDirectory(api, nil)
	var factors []string
	if cfg.OIDCIssuer != "" {
		factors = []string{policy.FactorTOTP, policy.FactorOIDC}
	}
	env.core, err = wire(provs, wiring{store: st, keys: k.stack(), policy: pol, logger: logger, onRecord: onRecord,
		directory: directory, factors: factors, llm: cfg.LLM, registerer: registry})
	if err != nil {
		return err
	}
	idp, err := identityProvider(ctx, cfg, env, directory, logger)
	if err != nil {
		return err
	}

	flows, err := connectFlows(cfg, provs, idp, env, k, logger, func(ctx context.Context, p broker.Principal, service, account string) {
		env.app.ConnectionLanded(ctx, p, service, account)
	})
	if err != nil {
		return err
	}
	var (
		connectLink func(broker.Principal, string, []string) (string, error)
		signInLink  func(broker.Principal, string) (string, error)
	)
	services := provs.names
	if flows != nil {
		connectLink = func(p broker.Principal, service string, scopes []string) (string, error) {
			purpose := ""
			if len(scopes) > 0 {
				purpose = connect.ScopesPurpose(scopes)
			}
			return flows.LinkFor(p, service, purpose)
		}
		services = slices.DeleteFunc(flows.Services(), func(s string) bool { return s == identity.Service })
	}
	if idp != nil {
		signInLink = func(p broker.Principal, purpose string) (string, error) {
			return flows.LinkFor(p, identity.Service, purpose)
		}
	}
	var enrolLink func(context.Context, broker.Principal, string, bool) (string, error)
	if flows != nil {
		enrolLink = func(ctx context.Context, p broker.Principal, by string, reset bool) (string, error) {
			return issueEnrolLink(ctx, env.core.Audit, k.links, cfg.PublicURL, p, by, reset, adminEnrolLinkTTL)
		}
	}
	env.app, err = slackapp.New(slackapp.Options{
		Broker: env.core.Broker, Store: st, API: api, Enroller: env.core.StepUp,
		Connections: func(ctx context.Context, principal broker.Principal) ([]slackapp.HomeConnection, error) {
			cs, err := env.core.Vault.Connections(ctx, principal.String())
			if err != nil {
				return nil, err
			}
			out := make([]slackapp.HomeConnection, 0, len(cs))
			for _, c := range cs {
				if c.Service == auth0Service {
					continue // their sign-in's, not a service they connected
				}
				out = append(out, slackapp.HomeConnection{Service: c.Service, Account: c.Account, Status: string(c.Status), Scopes: c.Scopes, LastUsed: c.LastUsed})
			}
			return out, nil
		},
		History: func(ctx context.Context, principal broker.Principal, n int) ([]audit.Event, error) {
			return env.core.Audit.TailOf(ctx, principal.String(), n, historyWindow)
		},
		Connect:     env.core.connect,
		ConnectLink: connectLink,
		SignInLink:  signInLink,
		Admins:      cfg.Admins,
		Forget:      forgetFor(env.core),
		EnrolLink:   enrolLink,
		Demo:        provs.sim != nil,
		Services:    services,
		Off:         provs.offNames(),
		Uninstalled: func(ctx context.Context, team string) { uninstalled(ctx, env, team, logger) },
		Logger:      logger, Registerer: registry,
	})
	if err != nil {
		return err
	}

	if provs.sim == nil && idp == nil && len(cfg.Admins) == 0 {
		logger.Warn("nobody can set up an authenticator for step-up codes: set OIDC_ISSUER or AGENTHUB_ADMINS, or hand out links from 'bot stepup enrol-link'")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return env.app.Run(gctx) })
	g.Go(func() error { return runStore(gctx, st) })
	g.Go(func() error {
		// A report for the operator, not a condition of running: people
		// whose connections open keep working either way.
		if err := checkSealingKeys(gctx, env.core.Vault, keyring, logger); err != nil && gctx.Err() == nil {
			logger.WarnContext(gctx, "sealing keys not checked", "error", err)
		}
		return nil
	})
	if n, err := env.core.Vault.QueuedRevocations(ctx); err == nil && n > 0 {
		// Tokens a provider has not confirmed revoking yet: asked again
		// until it does ("bot rekey" reseals them with the rest).
		logger.Warn("queued revocations not confirmed yet", "queued", n)
	}
	g.Go(func() error { return retryRevocations(gctx, env.core.Vault, logger) })
	if cfg.AuditChannel != "" {
		poster, err := auditchannel.New(auditchannel.Options{
			Store: st, Channel: cfg.AuditChannel, Poster: api, Logger: logger, Registerer: registry,
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return poster.Run(gctx) })
	}
	// The public listener (the connect flow's pages and callbacks) and the
	// operator's are apart, unless a person gave them one address.
	public, err := publicHandler(cfg, flows, env, logger)
	if err != nil {
		return err
	}
	if public != nil && cfg.PublicAddr == cfg.HTTPAddr {
		logger.Warn("AGENTHUB_PUBLIC_ADDR is AGENTHUB_HTTP_ADDR: /healthz, /readyz and /metrics are served on the public listener too", "addr", cfg.HTTPAddr)
	}
	if public != nil && cfg.PublicAddr != cfg.HTTPAddr {
		env.public = web.NewPublic(cfg.PublicAddr, public, logger)
		g.Go(func() error { return env.public.Run(gctx) })
		public = nil
	}
	if cfg.HTTPAddr != "" {
		env.web, err = web.New(web.Options{
			Addr: cfg.HTTPAddr, Gatherer: registry, Logger: logger, Public: public,
			Ready: []web.Check{
				{Name: "slack", Check: func(context.Context) error {
					if !env.app.Connected() {
						return errors.New("no Socket Mode connection")
					}
					return nil
				}},
				{Name: "store", Check: st.Ping},
			},
		})
		if err != nil {
			return err
		}
		g.Go(func() error { return env.web.Run(gctx) })
	}
	logger.Info("agenthub starting", "version", version, "demo", cfg.Demo, "config", cfg)
	if h.botStarted != nil {
		h.botStarted(env)
	}
	err = g.Wait()
	if errors.Is(err, slackapp.ErrFatalAuth) {
		return &exitError{code: 1, msg: err.Error()}
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// retryEvery is how often the bot looks for revocations a provider did not
// confirm that are due to be asked again.
const retryEvery = 30 * time.Second

// retryRevocations asks the providers again, until ctx ends, to revoke the
// tokens of the revocations they did not confirm (every replica does; each
// revocation is claimed by one).
func retryRevocations(ctx context.Context, v *vault.Vault, logger *slog.Logger) error {
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		res, err := v.RetryRevocations(ctx)
		if res.Revoked > 0 {
			logger.InfoContext(ctx, "queued revocations confirmed by the providers", "revoked", res.Revoked)
		}
		if err != nil && ctx.Err() == nil {
			logger.WarnContext(ctx, "queued revocations not confirmed yet", "failed", res.Failed, "waiting", res.Waiting, "error", err)
		}
	}
}

// newLogger logs to stderr in the configured format and level.
func newLogger(cfg *config.Config, stderr io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(stderr, opts))
}

// forgetFor is the Slack app's /agenthub forget on c's LLM planner; nil
// without one.
func forgetFor(c *core) func(context.Context, broker.Principal) (int, error) {
	if c.forget == nil {
		return nil
	}
	return func(ctx context.Context, p broker.Principal) (int, error) { return c.forget(ctx, p.String()) }
}

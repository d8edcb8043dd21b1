package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/vault"
	"github.com/agenthub/agenthub/internal/webhook"
)

// connectFlows returns the OAuth connect flow on the providers' OAuth
// clients, which the public listener serves; nil when AGENTHUB_PUBLIC_URL
// is not set. landed is told of each connection the flow stores.
func connectFlows(cfg *config.Config, provs *providers, idp *identity.IdP, env *botEnv, k keys, logger *slog.Logger,
	landed func(ctx context.Context, p broker.Principal, service, account string)) (*connect.Flows, error) {
	c, st := env.core, env.st
	if cfg.PublicURL == "" {
		return nil, nil
	}
	flows := maps.Clone(provs.oauth)
	if tv := provs.tokenVault; tv != nil {
		for name, p := range flows {
			flows[name] = tv.connectThrough(c.Vault, name, p)
		}
	}
	if idp != nil {
		if flows == nil {
			flows = map[string]connect.Provider{}
		}
		// GitHub and Google say whose account consented, but not whose
		// Slack user it is: the linked identity signs in first, so that a
		// forwarded link connects nothing. (Slack's own answer names the
		// Slack user, which the exchange checks.)
		for name, p := range flows {
			if name != "slack" {
				p.SignInFirst = true
				flows[name] = p
			}
		}
		flows[identity.Service] = idp.Provider()
	}
	return connect.New(connect.Options{
		PublicURL: cfg.PublicURL, Key: k.links, Store: st, Vault: c.Vault, Audit: c.Audit, Refuser: c.Broker,
		Providers: flows, Connected: landed, HTTPClient: provs.stack.Client, Logger: logger,
		Actions: map[string]connect.Action{enrolAction: enrolLinkAction(env)}, SignIn: identity.Service,
	})
}

// enrolLinkPurpose is the purpose of an enrol link: "enrol" or "reset",
// and who issued it ("admin:T…:U…", "operator").
func enrolLinkPurpose(by string, reset bool) string {
	if reset {
		return identity.PurposeReset + " " + by
	}
	return "enrol " + by
}

// issueEnrolLink makes, on the record, a single-use link that lets p set
// up an authenticator (reset: replace theirs), good for valid: the
// enrolment gate's way through an administrator or the operator, who hands
// it over out of band.
func issueEnrolLink(ctx context.Context, rec *audit.Recorder, linkKey []byte, publicURL string, p broker.Principal, by string, reset bool, valid time.Duration) (string, error) {
	expires := time.Now().Add(valid)
	link, err := connect.NewLink(linkKey, publicURL, p, enrolAction, enrolLinkPurpose(by, reset), expires, rand.Reader)
	if err != nil {
		return "", err
	}
	// On the record before it exists anywhere else.
	if _, err := rec.Record(ctx, audit.Event{Kind: stepup.KindLinkIssued, Actor: by, Detail: map[string]string{
		"principal": p.String(), "reset": fmt.Sprint(reset), "expires": expires.UTC().Format(time.RFC3339)}}); err != nil {
		return "", fmt.Errorf("no link was made: %w", err)
	}
	return link, nil
}

// enrolLinkAction is what an enrol link does: whoever opens it passed the
// gate (an administrator or the operator handed it over out of band), so
// its person is enrolled and the page shows the key.
func enrolLinkAction(env *botEnv) connect.Action {
	return connect.Action{
		Name: "the set-up",
		Describe: func(_ context.Context, p broker.Principal, purpose string) connect.Done {
			what := "set up an authenticator app for AgentHub's step-up codes"
			if strings.HasPrefix(purpose, identity.PurposeReset+" ") {
				what = "replace your authenticator app (the one you had stops working)"
			}
			return connect.Done{Title: "Set up your authenticator", Lines: []string{
				fmt.Sprintf("This link, which an administrator of AgentHub gave you, lets Slack user %s in workspace %s %s.", p.User, p.Team, what),
				"Continue shows the key, once. The link works only once.",
			}}
		},
		Do: func(ctx context.Context, p broker.Principal, purpose string) (connect.Done, error) {
			kind, by, _ := strings.Cut(purpose, " ")
			enr, err := env.app.EnrolOnPage(ctx, p, "link:"+by, "", kind == identity.PurposeReset)
			if errors.Is(err, stepup.ErrAlreadyEnrolled) {
				return connect.Done{}, &connect.Refused{Reason: "already_enrolled", Status: http.StatusConflict, Page: connect.Done{
					Title: "An authenticator is set up already",
					Lines: []string{"This link sets up a first one. To replace a lost one, ask for a reset link (/agenthub reset)."}}}
			}
			if err != nil {
				return connect.Done{}, err
			}
			return identity.EnrolmentPage(enr), nil
		},
	}
}

// identityProvider is the identity provider of OIDC_ISSUER, discovered;
// nil when none is set up. People link their Slack user to their identity
// there (only one whose verified email is their Slack profile's), and a
// sign-in of that identity verifies a risky request.
func identityProvider(ctx context.Context, cfg *config.Config, env *botEnv, dir *slackapp.Directory, logger *slog.Logger) (*identity.IdP, error) {
	if cfg.OIDCIssuer == "" {
		return nil, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var keep func(context.Context, broker.Principal, secret.Secret) error
	if cfg.Auth0.On() {
		keep = keepAuth0(env.core.Vault) // the person's Auth0 connection, for Token Vault
	}
	idp, err := identity.New(dctx, identity.Options{
		Keep:   keep,
		Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDC.ID, ClientSecret: cfg.OIDC.Secret.Reveal(),
		ACRValues: cfg.OIDCACRValues, AMR: cfg.OIDCAMR,
		Store: env.st, Audit: env.core.Audit, EmailOf: dir.Email, Logger: logger,
		SignedIn: func(ctx context.Context, p broker.Principal, requestID string) error {
			return env.app.SignedIn(ctx, p, requestID)
		},
		Enrol: func(ctx context.Context, p broker.Principal, by, requestID string, reset bool) (stepup.Enrolment, error) {
			return env.app.EnrolOnPage(ctx, p, by, requestID, reset)
		},
		Describe: func(ctx context.Context, requestID string) string {
			r, err := env.core.Broker.Lookup(ctx, requestID)
			if err != nil {
				return ""
			}
			return r.Step.Action + " on " + r.Resource.Name
		},
	})
	if err != nil {
		return nil, err
	}
	logger.Info("identity provider set up", "issuer", cfg.OIDCIssuer, "name", idp.Name())
	return idp, nil
}

// publicHandler is what the public listener serves: the connect flow and,
// with GITHUB_WEBHOOK_SECRET and GitHub set up, the GitHub App's webhook
// deliveries; nil when there is no connect flow.
func publicHandler(cfg *config.Config, flows *connect.Flows, env *botEnv, logger *slog.Logger) (http.Handler, error) {
	if flows == nil {
		return nil, nil
	}
	if cfg.GitHubWebhookSecret.IsZero() || !slices.Contains(flows.Services(), "github") {
		return flows.Handler(), nil
	}
	hook, err := webhook.GitHub(webhook.Options{
		Secret: []byte(cfg.GitHubWebhookSecret.Reveal()), Store: env.st, Refuser: env.core.Broker, Logger: logger,
		Revoked: func(ctx context.Context, login string) error {
			return revokeAccount(ctx, env, "github", "GitHub", login)
		},
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/", flows.Handler())
	mux.Handle(webhook.Path, hook)
	return mux, nil
}

// revokeAccount follows a revocation made at the provider by the account
// (a GitHub login, compared as GitHub does, without case): every active
// connection to service of that account is revoked here, through the app,
// which tells its person. It reads every person's connection: fine for a
// team, an index for a large one.
func revokeAccount(ctx context.Context, env *botEnv, service, title, account string) error {
	principals, err := connectedPrincipals(ctx, env.core.Vault)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range principals {
		c, err := env.core.Vault.Connection(ctx, p.String(), service)
		if errors.Is(err, vault.ErrNotConnected) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.Status == vault.StatusActive && strings.EqualFold(c.Account, account) {
			env.app.ProviderRevoked(ctx, p, service, title)
		}
	}
	return errors.Join(errs...)
}

// connectedPrincipals are the people the vault holds connections for.
func connectedPrincipals(ctx context.Context, v *vault.Vault) ([]broker.Principal, error) {
	names, err := v.Principals(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]broker.Principal, 0, len(names))
	for _, name := range names {
		if p, err := broker.ParsePrincipal(name); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// uninstalled follows the app's uninstalling from team: Slack revoked
// every token of the app there, so the Slack connections of the team's
// people are revoked here (nobody can be told: the bot's token is gone).
func uninstalled(ctx context.Context, env *botEnv, team string, logger *slog.Logger) {
	principals, err := connectedPrincipals(ctx, env.core.Vault)
	if err != nil {
		logger.ErrorContext(ctx, "uninstall not followed", "team", team, "error", err)
		return
	}
	n := 0
	for _, p := range principals {
		if p.Team != team {
			continue
		}
		if _, err := env.core.Broker.Revoke(ctx, p, "slack"); err != nil {
			logger.WarnContext(ctx, "slack connection not revoked after uninstall", "slack_user", p.User, "error", err)
		}
		n++
	}
	logger.InfoContext(ctx, "app uninstalled: slack connections revoked", "team", team, "people", n)
}

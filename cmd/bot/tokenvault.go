package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/provider"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/stack"
	"github.com/agenthub/agenthub/internal/vault"
)

// Auth0 Token Vault as the vault's backend (AGENTHUB_VAULT=auth0). A
// person's sign-in at the tenant (the identity provider) leaves their Auth0
// refresh token in the vault as their auth0Service connection. Connecting
// GitHub, Google or Slack goes through the My Account API's connected
// accounts, called with a lease on that connection; the provider's
// connection then holds the same refresh token, which the vault exchanges
// at Token Vault for the provider's access tokens. AgentHub holds no OAuth
// client of the providers: the tenant's connections do.

// auth0Service is the vault's name for a person's Auth0 connection. It is
// not a service people connect or see: their sign-in makes it.
const auth0Service = "auth0"

// tokenVault is what the wiring keeps of the Auth0 backend.
type tokenVault struct {
	client      *auth0.Client
	connections map[string]string // service → Auth0 connection
}

// tokenVaultProviders are GitHub, Google and Slack reached through Token
// Vault, for each service AUTH0_CONNECTIONS names.
func tokenVaultProviders(cfg *config.Config, client *http.Client, logger *slog.Logger) (*providers, error) {
	a0, err := auth0.New(auth0.Options{Domain: cfg.Auth0.Domain, BaseURL: cfg.Auth0.URL, ClientID: cfg.Auth0.Client.ID,
		ClientSecret: cfg.Auth0.Client.Secret, HTTPClient: client, Logger: logger})
	if err != nil {
		return nil, err
	}
	services, endpoints, err := provider.TokenVault(provider.Settings{GitHubAPIURL: cfg.GitHubAPIURL, GitHubWebURL: cfg.GitHubWebURL,
		SlackAPIURL: cfg.SlackAPIURL, HTTPClient: client})
	if err != nil {
		return nil, err
	}
	tv := &tokenVault{client: a0, connections: cfg.Auth0.Connections}
	p := &providers{stack: stack.Providers{Endpoints: endpoints, Client: client}, oauth: make(map[string]connect.Provider), tokenVault: tv,
		close: func() error { client.CloseIdleConnections(); return nil }}
	p.stack.Services = append(p.stack.Services, vault.Service{Name: auth0Service, APIHosts: []string{a0.MyAccountHost()}, Renew: a0.MyAccountToken})
	for _, svc := range services {
		conn, ok := tv.connections[svc.Name]
		if svc.Name == "slack" {
			// A Slack user token must be the link's Slack user's, which
			// AgentHub cannot check through Token Vault yet (config
			// refuses it too): Slack connects with SLACK_CLIENT_ID alone.
			ok = false
		}
		if !ok {
			p.off = append(p.off, provider.Off{Service: svc.Name, Missing: []string{"AUTH0_CONNECTIONS"}})
			continue
		}
		p.names = append(p.names, svc.Name)
		p.stack.Services = append(p.stack.Services, vault.Service{Name: svc.Name, APIHosts: svc.APIHosts, Covers: svc.Covers,
			Renew: func(ctx context.Context, rt secret.Secret) (*oauth2.Token, error) {
				return a0.Exchange(ctx, rt, conn, "")
			},
			RevokeAccount: a0.DisconnectAccount, Via: auth0Service})
		p.oauth[svc.Name] = connect.Provider{Name: svc.Title, OptionalScopes: svc.OptionalScopes,
			// The consent page is the tenant's; its origin is what the
			// start page's form may lead to.
			Config: &oauth2.Config{Scopes: svc.OAuth.Scopes, Endpoint: oauth2.Endpoint{AuthURL: cfg.Auth0.URL + "connect"}}}
	}
	if len(p.names) == 0 {
		return nil, &exitError{code: 2, msg: "AUTH0_CONNECTIONS names none of github and google"}
	}
	logger.Info("the vault's backend is Auth0 Token Vault", "domain", cfg.Auth0.Domain, "services", p.names)
	return p, nil
}

// connectThrough makes prov, service's connect flow, one through the My
// Account API's connected accounts, each call made with a lease on the
// person's Auth0 connection.
func (tv *tokenVault) connectThrough(v *vault.Vault, service string, prov connect.Provider) connect.Provider {
	conn := tv.connections[service]
	lease := func(ctx context.Context, p broker.Principal, scope, id string) (*vault.Lease, error) {
		l, err := v.Lease(ctx, vault.LeaseRequest{Principal: p.String(), Service: auth0Service, Scopes: []string{scope}, Resource: conn, RequestID: id})
		if errors.Is(err, vault.ErrNotConnected) || errors.Is(err, vault.ErrReconnect) {
			return nil, fmt.Errorf("sign in at Auth0 again first: %w", err)
		}
		return l, err
	}
	prov.SignInFirst = true // the sign-in leaves the Auth0 connection these calls need
	prov.Authorize = func(ctx context.Context, a connect.Authorization) (connect.Ticket, error) {
		l, err := lease(ctx, a.Principal, "create:me:connected_accounts", "connect:"+service)
		if err != nil {
			return connect.Ticket{}, err
		}
		defer l.Release(context.WithoutCancel(ctx))
		t, err := tv.client.StartConnect(ctx, l.Client(), auth0.ConnectRequest{Connection: conn, RedirectURI: a.RedirectURI, State: a.State,
			Challenge: a.Challenge, Scopes: a.Scopes})
		return connect.Ticket{URL: t.URL, Session: t.Session}, err
	}
	prov.Exchange = func(ctx context.Context, x connect.Exchange) (connect.Grant, error) {
		l, err := lease(ctx, x.Principal, "create:me:connected_accounts", "connect:"+service)
		if err != nil {
			return connect.Grant{}, err
		}
		defer l.Release(context.WithoutCancel(ctx))
		acct, err := tv.client.CompleteConnect(ctx, l.Client(), x.Session, x.Code, x.Config.RedirectURL, x.Verifier)
		if err != nil {
			return connect.Grant{}, err
		}
		if acct.Connection != conn {
			return connect.Grant{}, fmt.Errorf("auth0 connected %q, not %q", acct.Connection, conn)
		}
		scopes := acct.Scopes
		if len(scopes) == 0 {
			scopes = slices.Clone(x.Config.Scopes)
		}
		return connect.Grant{Via: auth0Service, AccountID: acct.ID, Scopes: scopes}, nil
	}
	return prov
}

// keepAuth0 keeps a sign-in's refresh token as p's Auth0 connection.
func keepAuth0(v *vault.Vault) func(ctx context.Context, p broker.Principal, refresh secret.Secret) error {
	return func(ctx context.Context, p broker.Principal, refresh secret.Secret) error {
		return v.Connect(ctx, p.String(), auth0Service, auth0.MyAccountScopes, &oauth2.Token{RefreshToken: refresh.Reveal()})
	}
}

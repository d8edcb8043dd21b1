package provider

import (
	"fmt"
	"slices"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/secret"
)

// TokenVault returns GitHub, Google and Slack as AgentHub reaches them
// through Auth0 Token Vault (AGENTHUB_VAULT=auth0): their names, titles,
// API hosts, the agents' endpoints, and in OAuth only the scopes to ask
// for when a person connects (Auth0's connections hold the providers'
// OAuth clients; AgentHub holds none). Exchange and Revoke are left to
// the Token Vault wiring.
func TokenVault(s Settings) ([]Service, agent.Endpoints, error) {
	endpoints := agent.DefaultEndpoints()
	// The builders want a client; Token Vault's services have none of
	// AgentHub's, so a placeholder stands in and is dropped below.
	none := Client{ID: "token-vault", Secret: secret.New("none")}
	s.GitHub, s.Google, s.Slack = none, none, none
	var out []Service
	for _, b := range []struct {
		build  func(Settings, *agent.Endpoints) (Service, error)
		scopes func(Service) []string
	}{
		{gitHub, func(Service) []string { return []string{githubagent.Scope} }},
		{google, func(g Service) []string { return slices.Clone(g.OAuth.Scopes) }},
		{slackUser, func(Service) []string { return slices.Clone(slackUserScopes) }},
	} {
		svc, err := b.build(s, &endpoints)
		if err != nil {
			return nil, agent.Endpoints{}, fmt.Errorf("provider: %w", err)
		}
		out = append(out, Service{Name: svc.Name, Title: svc.Title, APIHosts: svc.APIHosts,
			OAuth: &oauth2.Config{Scopes: b.scopes(svc)}, OptionalScopes: svc.OptionalScopes, Covers: svc.Covers})
	}
	return out, endpoints, nil
}

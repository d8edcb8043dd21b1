package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agenthub/agenthub/internal/policy"
)

// Principal is a person AgentHub acts for: a Slack user in a workspace.
// Its text form, "T…:U…", is the scope their records are stored under and
// the actor of their audit events.
type Principal struct {
	Team string // Slack team (workspace) ID
	User string // Slack user ID
}

// ErrBadPrincipal means a principal has no team or user, or characters
// that no Slack ID has.
var ErrBadPrincipal = errors.New("broker: invalid principal")

// ParsePrincipal reads the text form "TEAM:USER".
func ParsePrincipal(s string) (Principal, error) {
	team, user, _ := strings.Cut(s, ":")
	p := Principal{Team: team, User: user}
	if err := p.Validate(); err != nil {
		return Principal{}, err
	}
	return p, nil
}

// Validate reports whether p names someone: both IDs present, neither with
// a colon, a space, a brace or a control character (they become store
// scopes and audit actors).
func (p Principal) Validate() error {
	for _, id := range []string{p.Team, p.User} {
		if id == "" || strings.ContainsFunc(id, func(r rune) bool {
			return r <= ' ' || r == 0x7f || r == ':' || r == '{' || r == '}'
		}) {
			return fmt.Errorf("%w %q", ErrBadPrincipal, p.String())
		}
	}
	return nil
}

// String returns the text form, "TEAM:USER".
func (p Principal) String() string { return p.Team + ":" + p.User }

// IsZero reports whether p is the zero Principal (nobody).
func (p Principal) IsZero() bool { return p == Principal{} }

// MarshalText stores a principal in its text form, as records always have.
func (p Principal) MarshalText() ([]byte, error) {
	if p.IsZero() {
		return []byte{}, nil
	}
	return []byte(p.String()), nil
}

// UnmarshalText reads the text form; "" is the zero Principal.
func (p *Principal) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = Principal{}
		return nil
	}
	v, err := ParsePrincipal(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// SameTeam reports whether p and q are in one workspace.
func (p Principal) SameTeam(q Principal) bool { return p.Team == q.Team }

// Traits are what the adapter knows about a principal that the policy may
// look at: whether they are a guest of the workspace, or from another one.
// A request keeps the traits of the moment it was asked.
type Traits struct {
	Guest    bool `json:"guest,omitempty"`
	External bool `json:"external,omitempty"`
}

// or returns the traits that either t or u has: the stricter of two views.
func (t Traits) or(u Traits) Traits {
	return Traits{Guest: t.Guest || u.Guest, External: t.External || u.External}
}

// Directory says what a principal is now (Slack's users.info behind a
// short cache); the Slack app provides one.
type Directory interface {
	Traits(ctx context.Context, p Principal) (Traits, error)
}

// policy returns the principal as the policy engine sees it.
func (p Principal) policy(t Traits) policy.Principal {
	return policy.Principal{ID: p.String(), Team: p.Team, User: p.User, Guest: t.Guest, External: t.External}
}

package slackapp

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
)

// How long what users.info said of someone is trusted, and how many
// people are remembered at most: a guest made a member (or the reverse)
// is seen within the TTL, and a flood of strangers cannot grow the cache
// without bound (past maxTraits it starts again).
const (
	traitsTTL = 5 * time.Minute
	maxTraits = 50_000
)

// traitsCache remembers users.info answers briefly.
type traitsCache struct {
	mu   sync.Mutex
	seen map[broker.Principal]cachedTraits
}

type cachedTraits struct {
	traits  broker.Traits
	expires time.Time
}

// traits says what the policy may know of p: whether they are a guest of
// the workspace (Slack's is_restricted, is_ultra_restricted) or come from
// another one (is_stranger, or a home workspace that is not the app's). It
// asks users.info, and remembers the answer for traitsTTL. When Slack
// cannot say, it fails: nobody is taken for a member unchecked.
func (a *App) traits(ctx context.Context, p broker.Principal) (broker.Traits, error) {
	now := a.now()
	a.people.mu.Lock()
	c, ok := a.people.seen[p]
	a.people.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.traits, nil
	}
	u, err := a.opts.API.GetUserInfoContext(ctx, p.User)
	a.noteAuth(err)
	if err != nil {
		return broker.Traits{}, fmt.Errorf("slackapp: users.info: %w", err)
	}
	t := broker.Traits{
		Guest:    u.IsRestricted || u.IsUltraRestricted,
		External: u.IsStranger || u.TeamID != "" && u.TeamID != p.Team || a.botTeam != "" && p.Team != a.botTeam,
	}
	a.people.mu.Lock()
	if a.people.seen == nil || len(a.people.seen) >= maxTraits {
		a.people.seen = make(map[broker.Principal]cachedTraits)
	}
	a.people.seen[p] = cachedTraits{traits: t, expires: now.Add(traitsTTL)}
	a.people.mu.Unlock()
	return t, nil
}

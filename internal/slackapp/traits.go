package slackapp

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"

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

// Directory tells the broker what a Slack user is: a guest of the
// workspace (users.info's is_restricted, is_ultra_restricted) or someone
// from another one (is_stranger, or a home workspace other than the one
// they write from). It remembers each answer for traitsTTL. It is a
// broker.Directory: the broker asks it whenever the policy decides.
type Directory struct {
	api *slack.Client
	now func() time.Time

	mu   sync.Mutex
	seen map[broker.Principal]cachedTraits
}

type cachedTraits struct {
	traits  broker.Traits
	expires time.Time
}

// NewDirectory returns a Directory on api (the bot token's client, which
// needs users:read); now is the clock (nil: time.Now).
func NewDirectory(api *slack.Client, now func() time.Time) *Directory {
	if now == nil {
		now = time.Now
	}
	return &Directory{api: api, now: now}
}

// Traits asks users.info, or remembers its answer. When Slack cannot say,
// it fails: nobody is taken for a member unchecked.
func (d *Directory) Traits(ctx context.Context, p broker.Principal) (broker.Traits, error) {
	now := d.now()
	d.mu.Lock()
	c, ok := d.seen[p]
	d.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.traits, nil
	}
	u, err := d.api.GetUserInfoContext(ctx, p.User)
	if err != nil {
		return broker.Traits{}, fmt.Errorf("slackapp: users.info: %w", err)
	}
	t := broker.Traits{
		Guest:    u.IsRestricted || u.IsUltraRestricted,
		External: u.IsStranger || u.TeamID != "" && u.TeamID != p.Team,
	}
	d.mu.Lock()
	if d.seen == nil || len(d.seen) >= maxTraits {
		d.seen = make(map[broker.Principal]cachedTraits)
	}
	d.seen[p] = cachedTraits{traits: t, expires: now.Add(traitsTTL)}
	d.mu.Unlock()
	return t, nil
}

// Email is p's email as their Slack profile says it (users.info with
// users:read.email), for linking an identity; "" when Slack has none for
// them. It is asked afresh each time: linking is rare.
func (d *Directory) Email(ctx context.Context, p broker.Principal) (string, error) {
	u, err := d.api.GetUserInfoContext(ctx, p.User)
	if err != nil {
		return "", fmt.Errorf("slackapp: users.info: %w", err)
	}
	if u.IsStranger || u.TeamID != "" && u.TeamID != p.Team {
		return "", nil // someone from another workspace links nothing here
	}
	return u.Profile.Email, nil
}

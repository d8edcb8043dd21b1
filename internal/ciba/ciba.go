// Package ciba asks people on their phone: a request's approval, or its
// step-up, by Client-Initiated Backchannel Authentication at the identity
// provider (Auth0 Guardian). Ask starts a backchannel request and keeps
// its poll state in the store; Poll, run by every replica, polls each due
// request at the interval the provider gave, honouring slow_down, each
// claimed for a while so that one replica at a time polls it. An answer
// counts only after its ID token is verified (Verifier: the provider's
// signature, the person's linked identity, and for a step-up the second
// factor); then Answered is told, and told again after a fault until it
// takes the answer, since the provider gives an approval's token once.
package ciba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/store"
)

// Tenant is the identity provider's CIBA; *auth0.Client is one.
type Tenant interface {
	StartBackchannel(ctx context.Context, r auth0.BackchannelRequest) (auth0.Backchannel, error)
	PollBackchannel(ctx context.Context, id string) (auth0.Outcome, *oauth2.Token, error)
}

// Verifier knows people's linked identities; *identity.IdP is one
// (through a small adapter that takes principals as strings).
type Verifier interface {
	// Subject is principal's linked identity's subject.
	Subject(ctx context.Context, principal string) (string, error)
	// Verify checks an answer's ID token for principal.
	Verify(ctx context.Context, principal, idToken string, stepUp bool) error
}

// Result is what became of a request asked on the phone.
type Result string

// Results.
const (
	Approved Result = "approved" // verified: the person approved (or stepped up)
	Denied   Result = "denied"   // the person denied it
	Expired  Result = "expired"  // nobody answered in time
	Refused  Result = "refused"  // an answer that did not count (someone else's, no factor, a bad token)
)

// Options configure a Poller. Store, Tenant, Verifier and Answered are
// required.
type Options struct {
	Store    store.Store
	Tenant   Tenant
	Verifier Verifier
	// Answered is told what became of request id (asked of principal, as
	// a step-up when stepUp). An error makes it be told again later.
	Answered func(ctx context.Context, principal, requestID string, stepUp bool, r Result) error
	// Claim is how long one replica polls a request before another may
	// (default 30 s).
	Claim  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Poller asks and polls.
type Poller struct{ opts Options }

// New returns a poller.
func New(opts Options) (*Poller, error) {
	if opts.Store == nil || opts.Tenant == nil || opts.Verifier == nil || opts.Answered == nil {
		return nil, errors.New("ciba: Store, Tenant, Verifier and Answered are required")
	}
	if opts.Claim <= 0 {
		opts.Claim = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Poller{opts: opts}, nil
}

// kind holds the requests asked on a phone, one record each (global
// scope, ID the request's), so that every replica finds them.
const kind = "ciba"

func key(requestID string) store.Key { return store.Key{Kind: kind, ID: requestID} }

// asked is a request waiting for its answer on the phone.
type asked struct {
	Principal string        `json:"principal"`
	StepUp    bool          `json:"step_up,omitempty"`
	AuthReq   string        `json:"auth_req_id"` // pollable only with the client's credentials
	Next      time.Time     `json:"next"`        // when it may be polled again
	Interval  time.Duration `json:"interval"`
	Expires   time.Time     `json:"expires"`
	Claimed   time.Time     `json:"claimed,omitzero"` // a replica polls it until then
	// Result, once known, is kept until Answered takes it.
	Result Result `json:"result,omitempty"`
}

// Ask asks principal on their phone about request requestID: the
// binding message shows its short code and action; it expires with the
// request. A request already asked is not asked twice.
func (p *Poller) Ask(ctx context.Context, principal, requestID, code, action string, stepUp bool, expires time.Time) error {
	k := key(requestID)
	if err := k.Validate(); err != nil {
		return err
	}
	if _, err := p.opts.Store.Get(ctx, k); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ciba: read %s: %w", requestID, err)
	}
	sub, err := p.opts.Verifier.Subject(ctx, principal)
	if err != nil {
		return fmt.Errorf("ciba: whom to ask: %w", err)
	}
	now := p.opts.Now()
	b, err := p.opts.Tenant.StartBackchannel(ctx, auth0.BackchannelRequest{Subject: sub, Binding: auth0.BindingMessage(code, action),
		Expiry: min(expires.Sub(now), 5*time.Minute)})
	if err != nil {
		return fmt.Errorf("ciba: ask: %w", err)
	}
	a := asked{Principal: principal, StepUp: stepUp, AuthReq: b.ID, Next: now.Add(b.Interval), Interval: b.Interval, Expires: expires}
	if b.Expires.Before(expires) {
		a.Expires = b.Expires
	}
	value, err := json.Marshal(a)
	if err != nil {
		return err
	}
	err = p.opts.Store.Create(ctx, k, value, a.Expires.Sub(now)+time.Hour)
	if errors.Is(err, store.ErrExists) {
		return nil // another replica asked at the same moment; its question stands
	}
	return err
}

// Forget stops asking about request requestID (it was decided in Slack,
// canceled, or expired): a later answer on the phone does nothing.
func (p *Poller) Forget(ctx context.Context, requestID string) error {
	return p.opts.Store.Delete(ctx, key(requestID))
}

// Waiting reports whether request requestID waits for an answer on the
// phone.
func (p *Poller) Waiting(ctx context.Context, requestID string) (bool, error) {
	_, err := p.opts.Store.Get(ctx, key(requestID))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Poll polls each request that is due and not claimed by another
// replica, once, and returns how many it polled.
func (p *Poller) Poll(ctx context.Context) (int, error) {
	items, err := p.opts.Store.List(ctx, "", kind)
	if err != nil {
		return 0, fmt.Errorf("ciba: list: %w", err)
	}
	n := 0
	var errs []error
	for _, it := range items {
		a, ok, err := p.claim(ctx, it)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue
		}
		n++
		if err := p.pollOne(ctx, it.Key.ID, a); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// claim takes a due record for this replica, compare-and-swap, for
// Options.Claim.
func (p *Poller) claim(ctx context.Context, it store.Item) (asked, bool, error) {
	var a asked
	if json.Unmarshal(it.Value, &a) != nil {
		return asked{}, false, fmt.Errorf("ciba: %s: unreadable record", it.Key.ID)
	}
	now := p.opts.Now()
	if now.Before(a.Next) && a.Result == "" && now.Before(a.Expires) || now.Before(a.Claimed) {
		return asked{}, false, nil
	}
	a.Claimed = now.Add(p.opts.Claim)
	next, err := json.Marshal(a)
	if err != nil {
		return asked{}, false, err
	}
	if err := p.opts.Store.CompareAndSwap(ctx, it.Key, it.Value, next, store.KeepTTL); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return asked{}, false, nil // another replica took it, or it ended
		}
		return asked{}, false, err
	}
	return a, true, nil
}

// pollOne polls claimed request id once and acts on what it finds.
func (p *Poller) pollOne(ctx context.Context, id string, a asked) error {
	now := p.opts.Now()
	if a.Result == "" {
		switch {
		case !now.Before(a.Expires):
			a.Result = Expired
		default:
			o, tok, err := p.opts.Tenant.PollBackchannel(ctx, a.AuthReq)
			switch {
			case err != nil:
				p.opts.Logger.WarnContext(ctx, "ciba poll failed", "request_id", id, "error", err)
				return p.later(ctx, id, a, a.Interval)
			case o == auth0.Pending:
				return p.later(ctx, id, a, a.Interval)
			case o == auth0.SlowDown:
				a.Interval += 5 * time.Second
				return p.later(ctx, id, a, a.Interval)
			case o == auth0.Denied:
				a.Result = Denied
			case o == auth0.Expired:
				a.Result = Expired
			case o == auth0.Approved:
				raw, _ := tok.Extra("id_token").(string)
				a.Result = Approved
				if err := p.opts.Verifier.Verify(ctx, a.Principal, raw, a.StepUp); err != nil {
					p.opts.Logger.WarnContext(ctx, "ciba answer refused", "request_id", id, "error", err)
					a.Result = Refused
				}
			}
			// The provider gives an answer once: it is kept before it is
			// acted on.
			if err := p.save(ctx, id, a); err != nil {
				return err
			}
		}
	}
	if err := p.opts.Answered(ctx, a.Principal, id, a.StepUp, a.Result); err != nil {
		p.opts.Logger.WarnContext(ctx, "ciba answer not taken yet", "request_id", id, "result", a.Result, "error", err)
		return p.later(ctx, id, a, a.Interval)
	}
	return p.Forget(ctx, id)
}

// later puts request id back, due after wait, unclaimed.
func (p *Poller) later(ctx context.Context, id string, a asked, wait time.Duration) error {
	a.Next, a.Claimed = p.opts.Now().Add(max(wait, time.Second)), time.Time{}
	return p.save(ctx, id, a)
}

// save writes a over request id's record, which this replica holds.
func (p *Poller) save(ctx context.Context, id string, a asked) error {
	_, err := store.Update(ctx, p.opts.Store, key(id), store.KeepTTL, func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, store.Keep // forgotten meanwhile (decided in Slack): nothing to keep
		}
		return json.Marshal(a)
	})
	return err
}

// Run polls every second until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
				p.opts.Logger.WarnContext(ctx, "ciba poll round failed", "error", err)
			}
		}
	}
}

package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/agenthub/agenthub/internal/broker"
)

// Errors of a backchannel (CIBA) answer that does not count.
var (
	// ErrNotLinked: the person has linked no identity, so no answer can
	// be theirs.
	ErrNotLinked = errors.New("identity: the person has linked no identity")
	// ErrSomeoneElse: the ID token names another identity than the
	// person's linked one.
	ErrSomeoneElse = errors.New("identity: the answer is another identity's")
	// ErrNoFactor: a step-up's answer does not show the second factor
	// (amr, or acr when amr is not checked).
	ErrNoFactor = errors.New("identity: the answer does not show the second factor")
)

// Subject is p's linked identity's subject at the identity provider: who
// a backchannel (CIBA) request must ask.
func (i *IdP) Subject(ctx context.Context, p broker.Principal) (string, error) {
	id, ok, err := i.links.Linked(ctx, p)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", ErrNotLinked
	}
	return id.Subject, nil
}

// VerifyBackchannel checks the ID token a backchannel (CIBA) request of
// p's brought back, for the client audience made it for: the identity
// provider's signature, issuer, audience and expiry (go-oidc), that it
// names p's linked identity, and, for a step-up, the second factor as a
// sign-in's must show it.
func (i *IdP) VerifyBackchannel(ctx context.Context, p broker.Principal, raw, audience string, stepUp bool) error {
	id, ok, err := i.links.Linked(ctx, p)
	switch {
	case err != nil:
		return err
	case !ok:
		return ErrNotLinked
	}
	v := i.provider.VerifierContext(oidc.ClientContext(ctx, i.opts.HTTPClient), &oidc.Config{ClientID: audience, Now: i.opts.Now})
	idt, err := v.Verify(oidc.ClientContext(ctx, i.opts.HTTPClient), raw)
	if err != nil {
		return fmt.Errorf("identity: backchannel id_token refused (%T)", err)
	}
	if idt.Issuer != id.Issuer || idt.Subject != id.Subject {
		return ErrSomeoneElse
	}
	if !stepUp {
		return nil
	}
	var c struct {
		AuthTime *float64 `json:"auth_time"`
		AMR      []string `json:"amr"`
		ACR      string   `json:"acr"`
	}
	if err := idt.Claims(&c); err != nil {
		return fmt.Errorf("identity: backchannel claims: %w", err)
	}
	if c.AuthTime != nil && i.opts.Now().Sub(time.Unix(int64(*c.AuthTime), 0)) > MaxAge {
		return ErrNoFactor // an old authentication is no fresh factor
	}
	switch {
	case i.opts.AMR != "-" && !slices.Contains(c.AMR, i.opts.AMR):
		return ErrNoFactor
	case i.opts.AMR == "-" && !slices.Contains(strings.Fields(i.opts.ACRValues), c.ACR):
		return ErrNoFactor
	}
	return nil
}

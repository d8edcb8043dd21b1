package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// Revoke closes principal's connection to service at the vault (which
// stops every live lease on it), cancels the principal's open requests for
// that service and deletes the grants for its actions.
func (b *Broker) Revoke(ctx context.Context, principal Principal, service string) ([]Output, error) {
	if err := validPrincipal(principal); err != nil {
		return []Output{errorOut("I can't tell who you are, so I did nothing.")}, err
	}
	verr := b.vault.Revoke(ctx, principal.String(), service)
	if errors.Is(verr, vault.ErrUnknownService) {
		return []Output{errorOut(fmt.Sprintf("There is no service called %q.", service))}, nil
	}
	return b.cleanUp(ctx, principal, service, verr)
}

// RevokeAll is the panic button: every connection, open request and grant
// of the principal.
func (b *Broker) RevokeAll(ctx context.Context, principal Principal) ([]Output, error) {
	if err := validPrincipal(principal); err != nil {
		return []Output{errorOut("I can't tell who you are, so I did nothing.")}, err
	}
	return b.cleanUp(ctx, principal, "", b.vault.RevokeAll(ctx, principal.String()))
}

// cleanUp cancels requests and deletes grants for service ("" for all),
// trying everything even when a part fails.
func (b *Broker) cleanUp(ctx context.Context, principal Principal, service string, verr error) ([]Output, error) {
	// Marked before the requests are listed: a plan's step that stores a
	// request after the list looks at the mark after storing it.
	merr := b.markRevoked(ctx, principal, service)
	canceled, cerr := b.cancelRequests(ctx, principal, service)
	removed, gerr := b.deleteGrants(ctx, principal, service)
	what := service
	if what == "" {
		what = "all services"
	}
	text := fmt.Sprintf("Revoked %s: %d open request(s) canceled, %d grant(s) removed.", what, len(canceled), removed)
	err := errors.Join(verr, merr, cerr, gerr)
	if err != nil {
		if errors.Is(err, vault.ErrProviderRevoke) && merr == nil && cerr == nil && gerr == nil {
			text += " The provider did not confirm revoking the tokens: AgentHub will not use them again, and keeps asking the provider until it does."
		} else {
			text += " Some of it could not be completed; try again."
		}
		return []Output{{Kind: KindError, Service: service, Text: text, Requests: canceled}}, err
	}
	return []Output{{Kind: KindMessage, Service: service, Text: text, Requests: canceled}}, nil
}

// RevokeGrant deletes one of the principal's grants by its ID, so the next
// step it covered asks again. A grant that is already gone is not an
// error: the person wanted it gone.
func (b *Broker) RevokeGrant(ctx context.Context, principal Principal, grantID string) ([]Output, error) {
	if err := validPrincipal(principal); err != nil {
		return []Output{errorOut("I can't tell who you are, so I did nothing.")}, err
	}
	key := grantKey(principal, grantID)
	if err := key.Validate(); err != nil {
		return []Output{errorOut("There is no such grant.")}, nil
	}
	it, err := b.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return []Output{message("That grant was already gone.")}, nil
	}
	if err != nil {
		return []Output{errorOut("The grant could not be read; nothing was changed.")}, fmt.Errorf("broker: read grant: %w", err)
	}
	var g Grant
	if err := json.Unmarshal(it.Value, &g); err != nil {
		g = Grant{ID: grantID}
	}
	// Whatever the grant has become since it was read (an approval may
	// have written it again), the person wants it gone: delete the key,
	// not the version read.
	if err := b.store.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return []Output{errorOut("The grant could not be removed; try again.")}, fmt.Errorf("broker: delete grant %s: %w", grantID, err)
	}
	ev := audit.Event{Kind: audit.GrantRevoked, Actor: principal.String(), Agent: g.Agent, Action: g.Action,
		Resource: g.Resource, RequestID: g.RequestID, Detail: map[string]string{"grant": g.ID}}
	if err := b.record(ctx, ev); err != nil {
		return []Output{errorOut("The grant was removed, but the audit trail could not record it.")}, err
	}
	return []Output{message(fmt.Sprintf("Removed the grant for %s on %s: it asks you again next time.", g.Action, g.Resource))}, nil
}

// cancelRequests cancels the principal's requests for service ("" for
// all) that have not started: each is moved by the lifecycle's cancel
// event, which records request.canceled.
func (b *Broker) cancelRequests(ctx context.Context, principal Principal, service string) ([]string, error) {
	items, err := b.store.List(ctx, principal.String(), requestKind)
	if err != nil {
		return nil, fmt.Errorf("broker: list requests: %w", err)
	}
	var ids []string
	var errs []error
	for _, it := range items {
		r, err := decodeRequest(principal, it.Key.ID, it.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if service != "" && r.Service != service {
			continue
		}
		_, _, err = b.move(ctx, r, it.Value, Event{Type: EventCancel, By: principal, Result: "the service was revoked"}, nil)
		switch {
		case err == nil:
			ids = append(ids, r.ID)
		case errors.Is(err, errUnrecorded):
			ids = append(ids, r.ID)
			errs = append(errs, err)
		case errors.Is(err, ErrIllegal), errors.Is(err, ErrNoRequest):
			// Over, running, or gone: nothing to cancel.
		default:
			errs = append(errs, err)
		}
	}
	return ids, errors.Join(errs...)
}

func (b *Broker) deleteGrants(ctx context.Context, principal Principal, service string) (int, error) {
	items, err := b.store.List(ctx, principal.String(), grantKind)
	if err != nil {
		return 0, fmt.Errorf("broker: list grants: %w", err)
	}
	n := 0
	var errs []error
	for _, it := range items {
		var g Grant
		if err := json.Unmarshal(it.Value, &g); err != nil {
			// A damaged grant grants nothing; removing it is tidy.
			g = Grant{ID: it.Key.ID}
		} else if service != "" && g.Service != service {
			continue
		}
		if err := b.store.Delete(ctx, it.Key); err != nil {
			errs = append(errs, fmt.Errorf("broker: delete grant %s: %w", it.Key.ID, err))
			continue
		}
		n++
		ev := audit.Event{Kind: audit.GrantRevoked, Actor: principal.String(), Agent: g.Agent, Action: g.Action,
			Resource: g.Resource, RequestID: g.RequestID, Detail: map[string]string{"grant": g.ID}}
		if err := b.record(ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Pending returns the principal's requests that still wait for a decision,
// a step-up or a second approval, oldest first.
func (b *Broker) Pending(ctx context.Context, principal Principal) ([]Request, error) {
	items, err := b.store.List(ctx, principal.String(), requestKind)
	if err != nil {
		return nil, fmt.Errorf("broker: list requests: %w", err)
	}
	now := b.now()
	var out []Request
	for _, it := range items {
		var r Request
		if err := json.Unmarshal(it.Value, &r); err != nil {
			return nil, fmt.Errorf("broker: decode request %s: %w", it.Key.ID, err)
		}
		if r.Status.Waiting() && now.Before(r.Expires) {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Grants returns the principal's live grants, ordered by action and
// resource.
func (b *Broker) Grants(ctx context.Context, principal Principal) ([]Grant, error) {
	items, err := b.store.List(ctx, principal.String(), grantKind)
	if err != nil {
		return nil, fmt.Errorf("broker: list grants: %w", err)
	}
	now := b.now()
	var out []Grant
	for _, it := range items {
		var g Grant
		if err := json.Unmarshal(it.Value, &g); err != nil {
			return nil, fmt.Errorf("broker: decode grant %s: %w", it.Key.ID, err)
		}
		if now.Before(g.Expires) {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Action != out[j].Action {
			return out[i].Action < out[j].Action
		}
		return out[i].Resource < out[j].Resource
	})
	return out, nil
}

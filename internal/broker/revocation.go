package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// A revocation marks its principal before it lists the requests it
// cancels: a fresh random value for the service it revokes (allServices
// for all of them). A plan keeps the marks it began with (asker.revoked),
// and a request stores them (Request.Revoked). Before each step a plan
// takes, and before a stored request resumes or runs, the marks are read
// again; a step whose service, or everything, was revoked since does not
// start, and its request is canceled. So no revocation misses a request:
// one stored after the revocation listed requests, one whose cancel a
// killed process never made, one that a plan stores while a revocation
// runs, or the later steps of a request of another service.
const (
	revocationKind = "revocation"
	allServices    = "*"
	// revocationKeep outlives any request (DefaultRequestTTL and more):
	// should marks expire before a request they guard, the request is
	// canceled, as if revoked.
	revocationKeep = 30 * 24 * time.Hour
)

func revocationKey(p Principal) store.Key {
	return store.Key{Scope: p.String(), Kind: revocationKind, ID: "marks"}
}

// markRevoked leaves a fresh mark on principal for service ("" for all).
func (b *Broker) markRevoked(ctx context.Context, p Principal, service string) error {
	if service == "" {
		service = allServices
	}
	mark, err := b.newID()
	if err != nil {
		return err
	}
	_, err = store.Update(ctx, b.store, revocationKey(p), max(revocationKeep, 2*(b.requestTTL+requestGrace)), func(cur []byte) ([]byte, error) {
		marks := map[string]string{}
		if cur != nil && json.Unmarshal(cur, &marks) != nil {
			marks = map[string]string{} // unreadable marks are replaced: every plan stops once
		}
		marks[service] = mark
		return json.Marshal(marks)
	})
	if err != nil {
		return fmt.Errorf("broker: mark revocation: %w", err)
	}
	return nil
}

// revocationMarks returns principal's marks, none when they never revoked
// anything (or not for a long time).
func (b *Broker) revocationMarks(ctx context.Context, p Principal) (map[string]string, error) {
	it, err := b.store.Get(ctx, revocationKey(p))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: read revocation marks: %w", err)
	}
	var marks map[string]string
	if err := json.Unmarshal(it.Value, &marks); err != nil {
		return nil, fmt.Errorf("broker: decode revocation marks: %w", err)
	}
	return marks, nil
}

// revokedSince reports whether principal revoked service, or everything,
// since they had the marks since.
func (b *Broker) revokedSince(ctx context.Context, p Principal, since map[string]string, service string) (bool, error) {
	now, err := b.revocationMarks(ctx, p)
	if err != nil {
		return false, err
	}
	return now[allServices] != since[allServices] || (service != "" && now[service] != since[service]), nil
}

// cancelIfRevoked cancels stored request r when its owner revoked its
// service, or everything, since they asked, and tells them; it reports
// whether r must not go on (also when the marks could not be read).
func (b *Broker) cancelIfRevoked(ctx context.Context, r Request, raw []byte) ([]Output, bool, error) {
	revoked, err := b.revokedSince(ctx, r.Principal, r.Revoked, r.Service)
	if err == nil && !revoked {
		return nil, false, nil
	}
	if err != nil {
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: I couldn't check that you have not revoked access since. Try again in a moment."}}, true, err
	}
	_, _, merr := b.move(ctx, r, raw, Event{Type: EventCancel, By: r.Principal, Result: "revoked after it was asked"}, nil)
	if errors.Is(merr, ErrIllegal) || errors.Is(merr, ErrNoRequest) {
		return nil, true, nil // another process ended it
	}
	// It names no request, so that an adapter gives it to the owner
	// whoever's click found it (as planDropped).
	out := Output{Kind: KindMessage, Action: r.Step.Action, Resource: r.Resource.Name,
		Text: fmt.Sprintf("You revoked your %s access after asking for %s, so I canceled it.", r.Service, r.Step.Action)}
	if merr != nil && !errors.Is(merr, errUnrecorded) {
		out = Output{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: you revoked access after asking for this, and the request could not be canceled just now."}
	}
	return []Output{out}, true, merr
}

// Cancel ends a request its owner no longer wants (Slack's Stop button on
// the agent session it belongs to): it does not run, and the rest of its
// plan does not start. Only the owner cancels, on the record
// (request.canceled with reason); a request already settled, or running,
// stays as it is.
func (b *Broker) Cancel(ctx context.Context, requestID string, actor Principal, reason string) ([]Output, error) {
	r, raw, outs, err := b.loadForOwner(ctx, requestID, actor, "cancel")
	if outs != nil || err != nil {
		return outs, err
	}
	if r.Status == StatusExecuting || r.Status.Terminal() {
		return []Output{{Kind: KindMessage, RequestID: r.ID, Text: fmt.Sprintf("This request is %s: there is nothing to stop.", strings.ReplaceAll(string(r.Status), "_", " "))}}, nil
	}
	if _, _, err := b.move(ctx, r, raw, Event{Type: EventCancel, By: actor, Result: reason}, nil); err != nil {
		if errors.Is(err, ErrIllegal) || errors.Is(err, ErrNoRequest) {
			return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "This request ended meanwhile."}}, nil
		}
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: the request could not be stopped just now."}}, err
	}
	return append([]Output{{Kind: KindMessage, RequestID: r.ID, Text: fmt.Sprintf("Stopped: %s on %s will not run.", r.Step.Action, r.Resource.Name)}},
		planDropped(r)...), nil
}

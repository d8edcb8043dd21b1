package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// How long a request may sit half-way before Recover settles it. The
// process that moved it there finishes within its handler's deadline (the
// Slack app's is 2 minutes), so a request older than these was left by a
// process that stopped, or whose store writes kept failing.
const (
	// ApprovedStaleAfter is how long a request may stay approved without
	// its step starting.
	ApprovedStaleAfter = 5 * time.Minute
	// ExecutingStaleAfter is how long a request may stay executing.
	ExecutingStaleAfter = 15 * time.Minute
)

// Recover settles a request that nobody will move on:
//
//   - waiting for a person past its expiry: expired (request.expired).
//   - approved for ApprovedStaleAfter or more: the step never started. It
//     is not started now. The request does not tell whether the approval
//     that moved it reached the audit trail (it is recorded after the
//     move, and nothing unrecorded may run), and the person was told that
//     nothing was done and may have asked again. So the request ends
//     interrupted and the person is told to ask again if they still want
//     it.
//   - executing for ExecutingStaleAfter or more: the call may or may not
//     have reached the provider, so it is not made again; the request ends
//     interrupted and the person is told to check.
//
// First, audit events a process stored with the request but did not get
// into the trail before it stopped (the request's outbox) are recorded.
//
// Interrupted requests are audited as action.failed with result
// "interrupted". Any other request, and any record from before requests
// kept Request.Updated, is left as it is, and Recover returns no outputs;
// so does a Recover that another replica, or the original process, beat
// to the request. An expiry returns no outputs either: the adapter shows it
// on the request's messages.
func (b *Broker) Recover(ctx context.Context, id string) ([]Output, error) {
	r, raw, err := b.loadRequest(ctx, id)
	if errors.Is(err, ErrNoRequest) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if b.outboxStale(r) {
		// A move whose process died before the trail had it: record it.
		if r, raw, err = b.flush(ctx, r, raw); err != nil {
			return nil, fmt.Errorf("broker: recover %s: %w", id, err)
		}
	}
	e := Event{Type: EventInterrupt}
	if r.Status.Waiting() {
		e.Type = EventExpire
	}
	moved, _, err := b.move(ctx, r, raw, e, nil)
	switch {
	case errors.Is(err, ErrIllegal), errors.Is(err, ErrNoRequest):
		return nil, nil // not stale yet, or someone else moved it meanwhile
	case err != nil && !errors.Is(err, errUnrecorded):
		return nil, err
	}
	if e.Type == EventExpire {
		return nil, err
	}
	b.log.WarnContext(ctx, "request left half-way settled as interrupted", "request_id", r.ID, "action", r.Step.Action,
		"status", string(r.Status), "idle", b.now().Sub(r.Updated).Round(time.Second).String())
	text := fmt.Sprintf("%s on %s was approved but never started, so nothing was done. Ask again if you still want it.",
		r.Step.Action, r.Resource.Name)
	if r.Status == StatusExecuting {
		text = fmt.Sprintf("%s on %s was interrupted while it ran, so I can't tell whether it happened. Check %s before asking again.",
			r.Step.Action, r.Resource.Name, r.Resource.Name)
	}
	outs := []Output{{Kind: KindError, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Text: text}}
	visibility(&outs[0], r.Resource, r.Decision)
	return append(outs, planDropped(moved)...), err
}

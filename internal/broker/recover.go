package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
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

// Recover settles a request that a process left half-way, so that it does
// not show "approved" for ever with nothing coming of it:
//
//   - approved for ApprovedStaleAfter or more: the step never started. It
//     is not started now. The request does not tell whether the approval
//     that moved it reached the audit trail (it is recorded after the
//     move, and nothing unrecorded may run), and the person was told that
//     nothing was done and may have asked again. So the request fails as
//     interrupted and the person is told to ask again if they still want
//     it.
//   - executing for ExecutingStaleAfter or more: the call may or may not
//     have reached the provider, so it is not made again; the request fails
//     as interrupted and the person is told to check.
//
// Both are audited as action.failed with result "interrupted". Any other
// request, and any record from before requests kept Request.Updated, is
// left as it is, and Recover returns no outputs; so does a Recover that
// another replica, or the original process, beat to the request.
func (b *Broker) Recover(ctx context.Context, id string) ([]Output, error) {
	r, raw, err := b.loadRequest(ctx, id)
	if errors.Is(err, ErrNoRequest) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.Updated.IsZero() {
		return nil, nil
	}
	idle := b.now().Sub(r.Updated)
	var text string
	switch {
	case r.Status == StatusApproved && idle >= ApprovedStaleAfter:
		text = fmt.Sprintf("%s on %s was approved but never started, so nothing was done. Ask again if you still want it.",
			r.Step.Action, r.Resource.Name)
	case r.Status == StatusExecuting && idle >= ExecutingStaleAfter:
		text = fmt.Sprintf("%s on %s was interrupted while it ran, so I can't tell whether it happened. Check %s before asking again.",
			r.Step.Action, r.Resource.Name, r.Resource.Name)
	default:
		return nil, nil
	}
	was := r.Status
	r.Status, r.Result = StatusFailed, "interrupted while "+string(was)
	if _, err := b.transition(ctx, r, raw); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return nil, nil // someone else moved it meanwhile
		}
		return nil, err
	}
	b.log.WarnContext(ctx, "request left half-way settled as interrupted", "request_id", r.ID, "action", r.Step.Action,
		"status", string(was), "idle", idle.Round(time.Second).String())
	ev := b.event(audit.ActionFailed, r, nil)
	ev.Result, ev.Detail = "interrupted", map[string]string{"status": string(was)}
	return []Output{{Kind: KindError, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Text: text}}, b.record(ctx, ev)
}

package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
)

// How long a request may sit half-way before Recover takes it up. A step
// goes from approved to executing within milliseconds of its last approval
// in the process that took it, and runs within the handler's deadline, so
// a request older than these was left by a process that stopped.
const (
	// ResumeAfter is how long a request may stay approved: older, nothing
	// started it, and Recover runs it.
	ResumeAfter = time.Minute
	// InterruptedAfter is how long a request may stay executing: older, the
	// process running it stopped during the call, and Recover settles it
	// as interrupted, since whether the provider acted cannot be known.
	InterruptedAfter = 15 * time.Minute
)

// Recover finishes a request that a process left half-way, so that an
// approval given on any replica is carried out (or accounted for) even if
// that replica stopped at the wrong moment:
//
//   - approved for ResumeAfter or more: nothing ran yet, so the step runs
//     now, through the same checks as on approval (its arguments, its
//     resource and the policy, again); past its expiry it expires instead;
//   - executing for InterruptedAfter or more: the call may or may not have
//     reached the provider, so it is not run again; the request fails as
//     interrupted (audited as action.failed "interrupted") and the person
//     is told to check.
//
// Any other request is left as it is and Recover returns no outputs. Like a
// click, it moves the request by compare-and-swap, so when several
// replicas recover at once, or the original process was only slow, the
// step still runs at most once.
func (b *Broker) Recover(ctx context.Context, id string) ([]Output, error) {
	r, raw, err := b.loadRequest(ctx, id)
	if errors.Is(err, ErrNoRequest) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	since := r.Updated
	if since.IsZero() {
		since = r.Decided
	}
	idle := b.now().Sub(since)
	switch {
	case r.Status == StatusApproved && idle >= ResumeAfter:
		if o, done, err := b.checkOpen(ctx, &r, raw, StatusApproved); done {
			return o, err
		}
		act, args, err := b.stepOf(r)
		if err != nil {
			return b.invalidStep(ctx, r, raw, err)
		}
		b.log.InfoContext(ctx, "resuming an approved request", "request_id", r.ID, "approved_for", idle.Round(time.Second).String())
		return b.execute(ctx, r, raw, act, args)
	case r.Status == StatusExecuting && idle >= InterruptedAfter:
		text := fmt.Sprintf("%s on %s was interrupted while it ran, so I can't tell whether it happened. Check %s before asking again.",
			r.Step.Action, r.Resource.Name, r.Resource.Name)
		r.Status, r.Result = StatusFailed, "interrupted: the outcome is unknown"
		if _, err := b.transition(ctx, r, raw); err != nil {
			return b.lost(ctx, r.ID, err)
		}
		b.log.WarnContext(ctx, "request interrupted while it ran", "request_id", r.ID, "action", r.Step.Action)
		ev := b.event(audit.ActionFailed, r, nil)
		ev.Result = "interrupted"
		return []Output{{Kind: KindError, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Text: text}}, b.record(ctx, ev)
	}
	return nil, nil
}

package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
)

// The messages shown for a request are recorded in the store, not in
// memory: any replica may receive the click that settles a request, and
// all of them must be able to take the buttons away.
const (
	// slackRequestKind holds a requestRecord under (scope "", ID the
	// request ID).
	slackRequestKind = "slack-request"
	// recordGrace is how long a record outlives its request's expiry, so
	// that the sweeper still finds it to mark its messages expired.
	recordGrace = time.Hour
)

// The sweeper. Every replica runs one, but a store lock lets one replica
// at a time make a pass, so that Slack sees each update once.
const (
	// sweepInterval is how often a replica tries to make a pass; tests
	// call sweepEvery with their own.
	sweepInterval = time.Minute
	// sweepLockID names the lock (kind store.LockKind, scope "") a pass
	// holds. It expires by itself after sweepLockTTL, should its holder
	// die; a pass stops sweepMargin earlier, so that no other replica
	// starts while it still runs.
	sweepLockID  = "slack-sweep"
	sweepLockTTL = 5 * time.Minute
	sweepMargin  = 30 * time.Second
)

// What a recorded message is, which decides how it changes as the request
// moves on.
const (
	whatApproval = "approval" // the owner's Approve/Deny DM
	whatApprover = "approver" // a second approver's Approve/Deny DM
	whatStepUp   = "step_up"  // the owner's "Verify it's you" DM
	whatConnect  = "connect"  // the owner's Connect DM, for a request waiting for its connection
)

// shown is one message the app posted about a request.
type shown struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
	What    string `json:"what"`
	User    string `json:"user,omitempty"` // the Slack user it was sent to
}

// requestRecord is everything the app keeps about one request's messages.
// Action and Resource let an expired request, whose broker record is gone,
// still be recapped.
type requestRecord struct {
	V         int              `json:"v"`
	RequestID string           `json:"request_id"`
	Owner     broker.Principal `json:"owner"`
	Action    string           `json:"action,omitempty"`
	Resource  string           `json:"resource,omitempty"`
	Thread    thread           `json:"thread"`
	Expires   time.Time        `json:"expires"`
	Messages  []shown          `json:"messages"`
}

func requestRecordKey(id string) store.Key {
	return store.Key{Kind: slackRequestKind, ID: id}
}

// remember appends m to the request's record, creating it from base when
// there is none (a zero m appends nothing: the record keeps the request's
// thread alone). Several replicas may append at once (the owner's DM and
// the approvers' DMs, a step-up DM), so it is a compare-and-swap loop. A
// failure is logged: the message was shown, and only its later update is
// lost.
func (a *App) remember(ctx context.Context, base requestRecord, m shown) {
	if err := a.appendShown(ctx, base, m); err != nil {
		a.log.WarnContext(ctx, "slack message not recorded", "request_id", base.RequestID, "err", err)
	}
}

func (a *App) appendShown(ctx context.Context, base requestRecord, m shown) error {
	key := requestRecordKey(base.RequestID)
	_, err := store.Update(ctx, a.opts.Store, key, a.recordTTL(base.Expires), func(cur []byte) ([]byte, error) {
		rec := base
		rec.V, rec.Messages = 1, nil
		if cur != nil {
			rec = requestRecord{}
			if err := json.Unmarshal(cur, &rec); err != nil {
				return nil, fmt.Errorf("slackapp: decode record: %w", err)
			}
			if rec.Thread.Channel == "" {
				rec.Thread = base.Thread
			}
		}
		if m.TS != "" {
			rec.Messages = append(rec.Messages, m)
		}
		return json.Marshal(rec)
	})
	if err != nil {
		return fmt.Errorf("slackapp: record of %s: %w", base.RequestID, err)
	}
	return nil
}

func (a *App) recordTTL(expires time.Time) time.Duration {
	return max(expires.Sub(a.now()), 0) + recordGrace
}

// loadRecord returns a request's record and its exact bytes.
func (a *App) loadRecord(ctx context.Context, id string) (requestRecord, []byte, error) {
	key := requestRecordKey(id)
	if err := key.Validate(); err != nil {
		return requestRecord{}, nil, store.ErrNotFound
	}
	it, err := a.opts.Store.Get(ctx, key)
	if err != nil {
		return requestRecord{}, nil, err
	}
	var rec requestRecord
	if err := json.Unmarshal(it.Value, &rec); err != nil {
		return requestRecord{}, nil, fmt.Errorf("slackapp: decode record: %w", err)
	}
	return rec, it.Value, nil
}

// threadOf returns where the replies about a request go; the zero thread
// (the owner's DM) when nothing is recorded.
func (a *App) threadOf(ctx context.Context, id string) thread {
	rec, _, err := a.loadRecord(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			a.log.WarnContext(ctx, "slack record unreadable", "request_id", id, "err", err)
		}
		return thread{}
	}
	return rec.Thread
}

// updateMessages brings every recorded message of a request in line with
// the request as the broker now has it: buttons that can no longer be used
// give way to a line saying what happened. by is the Slack user whose
// click settled it ("" when unknown: the owner is named). Once the request
// is over and every message shows it, the record is deleted.
func (a *App) updateMessages(ctx context.Context, id, by string) {
	rec, raw, err := a.loadRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		a.log.WarnContext(ctx, "slack record unreadable", "request_id", id, "err", err)
		return
	}
	r, err := a.opts.Broker.Lookup(ctx, id)
	if errors.Is(err, broker.ErrNoRequest) {
		// The broker forgets a request once its time is up.
		r = broker.Request{ID: id, Principal: rec.Owner, Step: broker.Step{Action: rec.Action},
			Resource: policy.Resource{Name: rec.Resource}, Status: broker.StatusExpired, Expires: rec.Expires}
	} else if err != nil {
		a.log.WarnContext(ctx, "request lookup failed", "request_id", id, "err", err)
		return
	}
	now := a.now()
	final := requestOver(r, now)
	allShown := true
	for _, m := range rec.Messages {
		outcome, who, at, keep := messageState(r, m, now, by)
		if keep {
			continue
		}
		text := escape(fmt.Sprintf("%s on %s: %s", r.Step.Action, r.Resource.Name, outcome))
		blocks := DecidedMessage(r, who, at, outcome)
		if m.What == whatConnect {
			text = escape(fmt.Sprintf("%s for %s: %s", r.Service, r.Step.Action, outcome))
			blocks = ConnectedMessage(r, outcome)
		}
		_, _, _, err := a.opts.API.UpdateMessageContext(ctx, m.Channel, m.TS,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		a.noteAuth(err)
		if err != nil && !slackGone(err) {
			allShown = false
			a.log.WarnContext(ctx, "slack message update failed", "request_id", id, "slack_user", m.User, "err", err)
		}
	}
	if final && allShown {
		if err := a.opts.Store.CompareAndDelete(ctx, requestRecordKey(id), raw); err != nil &&
			!errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			a.log.WarnContext(ctx, "slack record not deleted", "request_id", id, "err", err)
		}
	}
}

// requestOver reports whether nothing more can happen to r: every message
// shown for it is final.
func requestOver(r broker.Request, now time.Time) bool {
	switch {
	case r.Status.Waiting():
		return !now.Before(r.Expires)
	case r.Status == broker.StatusApproved, r.Status == broker.StatusExecuting:
		// Its outcome is still to come; if its process stopped, the
		// sweeper takes it up (recover) and needs the record for that.
		return false
	}
	return true
}

// messageState says how message m of request r should look: keep (it
// stands as posted, buttons and all), or the outcome line of
// DecidedMessage with who and when.
func messageState(r broker.Request, m shown, now time.Time, by string) (outcome, who string, at time.Time, keep bool) {
	owner := r.Principal.User
	decided := r.Decided
	if decided.IsZero() {
		decided = now
	}
	if m.What == whatConnect {
		// The Connect button stands while the request waits for it.
		if r.Status == broker.StatusWaitingConnection && !requestOver(r, now) {
			return "", "", time.Time{}, true
		}
		if r.Status == broker.StatusWaitingConnection {
			return OutcomeExpired, "", r.Expires, false
		}
		return OutcomeConnected, "", now, false
	}
	if requestOver(r, now) {
		switch r.Status {
		case broker.StatusDenied:
			switch {
			case !r.DeniedBy.IsZero():
				by = r.DeniedBy.User
			case by == "":
				by = owner
			}
			return OutcomeDenied, by, decided, false
		case broker.StatusCanceled:
			return OutcomeCanceled, "", decided, false
		case broker.StatusSucceeded, broker.StatusFailed, broker.StatusInterrupted:
			if r.Decided.IsZero() {
				return string(r.Status), "", now, false // it ended before anyone approved it
			}
			return OutcomeApproved, owner, decided, false
		}
		return OutcomeExpired, "", r.Expires, false
	}
	if r.Status == broker.StatusApproved || r.Status == broker.StatusExecuting {
		return OutcomeApproved, owner, decided, false
	}
	switch m.What {
	case whatApprover:
		if !r.SecondBy.IsZero() {
			return OutcomeApproved, r.SecondBy.User, now, false
		}
	case whatApproval:
		// The owner's part is done once step-up or a second approval is
		// all that is missing.
		if r.Status == broker.StatusAwaitingStepUp || r.Status == broker.StatusAwaitingSecond {
			return OutcomeApproved, owner, decided, false
		}
	case whatStepUp:
		if r.Status == broker.StatusAwaitingSecond {
			return OutcomeApproved, owner, decided, false
		}
	}
	return "", "", time.Time{}, true
}

// sweep runs beside the connection: every sweepInterval it settles the
// messages of requests that ended without a click here (expired, or
// decided on another replica whose update failed), and takes the secret out
// of enrolment DMs that still show one they no longer should.
func (a *App) sweep(ctx context.Context) error {
	return a.sweepEvery(ctx, sweepInterval)
}

// sweepEvery is sweep with the interval as a parameter.
func (a *App) sweepEvery(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.sweepOnce(ctx); err != nil && ctx.Err() == nil {
				a.log.WarnContext(ctx, "slack sweep failed", "err", err)
			}
		}
	}
}

// sweepOnce makes one pass, unless another replica is making one: then
// there is nothing to add, and it returns nil.
func (a *App) sweepOnce(ctx context.Context) error {
	lock, err := store.TryLock(ctx, a.opts.Store, "", sweepLockID, sweepLockTTL)
	if errors.Is(err, store.ErrExists) {
		a.log.DebugContext(ctx, "slack sweep skipped: another replica is sweeping")
		return nil
	}
	if err != nil {
		return fmt.Errorf("slackapp: sweep lock: %w", err)
	}
	defer func() {
		// Released even when ctx has ended, so the next pass need not wait
		// for the lock to lapse.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lock.Unlock(uctx); err != nil {
			a.log.WarnContext(ctx, "slack sweep lock not released", "err", err)
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, sweepLockTTL-sweepMargin)
	defer cancel()
	// Enrolments first: a secret left in a DM matters more than a stale
	// button, and a long request backlog must not use up the pass.
	enrolErr := a.sweepEnrolments(pctx)
	reqErr := a.sweepRequests(pctx)
	// Refusal counts whose window is over reach the audit trail.
	return errors.Join(enrolErr, reqErr, a.opts.Broker.FlushRefusals(pctx))
}

// sweepEnrolments rewrites the enrolment DMs whose secret must go: those
// confirmed or replaced whose rewrite failed, and those expired.
func (a *App) sweepEnrolments(ctx context.Context) error {
	items, err := a.opts.Store.List(ctx, "", enrolmentKind)
	if err != nil {
		return fmt.Errorf("slackapp: list enrolment dms: %w", err)
	}
	now := a.now()
	for _, it := range items {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var rec enrolmentRecord
		if err := json.Unmarshal(it.Value, &rec); err != nil {
			a.log.WarnContext(ctx, "enrolment record unreadable", "principal", it.Key.ID, "err", err)
			continue
		}
		if len(rec.Retire) == 0 && (rec.Current == nil || now.Before(rec.Started.Add(stepup.PendingTTL+enrolmentGrace))) {
			continue // a set-up waiting for its first code
		}
		p, err := broker.ParsePrincipal(it.Key.ID)
		if err != nil {
			a.log.WarnContext(ctx, "enrolment record of no principal", "principal", it.Key.ID, "err", err)
			continue
		}
		a.settleEnrolment(ctx, p)
	}
	return nil
}

// sweepRequests updates the messages of every recorded request that is
// past its expiry or over, and deletes their records.
func (a *App) sweepRequests(ctx context.Context) error {
	items, err := a.opts.Store.List(ctx, "", slackRequestKind)
	if err != nil {
		return fmt.Errorf("slackapp: list slack requests: %w", err)
	}
	now := a.now()
	for _, it := range items {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var rec requestRecord
		if err := json.Unmarshal(it.Value, &rec); err != nil {
			a.log.WarnContext(ctx, "slack record unreadable", "request_id", it.Key.ID, "err", err)
			continue
		}
		r, err := a.opts.Broker.Lookup(ctx, it.Key.ID)
		if err != nil && !errors.Is(err, broker.ErrNoRequest) {
			a.log.WarnContext(ctx, "request lookup failed", "request_id", it.Key.ID, "err", err)
			continue
		}
		if err == nil {
			left := r.Status == broker.StatusApproved || r.Status == broker.StatusExecuting
			// A move whose process stopped before the audit trail had it
			// (its outbox) is recorded by Recover too.
			if left || r.Status.Waiting() && !now.Before(r.Expires) || len(r.Unrecorded) > 0 {
				a.recover(ctx, r)
				continue
			}
			if !requestOver(r, now) {
				continue
			}
		}
		a.updateMessages(ctx, it.Key.ID, "")
	}
	return nil
}

// recover settles a request that nobody will move on (Broker.Recover
// decides whether it has waited long enough): one its process left
// approved or executing, of which its owner is told in the request's
// thread, or one whose time is up, whose messages then say so.
func (a *App) recover(ctx context.Context, r broker.Request) {
	outs, err := a.opts.Broker.Recover(ctx, r.ID)
	a.logBroker(ctx, "recover", r.ID, r.Principal.User, err)
	if len(outs) == 0 && !r.Status.Waiting() {
		return
	}
	a.deliverAsked(ctx, r.Principal, a.threadOf(ctx, r.ID), outs)
	a.updateMessages(ctx, r.ID, "")
	if len(outs) > 0 {
		a.publishHome(ctx, r.Principal)
	}
}

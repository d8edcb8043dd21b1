package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
)

// Decision is a person's answer to an approval: Choice is one of the
// offered Choice keys (ChoiceOnce, ChoiceHour, ChoiceStanding, ChoiceDeny).
type Decision struct {
	RequestID string
	Actor     string // who clicked or typed, "T1:U1"
	Choice    string
}

// Decide applies a decision to a stored request. Only its owner may decide;
// of concurrent decisions exactly one takes effect and the others are told
// the request was already decided. An approval that needs step-up moves the
// request to awaiting_stepup and returns a step_up output; any other
// approval runs the step.
func (b *Broker) Decide(ctx context.Context, d Decision) ([]Output, error) {
	r, raw, err := b.loadRequest(ctx, d.RequestID)
	if errors.Is(err, ErrNoRequest) {
		return []Output{gone(d.RequestID)}, nil
	}
	if err != nil {
		return []Output{errorOut("Nothing was done: the request could not be read.")}, err
	}
	if d.Actor != r.Principal {
		if mayApproveSecond(r, d.Actor) {
			return b.decideSecond(ctx, r, raw, d)
		}
		return b.reject(ctx, d.Actor, r, "decide")
	}
	if o, done, err := b.checkOpen(ctx, &r, raw, StatusPending); done {
		return o, err
	}

	if d.Choice == ChoiceDeny {
		r.Status, r.Decided, r.DeniedBy = StatusDenied, b.now(), d.Actor
		if _, err := b.transition(ctx, r, raw); err != nil {
			return b.lost(ctx, r.ID, err)
		}
		err := b.record(ctx, b.event(audit.ApprovalDenied, r, nil))
		return []Output{{Kind: KindMessage, RequestID: r.ID, Action: r.Step.Action, Text: "Denied. Nothing was done."}}, err
	}

	lifetime, ok := b.lifetime(r, d.Choice)
	if !ok {
		return []Output{{Kind: KindError, RequestID: r.ID, Text: fmt.Sprintf("%q is not one of this request's choices.", d.Choice),
			Choices: choicesFor(r.Decision.Lifetimes, r.Decision.Risk)}}, nil
	}
	act, args, err := b.stepOf(r)
	if err != nil {
		r.Status, r.Result = StatusFailed, "the stored step no longer validates"
		if _, terr := b.transition(ctx, r, raw); terr != nil {
			return b.lost(ctx, r.ID, terr)
		}
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "This request can no longer run: its stored step is not valid. Ask again."}}, err
	}
	r.Lifetime, r.Decided = lifetime, b.now()
	r.Status = StatusApproved
	if r.Decision.StepUp {
		r.Status = StatusAwaitingStepUp
	}
	next, err := b.transition(ctx, r, raw)
	if err != nil {
		// A second approver recording their approval changes the record
		// but leaves it pending: try again. Any other change wins.
		if errors.Is(err, store.ErrConflict) && r.Decision.Effect == policy.SecondApprover {
			if cur, _, lerr := b.loadOwned(ctx, r.Principal, r.ID); lerr == nil && cur.Status == StatusPending {
				return b.Decide(ctx, d)
			}
		}
		return b.lost(ctx, r.ID, err)
	}
	ev := b.event(audit.ApprovalGranted, r, args)
	ev.Decision = lifetime.String()
	if err := b.record(ctx, ev); err != nil {
		// The approval is not on record, so it authorizes nothing.
		b.failUnrecorded(ctx, r, next)
		return []Output{auditDown()}, err
	}
	if lifetime != policy.Once {
		b.createGrant(ctx, r, act, lifetime)
	}
	if r.Decision.StepUp {
		return []Output{{Kind: KindStepUp, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name,
			Rule: r.Decision.Rule, Risk: r.Decision.Risk.String(),
			Approvers: r.Approvers, Text: stepUpText(r)}}, nil
	}
	return b.execute(ctx, r, next, act, args)
}

// StepUp checks the owner's second-factor code for a request awaiting it
// and, if it passes, runs the step. The code is bound to this request:
// stepup records the attempt with its ID and refuses a code already used.
func (b *Broker) StepUp(ctx context.Context, requestID, actor, code string) ([]Output, error) {
	r, raw, err := b.loadRequest(ctx, requestID)
	if errors.Is(err, ErrNoRequest) {
		return []Output{gone(requestID)}, nil
	}
	if err != nil {
		return []Output{errorOut("Nothing was done: the request could not be read.")}, err
	}
	if actor != r.Principal {
		return b.reject(ctx, actor, r, "stepup")
	}
	if o, done, err := b.checkOpen(ctx, &r, raw, StatusAwaitingStepUp); done {
		return o, err
	}
	if err := b.stepup.Verify(ctx, r.Principal, r.ID, code); err != nil {
		o := Output{Kind: KindStepUp, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name}
		for _, known := range []error{stepup.ErrBadCode, stepup.ErrReplay, stepup.ErrLocked, stepup.ErrNotEnrolled, stepup.ErrPending} {
			if errors.Is(err, known) {
				o.Text = "Not run: " + known.Error() + "."
				if errors.Is(err, stepup.ErrNotEnrolled) || errors.Is(err, stepup.ErrPending) {
					o.Kind = KindError
				}
				return []Output{o}, nil
			}
		}
		o.Kind, o.Text = KindError, "Not run: the code could not be checked."
		return []Output{o}, err
	}
	act, args, err := b.stepOf(r)
	if err != nil {
		return []Output{errorOut("This request can no longer run: its stored step is not valid. Ask again.")}, err
	}
	// A second approver may record their approval meanwhile, changing the
	// record; that conflict is retried, any other change wins.
	for attempt := 0; ; attempt++ {
		r.Status = StatusApproved
		if r.Decision.Effect == policy.SecondApprover && r.SecondBy == "" {
			r.Status = StatusAwaitingSecond
		}
		next, err := b.transition(ctx, r, raw)
		switch {
		case err == nil && r.Status == StatusAwaitingSecond:
			return []Output{{Kind: KindMessage, RequestID: r.ID, Action: r.Step.Action, Approvers: r.Approvers,
				Text: "Verified. It runs once one of " + strings.Join(r.Approvers, ", ") + " approves it too."}}, nil
		case err == nil:
			return b.execute(ctx, r, next, act, args)
		case !errors.Is(err, store.ErrConflict) || attempt == casRetries:
			return b.lost(ctx, r.ID, err)
		}
		if r, raw, err = b.loadOwned(ctx, r.Principal, r.ID); err != nil {
			return b.lost(ctx, requestID, err)
		}
		if r.Status != StatusAwaitingStepUp {
			return b.lost(ctx, r.ID, store.ErrConflict)
		}
	}
}

// mayApproveSecond reports whether actor is one of the request's second
// approvers: named by the policy, in the owner's team, and not the owner.
func mayApproveSecond(r Request, actor string) bool {
	if r.Decision.Effect != policy.SecondApprover || actor == r.Principal {
		return false
	}
	a, o := policyPrincipal(actor), policyPrincipal(r.Principal)
	return a.Team == o.Team && slices.Contains(r.Approvers, a.User)
}

// decideSecond applies a second approver's decision. It never stands in for
// the owner's approval or step-up: it only records the second approval, and
// runs the step if the owner is already done.
func (b *Broker) decideSecond(ctx context.Context, r Request, raw []byte, d Decision) ([]Output, error) {
	if d.Choice != ChoiceOnce && d.Choice != ChoiceDeny {
		return []Output{{Kind: KindError, RequestID: r.ID, Text: fmt.Sprintf("%q is not one of this request's choices.", d.Choice),
			Choices: choicesFor(nil, policy.Critical)}}, nil
	}
	act, args, err := b.stepOf(r)
	if err != nil {
		return []Output{errorOut("This request can no longer run: its stored step is not valid. Ask again.")}, err
	}
	for attempt := 0; ; attempt++ {
		if o, done, err := b.checkOpen(ctx, &r, raw, r.Status); done {
			return o, err
		}
		if !r.Status.open() || r.Status == StatusApproved || r.SecondBy != "" {
			return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "This request was already decided."}}, nil
		}
		if d.Choice == ChoiceDeny {
			r.Status, r.Decided, r.DeniedBy = StatusDenied, b.now(), d.Actor
		} else {
			r.SecondBy = d.Actor
			if r.Status == StatusAwaitingSecond {
				r.Status, r.Decided = StatusApproved, b.now()
			}
		}
		next, err := b.transition(ctx, r, raw)
		if errors.Is(err, store.ErrConflict) && attempt < casRetries {
			if r, raw, err = b.loadOwned(ctx, r.Principal, r.ID); err != nil {
				return b.lost(ctx, d.RequestID, err)
			}
			continue
		}
		if err != nil {
			return b.lost(ctx, r.ID, err)
		}
		ev := b.event(audit.ApprovalGranted, r, args)
		if d.Choice == ChoiceDeny {
			ev.Kind = audit.ApprovalDenied
		}
		ev.Actor, ev.Detail = d.Actor, map[string]string{"role": "second_approver", "owner": r.Principal}
		if err := b.record(ctx, ev); err != nil {
			if d.Choice == ChoiceDeny {
				return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "Denied. Nothing was done."}}, err
			}
			r.Status, r.Result = StatusFailed, "the second approval could not be recorded"
			if _, terr := b.transition(ctx, r, next); terr != nil {
				b.log.ErrorContext(ctx, "could not fail unrecorded approval", "request_id", r.ID, "err", terr)
			}
			return []Output{auditDown()}, err
		}
		switch {
		case d.Choice == ChoiceDeny:
			return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "Denied. Nothing was done."}}, nil
		case r.Status == StatusApproved:
			return b.execute(ctx, r, next, act, args)
		default:
			return []Output{{Kind: KindMessage, RequestID: r.ID, Action: r.Step.Action,
				Text: "Your approval is recorded. It runs once " + r.Principal + " has approved it and verified with a code."}}, nil
		}
	}
}

// execute runs an approved, stored request exactly once: only the caller
// whose compare-and-swap moves it to executing runs it.
func (b *Broker) execute(ctx context.Context, r Request, raw []byte, act *agent.Action, args agent.Args) ([]Output, error) {
	r.Status = StatusExecuting
	next, err := b.transition(ctx, r, raw)
	if err != nil {
		return b.lost(ctx, r.ID, err)
	}
	if out, changed, err := b.recheck(ctx, r, act, args); changed || err != nil {
		r.Status, r.Result = StatusFailed, out.Text
		if _, terr := b.transition(ctx, r, next); terr != nil {
			err = errors.Join(err, terr)
		}
		return []Output{out}, err
	}
	out, ok, runErr := b.run(ctx, r.Principal, r.ID, act, args, r.Resource.Name)
	r.Status, r.Result = StatusFailed, out.Text
	if ok {
		r.Status = StatusSucceeded
	}
	fctx, cancel := finishing(ctx)
	defer cancel()
	if _, err := b.transition(fctx, r, next); err != nil {
		runErr = errors.Join(runErr, err)
	}
	return []Output{out}, runErr
}

// recheck is what a stored step goes through just before it runs, so that
// an approval given minutes or hours ago does not stand for a world that
// has moved on. The approval covered the resource as it was then (its
// branch, its head commit, whether it is private or protected), and the
// policy decided for that resource at that time: look at both again, and
// run nothing if either says no. It returns the output to give and true
// when the step must not run.
func (b *Broker) recheck(ctx context.Context, r Request, act *agent.Action, args agent.Args) (Output, bool, error) {
	now, out, changed, err := b.resourceChanged(ctx, r, act, args)
	if changed || err != nil {
		return out, true, err
	}
	return b.policyChanged(ctx, r, now, act, args)
}

// policyChanged asks the policy again, for the step and its resource res
// as just looked up (equal to the approved one, but fresh from the agent
// rather than decoded from the stored request, whose numbers JSON has
// made floats), now: the policy decides on every call, and a rule may have
// been edited, a condition may depend on the time, an approver may have
// been taken off a list. The answer is recorded like the first one, and the
// step runs only if what the request went through still covers it.
func (b *Broker) policyChanged(ctx context.Context, r Request, res policy.Resource, act *agent.Action, args agent.Args) (Output, bool, error) {
	d := b.policy.Evaluate(policy.Input{
		Principal: policyPrincipal(r.Principal), Action: act.Policy(), Resource: res, Args: args, Now: b.now(),
	})
	if d.Err != nil {
		b.log.WarnContext(ctx, "policy condition failed", "request_id", r.ID, "rule", d.Rule, "err", d.Err)
	}
	out := Output{Kind: KindError, RequestID: r.ID, Action: act.Name, Resource: r.Resource.Name, Rule: d.Rule, Risk: d.Risk.String()}
	ev := b.event(audit.PolicyDecided, r, args)
	ev.Decision, ev.Rule = d.Effect.String(), d.Rule
	ev.Detail = map[string]string{"risk": d.Risk.String(), "at": "execution"}
	if err := b.record(ctx, ev); err != nil {
		out.Text = auditDown().Text
		return out, true, err
	}
	if covers(r, d) {
		return Output{}, false, nil
	}
	if d.Effect == policy.Deny {
		out.Text = fmt.Sprintf("Not run: policy rule %q refuses it now: %s", d.Rule, d.Reason)
	} else {
		out.Text = fmt.Sprintf("Not run: policy rule %q now asks for more than this approval gave. Ask again to go through it.", d.Rule)
	}
	fail := b.event(audit.ActionFailed, r, args)
	fail.Rule, fail.Result = d.Rule, "policy_changed"
	return out, true, b.record(ctx, fail)
}

// covers reports whether what request r went through (the owner's
// approval, and step-up and a second approval where its decision asked for
// them) satisfies decision d.
func covers(r Request, d policy.Decision) bool {
	switch d.Effect {
	case policy.Allow, policy.Approve, policy.StepUp, policy.SecondApprover:
	default:
		return false // deny, or no usable answer
	}
	if d.StepUp && !r.Decision.StepUp {
		return false
	}
	if d.Effect == policy.SecondApprover {
		return r.SecondBy != "" && slices.Contains(d.SecondApprover, policyPrincipal(r.SecondBy).User)
	}
	return true
}

// resourceChanged discovers the request's resource again and compares it
// with the one the approval was given for. It returns the resource as now
// looked up.
func (b *Broker) resourceChanged(ctx context.Context, r Request, act *agent.Action, args agent.Args) (policy.Resource, Output, bool, error) {
	out := Output{Kind: KindError, RequestID: r.ID, Action: act.Name, Resource: r.Resource.Name}
	now, err := b.discover(ctx, r.Principal, act, args, r.ID)
	if err != nil {
		out.Text = "Nothing was done: I could not check " + r.Resource.Name + " again before running this."
		return now, out, true, fmt.Errorf("broker: rediscover %s: %w", r.ID, err)
	}
	was, err1 := json.Marshal(r.Resource)
	is, err2 := json.Marshal(now)
	if err := errors.Join(err1, err2); err != nil {
		out.Text = "Nothing was done: I could not check " + r.Resource.Name + " again before running this."
		return now, out, true, fmt.Errorf("broker: compare resource of %s: %w", r.ID, err)
	}
	if string(was) == string(is) {
		return now, Output{}, false, nil
	}
	ev := b.event(audit.ActionFailed, r, args)
	ev.Result, ev.Detail = "resource_changed", map[string]string{"resource_now": now.Name}
	out.Text = "Not run: " + r.Resource.Name + " changed after you approved (for example new commits or another base branch). Ask again to approve it as it is now."
	return now, out, true, b.record(ctx, ev)
}

// checkOpen returns done=true with the outputs to give when the request is
// not in state want, expiring it first if its time has passed.
func (b *Broker) checkOpen(ctx context.Context, r *Request, raw []byte, want Status) ([]Output, bool, error) {
	if r.Status.open() && !b.now().Before(r.Expires) {
		r.Status = StatusExpired
		if _, err := b.transition(ctx, *r, raw); err != nil && !errors.Is(err, store.ErrConflict) {
			return []Output{errorOut("This request expired. Ask again.")}, true, err
		}
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "This request expired. Ask again."}}, true, nil
	}
	if r.Status != want {
		return []Output{{Kind: KindMessage, RequestID: r.ID, Text: fmt.Sprintf("This request was already decided (%s).", r.Status)}}, true, nil
	}
	return nil, false, nil
}

// lost answers a failed transition: a conflict means another decision won.
func (b *Broker) lost(ctx context.Context, id string, err error) ([]Output, error) {
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		return []Output{{Kind: KindMessage, RequestID: id, Text: "This request was already decided."}}, nil
	}
	return []Output{{Kind: KindError, RequestID: id, Text: "Nothing was done: the request could not be updated."}}, err
}

// reject refuses someone other than the owner, on the record.
func (b *Broker) reject(ctx context.Context, actor string, r Request, op string) ([]Output, error) {
	ev := audit.Event{Kind: audit.InteractionRejected, Actor: actor, Agent: agentOf(r.Step.Action), Action: r.Step.Action,
		Resource: r.Resource.Name, RequestID: r.ID, Result: "not_owner", Detail: map[string]string{"op": op}}
	err := b.record(ctx, ev)
	return []Output{{Kind: KindError, RequestID: r.ID, Text: "Only the person who asked for this can decide it."}}, err
}

// lifetime maps a choice key to a lifetime the request offers.
func (b *Broker) lifetime(r Request, choice string) (policy.Lifetime, bool) {
	l, err := policy.ParseLifetime(choice)
	if err != nil {
		return 0, false
	}
	offered := slices.ContainsFunc(choicesFor(r.Decision.Lifetimes, r.Decision.Risk), func(c Choice) bool { return c.Key == choice })
	return l, offered
}

// stepOf validates the stored step again and checks its hash: what runs is
// exactly what was approved.
func (b *Broker) stepOf(r Request) (*agent.Action, agent.Args, error) {
	act, ok := b.registry.Lookup(r.Step.Action)
	if !ok {
		return nil, nil, fmt.Errorf("broker: request %s: unknown action %s", r.ID, r.Step.Action)
	}
	rawArgs, err := decodeArgs(r.Step.Args)
	if err != nil {
		return nil, nil, err
	}
	args, err := b.registry.Validate(r.Step.Action, rawArgs)
	if err != nil {
		return nil, nil, fmt.Errorf("broker: request %s: %w", r.ID, err)
	}
	hash, _, err := canonicalHash(act.Name, args)
	if err != nil {
		return nil, nil, err
	}
	if hash != r.ArgsHash || act.Service != r.Service {
		return nil, nil, fmt.Errorf("broker: request %s: stored step does not match its hash", r.ID)
	}
	return act, args, nil
}

// createGrant stores a reusable grant for an approval chosen "for 1 hour"
// or "until revoked". A failure only costs the person a later question, so
// it is logged, not returned.
func (b *Broker) createGrant(ctx context.Context, r Request, act *agent.Action, l policy.Lifetime) {
	if r.Decision.Risk >= policy.High || r.Decision.StepUp || !r.Decision.GrantOK {
		return
	}
	ttl := oneHour
	if l == policy.Standing {
		ttl = b.standing
	}
	now := b.now()
	g := Grant{V: 1, ID: grantID(act.Name, r.Resource.Name), Principal: r.Principal, Action: act.Name, Agent: act.Agent,
		Service: act.Service, Resource: r.Resource.Name, Lifetime: l, RequestID: r.ID, Created: now, Expires: now.Add(ttl)}
	value, err := json.Marshal(g)
	if err == nil {
		err = b.store.Put(ctx, grantKey(r.Principal, g.ID), value, ttl)
	}
	if err != nil {
		b.log.ErrorContext(ctx, "store grant", "request_id", r.ID, "err", err)
		return
	}
	// A revoke cancels requests first and deletes grants second. Reading
	// the request after writing the grant closes the race with it: either
	// the revoke's deletion comes after this write, or this read sees the
	// cancellation and takes the grant back.
	if cur, _, lerr := b.loadOwned(ctx, r.Principal, r.ID); lerr != nil || cur.Status == StatusCanceled {
		if derr := b.store.Delete(ctx, grantKey(r.Principal, g.ID)); derr != nil {
			b.log.ErrorContext(ctx, "delete grant of a canceled request", "grant", g.ID, "err", derr)
		}
		return
	}
	ev := b.event(audit.GrantCreated, r, nil)
	ev.Decision, ev.Detail = l.String(), map[string]string{"grant": g.ID, "expires": g.Expires.UTC().Format("2006-01-02T15:04:05Z")}
	if err := b.record(ctx, ev); err != nil {
		// A grant that is not on record must not authorize anything.
		if derr := b.store.Delete(ctx, grantKey(r.Principal, g.ID)); derr != nil {
			b.log.ErrorContext(ctx, "delete unrecorded grant", "grant", g.ID, "err", derr)
		}
		b.log.ErrorContext(ctx, "record grant", "request_id", r.ID, "err", err)
	}
}

// failUnrecorded marks a request whose approval could not be recorded as
// failed, so that nothing can run on that approval later. A concurrent
// change (a second approver's record) makes it re-read and try again.
func (b *Broker) failUnrecorded(ctx context.Context, r Request, cur []byte) {
	for attempt := 0; ; attempt++ {
		r.Status, r.Result = StatusFailed, "the approval could not be recorded"
		_, err := b.transition(ctx, r, cur)
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= casRetries {
			b.log.ErrorContext(ctx, "could not fail unrecorded approval", "request_id", r.ID, "err", err)
			return
		}
		var lerr error
		if r, cur, lerr = b.loadOwned(ctx, r.Principal, r.ID); lerr != nil {
			b.log.ErrorContext(ctx, "could not fail unrecorded approval", "request_id", r.ID, "err", lerr)
			return
		}
		if !r.Status.open() {
			return // it has already ended one way or another
		}
	}
}

// event is an audit event about a request.
func (b *Broker) event(kind audit.Kind, r Request, args agent.Args) audit.Event {
	return audit.Event{Kind: kind, Actor: r.Principal, Agent: agentOf(r.Step.Action), Action: r.Step.Action,
		Resource: r.Resource.Name, RequestID: r.ID, Rule: r.Decision.Rule, Args: args}
}

func agentOf(action string) string {
	for i := range len(action) {
		if action[i] == '.' {
			return action[:i]
		}
	}
	return action
}

func gone(id string) Output {
	return Output{Kind: KindError, RequestID: id, Text: "That request no longer exists: it may have expired. Ask again."}
}

func stepUpText(r Request) string {
	text := fmt.Sprintf("Approved. %s on %s also needs a fresh code from your authenticator: enter it to run it.", r.Step.Action, r.Resource.Name)
	if r.Decision.Effect == policy.SecondApprover && r.SecondBy == "" {
		text += " It also needs the approval of one of: " + strings.Join(r.Approvers, ", ") + "."
	}
	return text
}

package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/stepup"
)

// Decision is a person's answer to an approval: Choice is one of the
// offered Choice keys (ChoiceOnce, ChoiceHour, ChoiceStanding, ChoiceDeny).
type Decision struct {
	RequestID string
	Actor     Principal // who clicked or typed
	Choice    string
	// Via is where the owner decided when not in Slack: policy.ApprovalCIBA
	// for an answer on their phone (PhoneApproved, PhoneDenied).
	Via string
}

// PhoneApproved approves request requestID as its owner did on their
// phone (CIBA), after the answer's ID token was verified to be theirs
// (internal/ciba, internal/identity): for this one step.
func (b *Broker) PhoneApproved(ctx context.Context, requestID string, owner Principal) ([]Output, error) {
	return b.Decide(ctx, Decision{RequestID: requestID, Actor: owner, Choice: ChoiceOnce, Via: policy.ApprovalCIBA})
}

// PhoneDenied denies request requestID as its owner did on their phone.
func (b *Broker) PhoneDenied(ctx context.Context, requestID string, owner Principal) ([]Output, error) {
	return b.Decide(ctx, Decision{RequestID: requestID, Actor: owner, Choice: ChoiceDeny, Via: policy.ApprovalCIBA})
}

// PhoneVerified moves on a request awaiting its owner's step-up on their
// phone (policy.FactorCIBA), once the answer was verified: the owner's
// linked identity, with the factor the deployment asks for. A request
// whose step-up asks for another factor is not moved by it.
func (b *Broker) PhoneVerified(ctx context.Context, requestID string, owner Principal) ([]Output, error) {
	return b.stepUp(ctx, requestID, owner, policy.FactorCIBA, func(Request) error { return nil })
}

// Decide applies a decision to a stored request. Its owner approves or
// denies it; one of its second approvers, if the policy named any, gives
// or refuses the second approval. Anyone else is refused, on the record.
// Of concurrent decisions exactly one takes effect and the others are told
// the request was already decided. An approval that needs step-up returns
// a step_up output; one that completes the request runs its step.
func (b *Broker) Decide(ctx context.Context, d Decision) ([]Output, error) {
	r, raw, err := b.loadRequest(ctx, d.RequestID)
	if errors.Is(err, ErrNoRequest) {
		return []Output{gone(d.RequestID)}, nil
	}
	if err != nil {
		return []Output{errorOut("Nothing was done: the request could not be read.")}, err
	}
	if !r.MayDecide(d.Actor) {
		return b.reject(ctx, d.Actor, r, "decide")
	}
	e := Event{By: d.Actor, Via: d.Via}
	owner := d.Actor == r.Principal
	if d.Via != "" && !owner {
		return b.reject(ctx, d.Actor, r, "decide")
	}
	if owner && d.Choice != ChoiceDeny && r.Decision.Approval == policy.ApprovalCIBA && d.Via != policy.ApprovalCIBA {
		// The policy asks for this approval on the owner's phone: a click
		// in Slack (a Slack session alone) does not give it.
		rerr := b.Refuse(ctx, Refusal{Actor: d.Actor.String(), Kind: audit.InteractionRejected, Reason: "approval_on_phone", Op: "decide",
			RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name})
		return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "Not run: this request is approved on your phone. Approve it in the notification AgentHub sent there."}}, rerr
	}
	if !owner {
		// A second approval is a person vouching for someone else's step
		// (and a second denial stops it): not a guest's, nor a stranger's,
		// whatever list names them. What is said is the clicker's alone.
		traits, err := b.traitsOf(ctx, asker{Principal: d.Actor})
		if err != nil {
			return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "Nothing was done: I couldn't check who you are just now. Try again in a moment."}}, err
		}
		if traits.Guest || traits.External {
			rerr := b.Refuse(ctx, Refusal{Actor: d.Actor.String(), Kind: audit.InteractionRejected, Reason: "approver_not_a_member", Op: "decide",
				RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name})
			return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "Guests and people from other workspaces cannot give or refuse a second approval."}}, rerr
		}
	}
	switch {
	case d.Choice == ChoiceDeny && owner:
		e.Type = EventDeny
	case d.Choice == ChoiceDeny:
		e.Type = EventSecondDeny
	case owner:
		lifetime, ok := b.lifetime(r, d.Choice)
		if !ok {
			return []Output{{Kind: KindError, RequestID: r.ID, Text: fmt.Sprintf("%q is not one of this request's choices.", d.Choice),
				Choices: choicesFor(r.Decision.Lifetimes, r.Decision.Risk)}}, nil
		}
		e.Type, e.Lifetime = EventApprove, lifetime
	case d.Choice == ChoiceOnce:
		e.Type = EventSecondApprove
	default:
		return []Output{{Kind: KindError, RequestID: r.ID, Text: fmt.Sprintf("%q is not one of this request's choices.", d.Choice),
			Choices: choicesFor(nil, policy.Critical)}}, nil
	}
	return b.advance(ctx, r, raw, e)
}

// StepUp checks the owner's second-factor code for a request awaiting it
// and, if it passes, moves the request on (and runs its step when nothing
// else is missing). The code is bound to this request: stepup records the
// attempt with its ID and refuses a code already used. A request whose
// step-up asks for a sign-in (policy.FactorOIDC) takes no code.
func (b *Broker) StepUp(ctx context.Context, requestID string, actor Principal, code string) ([]Output, error) {
	return b.stepUp(ctx, requestID, actor, policy.FactorTOTP, func(r Request) error {
		return b.stepup.Verify(ctx, r.Principal.String(), r.ID, code)
	})
}

// SignedIn moves on a request awaiting its owner's sign-in at the identity
// provider (policy.FactorOIDC), once that sign-in was checked and recorded
// (internal/identity: a fresh login of the owner's linked identity, with
// the factor the deployment asks for, made for this one request). A
// request whose step-up asks for a code is not moved by a sign-in.
func (b *Broker) SignedIn(ctx context.Context, requestID string, actor Principal) ([]Output, error) {
	return b.stepUp(ctx, requestID, actor, policy.FactorOIDC, func(Request) error { return nil })
}

// loadForOwner loads request id for an operation (op) its owner alone may
// do; outs, with err, answer when it cannot go on: the request is gone, or
// unreadable, or actor is not its owner (refused, on the record).
func (b *Broker) loadForOwner(ctx context.Context, id string, actor Principal, op string) (Request, []byte, []Output, error) {
	r, raw, err := b.loadRequest(ctx, id)
	if errors.Is(err, ErrNoRequest) {
		return r, raw, []Output{gone(id)}, nil
	}
	if err != nil {
		return r, raw, []Output{errorOut("Nothing was done: the request could not be read.")}, err
	}
	if actor != r.Principal {
		outs, err := b.reject(ctx, actor, r, op)
		return r, raw, outs, err
	}
	return r, raw, nil, nil
}

// stepUp is StepUp and SignedIn: verify checks the proof of factor for the
// loaded request, after the lifecycle said it could take it.
func (b *Broker) stepUp(ctx context.Context, requestID string, actor Principal, factor string, verify func(Request) error) ([]Output, error) {
	r, raw, outs, err := b.loadForOwner(ctx, requestID, actor, "stepup")
	if outs != nil || err != nil {
		return outs, err
	}
	if want := r.Decision.SecondFactor(); want != factor {
		rerr := b.Refuse(ctx, Refusal{Actor: actor.String(), Kind: audit.InteractionRejected, Reason: "wrong_factor", Op: "stepup",
			RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name})
		text := "Not run: this request asks for a code from your authenticator app, not a sign-in."
		switch want {
		case policy.FactorOIDC:
			text = "Not run: this request asks you to sign in again at your identity provider, not for a code. Press \"Verify it's you\"."
		case policy.FactorCIBA:
			text = "Not run: this request asks you to approve on your phone, in the notification AgentHub sent there."
		}
		return []Output{{Kind: KindError, RequestID: r.ID, Text: text}}, rerr
	}
	e := Event{Type: EventStepUpPassed, By: actor}
	// Ask the lifecycle first, so that a code is not spent on a request
	// that could not take it.
	if _, _, err := r.apply(e, b.now()); err != nil {
		return b.notMoved(ctx, r, raw, err)
	}
	// A move of a moment ago still being recorded (a second approval,
	// say) would make this one wait, and give up: wait first, so that a
	// code is not spent on a move that gives up.
	if len(r.Unrecorded) > 0 && !b.outboxStale(r) {
		if r, raw, err = b.awaitOutbox(ctx, r, raw); err != nil {
			return []Output{{Kind: KindStepUp, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Args: r.Step.Args, ArgsHash: r.ArgsHash,
				Factor: factor, Text: "Not run yet: this request's last change is still being recorded. Verify again in a moment."}}, err
		}
	}
	if err := verify(r); err != nil {
		o := Output{Kind: KindStepUp, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Args: r.Step.Args, ArgsHash: r.ArgsHash, Factor: factor}
		for _, known := range []error{stepup.ErrBadCode, stepup.ErrReplay, stepup.ErrLocked, stepup.ErrNotEnrolled, stepup.ErrPending} {
			if !errors.Is(err, known) {
				continue
			}
			o.Text = "Not run: " + known.Error() + "."
			if errors.Is(err, stepup.ErrNotEnrolled) || errors.Is(err, stepup.ErrPending) {
				o.Kind = KindError
			}
			outs := []Output{o}
			if lo, ok := errors.AsType[*stepup.LockedOut](err); ok {
				o.Text = "Not run: " + lo.Error() + "."
				outs[0] = o
				if !errors.Is(err, stepup.ErrLocked) {
					// This attempt locked it: the owner hears of it in
					// their DM, whoever is typing in their session.
					outs = append(outs, Output{Kind: KindMessage, Private: true, Text: LockoutNotice(lo)})
				}
			}
			return outs, nil
		}
		o.Kind, o.Text = KindError, "Not run: the code could not be checked."
		return []Output{o}, err
	}
	return b.advance(ctx, r, raw, e)
}

// LockoutNotice is what the owner is told when wrong codes for their
// account lock step-up: it may not have been them typing.
func LockoutNotice(lo *stepup.LockedOut) string {
	return fmt.Sprintf("Someone entered %d wrong codes for your account, so step-up is locked until %s. "+
		"If that was not you, someone may be using your Slack session: revoke everything with /agenthub revoke all, which works while step-up is locked, and tell your workspace admin.",
		max(lo.Failures, stepup.MaxFailures), lo.Until.UTC().Format("2006-01-02 15:04 UTC"))
}

// awaitOutbox waits, up to about two seconds, for the process that made
// r's last move to record it, and returns the request as it then is.
func (b *Broker) awaitOutbox(ctx context.Context, r Request, raw []byte) (Request, []byte, error) {
	for range 40 {
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return r, raw, ctx.Err()
		case <-t.C:
		}
		cur, curRaw, err := b.loadOwned(ctx, r.Principal, r.ID)
		if err != nil {
			return r, raw, err
		}
		if r, raw = cur, curRaw; len(r.Unrecorded) == 0 || b.outboxStale(r) {
			return r, raw, nil
		}
	}
	return r, raw, fmt.Errorf("broker: request %s: %w", r.ID, errOutbox)
}

// advance moves request r by event e and does what its new state asks:
// run the step, ask for step-up, or say what is still missing.
func (b *Broker) advance(ctx context.Context, r Request, raw []byte, e Event) ([]Output, error) {
	var (
		act  *agent.Action
		args agent.Args
	)
	if e.Type == EventApprove || e.Type == EventSecondApprove || e.Type == EventStepUpPassed {
		var err error
		if act, args, err = b.stepOf(r); err != nil {
			_, _, ferr := b.move(ctx, r, raw, Event{Type: EventFail, Result: "invalid_step"}, nil)
			out := Output{Kind: KindError, RequestID: r.ID, Text: "This request can no longer run: its stored step is not valid. Ask again."}
			return []Output{out}, errors.Join(err, ferr)
		}
	}
	moved, next, err := b.move(ctx, r, raw, e, args)
	if err != nil {
		return b.notMoved(ctx, r, raw, err)
	}
	base := Output{Kind: KindMessage, RequestID: moved.ID, Action: moved.Step.Action, Resource: moved.Resource.Name}
	switch moved.Status {
	case StatusApproved:
		if e.Type == EventApprove && e.Lifetime != policy.Once {
			// No grant from an approval of what was revoked or stopped
			// since it was asked (execute then cancels it).
			if told, stop, err := b.cancelIfRevoked(ctx, moved, next); stop {
				return append(told, planDropped(moved)...), err
			}
			b.createGrant(ctx, moved, act, e.Lifetime)
		}
		return b.execute(ctx, moved, next, act, args)
	case StatusAwaitingStepUp:
		if e.Type == EventApprove {
			return []Output{{Kind: KindStepUp, RequestID: moved.ID, Action: moved.Step.Action, Resource: moved.Resource.Name,
				Args: moved.Step.Args, ArgsHash: moved.ArgsHash,
				Rule: moved.Decision.Rule, Risk: moved.Decision.Risk.String(), Approvers: moved.Approvers, Text: stepUpText(moved),
				Factor: moved.Decision.SecondFactor()}}, nil
		}
		base.Text = "Your approval is recorded. It runs once " + moved.Principal.User + " has approved it and verified it's them."
	case StatusAwaitingSecond:
		base.Approvers = moved.Approvers
		base.Text = "Approved. It runs once one of " + strings.Join(moved.Approvers, ", ") + " approves it too."
		if e.Type == EventStepUpPassed {
			base.Text = "Verified. It runs once one of " + strings.Join(moved.Approvers, ", ") + " approves it too."
		}
	case StatusPending:
		base.Text = "Your approval is recorded. It runs once " + moved.Principal.User + " has approved it and verified it's them."
	case StatusDenied:
		base.Text = "Denied. Nothing was done."
		return append([]Output{base}, planDropped(moved)...), nil
	default:
		base.Text = fmt.Sprintf("This request is now %s.", moved.Status)
	}
	return []Output{base}, nil
}

// notMoved answers an event that did not move the request: someone else
// decided first, its time was up (then it is expired now), or the store or
// the audit trail failed.
func (b *Broker) notMoved(ctx context.Context, r Request, raw []byte, err error) ([]Output, error) {
	switch {
	case errors.Is(err, ErrNoRequest):
		return []Output{gone(r.ID)}, nil
	case errors.Is(err, ErrExpired):
		_, _, xerr := b.move(ctx, r, raw, Event{Type: EventExpire}, nil)
		if errors.Is(xerr, ErrIllegal) || errors.Is(xerr, ErrNoRequest) {
			xerr = nil // another process settled it first
		}
		out := Output{Kind: KindError, RequestID: r.ID, Text: "This request expired. Ask again."}
		return append([]Output{out}, planDropped(r)...), xerr
	case errors.Is(err, ErrNotAllowed):
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "Only the person who asked for this can decide it."}}, nil
	case errors.Is(err, ErrIllegal):
		if cur, _, lerr := b.loadOwned(ctx, r.Principal, r.ID); lerr == nil {
			r = cur
		}
		return []Output{{Kind: KindMessage, RequestID: r.ID, Text: fmt.Sprintf("This request was already decided (%s).", strings.ReplaceAll(string(r.Status), "_", " "))}}, nil
	case errors.Is(err, errUnrecorded):
		out := auditDown()
		out.RequestID = r.ID
		return []Output{out}, err
	}
	return []Output{{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: the request could not be updated."}}, err
}

// execute runs an approved, stored request exactly once: only the caller
// whose move to executing wins runs it. A step that succeeds goes on with
// the rest of its plan; one that does not ends it.
func (b *Broker) execute(ctx context.Context, r Request, raw []byte, act *agent.Action, args agent.Args) ([]Output, error) {
	if told, stop, err := b.cancelIfRevoked(ctx, r, raw); stop {
		return append(told, planDropped(r)...), err
	}
	r, raw, err := b.move(ctx, r, raw, Event{Type: EventStart}, nil)
	if err != nil {
		return b.notMoved(ctx, r, raw, err)
	}
	fctx, cancel := finishing(ctx)
	defer cancel()
	if out, stop, err := b.recheck(ctx, r, act, args); stop || err != nil {
		visibility(&out, r.Resource, r.Decision)
		_, _, ferr := b.move(fctx, r, raw, Event{Type: EventFail, Result: out.Text}, nil)
		return append([]Output{out}, planDropped(r)...), errors.Join(err, ferr)
	}
	out, ok, runErr := b.run(ctx, r.Principal, r.ID, act, args, r.Resource)
	visibility(&out, r.Resource, r.Decision)
	// Once the provider has answered, the outcome must reach the request
	// whatever became of the caller's context (finishing).
	e := Event{Type: EventFail, Result: clipResult(out.Text)}
	if ok {
		e.Type = EventSucceed
	}
	done, _, merr := b.move(fctx, r, raw, e, nil)
	if errors.Is(merr, ErrIllegal) {
		// Another process settled the request while the step ran (the
		// sweeper took it for interrupted, and told the owner): the
		// outcome is in the trail (run recorded it), the request stays
		// as that process left it, and the rest of the plan does not run.
		b.log.WarnContext(ctx, "a request was settled by another process while its step ran", "request_id", r.ID, "err", merr)
		outs := []Output{out}
		return outs, runErr
	}
	outs := []Output{out}
	if !ok {
		return append(outs, planDropped(r)...), errors.Join(runErr, merr)
	}
	// The rest of the plan goes on only from the request as it now stands:
	// a revocation while the step ran took it away, and a request another
	// process settled meanwhile (Recover, which told the owner) keeps it.
	if merr == nil && len(done.Rest) > 0 {
		more, perr := b.runPlan(ctx, done.asker(), done.Rest)
		outs = append(outs, more...)
		runErr = errors.Join(runErr, perr)
	}
	if merr == nil && runErr == nil {
		outs = b.report(ctx, done.asker(), outs)
	}
	return outs, errors.Join(runErr, merr)
}

// maxResult bounds the summary a finished request keeps.
const maxResult = 1000

func clipResult(s string) string {
	if len(s) <= maxResult {
		return s
	}
	cut := maxResult
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// planDropped tells the owner that the rest of r's plan will not run. It
// names no request, so that an adapter gives it to the owner whoever's
// click ended the request.
func planDropped(r Request) []Output {
	if len(r.Rest) == 0 {
		return nil
	}
	return []Output{{Kind: KindMessage,
		Text: fmt.Sprintf("I did not run the %d later step(s) of this request: ask again if you still want them.", len(r.Rest))}}
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
	failed := func(text, result string, err error) (Output, bool, error) {
		o := Output{Kind: KindError, RequestID: r.ID, Action: act.Name, Resource: r.Resource.Name, Text: text}
		fail := r.event(audit.ActionFailed, args)
		fail.Result = result
		return o, true, errors.Join(err, b.record(ctx, fail))
	}
	traits, err := b.traitsOf(ctx, r.asker())
	if err != nil {
		return failed("Nothing was done: I couldn't check who asked for this just now. Ask again in a moment.", "directory_unavailable", err)
	}
	d := b.policy.Evaluate(policy.Input{
		Principal: r.Principal.policy(traits), Action: act.Policy(), Resource: res, Args: args, Now: b.now(), Tainted: r.Step.Tainted != "",
	})
	if d.Err != nil {
		b.log.WarnContext(ctx, "policy condition failed", "request_id", r.ID, "rule", d.Rule, "err", d.Err)
	}
	out := Output{Kind: KindError, RequestID: r.ID, Action: act.Name, Resource: r.Resource.Name, Rule: d.Rule, Risk: d.Risk.String()}
	ev := r.event(audit.PolicyDecided, args)
	ev.Decision, ev.Rule = d.Effect.String(), d.Rule
	ev.Detail = map[string]string{"risk": d.Risk.String(), "at": "execution"}
	if err := b.record(ctx, ev); err != nil {
		out.Text = auditDown().Text
		return out, true, err
	}
	if covers(r, d) && d.Effect == policy.SecondApprover {
		// The second approver vouches for the step until it runs: they
		// must still be a member then, as when they clicked.
		second, err := b.traitsOf(ctx, asker{Principal: r.SecondBy})
		switch {
		case err != nil:
			return failed("Nothing was done: I couldn't check who gave the second approval just now. Ask again in a moment.", "directory_unavailable", err)
		case second.Guest || second.External:
			return failed("Not run: the second approval came from someone who is now a guest or outside this workspace. Ask again.", "approver_not_a_member", nil)
		}
	}
	if covers(r, d) {
		return Output{}, false, nil
	}
	if d.Effect == policy.Deny {
		out.Text = fmt.Sprintf("Not run: policy rule %q refuses it now: %s", d.Rule, d.Reason)
	} else {
		out.Text = fmt.Sprintf("Not run: policy rule %q now asks for more than this approval gave. Ask again to go through it.", d.Rule)
	}
	fail := r.event(audit.ActionFailed, args)
	fail.Rule, fail.Result = d.Rule, "policy_changed"
	return out, true, b.record(ctx, fail)
}

// covers reports whether what request r went through satisfies decision
// d: the owner's approval, and step-up and a second approval where its
// decision asked for them; or, for a request that nobody approved (the
// policy allowed it, or a grant stood in, when its connection landed),
// what stood in then.
func covers(r Request, d policy.Decision) bool {
	switch {
	case d.Effect == policy.Allow:
		return true
	case !d.Effect.NeedsApproval():
		return false // deny, or no usable answer
	case r.Grant != "":
		// Where a grant may still stand in for an approval.
		return d.Effect == policy.Approve && d.GrantOK && !d.StepUp && d.Risk < policy.High
	case !r.Decision.Effect.NeedsApproval():
		return false // nobody approved it
	case d.StepUp && !r.Decision.StepUp:
		return false
	case d.Effect == policy.SecondApprover:
		return !r.SecondBy.IsZero() && slices.Contains(d.SecondApprover, r.SecondBy.User)
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
	ev := r.event(audit.ActionFailed, args)
	ev.Result, ev.Detail = "resource_changed", map[string]string{"resource_now": now.Name}
	out.Text = "Not run: " + r.Resource.Name + " changed after you approved (for example new commits or another base branch). Ask again to approve it as it is now."
	return now, out, true, b.record(ctx, ev)
}

// reject refuses someone who may not act on request r, on the record
// (counted: see Refuse).
func (b *Broker) reject(ctx context.Context, actor Principal, r Request, op string) ([]Output, error) {
	err := b.Refuse(ctx, Refusal{Actor: actor.String(), Kind: audit.InteractionRejected, Reason: "not_owner", Op: op,
		RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name})
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
	// On the record first: a grant stands in for approvals, so it may not
	// exist unrecorded, even for a process that dies right after writing
	// it.
	ev := r.event(audit.GrantCreated, nil)
	ev.Decision, ev.Detail = l.String(), map[string]string{"grant": g.ID, "expires": g.Expires.UTC().Format("2006-01-02T15:04:05Z")}
	if err := b.record(ctx, ev); err != nil {
		b.log.ErrorContext(ctx, "record grant", "request_id", r.ID, "err", err)
		return
	}
	value, err := json.Marshal(g)
	if err == nil {
		err = b.store.Put(ctx, grantKey(r.Principal, g.ID), value, ttl)
	}
	if err != nil {
		// The trail says created; nothing stands in for anything.
		b.log.ErrorContext(ctx, "store grant", "request_id", r.ID, "grant", g.ID, "err", err)
		return
	}
	// A revoke cancels requests first and deletes grants second. Reading
	// the request after writing the grant closes the race with it: either
	// the revoke's deletion comes after this write, or this read sees the
	// cancellation and takes the grant back.
	if cur, _, lerr := b.loadOwned(ctx, r.Principal, r.ID); lerr != nil || cur.Status == StatusCanceled {
		if derr := b.store.Delete(ctx, grantKey(r.Principal, g.ID)); derr != nil {
			b.log.ErrorContext(ctx, "delete grant of a canceled request", "grant", g.ID, "err", derr)
			return
		}
		back := r.event(audit.GrantRevoked, nil)
		back.Result, back.Detail = "request_canceled", map[string]string{"grant": g.ID}
		if err := b.record(ctx, back); err != nil {
			b.log.ErrorContext(ctx, "record grant taken back", "grant", g.ID, "err", err)
		}
	}
}

// event is an audit event about a request.
func (r Request) event(kind audit.Kind, args agent.Args) audit.Event {
	return audit.Event{Kind: kind, Actor: r.Principal.String(), Agent: agentOf(r.Step.Action), Action: r.Step.Action,
		Resource: r.Resource.Name, RequestID: r.ID, Rule: r.Decision.Rule, Args: args}
}

func agentOf(action string) string {
	if i := strings.IndexByte(action, '.'); i >= 0 {
		return action[:i]
	}
	return action
}

func gone(id string) Output {
	return Output{Kind: KindError, RequestID: id, Text: "That request no longer exists: it may have expired. Ask again."}
}

func stepUpText(r Request) string {
	text := fmt.Sprintf("Approved. %s on %s also needs a fresh code from your authenticator: enter it to run it.", r.Step.Action, r.Resource.Name)
	switch r.Decision.SecondFactor() {
	case policy.FactorOIDC:
		text = fmt.Sprintf("Approved. %s on %s also needs you to sign in again at your identity provider: press Verify it's you to run it.", r.Step.Action, r.Resource.Name)
	case policy.FactorCIBA:
		text = fmt.Sprintf("Approved. %s on %s also needs you to approve it on your phone: it runs once you do.", r.Step.Action, r.Resource.Name)
	}
	if r.secondMissing() {
		text += " It also needs the approval of one of: " + strings.Join(r.Approvers, ", ") + "."
	}
	return text
}

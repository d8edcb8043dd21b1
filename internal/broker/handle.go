package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

// Message is something a person said to the bot.
type Message struct {
	Principal string // "T1:U1"
	Text      string
}

// Handle plans the message and takes each step as far as it can go now:
// run it, ask to connect, ask for approval, or refuse. Steps are taken in
// order; when one cannot finish now, the later ones are not started, since
// they may depend on it.
//
// The outputs are for the person; a non-nil error is for the operator's log
// (the store or audit trail failed) and comes with an output saying that
// nothing was done.
func (b *Broker) Handle(ctx context.Context, m Message) ([]Output, error) {
	if err := validPrincipal(m.Principal); err != nil {
		return []Output{errorOut("I can't tell who you are, so I did nothing.")}, err
	}
	plan, err := b.planner.Plan(ctx, planner.Request{Principal: m.Principal, Text: m.Text, Now: b.now(), Location: b.loc})
	if err != nil {
		return []Output{errorOut("I couldn't plan that, so I did nothing.")}, fmt.Errorf("broker: plan: %w", err)
	}
	if len(plan.Steps) == 0 {
		return []Output{message(plan.Reply)}, nil
	}
	var outs []Output
	for i, s := range plan.Steps {
		o, done, err := b.handleStep(ctx, m.Principal, s)
		outs = append(outs, o...)
		if err != nil {
			return outs, err
		}
		if !done && i < len(plan.Steps)-1 {
			outs = append(outs, message(fmt.Sprintf("I did not start the %d step(s) after this one: ask again once it is done.", len(plan.Steps)-1-i)))
			break
		}
	}
	return outs, nil
}

// handleStep takes one step as far as it can go. done reports whether it
// finished (ran, successfully or not) so that the next step may start.
func (b *Broker) handleStep(ctx context.Context, principal string, s planner.Step) (outs []Output, done bool, err error) {
	act, ok := b.registry.Lookup(s.Action)
	if !ok {
		return []Output{errorOut(fmt.Sprintf("I don't know how to do %s.", s.Action))}, false, nil
	}
	args, err := b.registry.Validate(s.Action, s.Args)
	if err != nil {
		if ve, ok := errors.AsType[*agent.ValidationError](err); ok {
			return []Output{errorOut(ve.Error() + ". Nothing was done.")}, false, nil
		}
		return []Output{errorOut("Those arguments were refused. Nothing was done.")}, false, nil
	}
	id, err := b.newID()
	if err != nil {
		return []Output{errorOut("Nothing was done: an internal error occurred.")}, false, err
	}
	base := audit.Event{Actor: principal, Agent: act.Agent, Action: act.Name, RequestID: id, Args: args}
	ev := base
	ev.Kind = audit.StepProposed
	if err := b.record(ctx, ev); err != nil {
		return []Output{auditDown()}, false, err
	}

	// A step needs its connection before the policy is asked. When the
	// step's resource is looked up, the lookup's lease checks the
	// connection (and leaseProblem answers as below), so a read of it here
	// would only repeat that.
	if act.Resource == nil {
		conn, err := b.vault.Connection(ctx, principal, act.Service)
		switch {
		case errors.Is(err, vault.ErrNotConnected), err == nil && conn.Status != vault.StatusActive:
			return []Output{connectOut(act)}, false, nil
		case err != nil:
			return []Output{errorOut("Nothing was done: the connection could not be checked.")}, false, fmt.Errorf("broker: check connection: %w", err)
		}
	}

	res, err := b.discover(ctx, principal, act, args, id)
	if err != nil {
		if o, ok := leaseProblem(act, err); ok {
			return []Output{o}, false, nil
		}
		if pe, ok := errors.AsType[*agent.ProviderError](err); ok {
			return []Output{errorOut(pe.Error() + ". Nothing was done.")}, false, nil
		}
		return []Output{errorOut("Nothing was done: I could not look up what this step touches.")}, false, fmt.Errorf("broker: find resource of %s: %w", act.Name, err)
	}

	d := b.policy.Evaluate(policy.Input{
		Principal: policyPrincipal(principal), Action: act.Policy(), Resource: res, Args: args, Now: b.now(),
	})
	if d.Err != nil {
		b.log.WarnContext(ctx, "policy condition failed", "request_id", id, "rule", d.Rule, "err", d.Err)
	}
	// A grant stands in for the approval only where the policy says so,
	// and never for a step that needs step-up or is high risk.
	var grant *Grant
	if d.Effect == policy.Approve && d.GrantOK && !d.StepUp && d.Risk < policy.High {
		grant, err = b.findGrant(ctx, principal, act.Name, res.Name)
		if err != nil {
			return []Output{errorOut("Nothing was done: an internal error occurred.")}, false, err
		}
	}
	ev = base
	ev.Kind, ev.Resource, ev.Decision, ev.Rule = audit.PolicyDecided, res.Name, d.Effect.String(), d.Rule
	ev.Detail = map[string]string{"risk": d.Risk.String()}
	if grant != nil {
		ev.Detail["grant"] = grant.ID
	}
	if err := b.record(ctx, ev); err != nil {
		return []Output{auditDown()}, false, err
	}

	decided := Output{RequestID: id, Action: act.Name, Resource: res.Name, Rule: d.Rule, Risk: d.Risk.String()}
	switch {
	case d.Effect == policy.Allow, grant != nil:
		o, _, err := b.run(ctx, principal, id, act, args, res.Name)
		return []Output{o}, true, err
	case d.Effect == policy.Deny:
		o := decided
		o.Kind, o.Text = KindError, fmt.Sprintf("Refused by policy rule %q: %s", d.Rule, d.Reason)
		return []Output{o}, false, nil
	case d.Effect == policy.Approve, d.Effect == policy.StepUp, d.Effect == policy.SecondApprover:
		o, err := b.newRequest(ctx, principal, id, act, args, res, d)
		if err != nil {
			return []Output{errorOut("Nothing was done: the request could not be stored.")}, false, err
		}
		return []Output{o}, false, nil
	default:
		o := decided
		o.Kind, o.Text = KindError, "Refused: the policy gave no usable answer."
		return []Output{o}, false, nil
	}
}

// discover finds the step's resource, through a short lease whose client
// may only read.
func (b *Broker) discover(ctx context.Context, principal string, act *agent.Action, args agent.Args, id string) (policy.Resource, error) {
	if act.Resource == nil {
		return act.FindResource(ctx, nil, args)
	}
	lease, err := b.vault.Lease(ctx, vault.LeaseRequest{
		Principal: principal, Service: act.Service, Scopes: act.Scopes, RequestID: id, TTL: discoveryLease,
	})
	if err != nil {
		return policy.Resource{}, err
	}
	defer func() {
		if err := lease.Release(ctx); err != nil {
			b.log.WarnContext(ctx, "release discovery lease", "request_id", id, "err", err)
		}
	}()
	c := lease.Client()
	ro := *c
	ro.Transport = readOnly{next: c.Transport}
	return act.FindResource(ctx, &ro, args)
}

// errReadOnly refuses writes during resource discovery.
var errReadOnly = errors.New("broker: resource discovery may only read")

// readOnly lets only reads through: finding a resource must never change
// it, whatever the action's code does. Reads are GET and HEAD, and the
// Slack Web API's read methods, which are POSTs to a method name ending in
// .list, .info or .history (conversations.list, users.info, …).
type readOnly struct{ next http.RoundTripper }

func isRead(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodPost:
		method := req.URL.Path[strings.LastIndexByte(req.URL.Path, '/')+1:]
		return strings.Count(method, ".") == 1 &&
			(strings.HasSuffix(method, ".list") || strings.HasSuffix(method, ".info") || strings.HasSuffix(method, ".history"))
	}
	return false
}

func (r readOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isRead(req) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errReadOnly
	}
	return r.next.RoundTrip(req)
}

// newRequest stores a pending request and returns the approval output.
func (b *Broker) newRequest(ctx context.Context, principal, id string, act *agent.Action, args agent.Args, res policy.Resource, d policy.Decision) (Output, error) {
	hash, raw, err := canonicalHash(act.Name, args)
	if err != nil {
		return Output{}, err
	}
	now := b.now()
	r := Request{
		V: 1, ID: id, Principal: principal,
		Step: Step{Action: act.Name, Args: raw}, ArgsHash: hash,
		Service: act.Service, Scopes: act.Scopes, Resource: res,
		Decision: StoredDecision{Effect: d.Effect, Rule: d.Rule, Reason: d.Reason, Risk: d.Risk,
			StepUp:  d.StepUp || d.Effect == policy.StepUp || d.Effect == policy.SecondApprover,
			GrantOK: d.GrantOK, Lifetimes: d.Lifetimes},
		Status: StatusPending, Created: now, Expires: now.Add(b.requestTTL),
	}
	if d.Effect == policy.SecondApprover {
		r.Approvers = slices.Clone(d.SecondApprover)
	}
	value, err := json.Marshal(r)
	if err != nil {
		return Output{}, fmt.Errorf("broker: encode request: %w", err)
	}
	// The pointer first: a request never exists without a way to find it.
	if err := b.store.Create(ctx, ownerKey(id), []byte(principal), b.requestTTL); err != nil {
		return Output{}, fmt.Errorf("broker: store request owner: %w", err)
	}
	if err := b.store.Create(ctx, requestKey(principal, id), value, b.requestTTL); err != nil {
		return Output{}, fmt.Errorf("broker: store request: %w", err)
	}
	text := fmt.Sprintf("Approve %s on %s with %s? %s (policy rule %q, %s risk)",
		act.Name, res.Name, raw, d.Reason, d.Rule, d.Risk)
	if r.Decision.StepUp {
		text += " After you approve, you will be asked for a code from your authenticator."
	}
	if d.Effect == policy.SecondApprover {
		text += " It also needs the approval of one of: " + strings.Join(d.SecondApprover, ", ") + "."
	}
	return Output{
		Kind: KindApproval, Text: text, Choices: choicesFor(d.Lifetimes, d.Risk),
		RequestID: id, Action: act.Name, Resource: res.Name, Rule: d.Rule, Risk: d.Risk.String(),
		Approvers: r.Approvers,
	}, nil
}

// findGrant returns the live grant for action on resource, or nil.
func (b *Broker) findGrant(ctx context.Context, principal, action, resource string) (*Grant, error) {
	it, err := b.store.Get(ctx, grantKey(principal, grantID(action, resource)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: read grant: %w", err)
	}
	var g Grant
	if err := json.Unmarshal(it.Value, &g); err != nil {
		return nil, fmt.Errorf("broker: decode grant: %w", err)
	}
	if g.Principal != principal || g.Action != action || g.Resource != resource || !b.now().Before(g.Expires) {
		return nil, nil
	}
	return &g, nil
}

// run executes one authorized step under a fresh lease and records the
// outcome. ok reports whether the action succeeded.
func (b *Broker) run(ctx context.Context, principal, id string, act *agent.Action, args agent.Args, resource string) (out Output, ok bool, err error) {
	out = Output{RequestID: id, Action: act.Name, Resource: resource}
	lease, err := b.vault.Lease(ctx, vault.LeaseRequest{
		Principal: principal, Service: act.Service, Scopes: act.Scopes,
		Resource: resource, RequestID: id, TTL: executeLease,
	})
	if err != nil {
		if o, ok := leaseProblem(act, err); ok {
			o.RequestID, o.Resource = id, resource
			return o, false, nil
		}
		out.Kind, out.Text = KindError, "Nothing was done: the provider call could not be authorized."
		return out, false, fmt.Errorf("broker: lease for %s: %w", id, err)
	}
	result, xerr := act.Execute(ctx, lease.Client(), args)
	// Once the provider has answered (or the deadline cut it short), the
	// outcome must reach the trail and the request whatever became of the
	// caller's context: an adapter's deadline must not leave a step that
	// ran unrecorded, or its request stuck in executing.
	ctx, cancel := finishing(ctx)
	defer cancel()
	if err := lease.Release(ctx); err != nil {
		b.log.WarnContext(ctx, "release lease", "request_id", id, "err", err)
	}
	ev := audit.Event{Kind: audit.ActionSucceeded, Actor: principal, Agent: act.Agent, Action: act.Name,
		Resource: resource, RequestID: id, Args: args, Result: "succeeded"}
	if xerr != nil {
		ev.Kind, ev.Result = audit.ActionFailed, failureKind(xerr)
		out.Kind, out.Text = KindError, failureText(act, xerr)
		b.log.InfoContext(ctx, "action failed", "request_id", id, "action", act.Name, "err", xerr)
	} else {
		out.Kind, out.Text, out.Data = KindResult, result.Summary, result.Data
	}
	if err := b.record(ctx, ev); err != nil {
		// The action has happened; the trail is missing its outcome, which
		// the operator must know about.
		return out, xerr == nil, err
	}
	return out, xerr == nil, nil
}

// leaseProblem turns a connection problem into the output that fixes it.
// finishTimeout bounds the bookkeeping after a provider call.
const finishTimeout = 10 * time.Second

// finishing is ctx without its cancellation, bounded by finishTimeout.
func finishing(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

func leaseProblem(act *agent.Action, err error) (Output, bool) {
	switch {
	case errors.Is(err, vault.ErrNotConnected), errors.Is(err, vault.ErrLeaseRevoked):
		return connectOut(act), true
	case errors.Is(err, vault.ErrReconnect):
		o := connectOut(act)
		o.Text = fmt.Sprintf("Your %s connection expired. Connect it again, then ask again.", act.Service)
		return o, true
	case errors.Is(err, vault.ErrInsufficientScope):
		o := connectOut(act)
		o.Text = fmt.Sprintf("Your %s connection lacks the permission %s needs (%s). Connect it again, then ask again.",
			act.Service, act.Name, strings.Join(act.Scopes, ", "))
		return o, true
	}
	return Output{}, false
}

func connectOut(act *agent.Action) Output {
	return Output{Kind: KindConnect, Service: act.Service, Action: act.Name,
		Text: fmt.Sprintf("%s needs your %s account. Connect it (/agenthub connect %s), then ask again.", act.Name, act.Service, act.Service)}
}

func auditDown() Output {
	return errorOut("Nothing was done: the audit trail could not record this, and nothing runs unrecorded.")
}

// failureKind classifies a failed execution for the audit trail.
func failureKind(err error) string {
	switch {
	case errors.Is(err, vault.ErrLeaseRevoked), errors.Is(err, vault.ErrNotConnected):
		return "revoked"
	case errors.Is(err, vault.ErrLeaseExpired):
		return "lease_expired"
	}
	if pe, ok := errors.AsType[*agent.ProviderError](err); ok {
		return pe.Kind.String()
	}
	return "failed"
}

// failureText says why an execution failed without quoting anything that
// could carry a credential: vault errors and provider errors are written to
// be shown; anything else is described generically.
func failureText(act *agent.Action, err error) string {
	switch {
	case errors.Is(err, vault.ErrLeaseRevoked), errors.Is(err, vault.ErrNotConnected):
		return fmt.Sprintf("%s was stopped: your %s connection was revoked.", act.Name, act.Service)
	case errors.Is(err, vault.ErrLeaseExpired):
		return fmt.Sprintf("%s was stopped: its lease expired.", act.Name)
	}
	if pe, ok := errors.AsType[*agent.ProviderError](err); ok {
		return pe.Error()
	}
	return fmt.Sprintf("%s failed.", act.Name)
}

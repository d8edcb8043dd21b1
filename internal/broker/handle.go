package broker

import (
	"cmp"
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
	Principal Principal
	Traits    Traits // what the adapter knows of them, for the policy
	Text      string
	// Conversation names the conversation it belongs to (a Slack thread:
	// channel and thread ts), for a planner that remembers one.
	Conversation string
	// Progress, when set, hears of the work as it happens, before the
	// outputs: each read the planner runs, as it starts and as it ends.
	// It is called on Handle's goroutine and should be quick.
	Progress func(context.Context, Progress)
}

// Progress is a piece of the work on a message, as it happens.
type Progress struct {
	ID     string // the same for a piece's start and its end
	Title  string // what is done, naming a resource only when it is public
	Status string // ProgressRunning, ProgressDone or ProgressFailed
}

// Progress statuses.
const (
	ProgressRunning = "running"
	ProgressDone    = "done"
	ProgressFailed  = "failed"
)

// progressTitle says what a read does, for a thread others may read: the
// resource is named only when it is public, as its results would be.
func progressTitle(act *agent.Action, res policy.Resource, d StoredDecision) string {
	var o Output
	visibility(&o, res, d)
	if o.Private || o.ByRule {
		return fmt.Sprintf("Reading from %s (%s)", act.Service, act.Name)
	}
	return fmt.Sprintf("Reading %s (%s)", res.Name, act.Name)
}

// Handle plans the message and takes its steps in order, each as far as it
// can go now: run it, ask to connect, ask for approval, or refuse. A step
// that cannot finish now is stored as a request with the rest of the plan,
// which goes on from the store once it has run; a step that fails or is
// refused ends the plan.
//
// The outputs are for the person; a non-nil error is for the operator's log
// (the store or audit trail failed) and comes with an output saying that
// nothing was done.
func (b *Broker) Handle(ctx context.Context, m Message) ([]Output, error) {
	if err := validPrincipal(m.Principal); err != nil {
		return []Output{errorOut("I can't tell who you are, so I did nothing.")}, err
	}
	// Read before planning, which may take a model seconds: a revocation
	// meanwhile stops the plan too.
	marks, err := b.revocationMarks(ctx, m.Principal)
	if err != nil {
		return []Output{errorOut("Nothing was done: an internal error occurred.")}, err
	}
	who := asker{Principal: m.Principal, traits: m.Traits, revoked: planMarks(marks, m.Conversation), conversation: m.Conversation}
	plan, err := b.planner.Plan(ctx, planner.Request{Principal: m.Principal.String(), Text: m.Text, Now: b.now(), Location: b.loc,
		Conversation: m.Conversation, Read: b.reader(who, m.Progress)})
	if err != nil {
		return []Output{errorOut("I couldn't plan that, so I did nothing.")}, fmt.Errorf("broker: plan: %w", err)
	}
	if len(plan.Steps) == 0 {
		// An answer, from what the planner read now or earlier in the
		// conversation: for the person alone if any of it was not public.
		// Not if they stopped the conversation meanwhile.
		if why, err := b.interrupted(ctx, who, ""); why != "" || err != nil {
			return []Output{message(interruptedText(why, err, 0))}, err
		}
		o := message(plan.Reply)
		o.Private, o.ByRule = plan.Private, plan.ByRule
		if plan.Reads > 0 {
			return []Output{o}, nil
		}
		err := b.Refuse(ctx, Refusal{Actor: m.Principal.String(), Kind: audit.RequestRefused, Reason: "no_plan", Op: "message"})
		return []Output{o}, err
	}
	refusal := Refusal{Actor: m.Principal.String(), Kind: audit.RequestRefused, Reason: "plan_too_big", Op: "message"}
	if len(plan.Steps) > MaxPlanSteps {
		return []Output{errorOut(fmt.Sprintf("That is %d steps; I take at most %d at a time. Nothing was done.", len(plan.Steps), MaxPlanSteps))},
			b.Refuse(ctx, refusal)
	}
	steps := make([]Step, 0, len(plan.Steps))
	size := 0
	for _, s := range plan.Steps {
		raw, err := json.Marshal(s.Args)
		if err != nil {
			return []Output{errorOut("I couldn't plan that, so I did nothing.")}, fmt.Errorf("broker: encode planned args: %w", err)
		}
		size += len(s.Action) + len(raw)
		steps = append(steps, Step{Action: s.Action, Args: raw, Tainted: clipTaint(s.Tainted)})
	}
	if size > maxPlanBytes {
		// The rest of a plan is stored with its request: a plan is kept
		// small enough that no record of it strains the store.
		return []Output{errorOut("That plan is too long to keep while it waits for you. Nothing was done.")}, b.Refuse(ctx, refusal)
	}
	who.report, who.private, who.byRule = plan.Report, plan.Private, plan.ByRule
	outs, err := b.runPlan(ctx, who, steps)
	if err == nil {
		outs = b.report(ctx, who, outs)
	}
	if plan.Note != "" {
		outs = append([]Output{message(plan.Note)}, outs...)
	}
	return outs, err
}

// maxReadData bounds a read's result as the planner gets it, and
// maxOutcomeData each result of a plan's steps as its report gets it.
const (
	maxReadData    = 16 << 10
	maxOutcomeData = 4 << 10
)

// reportTimeout bounds the planner's report of a plan's outcomes.
const reportTimeout = 20 * time.Second

// report adds the planner's reply to outs, what became of steps of p's
// plan, when the planner asked to write it (Plan.Report), some step ran,
// and the conversation was not stopped meanwhile. The reply is as
// private as anything it drew on. A planner that cannot write it leaves
// the outcomes to speak for themselves.
func (b *Broker) report(ctx context.Context, p asker, outs []Output) []Output {
	reporter, ok := b.planner.(planner.Reporter)
	if !p.report || !ok {
		return outs
	}
	var (
		outcomes = make([]planner.Outcome, 0, len(outs))
		ran      bool
		private  = p.private
		byRule   = p.byRule
	)
	for _, o := range outs {
		oc := planner.Outcome{Action: o.Action, Resource: o.Resource, Text: o.Text, State: stateOf(o.Kind), Private: o.Private, ByRule: o.ByRule}
		if o.Kind == KindResult {
			ran = true
			if data, err := json.Marshal(o.Data); err == nil && o.Data != nil {
				if len(data) > maxOutcomeData {
					data = append(data[:maxOutcomeData:maxOutcomeData], []byte("…(truncated)")...)
				}
				oc.Data = string(data)
			}
		}
		private, byRule = private || o.Private, byRule || o.ByRule
		outcomes = append(outcomes, oc)
	}
	if !ran {
		return outs
	}
	if why, err := b.interrupted(ctx, p, ""); why != "" || err != nil {
		return outs
	}
	// The report is the least of what is owed: it has a short deadline,
	// and at most a third of the caller's time left, so that the outcomes
	// themselves are delivered whatever the model does.
	budget := reportTimeout
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)/3)
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	rep, err := reporter.Report(rctx, planner.Request{Principal: p.String(), Now: b.now(), Location: b.loc, Conversation: p.conversation}, outcomes)
	if err != nil || rep.Reply == "" {
		b.log.InfoContext(ctx, "no report of the plan's outcomes", "err", err)
		return outs
	}
	o := message(rep.Reply)
	o.Private, o.ByRule = private || rep.Private, byRule || rep.ByRule
	return append(outs, o)
}

// stateOf says what became of a step whose output is of kind k, for its
// planner.
func stateOf(k Kind) string {
	switch k {
	case KindResult:
		return planner.StateRan
	case KindApproval:
		return "waits for the person's approval"
	case KindStepUp:
		return "waits for the person's second factor"
	case KindConnect:
		return "waits for the person to connect the service"
	case KindError:
		return "failed or was refused"
	}
	return "a note"
}

// reader runs a planner's read step for p now, as every step runs: on the
// record, through the policy, and only when the policy (or a grant) lets
// it run without asking. A write is never run this way; a read the policy
// does not let run at once is not run, and the planner proposes it.
func (b *Broker) reader(p asker, progress func(context.Context, Progress)) func(context.Context, planner.Step) (planner.ReadResult, error) {
	if progress == nil {
		progress = func(context.Context, Progress) {}
	}
	return func(ctx context.Context, s planner.Step) (planner.ReadResult, error) {
		act, ok := b.registry.Lookup(s.Action)
		if !ok || act.Write {
			return planner.ReadResult{Why: "only reads run before the plan is proposed"}, nil
		}
		args, err := b.registry.Validate(s.Action, s.Args)
		if err != nil {
			return planner.ReadResult{Why: "invalid arguments"}, nil
		}
		if why, err := b.interrupted(ctx, p, act.Service); why != "" || err != nil {
			return planner.ReadResult{Why: "the person " + why + " it"}, err
		}
		id, err := b.newID()
		if err != nil {
			return planner.ReadResult{}, err
		}
		ev := audit.Event{Kind: audit.StepProposed, Actor: p.String(), Agent: act.Agent, Action: act.Name, RequestID: id, Args: args,
			Detail: map[string]string{"by": "planner_read"}}
		if s.Tainted != "" {
			ev.Detail["tainted"] = clipTaint(s.Tainted)
		}
		if err := b.record(ctx, ev); err != nil {
			return planner.ReadResult{}, err
		}
		ans, d, _, err := b.evaluate(ctx, p, id, act, args, s.Tainted, "planner_read")
		switch {
		case errors.Is(err, errNeedsConnection):
			return planner.ReadResult{Why: "the " + act.Service + " connection is needed first"}, nil
		case errors.Is(err, errTold):
			return planner.ReadResult{Why: "the provider refused it"}, nil
		case err != nil:
			return planner.ReadResult{}, err
		case d.Effect != policy.Allow && ans.Grant == "":
			return planner.ReadResult{Why: "it needs the person's approval"}, nil
		}
		step := Progress{ID: id, Title: progressTitle(act, ans.Resource, ans.Decision), Status: ProgressRunning}
		progress(ctx, step)
		o, ok, err := b.run(ctx, p.Principal, id, act, args, ans.Resource)
		if step.Status = ProgressDone; !ok {
			step.Status = ProgressFailed
		}
		progress(ctx, step)
		if !ok {
			return planner.ReadResult{Why: "it failed"}, err
		}
		visibility(&o, ans.Resource, ans.Decision)
		data, merr := json.Marshal(map[string]any{"summary": o.Text, "data": o.Data})
		if merr != nil {
			return planner.ReadResult{}, merr
		}
		if len(data) > maxReadData {
			data = append(data[:maxReadData:maxReadData], []byte("…(truncated)")...)
		}
		return planner.ReadResult{Ran: true, Data: string(data), Source: act.Name + " on " + ans.Resource.Name, Private: o.Private, ByRule: o.ByRule}, err
	}
}

// clipTaint bounds what names a step's untrusted source: it is shown on the
// approval card and kept in the audit trail.
func clipTaint(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// Bounds of a plan. A plan is a person's request, and its steps after the
// first are stored with the request that waits: so many steps, or so much
// in them, is more than a person asks at once, and is refused whole.
const (
	MaxPlanSteps = 10
	maxPlanBytes = 256 << 10
)

// stepOutcome is how far handleStep took a step.
type stepOutcome int

const (
	stepDone    stepOutcome = iota // it ran and succeeded: the next may start
	stepWaiting                    // stored as a request, with the steps after it
	stepStopped                    // refused or failed: the plan ends here
)

// asker is the principal a plan is for, with their traits, their
// revocation marks when the plan began and the conversation it is of.
type asker struct {
	Principal
	traits       Traits
	revoked      map[string]string
	conversation string
	report       bool // the planner writes the reply (planner.Plan.Report)
	// private, byRule: the plan drew on something not public (or public
	// to the channel by a rule only): so does its report.
	private, byRule bool
}

// asker is the request's owner as its plan began.
func (r Request) asker() asker {
	return asker{r.Principal, r.Traits, r.Revoked, r.Conversation, r.Report, r.PlanPrivate, r.PlanByRule}
}

// interruptedText tells the person why a plan stopped with left steps not
// started (why as interrupted returns it, or err if that failed).
func interruptedText(why string, err error, left int) string {
	switch {
	case err != nil && left == 0:
		return "I could not check that you have not revoked access or stopped this meanwhile, so I did nothing."
	case err != nil:
		return fmt.Sprintf("I could not check that you have not revoked access or stopped this meanwhile, so I did not start the %d step(s) left.", left)
	case why == whyStopped && left == 0:
		return "You stopped this conversation, so I dropped what I was preparing."
	case why == whyStopped:
		return fmt.Sprintf("You stopped this conversation, so I did not start the %d step(s) left.", left)
	case left == 0:
		return "You revoked access while I worked on this, so I did nothing."
	}
	return fmt.Sprintf("You revoked access while I worked on this, so I did not start the %d step(s) left.", left)
}

// runPlan takes steps in order until one does not finish now. A step
// whose service, or everything, the asker revoked since the plan began
// does not start, nor any after it.
func (b *Broker) runPlan(ctx context.Context, p asker, steps []Step) ([]Output, error) {
	var outs []Output
	for i, s := range steps {
		service := ""
		if act, ok := b.registry.Lookup(s.Action); ok {
			service = act.Service
		}
		if why, err := b.interrupted(ctx, p, service); why != "" || err != nil {
			return append(outs, message(interruptedText(why, err, len(steps)-i))), err
		}
		o, outcome, err := b.handleStep(ctx, p, s, steps[i+1:])
		if err == nil && outcome == stepWaiting {
			// A revocation that listed the asker's requests just before
			// this one was stored did not cancel it.
			var canceled bool
			if o, canceled, err = b.keepUnlessRevoked(ctx, p, service, o); canceled {
				outcome = stepStopped
			}
		}
		outs = append(outs, o...)
		if err != nil {
			return outs, err
		}
		if outcome == stepDone {
			continue
		}
		if later := len(steps) - 1 - i; later > 0 && outcome == stepWaiting {
			outs = append(outs, message(fmt.Sprintf("The %d step(s) after this one will follow once it has run.", later)))
		} else if later > 0 {
			outs = append(outs, message(fmt.Sprintf("I did not start the %d step(s) after this one.", later)))
		}
		return outs, nil
	}
	return outs, nil
}

// keepUnlessRevoked takes the outputs of a plan's step of service just
// stored as a request (its one output names it), and cancels the request
// if service was revoked since the plan began. The request is read only
// then: it holds the plan's marks and service, which the caller has.
func (b *Broker) keepUnlessRevoked(ctx context.Context, p asker, service string, outs []Output) ([]Output, bool, error) {
	if why, err := b.interrupted(ctx, p, service); err == nil && why == "" {
		return outs, false, nil
	}
	r, raw, err := b.loadOwned(ctx, p.Principal, outs[0].RequestID)
	if err != nil {
		return outs, false, err
	}
	told, stop, err := b.cancelIfRevoked(ctx, r, raw)
	if !stop {
		return outs, false, err
	}
	return told, true, err
}

// handleStep takes one step as far as it can go. rest are the plan's steps
// after it, which a stored request keeps.
func (b *Broker) handleStep(ctx context.Context, p asker, s Step, rest []Step) ([]Output, stepOutcome, error) {
	refused := Refusal{Actor: p.String(), Kind: audit.RequestRefused, Op: "message", Action: s.Action}
	act, ok := b.registry.Lookup(s.Action)
	if !ok {
		refused.Reason, refused.Action = "unknown_action", ""
		return []Output{errorOut(fmt.Sprintf("I don't know how to do %s.", s.Action))}, stepStopped, b.Refuse(ctx, refused)
	}
	raw, err := decodeArgs(s.Args)
	if err == nil {
		var args agent.Args
		if args, err = b.registry.Validate(s.Action, raw); err == nil {
			return b.proposeStep(ctx, p, act, args, s.Tainted, rest)
		}
	}
	refused.Reason = "invalid_arguments"
	rerr := b.Refuse(ctx, refused)
	if ve, ok := errors.AsType[*agent.ValidationError](err); ok {
		return []Output{errorOut(ve.Error() + ". Nothing was done.")}, stepStopped, rerr
	}
	return []Output{errorOut("Those arguments were refused. Nothing was done.")}, stepStopped, rerr
}

// proposeStep records a valid step and takes it on: run it now if the
// policy (or a grant) allows, or store it as a request.
func (b *Broker) proposeStep(ctx context.Context, p asker, act *agent.Action, args agent.Args, tainted string, rest []Step) ([]Output, stepOutcome, error) {
	id, err := b.newID()
	if err != nil {
		return []Output{errorOut("Nothing was done: an internal error occurred.")}, stepStopped, err
	}
	ev := audit.Event{Kind: audit.StepProposed, Actor: p.String(), Agent: act.Agent, Action: act.Name, RequestID: id, Args: args}
	if tainted != "" {
		ev.Detail = map[string]string{"tainted": tainted}
	}
	if err := b.record(ctx, ev); err != nil {
		return []Output{auditDown()}, stepStopped, err
	}
	ans, d, outs, err := b.evaluate(ctx, p, id, act, args, tainted, "")
	switch {
	case errors.Is(err, errNeedsConnection):
		r, err := b.newRequest(ctx, p, id, act, args, tainted, Event{Type: EventAskConnection}, rest)
		if err != nil {
			return []Output{errorOut("Nothing was done: the request could not be stored.")}, stepStopped, err
		}
		o := outs[0]
		o.RequestID = r.ID
		return []Output{o}, stepWaiting, nil
	case errors.Is(err, errTold):
		return outs, stepStopped, nil
	case err != nil:
		return outs, stepStopped, err
	}
	switch {
	case d.Effect == policy.Allow, ans.Grant != "":
		o, ok, err := b.run(ctx, p.Principal, id, act, args, ans.Resource)
		visibility(&o, ans.Resource, ans.Decision)
		if !ok {
			return []Output{o}, stepStopped, err
		}
		return []Output{o}, stepDone, err
	case d.Effect.NeedsApproval():
		onceForPlan(&ans, rest)
		r, err := b.newRequest(ctx, p, id, act, args, tainted, Event{Type: EventAskApproval, Answer: &ans}, rest)
		if err != nil {
			return []Output{errorOut("Nothing was done: the request could not be stored.")}, stepStopped, err
		}
		return []Output{approvalOut(r)}, stepWaiting, nil
	default:
		return []Output{refusalOut(id, act.Name, ans.Resource.Name, d)}, stepStopped, nil
	}
}

// Sentinels of evaluate: the person has been given outputs that say what
// to do, and nothing is wrong for the operator.
var (
	errNeedsConnection = errors.New("broker: needs a connection")
	errTold            = errors.New("broker: refused, and the person told why")
)

// evaluate finds the step's resource and asks the policy, and records the
// decision (detail at: "" when the step is proposed, "connected" when a
// request resumes). It fails with errNeedsConnection (and a connect
// output) when the step's connection is missing or unusable, with errTold
// (and an output) when the provider refused the lookup, and with another
// error (and an output) when the store or the audit trail failed.
func (b *Broker) evaluate(ctx context.Context, p asker, id string, act *agent.Action, args agent.Args, tainted, at string) (Answer, policy.Decision, []Output, error) {
	// A step needs its connection before the policy is asked. When the
	// step's resource is looked up, the lookup's lease checks the
	// connection (and leaseProblem answers as below), so a read of it here
	// would only repeat that.
	if act.Resource == nil {
		conn, err := b.vault.Connection(ctx, p.String(), act.Service)
		switch {
		case errors.Is(err, vault.ErrNotConnected), err == nil && conn.Status != vault.StatusActive:
			return Answer{}, policy.Decision{}, []Output{connectOut(act)}, errNeedsConnection
		case err != nil:
			return Answer{}, policy.Decision{}, []Output{errorOut("Nothing was done: the connection could not be checked.")},
				fmt.Errorf("broker: check connection: %w", err)
		}
	}
	res, err := b.discover(ctx, p.Principal, act, args, id)
	if err != nil {
		if o, ok := leaseProblem(act, err); ok {
			return Answer{}, policy.Decision{}, []Output{o}, errNeedsConnection
		}
		if pe, ok := errors.AsType[*agent.ProviderError](err); ok {
			// What the provider said may be about something private, and
			// whether it is was never found out.
			o := errorOut(pe.Error() + ". Nothing was done.")
			o.Private = true
			return Answer{}, policy.Decision{}, []Output{o}, errTold
		}
		return Answer{}, policy.Decision{}, []Output{errorOut("Nothing was done: I could not look up what this step touches.")},
			fmt.Errorf("broker: find resource of %s: %w", act.Name, err)
	}
	traits, err := b.traitsOf(ctx, p)
	if err != nil {
		return Answer{}, policy.Decision{}, []Output{errorOut("Nothing was done: I couldn't check who you are just now. Try again in a moment.")}, err
	}
	d := b.policy.Evaluate(policy.Input{
		Principal: p.policy(traits), Action: act.Policy(), Resource: res, Args: args, Now: b.now(), Tainted: tainted != "",
	})
	if d.Err != nil {
		b.log.WarnContext(ctx, "policy condition failed", "request_id", id, "rule", d.Rule, "err", d.Err)
	}
	ans := Answer{Resource: res, Decision: b.storedDecision(d)}
	if d.Effect == policy.SecondApprover {
		ans.Approvers = slices.Clone(d.SecondApprover)
	}
	// A grant stands in for the approval only where the policy says so,
	// and never for a step that needs step-up or is high risk.
	if d.Effect == policy.Approve && d.GrantOK && !d.StepUp && d.Risk < policy.High {
		grant, err := b.findGrant(ctx, p.Principal, act.Name, res.Name)
		if err != nil {
			return Answer{}, d, []Output{errorOut("Nothing was done: an internal error occurred.")}, err
		}
		if grant != nil {
			ans.Grant = grant.ID
		}
	}
	ev := audit.Event{Kind: audit.PolicyDecided, Actor: p.String(), Agent: act.Agent, Action: act.Name, Resource: res.Name,
		RequestID: id, Args: args, Decision: d.Effect.String(), Rule: d.Rule, Detail: map[string]string{"risk": d.Risk.String()}}
	if ans.Grant != "" {
		ev.Detail["grant"] = ans.Grant
	}
	if at != "" {
		ev.Detail["at"] = at
	}
	if err := b.record(ctx, ev); err != nil {
		return Answer{}, d, []Output{auditDown()}, err
	}
	return ans, d, nil, nil
}

// storedDecision is what a request keeps of the policy's decision: step-up
// whenever the effect asks for it, with the factor the rule names or the
// deployment's default.
func (b *Broker) storedDecision(d policy.Decision) StoredDecision {
	sd := StoredDecision{Effect: d.Effect, Rule: d.Rule, Reason: d.Reason, Risk: d.Risk,
		StepUp:  d.StepUp || d.Effect == policy.StepUp || d.Effect == policy.SecondApprover,
		GrantOK: d.GrantOK, Lifetimes: d.Lifetimes, ResultsInChannel: d.ResultsInChannel, Approval: d.Approval}
	if sd.StepUp {
		sd.Factor = cmp.Or(d.Factor, b.factor)
	}
	return sd
}

// visibility marks what output o, about a step on res, shows as its
// owner's alone (Private): anything but a resource that says it is public
// to the world. A resource is public to the world when it says it is not
// private and names no narrower audience (a Slack workspace's public
// channels are not public in a channel shared with another company, or
// with guests). When the policy's rule lets the asking channel see it
// anyway, o is not private but ByRule: an adapter still keeps it out of a
// channel shared with another company, which the rule's author may not
// have thought of.
func visibility(o *Output, res policy.Resource, d StoredDecision) {
	priv, known := res.Attrs["private"].(bool)
	audience, _ := res.Attrs["audience"].(string)
	o.Private = !known || priv || (audience != "" && audience != "world")
	if o.Private && d.ResultsInChannel {
		o.Private, o.ByRule = false, true
	}
}

func refusalOut(id, action, resource string, d policy.Decision) Output {
	o := Output{Kind: KindError, RequestID: id, Action: action, Resource: resource, Rule: d.Rule, Risk: d.Risk.String()}
	if d.Effect == policy.Deny {
		o.Text = fmt.Sprintf("Refused by policy rule %q: %s", d.Rule, d.Reason)
	} else {
		o.Text = "Refused: the policy gave no usable answer."
	}
	return o
}

// onceForPlan keeps an approval from outliving the step it was asked for
// when later steps of the plan follow it: a grant made by approving this
// step "for 1 hour" would let a later step of the same action and
// resource, which the person has not seen, run without a word.
func onceForPlan(ans *Answer, rest []Step) {
	if len(rest) > 0 {
		ans.Decision.Lifetimes = []policy.Lifetime{policy.Once}
	}
}

// requestGrace is how long a request's record outlives its expiry, so
// that whoever finds it late (a click, the Slack app's sweeper) settles it
// as expired, on the record, rather than finding nothing.
const requestGrace = time.Hour

// newRequest stores a request for a step, born by event e (ask_connection
// or ask_approval), with the rest of its plan.
func (b *Broker) newRequest(ctx context.Context, p asker, id string, act *agent.Action, args agent.Args, tainted string, e Event, rest []Step) (Request, error) {
	hash, raw, err := canonicalHash(act.Name, args)
	if err != nil {
		return Request{}, err
	}
	now := b.now()
	r := Request{
		V: 1, ID: id, Principal: p.Principal, Traits: p.traits,
		Step: Step{Action: act.Name, Args: raw, Tainted: tainted}, ArgsHash: hash,
		Service: act.Service, Scopes: act.Scopes, Rest: rest, Revoked: p.revoked, Conversation: p.conversation, Report: p.report, PlanPrivate: p.private, PlanByRule: p.byRule,
		Created: now, Expires: now.Add(b.requestTTL),
	}
	r, _, err = r.apply(e, now)
	if err != nil {
		return Request{}, err
	}
	value, err := json.Marshal(r)
	if err != nil {
		return Request{}, fmt.Errorf("broker: encode request: %w", err)
	}
	ttl := b.requestTTL + requestGrace
	// The pointer first: a request never exists without a way to find it.
	if err := b.store.Create(ctx, ownerKey(id), []byte(p.String()), ttl); err != nil {
		return Request{}, fmt.Errorf("broker: store request owner: %w", err)
	}
	if err := b.store.Create(ctx, requestKey(p.Principal, id), value, ttl); err != nil {
		return Request{}, fmt.Errorf("broker: store request: %w", err)
	}
	return r, nil
}

// approvalOut asks the owner to approve request r.
func approvalOut(r Request) Output {
	reason := fmt.Sprintf("%s (policy rule %q, %s risk)", r.Decision.Reason, r.Decision.Rule, r.Decision.Risk)
	switch {
	case r.Step.Tainted == planner.ModelProposal:
		reason += " Proposed by the language model, not typed by you: check that this is what you asked for."
	case r.Step.Tainted != "":
		reason += fmt.Sprintf(" Proposed after reading content from %s, which may have told the planner to: check that this is what you asked for.", r.Step.Tainted)
	}
	if r.Decision.StepUp {
		reason += " After you approve, you will be asked for a code from your authenticator."
	}
	if r.Decision.Effect == policy.SecondApprover {
		reason += " It also needs the approval of one of: " + strings.Join(r.Approvers, ", ") + "."
	}
	if len(r.Rest) > 0 {
		later := make([]string, len(r.Rest))
		for i, s := range r.Rest {
			later[i] = s.Action
		}
		reason += " Once it has run, this request goes on with " + strings.Join(later, ", ") + ", each decided on its own."
	}
	text := fmt.Sprintf("Approve %s on %s with %s? %s", r.Step.Action, r.Resource.Name, r.Step.Args, reason)
	return Output{
		Kind: KindApproval, Text: text, Reason: reason, Choices: choicesFor(r.Decision.Lifetimes, r.Decision.Risk),
		RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Rule: r.Decision.Rule, Risk: r.Decision.Risk.String(),
		Approvers: r.Approvers, Args: r.Step.Args, ArgsHash: r.ArgsHash,
	}
}

// Connected resumes the principal's requests that wait for a connection to
// service, now that it has been made: each one's step is looked up and
// decided again, and runs, asks for approval or is refused, as if just
// asked. The adapters call it once a connection lands.
func (b *Broker) Connected(ctx context.Context, p Principal, service string) ([]Output, error) {
	if err := validPrincipal(p); err != nil {
		return nil, err
	}
	items, err := b.store.List(ctx, p.String(), requestKind)
	if err != nil {
		return nil, fmt.Errorf("broker: list requests: %w", err)
	}
	var (
		outs []Output
		errs []error
	)
	for _, it := range items {
		r, err := decodeRequest(p, it.Key.ID, it.Value)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Status != StatusWaitingConnection || r.Service != service {
			continue
		}
		o, err := b.resume(ctx, r, it.Value)
		outs = append(outs, o...)
		errs = append(errs, err)
	}
	return outs, errors.Join(errs...)
}

// resume takes a request that waited for its connection on from where it
// stopped.
func (b *Broker) resume(ctx context.Context, r Request, raw []byte) ([]Output, error) {
	// Its time may be up: ask the lifecycle before looking anything up.
	probe := Event{Type: EventConnected, Answer: &Answer{Decision: StoredDecision{Effect: policy.Allow}}}
	if _, _, err := r.apply(probe, b.now()); err != nil {
		if errors.Is(err, ErrIllegal) {
			return nil, nil // another process resumed it first
		}
		return b.notMoved(ctx, r, raw, err)
	}
	if told, stop, err := b.cancelIfRevoked(ctx, r, raw); stop {
		return told, err
	}
	act, args, err := b.stepOf(r)
	if err != nil {
		_, _, ferr := b.move(ctx, r, raw, Event{Type: EventFail, Result: "invalid_step"}, nil)
		out := Output{Kind: KindError, RequestID: r.ID, Text: "This request can no longer run: its stored step is not valid. Ask again."}
		return append([]Output{out}, planDropped(r)...), errors.Join(err, ferr)
	}
	ans, d, outs, err := b.evaluate(ctx, r.asker(), r.ID, act, args, r.Step.Tainted, "connected")
	switch {
	case errors.Is(err, errNeedsConnection):
		outs[0].RequestID = r.ID
		return outs, nil // it still waits
	case errors.Is(err, errTold):
		// A short code on the record: the provider's words may be private.
		_, _, ferr := b.move(ctx, r, raw, Event{Type: EventFail, Result: "lookup_failed"}, nil)
		return append(outs, planDropped(r)...), ferr
	case err != nil:
		return outs, err // it still waits; the next connection tries again
	}
	onceForPlan(&ans, r.Rest)
	moved, next, err := b.move(ctx, r, raw, Event{Type: EventConnected, Answer: &ans}, args)
	if err != nil {
		if errors.Is(err, ErrIllegal) {
			return nil, nil
		}
		return b.notMoved(ctx, r, raw, err)
	}
	switch moved.Status {
	case StatusApproved:
		return b.execute(ctx, moved, next, act, args)
	case StatusPending:
		return []Output{approvalOut(moved)}, nil
	default:
		return append([]Output{refusalOut(moved.ID, act.Name, ans.Resource.Name, d)}, planDropped(moved)...), nil
	}
}

// discover finds the step's resource, through a short lease whose client
// may only read.
func (b *Broker) discover(ctx context.Context, p Principal, act *agent.Action, args agent.Args, id string) (policy.Resource, error) {
	if act.Resource == nil {
		return act.FindResource(ctx, nil, args)
	}
	lease, err := b.vault.Lease(ctx, vault.LeaseRequest{
		Principal: p.String(), Service: act.Service, Scopes: act.Scopes, RequestID: id, TTL: discoveryLease,
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

// findGrant returns the live grant for action on resource, or nil.
func (b *Broker) findGrant(ctx context.Context, p Principal, action, resource string) (*Grant, error) {
	it, err := b.store.Get(ctx, grantKey(p, grantID(action, resource)))
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
	if g.Principal != p || g.Action != action || g.Resource != resource || !b.now().Before(g.Expires) {
		return nil, nil
	}
	return &g, nil
}

// run executes one authorized step under a fresh lease and records the
// outcome. ok reports whether the action succeeded.
func (b *Broker) run(ctx context.Context, p Principal, id string, act *agent.Action, args agent.Args, res policy.Resource) (out Output, ok bool, err error) {
	out = Output{RequestID: id, Action: act.Name, Resource: res.Name}
	lease, err := b.vault.Lease(ctx, vault.LeaseRequest{
		Principal: p.String(), Service: act.Service, Scopes: act.Scopes,
		Resource: res.Name, RequestID: id, TTL: executeLease,
	})
	if err != nil {
		if o, ok := leaseProblem(act, err); ok {
			o.RequestID, o.Resource = id, res.Name
			return o, false, nil
		}
		out.Kind, out.Text = KindError, "Nothing was done: the provider call could not be authorized."
		return out, false, fmt.Errorf("broker: lease for %s: %w", id, err)
	}
	result, xerr := act.Execute(ctx, lease.Client(), args, res)
	// Once the provider has answered (or the deadline cut it short), the
	// outcome must reach the trail and the request whatever became of the
	// caller's context: an adapter's deadline must not leave a step that
	// ran unrecorded, or its request stuck in executing.
	ctx, cancel := finishing(ctx)
	defer cancel()
	if err := lease.Release(ctx); err != nil {
		b.log.WarnContext(ctx, "release lease", "request_id", id, "err", err)
	}
	ev := audit.Event{Kind: audit.ActionSucceeded, Actor: p.String(), Agent: act.Agent, Action: act.Name,
		Resource: res.Name, RequestID: id, Args: args, Result: "succeeded"}
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

// finishTimeout bounds the bookkeeping after a provider call.
const finishTimeout = 10 * time.Second

// finishing is ctx without its cancellation, bounded by finishTimeout.
func finishing(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

// leaseProblem turns a connection problem into the output that fixes it.
func leaseProblem(act *agent.Action, err error) (Output, bool) {
	switch {
	case errors.Is(err, vault.ErrNotConnected), errors.Is(err, vault.ErrLeaseRevoked):
		return connectOut(act), true
	case errors.Is(err, vault.ErrReconnect):
		o := connectOut(act)
		o.Text = fmt.Sprintf("Your %s connection expired. Connect it again (/agenthub connect %s) and I'll carry on.", act.Service, act.Service)
		o.Reconnect = true
		return o, true
	case errors.Is(err, vault.ErrInsufficientScope):
		o := connectOut(act)
		o.Text = fmt.Sprintf("Your %s connection lacks the permission %s needs (%s). Connect it again (/agenthub connect %s) and I'll carry on.",
			act.Service, act.Name, strings.Join(act.Scopes, ", "), act.Service)
		return o, true
	}
	return Output{}, false
}

func connectOut(act *agent.Action) Output {
	return Output{Kind: KindConnect, Service: act.Service, Action: act.Name, Scopes: act.Scopes,
		Text: fmt.Sprintf("%s needs your %s account. Connect it (/agenthub connect %s) and I'll carry on.", act.Name, act.Service, act.Service)}
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

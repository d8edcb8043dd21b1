package broker

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
)

// Status is where a request is in its life. The states and the events
// that move a request between them are the table transitions below;
// Request.apply is the only code that changes a request's Status.
type Status string

// The request states.
const (
	// StatusNew is a request not stored yet: every request is born from
	// it by an ask_* event.
	StatusNew Status = ""
	// StatusWaitingConnection: the step needs a service the owner has not
	// connected; it resumes by itself once they connect it.
	StatusWaitingConnection Status = "waiting_connection"
	// StatusPending: waiting for the owner's approval.
	StatusPending        Status = "pending"
	StatusAwaitingStepUp Status = "awaiting_stepup"
	StatusAwaitingSecond Status = "awaiting_second" // the owner is done; a second approver is not
	StatusApproved       Status = "approved"        // about to run
	StatusExecuting      Status = "executing"

	// The ends: nothing moves a request out of them.
	StatusSucceeded   Status = "succeeded"
	StatusFailed      Status = "failed"
	StatusDenied      Status = "denied"
	StatusExpired     Status = "expired"
	StatusCanceled    Status = "canceled"
	StatusInterrupted Status = "interrupted" // left half-way by a process that stopped
)

// Statuses lists every state a stored request can be in, in the order of
// its life.
var Statuses = []Status{
	StatusWaitingConnection, StatusPending, StatusAwaitingStepUp, StatusAwaitingSecond,
	StatusApproved, StatusExecuting,
	StatusSucceeded, StatusFailed, StatusDenied, StatusExpired, StatusCanceled, StatusInterrupted,
}

// Waiting reports whether the request waits for a person: to connect,
// approve, step up or give the second approval.
func (s Status) Waiting() bool {
	switch s {
	case StatusWaitingConnection, StatusPending, StatusAwaitingStepUp, StatusAwaitingSecond:
		return true
	}
	return false
}

// Terminal reports whether nothing can happen to the request any more.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusDenied, StatusExpired, StatusCanceled, StatusInterrupted:
		return true
	}
	return false
}

// EventType names something that happens to a request.
type EventType string

// The events.
const (
	EventAskConnection EventType = "ask_connection" // a new step needs a connection first
	EventAskApproval   EventType = "ask_approval"   // a new step needs a person
	EventConnected     EventType = "connected"      // the connection landed; the policy has decided again
	EventApprove       EventType = "approve"        // the owner approves
	EventDeny          EventType = "deny"           // the owner denies
	EventStepUpPassed  EventType = "stepup_passed"  // the owner's fresh second factor checked out
	EventSecondApprove EventType = "second_approve" // a second approver approves
	EventSecondDeny    EventType = "second_deny"    // a second approver denies
	EventStart         EventType = "start"          // this process runs the step now
	EventSucceed       EventType = "succeed"
	EventFail          EventType = "fail"
	EventExpire        EventType = "expire"    // nobody acted in time
	EventCancel        EventType = "cancel"    // the owner revoked the service, stopped the conversation, or canceled it
	EventInterrupt     EventType = "interrupt" // its process stopped half-way
)

// Event is one thing that happens to a request, with what it brings.
type Event struct {
	Type EventType
	// By is who acted: the owner or a second approver, for the events of
	// people.
	By Principal
	// Lifetime is the owner's choice when approving.
	Lifetime policy.Lifetime
	// Answer is the policy's answer for ask_approval and connected.
	Answer *Answer
	// Result is a short, safe note kept on the request: why it failed or
	// was canceled, or what a succeeded step did.
	Result string
	// Via is where a person decided, when not in Slack (Decision.Via).
	Via string
}

// Answer is what the broker found out before asking: the step's resource
// and the policy's decision for it.
type Answer struct {
	Resource  policy.Resource
	Decision  StoredDecision
	Approvers []string // second approvers the decision names
	// Grant is the ID of a live grant of the owner's that stands in for
	// the approval, if one does.
	Grant string
}

// Errors of apply. Each is wrapped in a *TransitionError.
var (
	// ErrIllegal: the event cannot happen to a request in its state (it was
	// already decided, say).
	ErrIllegal = errors.New("broker: not possible in this state")
	// ErrNotAllowed: the event needs someone else (the owner, or one of the
	// second approvers).
	ErrNotAllowed = errors.New("broker: not yours to decide")
	// ErrExpired: the request's time is up.
	ErrExpired = errors.New("broker: request expired")
)

// TransitionError says why an event could not move a request.
type TransitionError struct {
	From  Status
	Event EventType
	Guard string // the condition that did not hold; "" when the pair is not in the table
	Err   error  // ErrIllegal, ErrNotAllowed or ErrExpired
}

func (e *TransitionError) Error() string {
	if e.Guard == "" {
		return fmt.Sprintf("broker: %s cannot happen to a request that is %s", e.Event, e.From)
	}
	return fmt.Sprintf("broker: %s of a request that is %s needs %q", e.Event, e.From, e.Guard)
}

func (e *TransitionError) Unwrap() error { return e.Err }

// guard is a condition on a transition, named for the diagram and the
// errors.
type guard struct {
	name string
	err  error // returned when it does not hold
	ok   func(r Request, e Event, now time.Time) bool
}

// The guards. Who may act (byOwner, byApprover) comes first in a row,
// then when (live, past), then which way the request goes.
var (
	byOwner = guard{"by the owner", ErrNotAllowed, func(r Request, e Event, _ time.Time) bool {
		return e.By == r.Principal
	}}
	byApprover = guard{"by a second approver", ErrNotAllowed, func(r Request, e Event, _ time.Time) bool {
		return r.IsApprover(e.By)
	}}
	live = guard{"before expiry", ErrExpired, func(r Request, _ Event, now time.Time) bool {
		return now.Before(r.Expires)
	}}
	past = guard{"after expiry", ErrIllegal, func(r Request, _ Event, now time.Time) bool {
		return !now.Before(r.Expires)
	}}
	stepUp = guard{"step-up", ErrIllegal, func(r Request, _ Event, _ time.Time) bool {
		return r.Decision.StepUp
	}}
	noStepUp = guard{"no step-up", ErrIllegal, func(r Request, _ Event, _ time.Time) bool {
		return !r.Decision.StepUp
	}}
	secondMissing = guard{"second approval missing", ErrIllegal, func(r Request, _ Event, _ time.Time) bool {
		return r.secondMissing()
	}}
	secondDone = guard{"no second approval missing", ErrIllegal, func(r Request, _ Event, _ time.Time) bool {
		return !r.secondMissing()
	}}
	needsPerson = guard{"needs a person", ErrIllegal, func(_ Request, e Event, _ time.Time) bool {
		return e.Answer != nil && e.Answer.Grant == "" && e.Answer.Decision.Effect.NeedsApproval()
	}}
	allowed = guard{"allowed or granted", ErrIllegal, func(_ Request, e Event, _ time.Time) bool {
		return e.Answer != nil && (e.Answer.Decision.Effect == policy.Allow || (e.Answer.Grant != "" && e.Answer.Decision.Effect.NeedsApproval()))
	}}
	refused = guard{"refused", ErrIllegal, func(_ Request, e Event, _ time.Time) bool {
		return e.Answer != nil && e.Answer.Decision.Effect != policy.Allow && !e.Answer.Decision.Effect.NeedsApproval()
	}}
	staleApproved = guard{fmt.Sprintf("approved for %d min", int(ApprovedStaleAfter.Minutes())), ErrIllegal, func(r Request, _ Event, now time.Time) bool {
		return !r.Updated.IsZero() && now.Sub(r.Updated) >= ApprovedStaleAfter
	}}
	staleExecuting = guard{fmt.Sprintf("executing for %d min", int(ExecutingStaleAfter.Minutes())), ErrIllegal, func(r Request, _ Event, now time.Time) bool {
		return !r.Updated.IsZero() && now.Sub(r.Updated) >= ExecutingStaleAfter
	}}
)

// transition is one row of the table: an event that moves a request from
// one state to another when every guard holds, and the audit event the
// move itself must leave ("" when the code around it records the facts,
// such as step-up's attempts and a provider call's outcome).
type transition struct {
	From   Status
	On     EventType
	When   []guard
	To     Status
	Record audit.Kind
}

// transitions is the request lifecycle. For one state and event the rows
// are tried in order and the first whose guards all hold applies; the
// guards of such rows exclude one another (a test checks it).
var transitions = []transition{
	{StatusNew, EventAskConnection, nil, StatusWaitingConnection, ""},
	{StatusNew, EventAskApproval, []guard{needsPerson}, StatusPending, ""},

	{StatusWaitingConnection, EventConnected, []guard{live, needsPerson}, StatusPending, ""},
	{StatusWaitingConnection, EventConnected, []guard{live, allowed}, StatusApproved, ""},
	{StatusWaitingConnection, EventConnected, []guard{live, refused}, StatusDenied, ""},

	{StatusPending, EventApprove, []guard{byOwner, live, stepUp}, StatusAwaitingStepUp, audit.ApprovalGranted},
	{StatusPending, EventApprove, []guard{byOwner, live, noStepUp, secondMissing}, StatusAwaitingSecond, audit.ApprovalGranted},
	{StatusPending, EventApprove, []guard{byOwner, live, noStepUp, secondDone}, StatusApproved, audit.ApprovalGranted},
	{StatusPending, EventDeny, []guard{byOwner, live}, StatusDenied, audit.ApprovalDenied},

	{StatusAwaitingStepUp, EventStepUpPassed, []guard{byOwner, live, secondMissing}, StatusAwaitingSecond, ""},
	{StatusAwaitingStepUp, EventStepUpPassed, []guard{byOwner, live, secondDone}, StatusApproved, ""},

	// A second approval never stands in for the owner's: before the owner
	// is done it is only recorded.
	{StatusPending, EventSecondApprove, []guard{byApprover, live, secondMissing}, StatusPending, audit.ApprovalGranted},
	{StatusAwaitingStepUp, EventSecondApprove, []guard{byApprover, live, secondMissing}, StatusAwaitingStepUp, audit.ApprovalGranted},
	{StatusAwaitingSecond, EventSecondApprove, []guard{byApprover, live, secondMissing}, StatusApproved, audit.ApprovalGranted},
	{StatusPending, EventSecondDeny, []guard{byApprover, live, secondMissing}, StatusDenied, audit.ApprovalDenied},
	{StatusAwaitingStepUp, EventSecondDeny, []guard{byApprover, live, secondMissing}, StatusDenied, audit.ApprovalDenied},
	{StatusAwaitingSecond, EventSecondDeny, []guard{byApprover, live, secondMissing}, StatusDenied, audit.ApprovalDenied},

	{StatusApproved, EventStart, nil, StatusExecuting, ""},
	{StatusExecuting, EventSucceed, nil, StatusSucceeded, ""},
	{StatusExecuting, EventFail, nil, StatusFailed, ""},

	// A request that cannot go on: its stored step no longer validates, or
	// the approval that moved it could not be recorded.
	{StatusWaitingConnection, EventFail, nil, StatusFailed, audit.ActionFailed},
	{StatusPending, EventFail, nil, StatusFailed, audit.ActionFailed},
	{StatusAwaitingStepUp, EventFail, nil, StatusFailed, audit.ActionFailed},
	{StatusAwaitingSecond, EventFail, nil, StatusFailed, audit.ActionFailed},
	{StatusApproved, EventFail, nil, StatusFailed, audit.ActionFailed},

	{StatusWaitingConnection, EventExpire, []guard{past}, StatusExpired, audit.RequestExpired},
	{StatusPending, EventExpire, []guard{past}, StatusExpired, audit.RequestExpired},
	{StatusAwaitingStepUp, EventExpire, []guard{past}, StatusExpired, audit.RequestExpired},
	{StatusAwaitingSecond, EventExpire, []guard{past}, StatusExpired, audit.RequestExpired},

	{StatusWaitingConnection, EventCancel, nil, StatusCanceled, audit.RequestCanceled},
	{StatusPending, EventCancel, nil, StatusCanceled, audit.RequestCanceled},
	{StatusAwaitingStepUp, EventCancel, nil, StatusCanceled, audit.RequestCanceled},
	{StatusAwaitingSecond, EventCancel, nil, StatusCanceled, audit.RequestCanceled},
	{StatusApproved, EventCancel, nil, StatusCanceled, audit.RequestCanceled},
	// A step already running is stopped by the vault (its lease is
	// revoked); what revocation cancels of it is the rest of its plan.
	{StatusExecuting, EventCancel, nil, StatusExecuting, audit.RequestCanceled},

	// Whether an approval reached the trail, or a call the provider, cannot
	// be known for a request its process left: it is never run again.
	{StatusApproved, EventInterrupt, []guard{staleApproved}, StatusInterrupted, audit.ActionFailed},
	{StatusExecuting, EventInterrupt, []guard{staleExecuting}, StatusInterrupted, audit.ActionFailed},
}

// Events lists every event type, in the order of the table.
func Events() []EventType {
	var out []EventType
	for _, t := range transitions {
		if !slices.Contains(out, t.On) {
			out = append(out, t.On)
		}
	}
	return out
}

// apply is the request lifecycle as a pure function: it returns the request
// as event e at time now leaves it, and the audit events that the move must
// leave, or a *TransitionError when the table has no row for e whose
// guards hold. r itself is not changed.
func (r Request) apply(e Event, now time.Time) (Request, []audit.Event, error) {
	var first *TransitionError
	for _, t := range transitions {
		if t.From != r.Status || t.On != e.Type {
			continue
		}
		failed := ""
		var ferr error
		for _, g := range t.When {
			if !g.ok(r, e, now) {
				failed, ferr = g.name, g.err
				break
			}
		}
		if failed != "" {
			if first == nil {
				first = &TransitionError{From: r.Status, Event: e.Type, Guard: failed, Err: ferr}
			}
			continue
		}
		return r.moved(t, e, now)
	}
	if first != nil {
		return r, nil, first
	}
	return r, nil, &TransitionError{From: r.Status, Event: e.Type, Err: ErrIllegal}
}

// moved carries out transition t: the new state and what the event brings.
func (r Request) moved(t transition, e Event, now time.Time) (Request, []audit.Event, error) {
	was := r.Status
	r.Status, r.Updated = t.To, now
	switch e.Type {
	case EventAskApproval, EventConnected:
		r.Resource, r.Decision, r.Approvers = e.Answer.Resource, e.Answer.Decision, slices.Clone(e.Answer.Approvers)
		if t.To == StatusApproved {
			r.Grant = e.Answer.Grant
		}
	case EventApprove:
		r.Lifetime, r.Decided = e.Lifetime, now
	case EventDeny, EventSecondDeny:
		r.DeniedBy, r.Decided = e.By, now
	case EventSecondApprove:
		r.SecondBy = e.By
		if t.To == StatusApproved {
			r.Decided = now
		}
	case EventInterrupt:
		r.Result = "interrupted while " + string(was)
	case EventCancel:
		r.Rest = nil
	}
	if e.Result != "" {
		r.Result = e.Result
	}
	if t.Record == "" {
		return r, nil, nil
	}
	ev := r.event(t.Record, nil)
	switch e.Type {
	case EventApprove:
		ev.Decision = e.Lifetime.String()
	case EventSecondApprove, EventSecondDeny:
		ev.Actor = e.By.String()
		ev.Detail = map[string]string{"role": "second_approver", "owner": r.Principal.String()}
	case EventDeny:
		ev.Actor = e.By.String()
	case EventInterrupt:
		ev.Result, ev.Detail = "interrupted", map[string]string{"status": string(was)}
	case EventFail:
		ev.Result = cmp.Or(e.Result, "failed")
	case EventExpire:
		ev.Result = "expired"
	case EventCancel:
		ev.Result = "canceled"
		if e.Result != "" {
			ev.Detail = map[string]string{"reason": e.Result}
		}
	}
	if e.Via != "" {
		if ev.Detail == nil {
			ev.Detail = map[string]string{}
		}
		ev.Detail["via"] = e.Via
	}
	return r, []audit.Event{ev}, nil
}

// IsApprover reports whether p may give the request's second approval:
// named by the policy, in the owner's workspace, and not the owner.
func (r Request) IsApprover(p Principal) bool {
	return r.Decision.Effect == policy.SecondApprover && p != r.Principal && p.SameTeam(r.Principal) &&
		slices.Contains(r.Approvers, p.User)
}

// MayDecide reports whether p may approve or deny the request: its owner,
// or one of its second approvers. It is the one statement of that rule;
// the adapters ask it to answer a refused click to the clicker alone, and
// the transition table enforces it.
func (r Request) MayDecide(p Principal) bool {
	return p == r.Principal || r.IsApprover(p)
}

// secondMissing reports whether the request still needs its second
// approval.
func (r Request) secondMissing() bool {
	return r.Decision.Effect == policy.SecondApprover && r.SecondBy.IsZero()
}

// Diagram renders the transition table as a Mermaid state diagram, for
// docs/ARCHITECTURE.md (a test keeps the two in step).
func Diagram() string {
	var b strings.Builder
	b.WriteString("stateDiagram-v2\n")
	name := func(s Status) string {
		if s == StatusNew {
			return "[*]"
		}
		return string(s)
	}
	seen := map[string]bool{}
	for _, t := range transitions {
		label := string(t.On)
		var conds []string
		for _, g := range t.When {
			if g.err == ErrIllegal { // the way the request goes; who and when are the event's
				conds = append(conds, g.name)
			}
		}
		if len(conds) > 0 {
			label += " [" + strings.Join(conds, ", ") + "]"
		}
		line := fmt.Sprintf("    %s --> %s: %s\n", name(t.From), name(t.To), label)
		if !seen[line] {
			seen[line] = true
			b.WriteString(line)
		}
	}
	for _, s := range Statuses {
		if s.Terminal() {
			fmt.Fprintf(&b, "    %s --> [*]\n", s)
		}
	}
	return b.String()
}

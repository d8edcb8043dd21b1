package policy

import (
	"errors"
	"fmt"
	"time"
)

// Risk is how much harm an action can do if it runs against the person's
// wishes. Agents declare a base risk per action; a rule may raise it, never
// lower it.
type Risk int

// The risk levels, in increasing order. The zero value is Low.
const (
	Low Risk = iota
	Medium
	High
	Critical
)

var riskNames = [...]string{"low", "medium", "high", "critical"}

// String returns "low", "medium", "high" or "critical".
func (r Risk) String() string {
	if r >= Low && r <= Critical {
		return riskNames[r]
	}
	return fmt.Sprintf("risk(%d)", int(r))
}

// ParseRisk parses the lowercase name of a risk level.
func ParseRisk(s string) (Risk, error) {
	for i, n := range riskNames {
		if s == n {
			return Risk(i), nil
		}
	}
	return Low, fmt.Errorf("unknown risk %q (want low, medium, high or critical)", s)
}

// MarshalText implements encoding.TextMarshaler, so stored requests carry
// the name rather than a number that would change meaning if levels moved.
func (r Risk) MarshalText() ([]byte, error) {
	if r < Low || r > Critical {
		return nil, fmt.Errorf("marshal risk: invalid value %d", int(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Risk) UnmarshalText(b []byte) error {
	v, err := ParseRisk(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// clamp maps an out-of-range risk to Critical: an agent bug must make a step
// harder to run, not easier.
func (r Risk) clamp() Risk {
	if r < Low || r > Critical {
		return Critical
	}
	return r
}

// Effect is what a decision requires before a step may run.
type Effect int

// The effects. The zero value is Deny, so a Decision that was never filled
// in refuses.
const (
	// Deny refuses the step; Decision.Reason says why.
	Deny Effect = iota
	// Allow runs the step without asking anyone.
	Allow
	// Approve runs the step once the person approves it (or, when
	// Decision.GrantOK is set, holds a matching grant).
	Approve
	// StepUp needs the person's approval and a fresh second factor, bound to
	// this one request.
	StepUp
	// SecondApprover needs everything StepUp needs plus the approval of one
	// of Decision.SecondApprover, who is never the owner.
	SecondApprover
)

var effectNames = [...]string{"deny", "allow", "approve", "stepup", "second_approver"}

// String returns the effect's name as written in a policy file.
func (e Effect) String() string {
	if e >= Deny && e <= SecondApprover {
		return effectNames[e]
	}
	return fmt.Sprintf("effect(%d)", int(e))
}

// ParseEffect parses an effect name as written in a policy file.
func ParseEffect(s string) (Effect, error) {
	for i, n := range effectNames {
		if s == n {
			return Effect(i), nil
		}
	}
	return Deny, fmt.Errorf("unknown effect %q (want allow, approve, stepup, second_approver or deny)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (e Effect) MarshalText() ([]byte, error) {
	if e < Deny || e > SecondApprover {
		return nil, fmt.Errorf("marshal effect: invalid value %d", int(e))
	}
	return []byte(e.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (e *Effect) UnmarshalText(b []byte) error {
	v, err := ParseEffect(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// Lifetime is how long an approval may be reused as a grant.
type Lifetime int

// The lifetimes. The zero value is Once, the safest.
const (
	// Once authorizes only the request that was approved, with its exact
	// arguments.
	Once Lifetime = iota
	// OneHour creates a grant that matching steps may use for an hour.
	OneHour
	// Standing creates a grant that lasts until the person revokes it (or
	// the broker's maximum grant age passes).
	Standing
)

var lifetimeNames = [...]string{"once", "1h", "standing"}

// String returns "once", "1h" or "standing".
func (l Lifetime) String() string {
	if l >= Once && l <= Standing {
		return lifetimeNames[l]
	}
	return fmt.Sprintf("lifetime(%d)", int(l))
}

// ParseLifetime parses a lifetime as written in a policy file.
func ParseLifetime(s string) (Lifetime, error) {
	for i, n := range lifetimeNames {
		if s == n {
			return Lifetime(i), nil
		}
	}
	return Once, fmt.Errorf("unknown lifetime %q (want once, 1h or standing)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (l Lifetime) MarshalText() ([]byte, error) {
	if l < Once || l > Standing {
		return nil, fmt.Errorf("marshal lifetime: invalid value %d", int(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *Lifetime) UnmarshalText(b []byte) error {
	v, err := ParseLifetime(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Principal is the person on whose behalf a step would run.
type Principal struct {
	ID     string   // "T1:U1": team and user, the key everything is stored under
	Team   string   // Slack team ID
	User   string   // Slack user ID, compared with a rule's approvers
	Groups []string // groups the principal belongs to (from the IdP, when linked)
	// Guest is set for a single- or multi-channel guest of the workspace
	// (Slack's is_restricted or is_ultra_restricted).
	Guest bool
	// External is set for someone whose home is another workspace or
	// organisation (a Slack Connect partner).
	External bool
}

// Action describes the agent action a step invokes, as its agent declares it.
type Action struct {
	Agent  string   // "github"
	Name   string   // "github.merge_pull_request"
	Risk   Risk     // the declared base risk
	Scopes []string // provider scopes the action needs
	Write  bool     // whether the action changes anything
}

// Resource is what a step touches, found by the action's resource extractor.
type Resource struct {
	Kind string // "repo", "branch", "calendar", "channel", …
	Name string // "acme/payments"
	// Attrs holds facts a cheap read found, e.g. "private": true,
	// "protected": true, "environment": "production", "members": 12. Values
	// must be JSON-like (bool, string, numbers, []any, map[string]any).
	Attrs map[string]any
}

// Input is everything a decision may depend on. The broker and the agents
// fill it; the engine only reads it.
type Input struct {
	Principal Principal
	Action    Action
	Resource  Resource
	// Args are the step's canonical arguments (JSON-like values).
	Args map[string]any
	// Tainted is set when the step was planned from untrusted content
	// (a message, issue or document the person did not write).
	Tainted bool
	// Now is the time of the decision; the zero time means time.Now().
	Now time.Time
}

// Decision is the policy's answer for one step.
//
// The SecondApprover and Lifetimes slices are shared between decisions and
// must not be modified.
type Decision struct {
	Effect Effect
	// Rule names the rule that decided; "default" when no rule matched.
	// It appears in the approval message and the audit event.
	Rule string
	// Reason is a sentence for the person, shown with the approval request
	// or the refusal. It never contains argument values.
	Reason string
	// Risk is the effective risk: the action's base risk, raised by the rule.
	Risk Risk
	// StepUp is set when a fresh second factor is required (effects StepUp
	// and SecondApprover).
	StepUp bool
	// SecondApprover lists the Slack user IDs, other than the owner, of whom
	// one must also approve (effect SecondApprover).
	SecondApprover []string
	// GrantOK is set when an existing grant matching the step satisfies the
	// approval, so the person need not be asked again.
	GrantOK bool
	// Lifetimes are the choices offered to the person when approving; Once
	// always comes first. Empty for Allow and Deny.
	Lifetimes []Lifetime
	// ResultsInChannel is set when the rule says that the channel a step
	// was asked in may see its result even though the resource is not
	// public (rule field results: channel). Otherwise a result that is not
	// public goes to the person alone.
	ResultsInChannel bool
	// Factor is the second factor the rule asks for when StepUp is set:
	// FactorTOTP, FactorOIDC, FactorCIBA, or "" for the deployment's
	// default.
	Factor string
	// Approval is where the owner approves: "" in Slack, ApprovalCIBA on
	// their phone (rule field approval: ciba), and nowhere else: a click
	// in Slack does not approve such a step.
	Approval string
	// Err is why the rule's condition could not be evaluated when the
	// decision failed closed; for logs, never for people, and never stored.
	Err error `json:"-"`
}

// The second factors a rule may name (rule field factor).
const (
	FactorTOTP = "totp" // a code from the person's authenticator app
	FactorOIDC = "oidc" // a fresh sign-in, with its multi-factor step, at the identity provider
	FactorCIBA = "ciba" // an approval on the person's phone, with its factor, through the identity provider (CIBA)
)

// Factors are the second factors a rule may name.
var Factors = []string{FactorOIDC, FactorTOTP, FactorCIBA}

// ApprovalCIBA is the rule field approval: ciba: the owner approves on
// their phone (CIBA), not in Slack.
const ApprovalCIBA = "ciba"

// NeedsApproval reports whether a person must approve (or a grant must
// cover) the step before it runs.
func (d Decision) NeedsApproval() bool { return d.Effect.NeedsApproval() }

// NeedsApproval reports whether the effect asks a person to approve: approve,
// stepup and second_approver.
func (e Effect) NeedsApproval() bool {
	return e == Approve || e == StepUp || e == SecondApprover
}

// ErrCondition is wrapped by Decision.Err when a rule's condition failed to
// evaluate and the engine denied the step.
var ErrCondition = errors.New("policy condition failed")

package policy

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
)

// fallbackRule names the decision when no rule matches, and may name a
// policy's own catch-all rule.
const fallbackRule = "default"

// Reasons used when a rule gives none, and the sentences the engine adds
// when it tightens a rule's effect.
var (
	defaultReasons = [...]string{
		Deny:           "The policy does not allow this.",
		Allow:          "The policy allows this.",
		Approve:        "This needs your approval.",
		StepUp:         "This needs your approval and a fresh second factor.",
		SecondApprover: "This needs your approval, a fresh second factor and a second approver.",
	}
	highRiskSuffix  = " High-risk actions always need a fresh second factor."
	taintedSuffix   = " It was planned from content you did not write, so you must approve it yourself."
	noApprover      = "This needs a second approver, but the policy names no one who could approve it other than you."
	conditionFailed = "The policy could not check this step, so it is denied."
	noRule          = "No policy rule covers this action, so it is denied."
)

var (
	onceOnly = []Lifetime{Once}
	anyLife  = []Lifetime{Once, OneHour, Standing}
)

// rule is one compiled policy rule.
type rule struct {
	name      string
	line      int
	agent     globs
	action    globs
	resource  globs
	when      string
	prg       cel.Program // nil when the rule has no condition
	effect    Effect
	risk      Risk // the rule's raise; Low raises nothing
	reason    string
	approvers []string   // resolved Slack user IDs, for SecondApprover
	lifetimes []Lifetime // nil: chosen by risk
	// resultsInChannel: results: channel
	resultsInChannel bool
	// factor is the second factor the rule names for step-up ("" for the
	// deployment's default).
	factor string
	// approval is where the owner approves ("" Slack, ApprovalCIBA).
	approval string

	// Decisions are computed at load time for every base risk and taint,
	// so Evaluate copies a struct instead of building one.
	decisions [2][Critical + 1]Decision
	failed    [Critical + 1]Decision
}

// build precomputes the rule's decisions.
func (r *rule) build() {
	if r.reason == "" {
		r.reason = defaultReasons[r.effect]
	}
	for base := Low; base <= Critical; base++ {
		r.decisions[0][base] = r.decide(base, false)
		r.decisions[1][base] = r.decide(base, true)
		r.failed[base] = Decision{Effect: Deny, Rule: r.name, Reason: conditionFailed, Risk: max(base, r.risk)}
	}
}

// decide applies the rule to a step of the given base risk. This is where
// the invariants no policy can switch off are enforced: high risk always
// needs step-up and single-use approval, and a tainted step is never run
// without a person approving that very step.
func (r *rule) decide(base Risk, tainted bool) Decision {
	d := Decision{Effect: r.effect, Rule: r.name, Reason: r.reason, Risk: max(base, r.risk), ResultsInChannel: r.resultsInChannel, Factor: r.factor,
		Approval: r.approval}
	if d.Risk >= High && (d.Effect == Allow || d.Effect == Approve) {
		d.Effect = StepUp
		d.Reason += highRiskSuffix
	}
	lifetimes := r.lifetimes
	if lifetimes == nil {
		lifetimes = anyLife
	}
	switch d.Effect {
	case Allow:
		if tainted {
			d.Effect = Approve
			d.Reason += taintedSuffix
			d.Lifetimes = onceOnly
		}
	case Approve:
		d.GrantOK = true
		d.Lifetimes = lifetimes[:len(lifetimes):len(lifetimes)]
		if tainted {
			// The person is asked anyway; the sentence is only added
			// where the rule itself would have let the step run.
			d.GrantOK = false
			d.Lifetimes = onceOnly
		}
	case StepUp:
		d.StepUp = true
		d.Lifetimes = onceOnly
	case SecondApprover:
		d.StepUp = true
		d.Lifetimes = onceOnly
		d.SecondApprover = r.approvers[:len(r.approvers):len(r.approvers)]
		if len(r.approvers) == 0 {
			d = Decision{Effect: Deny, Rule: r.name, Reason: noApprover, Risk: d.Risk}
		}
	}
	if d.Approval == ApprovalCIBA && d.Effect != Allow && d.Effect != Deny {
		// A phone approval is for this one step: no grant stands in for
		// it, and none comes of it.
		d.GrantOK, d.Lifetimes = false, onceOnly
	} else if d.Effect == Allow || d.Effect == Deny {
		d.Approval = ""
	}
	d.Lifetimes = d.Lifetimes[:len(d.Lifetimes):len(d.Lifetimes)]
	return d
}

func (r *rule) matches(in *Input) bool {
	return r.agent.match(in.Action.Agent) && r.action.match(in.Action.Name) && r.resource.match(in.Resource.Name)
}

// Engine decides steps against a compiled policy. It is immutable and safe
// for concurrent use.
type Engine struct {
	name   string
	digest string
	rules  []rule
}

// Name returns the name the policy was parsed under (its file path).
func (e *Engine) Name() string { return e.name }

// Factors lists the second factors the policy's rules name, sorted, so
// that a deployment can refuse at start a policy that names one it has
// not set up. An approval on the phone (approval: ciba) names CIBA.
func (e *Engine) Factors() []string {
	var named []string
	for _, r := range e.rules {
		if r.factor != "" && !slices.Contains(named, r.factor) {
			named = append(named, r.factor)
		}
		if r.approval == ApprovalCIBA && !slices.Contains(named, FactorCIBA) {
			named = append(named, FactorCIBA)
		}
	}
	slices.Sort(named)
	return named
}

// Digest returns the hex SHA-256 of the policy source, so an audit record
// can say which version of the policy decided.
func (e *Engine) Digest() string { return e.digest }

// RuleNames returns the rules' names in evaluation order.
func (e *Engine) RuleNames() []string {
	names := make([]string, len(e.rules))
	for i := range e.rules {
		names[i] = e.rules[i].name
	}
	return names
}

// Evaluate decides one step: the first rule whose patterns and condition
// match decides; if none does (or the engine is nil), the step is denied by
// "default". A condition that fails to evaluate denies the step under its
// rule's name.
func (e *Engine) Evaluate(in Input) Decision {
	base := in.Action.Risk.clamp()
	if e == nil {
		return Decision{Effect: Deny, Rule: fallbackRule, Reason: noRule, Risk: base}
	}
	taint := 0
	if in.Tainted {
		taint = 1
	}
	var act *activation
	d := Decision{Effect: Deny, Rule: fallbackRule, Reason: noRule, Risk: base}
	for i := range e.rules {
		r := &e.rules[i]
		if !r.matches(&in) {
			continue
		}
		if r.prg != nil {
			if act == nil {
				act = newActivation(&in)
			}
			hit, err := act.eval(r.prg)
			if err != nil {
				d = r.failed[base]
				d.Err = fmt.Errorf("%w: rule %q (line %d): %s", ErrCondition, r.name, r.line, safeCause(err, r.when))
				break
			}
			if !hit {
				continue
			}
		}
		d = r.decisions[taint][base]
		if d.Effect == SecondApprover {
			d = withoutOwner(d, r, in.Principal.User)
		}
		break
	}
	if act != nil {
		act.release()
	}
	return d
}

// safeCauses are CEL evaluation errors whose text carries no value from the
// step.
var safeCauses = map[string]bool{
	"no such key":       true,
	"no such overload":  true,
	"division by zero":  true,
	"modulus by zero":   true,
	"integer overflow":  true,
	"unknown time zone": true,
}

// safeCause describes why a condition failed without quoting the step's
// arguments or attributes, which may be private: a CEL error can embed the
// value it choked on. A missing key is named only when the condition itself
// selects it by name (args.environment, args["environment"]), which is what
// makes "no such key: environment" useful.
func safeCause(err error, src string) string {
	msg := err.Error()
	if key, ok := strings.CutPrefix(msg, "no such key: "); ok &&
		(strings.Contains(src, "."+key) || strings.Contains(src, `"`+key+`"`) || strings.Contains(src, "'"+key+"'")) {
		return msg
	}
	if strings.HasPrefix(msg, "condition returned ") {
		return msg // names a type, never a value
	}
	head, _, _ := strings.Cut(msg, ":")
	if safeCauses[head] {
		return head
	}
	return "evaluation failed"
}

// withoutOwner removes the step's owner from the second approvers: the
// second approval must come from someone else. When no one is left the
// step cannot be authorized, so it is denied now rather than left pending
// forever.
func withoutOwner(d Decision, r *rule, owner string) Decision {
	if owner == "" || !slices.Contains(d.SecondApprover, owner) {
		return d
	}
	others := make([]string, 0, len(d.SecondApprover)-1)
	for _, u := range d.SecondApprover {
		if u != owner {
			others = append(others, u)
		}
	}
	if len(others) == 0 {
		return Decision{Effect: Deny, Rule: r.name, Reason: noApprover, Risk: d.Risk}
	}
	d.SecondApprover = others
	return d
}

//go:embed default.yaml
var defaultSource []byte

var defaultEngine = sync.OnceValues(func() (*Engine, error) {
	return Parse("default.yaml", defaultSource)
})

// Default returns the engine for the embedded, documented default policy
// (default.yaml). The same engine is shared by every caller.
func Default() *Engine {
	e, err := defaultEngine()
	if err != nil {
		// The embedded file is part of the program, and a test parses it:
		// reaching this is a build that should never have shipped.
		panic(fmt.Sprintf("policy: embedded default policy is invalid: %v", err))
	}
	return e
}

// DefaultSource returns the embedded default policy, a starting point for
// writing one's own.
func DefaultSource() []byte {
	return slices.Clone(defaultSource)
}

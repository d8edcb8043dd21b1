package broker

import (
	"encoding/json"

	"github.com/agenthub/agenthub/internal/policy"
)

// Kind says what an Output asks of the adapter.
type Kind string

// The output kinds, as the console's -json mode prints them.
const (
	KindMessage  Kind = "message"  // information; nothing to do
	KindApproval Kind = "approval" // ask the owner to choose one of Choices for RequestID
	KindStepUp   Kind = "step_up"  // ask the owner for a second-factor code for RequestID
	KindConnect  Kind = "connect"  // ask the person to connect Service
	KindResult   Kind = "result"   // a step ran; Text summarizes, Data holds the detail
	KindError    Kind = "error"    // something was refused or failed; Text says why
)

// Choice is one answer an approval offers. Key is what Decide takes.
type Choice struct {
	Key   string `json:"key"`
	Label string `json:"label"`
}

// Choice keys.
const (
	ChoiceOnce     = "once"
	ChoiceHour     = "1h"
	ChoiceStanding = "standing"
	ChoiceDeny     = "deny"
)

// Output is one thing the broker has to say. Its text never holds a
// credential; it may quote the step's arguments to their owner.
type Output struct {
	Kind      Kind     `json:"kind"`
	Text      string   `json:"text"`
	Choices   []Choice `json:"choices,omitempty"`
	RequestID string   `json:"request_id,omitempty"`
	Action    string   `json:"action,omitempty"`   // "github.merge_pull_request"
	Resource  string   `json:"resource,omitempty"` // "acme/payments:main"
	Service   string   `json:"service,omitempty"`  // for connect outputs
	Rule      string   `json:"rule,omitempty"`     // the policy rule that decided
	Risk      string   `json:"risk,omitempty"`     // "low" … "critical"
	Data      any      `json:"data,omitempty"`     // a result's detail
	// Approvers are the Slack user IDs who may give the second approval an
	// approval output needs; the adapter asks them too.
	Approvers []string `json:"approvers,omitempty"`
	// Requests are the IDs of the requests a revoke canceled, so the
	// adapter can update the approval messages it showed for them.
	Requests []string `json:"requests,omitempty"`
	// Reason is an approval's why, in words, with what comes after the
	// approval (a code, a second approver): its Text without the
	// arguments, for adapters that show the arguments on their own.
	Reason string `json:"reason,omitempty"`
	// Args are an approval's canonical arguments, as they will run, and
	// ArgsHash their digest (the request's), so an adapter can show them
	// whole or, when too long to show, say so and offer them elsewhere.
	Args     json.RawMessage `json:"args,omitempty"`
	ArgsHash string          `json:"args_sha256,omitempty"`
	// Private marks a result (or a failure quoting the provider) that
	// shows something not public: the adapter shows it to the owner alone,
	// never in a channel others read.
	Private bool `json:"private,omitempty"`
	// ByRule marks an output that is not private only because the
	// deciding policy rule lets the asking channel see results (results:
	// channel): an adapter keeps it out of channels shared with another
	// company all the same.
	ByRule bool `json:"by_rule,omitempty"`
	// Factor is what a step-up output asks for: policy.FactorTOTP (a code)
	// or policy.FactorOIDC (a sign-in at the identity provider).
	Factor string `json:"factor,omitempty"`
	// Reconnect marks a connect output for a connection that expired (its
	// refresh was refused for good): the person connects it again.
	Reconnect bool `json:"reconnect,omitempty"`
	// Scopes are what a connect output's action needs of the connection,
	// so that connecting asks the provider for them.
	Scopes []string `json:"scopes,omitempty"`
}

func choicesFor(lifetimes []policy.Lifetime, risk policy.Risk) []Choice {
	var out []Choice
	for _, l := range lifetimes {
		if risk >= policy.High && l != policy.Once {
			continue // never reusable, whatever the policy file says
		}
		switch l {
		case policy.Once:
			out = append(out, Choice{ChoiceOnce, "Approve once"})
		case policy.OneHour:
			out = append(out, Choice{ChoiceHour, "Approve for 1 hour"})
		case policy.Standing:
			out = append(out, Choice{ChoiceStanding, "Approve until revoked"})
		}
	}
	if len(out) == 0 {
		out = append(out, Choice{ChoiceOnce, "Approve once"})
	}
	return append(out, Choice{ChoiceDeny, "Deny"})
}

func message(text string) Output  { return Output{Kind: KindMessage, Text: text} }
func errorOut(text string) Output { return Output{Kind: KindError, Text: text} }

package planner

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Step is one proposed action invocation, e.g. Action
// "github.merge_pull_request" with Args {"repo": "acme/payments",
// "number": 7, "method": "merge"}.
type Step struct {
	Action string
	Args   map[string]any
	// Tainted names the untrusted content the planner had read when it
	// proposed the step ("github.list_pull_requests on acme/website"):
	// the policy then never lets it run on a grant or without its owner
	// approving that very step. "" when it read none.
	Tainted string
}

// Request is what a person asked, with the context needed to read it.
type Request struct {
	// Principal identifies the person (team and user); the rules planner
	// does not use it, an LLM planner may mention it in its prompt.
	Principal string
	// Text is the message as received, Slack mention and formatting included.
	Text string
	// Now is the time the message arrived; relative dates count from it.
	Now time.Time
	// Location is the person's time zone; nil means UTC.
	Location *time.Location
	// Conversation names the conversation the message belongs to (a
	// Slack thread), for a planner that remembers one ("" for none).
	Conversation string
	// Read, when set, runs a read step now, as the policy allows it for
	// the person (the broker's): a planner that reads before it proposes
	// (the LLM planner) learns what it needs. A read the policy does not
	// let run at once is not run (Ran false): the planner proposes it.
	Read func(ctx context.Context, s Step) (ReadResult, error)
}

// ModelProposal is the taint of a write a language model proposed without
// reading anything: the model's own words are not the person's, so no
// grant stands in for the person approving it.
const ModelProposal = "the language model"

// ReadResult is what Request.Read did.
type ReadResult struct {
	Ran bool
	// Data is the read's result as JSON, for the planner alone: untrusted
	// content (a pull request's body, an event's description).
	Data string
	// Source names what was read: "github.list_pull_requests on
	// acme/website".
	Source string
	// Private is set when the result is not public: whatever the planner
	// says from it is for the person alone. ByRule is set when it is not
	// private only because a policy rule lets the asking channel see it:
	// what the planner says from it stays out of channels shared with
	// another company.
	Private, ByRule bool
	// Why says why it did not run (needs approval, a connection, …).
	Why string
}

// Plan is a planner's answer: the steps to propose, in order, or, when
// nothing could be planned, a Reply for the person.
type Plan struct {
	Steps []Step
	// Reply is set when Steps is empty: a short, helpful answer with
	// example sentences.
	Reply string
	// Note, with Steps, is said to the person before the steps' outcomes
	// (the LLM planner fell back to the rules planner, say).
	Note string
	// Reads counts the reads the planner ran (Request.Read): a Reply after
	// them is an answer, not a plan that failed. Private is set when one of
	// them was not public, so the Reply is for the person alone.
	Reads   int
	Private bool
	// ByRule: a Reply drawn from results only a policy rule lets the
	// channel see (ReadResult.ByRule).
	ByRule bool
	// Report, with Steps, asks for the planner's reply (it is a Reporter)
	// once steps of the plan have run: at once, or when a request of it
	// has run after its approval.
	Report bool
}

// Reporter is a planner that writes the reply to the person from what
// became of the steps it planned (the LLM planner), in the conversation
// they were asked in. The outcomes are data, not instructions; the reply
// is said after them, and they stand as they are whatever it says. Its
// Plan holds only Reply, Private and ByRule.
type Reporter interface {
	Report(ctx context.Context, req Request, outcomes []Outcome) (Plan, error)
}

// StateRan is the Outcome.State of a step that ran.
const StateRan = "ran"

// Outcome is what became of one step of a plan, for Plan.Report: the
// broker's words and data, never a credential.
type Outcome struct {
	Action   string // "github.comment"
	Resource string // "acme/website#12"
	// State is what became of it: StateRan, or another in words ("failed",
	// "waits for the person's approval", …).
	State string
	Text  string // the broker's summary
	Data  string // a result's detail as JSON, bounded ("" for none)
	// Private, ByRule: as ReadResult's, for a result.
	Private, ByRule bool
}

// Rules is the deterministic, pattern-based planner. The zero value is not
// usable; call NewRules. A *Rules is safe for concurrent use.
type Rules struct {
	patterns []pattern
}

// NewRules returns the rules planner with every pattern compiled.
func NewRules() *Rules {
	return &Rules{patterns: patterns()}
}

// Examples are sentences the rules planner understands, one per kind of
// request; adapters may show them in a help text or a banner.
var Examples = []string{
	"list open pull requests in acme/website",
	"merge PR 7 in acme/payments",
	"approve PR 7 in acme/payments",
	"deploy acme/website to staging",
	"delete the branch feature-x in acme/website",
	"what's on my calendar tomorrow",
	"schedule 'Design review' tomorrow at 3pm for 30 minutes with bob@example.com",
	"find 30 minutes free tomorrow with bob@example.com",
	"post 'deploy done' to #deploys",
	"list channels",
	"merge PR 7 in acme/payments and then post 'merged' to #deploys",
}

// Plan reads req.Text and proposes steps. Several requests may be chained
// with " and then ". If any part cannot be read, no step is proposed and
// Reply says which part and why.
func (r *Rules) Plan(ctx context.Context, req Request) (Plan, error) {
	if err := ctx.Err(); err != nil {
		return Plan{}, fmt.Errorf("plan: %w", err)
	}
	if req.Location == nil {
		req.Location = time.UTC
	}
	text, quotes := prepare(req.Text)
	switch strings.ToLower(normalize(text)) {
	case "", "help", "hi", "hello", "what can you do":
		return Plan{Reply: helpReply("Tell me what to do.")}, nil
	}
	var steps []Step
	for _, part := range splitSteps(text) {
		seg := normalize(part)
		step, hint, ok := r.match(seg, quotes, req)
		if !ok {
			intro := fmt.Sprintf("I couldn't read %q.", restore(strings.TrimSpace(part), quotes))
			if hint != "" {
				intro += " " + hint
			}
			return Plan{Reply: helpReply(intro)}, nil
		}
		steps = append(steps, step)
	}
	return Plan{Steps: steps}, nil
}

// match tries every pattern in order. The first whose expression matches
// decides: if its builder refuses (a missing time, an ambiguous hour), its
// hint is returned instead of trying looser patterns that would misread
// the sentence.
func (r *Rules) match(seg string, quotes []string, req Request) (Step, string, bool) {
	for _, p := range r.patterns {
		sub := p.re.FindStringSubmatch(seg)
		if sub == nil {
			continue
		}
		m := match{re: p.re, sub: sub, quotes: quotes, req: req}
		args, hint := p.build(m)
		if args == nil {
			return Step{}, hint, false
		}
		return Step{Action: p.action, Args: args}, "", true
	}
	return Step{}, "", false
}

func helpReply(intro string) string {
	var b strings.Builder
	b.WriteString(intro)
	b.WriteString(" Here are things I understand:\n")
	for _, e := range Examples {
		b.WriteString("• ")
		b.WriteString(e)
		b.WriteString("\n")
	}
	b.WriteString("For commands, type /agenthub help.")
	return b.String()
}

// Package planner turns what a person typed into proposed steps: named
// agent actions ("github.merge_pull_request") with concrete arguments.
//
// A planner only proposes. Nothing it returns is authorized: the broker
// validates every step against its action's JSON schema and asks the policy
// engine, which decides whether the step runs, needs approval or step-up, or
// is denied. A planner therefore never needs (and must never get) a
// credential, and a wrong plan costs at most a refused or declined request.
//
// Rules is the deterministic planner used by the demo and by tests: a fixed
// set of English patterns, one or more per action. The LLM planner
// (internal/planner/llm) offers the same method, Plan(ctx, Request) (Plan,
// error), so the broker holds either behind an interface of its own; it
// falls back to Rules when the model does not answer.
//
// Conventions shared by every planner:
//   - A sentence that cannot be read is not an error: Plan returns a Plan
//     with no steps and a Reply that explains what the planner understands.
//     Errors are reserved for failures of the planner itself (a cancelled
//     context; later, an unreachable LLM).
//   - Args hold Go values as a person would write them: strings, int for
//     numbers and []string for lists. The broker canonicalizes them (a JSON
//     round trip) before validating and hashing, so an LLM's float64 and
//     this planner's int yield the same step.
//   - Optional arguments the sentence did not give are omitted rather than
//     set to a zero value.
//   - Times are RFC 3339 strings in the person's time zone (Request.Location,
//     UTC when nil), computed from Request.Now; nothing reads the clock.
//
// Dates the rules planner reads: "today", "tomorrow" and weekday names. A
// weekday name ("friday", "on friday", "this friday", "next friday") means
// the next such day strictly after today, so "friday" said on a Friday is a
// week later. Clock times: "at 3pm", "at 3 pm", "at 9:30am", "at 15:00",
// "at noon". A bare "at 3" is refused as ambiguous rather than guessed.
// An event without a duration lasts 30 minutes; a search for free time
// today starts at the next whole minute rather than at midnight.
package planner

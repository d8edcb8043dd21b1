// Package broker is AgentHub's core: it turns what a person asked into
// proposed steps, lets the policy decide each one, asks for approval,
// step-up or a connection when the decision demands it, and runs the step
// under a short vault lease, recording every move in the audit trail.
//
// The broker speaks in domain terms. Handle, Decide, StepUp and Revoke
// return Outputs (a message, an approval to ask for, a step-up to prompt
// for, a connection to make, a result, an error); the console and Slack
// adapters render them. The same broker runs behind both.
//
// # Flow of one step
//
//	plan → validate (the action's schema; bad arguments run nothing)
//	     → audit step.proposed (HMAC of the arguments)
//	     → connection check (not connected: store the step waiting for it,
//	       and a connect output)
//	     → resource discovery (a short read-only lease, audited by the vault)
//	     → policy.Evaluate → audit policy.decided with the rule
//	     → allow: execute
//	       approve/stepup: a live grant for the same action and resource
//	         (only when the decision allows grants, never for high risk):
//	         execute; otherwise store a request and ask
//	       deny: say why, naming the rule
//
// # Requests and their states
//
// A step that cannot run at once is stored as a request under (principal,
// "request", ID) with its full step (the action and its canonical
// arguments), the SHA-256 of the canonical arguments, the policy's decision,
// the steps of its plan that come after it (Rest) and an expiry
// (RequestTTL, 24 hours by default; the record outlives it by an hour so
// that a late click or the sweeper settles it as expired, on the record),
// so it survives a restart and any process sharing the store can finish
// it. A global pointer ("", "request-owner", ID) names the owner, because
// a button carries only the request ID.
//
// The request lifecycle is a table (lifecycle.go): the states, the events
// that move a request between them and the conditions of each move, with
// the audit event the move leaves. Request.apply is the one function that
// changes a request's status, and it is pure; every caller loads the
// request, applies an event, stores the result by compare-and-swap (move,
// on store.UpdateFrom) and only then acts. So of any number of concurrent
// deciders, in any number of processes, exactly one moves a request out of
// a state; the others are told it was already decided. That is why a
// double click runs a step once. docs/ARCHITECTURE.md shows the table as a
// diagram, which a test keeps in step with it.
//
// A step whose service is not connected waits (waiting_connection) and
// goes on by itself once the adapter reports the connection (Connected):
// its resource is looked up and the policy decides, as if just asked. A
// step that needs a person waits for the owner's approval (pending), then
// for step-up and a second approver where the policy asks for them; once
// it has run and succeeded, the rest of its plan goes on from the store. A
// step that fails, is denied, expires or is canceled ends its plan.
//
// Only the owner may decide a request or pass its step-up
// (Request.MayDecide states the rule, the transition table enforces it);
// anyone else is refused and the refusal is audited (interaction.rejected).
// When the policy asks for a second approver, one of the Slack users it
// names (in the owner's workspace, never the owner) may also approve or
// deny, before or after the owner; the second approval never stands in for
// the owner's approval or step-up, and the step runs only once both are in.
//
// Before a stored step runs, its arguments are validated again and their
// hash compared with the stored one: an approval covers exactly the
// arguments that were shown, and any change makes a new request. The
// resource is then discovered again and must equal the one approved (the
// same base branch and head commit of a pull request, the same privacy and
// protection): if it moved, nothing runs and the person is asked again.
// Last, the policy decides again, now (a rule edited, a condition on the
// time of day, an approver taken off a list), and that decision is recorded
// (policy.decided with detail at=execution): the step runs only if what the
// request went through (the owner's approval, and step-up and a second
// approval by someone the policy still names where it asks for them) covers
// it; otherwise it fails with action.failed "policy_changed".
// Grants
// (choosing "for 1 hour" or "until revoked") are stored under (principal,
// "grant", ID), keyed by action and resource, and cover later steps of the
// same action on the same resource while the decision allows grants. High
// and critical steps never create or use grants.
//
// # Fail-closed points
//
//   - step.proposed cannot be recorded: the step is not considered.
//   - policy.decided cannot be recorded: nothing runs and no request is made;
//     at execution, the request fails and nothing runs.
//   - approval.granted (the owner's or the second approver's) cannot be
//     recorded: the request is marked failed and nothing runs.
//   - The vault records token.issued before a lease exists and
//     provider.requested before each provider call; if either cannot be
//     stored, no call reaches the provider.
//   - A status change that cannot be stored stops the flow: a step runs only
//     after this process has won the move to executing.
//   - Step-up: stepup.Verify records every attempt and fails if it cannot.
//
// A process that stops between "approved" and "executing" leaves the
// request approved, and one that stops during the call leaves it executing.
// Recover, which the Slack app's sweeper calls for the requests it shows,
// settles both as interrupted once they are stale (ApprovedStaleAfter,
// ExecutingStaleAfter), and never runs anything: an approved request does
// not tell whether its approval reached the audit trail, and for an
// executing one whether the provider acted cannot be known. The person is
// told to ask again, or to check. It also expires, on the record, requests
// that waited past their expiry.
package broker

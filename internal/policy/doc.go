// Package policy decides, for every step an agent proposes, what must happen
// before it may run. It is a pure decision engine: no I/O, no clock but
// Input.Now (time.Now when left zero), no knowledge of Slack, the store or
// the vault.
// The broker asks Engine.Evaluate and acts on the Decision.
//
// # Rules and first match
//
// A policy is a YAML file (an annotated default is embedded, see Default and
// default.yaml):
//
//	version: 1
//	groups:
//	  release-managers: [U012ABC, U034DEF]
//	rules:
//	  - name: production-deploys-need-two
//	    agent: github                      # patterns: a string or a list
//	    action: github.dispatch_workflow
//	    resource: "acme/*"
//	    when: args.?environment.orValue("") == "production"
//	    effect: second_approver
//	    risk: critical
//	    approvers: ["@release-managers"]
//	    reason: A production deploy needs two people.
//
// Rules are tried in order and the first that matches decides. A rule
// matches when its agent, action and resource patterns match the action's
// agent, the action's full name and the resource's name, and its `when`
// condition is true. A missing pattern matches anything; in a pattern `*`
// matches any run of characters and nothing else is special. Patterns are
// compiled when the policy loads, and a rule without a condition costs only
// these comparisons. When no rule matches, the built-in rule "default"
// denies; a policy may end with its own catch-all rule named default (no
// patterns, no condition) to choose otherwise. The embedded policy uses
// this to deny unknown writes and ask approval for unknown reads.
//
// Every rule has a unique name. The name is in every Decision and from
// there in the approval message and the audit event, so a person can always
// see which rule asked for what.
//
// # Effects
//
//   - allow: run without asking.
//   - approve: the person approves (or a grant of theirs matches, when
//     Decision.GrantOK is set).
//   - stepup: the person approves and proves presence with a fresh second
//     factor; the approval is for this one request.
//   - second_approver: as stepup, plus one of the rule's approvers who is
//     not the owner approves too. Approvers are Slack user IDs or @group,
//     resolved from the policy's groups when it loads.
//   - deny: refused, with the rule's reason.
//
// A rule may name the second factor its step-up asks for: `factor: totp`
// (a code from the person's authenticator app) or `factor: oidc` (a fresh
// sign-in, with its multi-factor step, at the identity provider). Without
// it the deployment's default applies (oidc when an identity provider is
// configured, totp otherwise), or `factor: ciba` (an approval on the
// person's phone through the identity provider's CIBA, with its factor).
// A rule that needs approval may say where the owner gives it:
// `approval: ciba` on their phone, and not in Slack; such an approval is
// for the one step (no grant stands in for it, none comes of it). A
// deployment refuses to start with a policy naming a factor it has not set
// up (Engine.Factors; approval: ciba names ciba).
//
// # Risk
//
// Each action declares a base risk (low, medium, high, critical). A rule's
// `risk` raises it; nothing lowers it. The effective risk is in the
// Decision and decides what the engine enforces whatever the rule says:
//
//   - high or critical risk always needs step-up: an allow or approve rule
//     that matches a high-risk step yields stepup (a Slack click alone never
//     authorizes a high-risk action);
//   - a step planned from untrusted content (Input.Tainted) is never run
//     without its owner approving that very step: allow becomes approve, and
//     no grant may stand in for the approval.
//
// # Lifetimes
//
// When the person approves they choose how long the approval lasts: once
// (this request, these arguments), 1h, or standing (until revoked). A rule
// lists what may be offered; without a list, low and medium risk offer all
// three. High and critical risk, and every step-up, offer only once: such an
// approval is single-use and bound to the exact arguments, so a changed
// argument is a new request. A file that offers more on such a rule does not
// load.
//
// # Results
//
// What a step reads reaches only the people allowed to see it: its result
// is shown where it was asked only when everything in it is public (the
// resource says so: attrs.private is false and attrs.audience is not
// "workspace"); otherwise it goes to the person alone. A rule may say that
// the channel a step was asked in may see its results anyway (`results:
// channel`, for a team calendar, say); `results: private` is the default.
//
// # Conditions
//
// A `when` condition is a CEL expression (https://cel.dev) that must be a
// bool. It sees these variables:
//
//	principal  id, team, user (strings), groups (list of strings),
//	           guest (bool: a single- or multi-channel guest of the workspace),
//	           external (bool: someone from another workspace or organisation)
//	action     name, agent, risk ("low"…"critical"), risk_level (0…3),
//	           scopes (list of strings), write (bool)
//	resource   kind, name (strings), attrs (map, e.g. resource.attrs.private)
//	args       the step's arguments (map)
//	step       tainted (bool: planned from untrusted content)
//	now        the decision time (timestamp)
//
// and the constants LOW, MEDIUM, HIGH and CRITICAL for comparing with
// action.risk_level. Business hours are written with CEL's calendar
// functions, which take an IANA time zone:
//
//	now.getDayOfWeek("Europe/Berlin") in [1, 2, 3, 4, 5] &&
//	now.getHours("Europe/Berlin") in [9, 10, 11, 12, 13, 14, 15, 16, 17]
//
// (getDayOfWeek counts from Sunday = 0; this is 09:00 to 17:59 on weekdays.) The engine caches time zones, so
// these do not read the zone database on every call.
//
// Reading a key that is absent (args.environment when the step has no such
// argument) is an error, and an error denies the step. Guard keys that may
// be missing with has(args.environment), or read them with a default:
// args.?environment.orValue(""). Comparing values of different types is
// false, not an error: resource.attrs.private == false does not hold for
// the string "false".
//
// Conditions are type-checked when the policy loads: an unknown variable or
// field, a result that cannot be a bool, or an unknown constant time zone
// stops the load with the file, line and rule name.
//
// # Failing closed
//
// A condition that fails while deciding (a missing map key, a value of the
// wrong type) denies the step under the rule's name with a reason that
// reveals nothing of the arguments; the cause is in Decision.Err for logs,
// which does not quote argument values either.
// A zero Decision denies. An unknown base risk counts as critical. A policy
// that does not parse does not run: Parse and Load return every problem
// found, each as an *Error naming the file, line and rule.
package policy

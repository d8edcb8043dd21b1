// Package slackapp is AgentHub's Slack adapter: it carries people's
// messages, clicks and slash commands to the broker over Socket Mode and
// renders what the broker says as Block Kit.
//
// The rendering layer (blocks.go) is pure functions from broker outputs,
// requests, grants and audit events to slack-go blocks and views, with no
// I/O. Button values carry only opaque IDs (a request ID, a grant ID, a
// service name), never arguments, resources or people, so a click payload
// says nothing a replica has to trust; the handler loads the request from
// the store and the broker checks the clicker. Slack's Block Kit limits are
// enforced where messages are built, and truncation is always visible
// ("…" and "(truncated)").
//
// The transport (socket.go) acks every envelope at once, before any work,
// dedupes envelopes, events and clicks in the store across replicas, and
// hands the work to a pool of workers. The handlers behind it:
//
//   - events.go: a mention or a DM is a message to the broker (principal
//     "T…:U…"); results and refusals are replied in the thread of the
//     person's message, approvals, step-up and connect prompts go to DMs
//     (the owner's and each second approver's), and the bot's own messages,
//     edits and other bots are ignored. In the demo, a person seen for the
//     first time is connected to every simulated service, once.
//   - interact.go: Approve/Deny, "Verify it's you" (the TOTP modal), Connect
//     and App Home's revoke buttons. Someone who may not decide a request is
//     answered ephemerally and nothing changes; the broker audits it.
//   - enrol.go: a person without an authenticator is enrolled from Slack; the
//     secret is shown once, in one DM. The DM is rewritten without it once
//     the first code passes, when a newer set-up replaces it, or when it
//     expires unconfirmed (10 minutes); a record (kind "slack-enrolment")
//     keeps every DM still to be rewritten until Slack has taken the
//     rewrite, and the sweeper retries. Enrolment from Slack trusts the Slack
//     session on first use: the OIDC step-up of a later issue removes that.
//   - commands.go: /agenthub, with the terminal demo's words. Help and typos
//     are answered within the ack; the rest through the command's
//     response_url, ephemerally.
//   - home.go: App Home, published when it is opened and after each change a
//     person makes.
//   - messages.go: every message shown for a request is recorded in the
//     store (kind "slack-request"), so that whichever replica sees the
//     request settle replaces its buttons with what happened; a sweeper, one
//     replica at a time under a store lock, does the same for requests that
//     expired or were settled elsewhere, and finishes enrolment rewrites.
//     It also settles requests left approved or executing by a process
//     that stopped (broker.Recover: failed as interrupted, nothing run) and
//     says so in the request's thread; until then the record is kept and
//     the messages show the approval.
//
// Only members of the workspace the app is installed in (auth.test's team)
// are served; a Slack Connect guest is told so and nothing reaches the
// broker. A decision or step-up code the broker could not take (the store
// or the audit trail failed, so nothing happened) is returned as an error,
// so the transport forgets the click and the person may click again; the
// broker's compare-and-swap keeps a retried decision single. A message is
// never retried once the broker has been called: a redelivery must not
// propose a step twice. Failures are logged (request_id, slack_user; never
// people's words or secrets) and the person is told in plain words. Every
// envelope's work has a deadline (handlerTimeout).
package slackapp

package audit

import "time"

// Kind names what happened.
type Kind string

// The event kinds AgentHub records.
const (
	StepProposed        Kind = "step.proposed"
	PolicyDecided       Kind = "policy.decided"
	ApprovalGranted     Kind = "approval.granted"
	ApprovalDenied      Kind = "approval.denied"
	InteractionRejected Kind = "interaction.rejected" // someone not allowed to do what they tried
	RequestRefused      Kind = "request.refused"      // a request that could not be proposed (no plan, unknown action, bad arguments)
	StepUpPassed        Kind = "stepup.passed"
	StepUpFailed        Kind = "stepup.failed"
	TokenIssued         Kind = "token.issued"
	TokenRefreshed      Kind = "token.refreshed"
	ProviderRequested   Kind = "provider.requested" // before a provider call is sent; no event, no call
	ProviderCalled      Kind = "provider.called"
	ActionSucceeded     Kind = "action.succeeded"
	ActionFailed        Kind = "action.failed"
	RequestExpired      Kind = "request.expired"  // a request nobody decided in time
	RequestCanceled     Kind = "request.canceled" // a request its owner's revocation ended
	GrantCreated        Kind = "grant.created"
	GrantRevoked        Kind = "grant.revoked"
	ConnectionCreated   Kind = "connection.created"
	ConnectionRevoked   Kind = "connection.revoked"
	ConnectionExpired   Kind = "connection.expired"
	ProviderRevoked     Kind = "connection.provider_revoked" // a provider confirmed, on a retry, a revocation it had failed
	LeaseIssued         Kind = "lease.issued"
	VaultRekeyStarted   Kind = "vault.rekey_started"  // "bot rekey" began resealing under the current key
	VaultRekeyed        Kind = "vault.rekeyed"        // "bot rekey" ended; Detail holds its counts and Result whether anything failed
	ConnectStarted      Kind = "connect.started"      // a person's browser left for a provider's consent page
	ConnectRefused      Kind = "connect.refused"      // a connect link or callback that could not be used
	WebhookRefused      Kind = "webhook.refused"      // a provider webhook delivery that was not believed
	IdentityLinked      Kind = "identity.linked"      // a Slack user linked to their identity at the IdP (a fresh sign-in)
	IdentityUnlinked    Kind = "identity.unlinked"    // that link undone (a fresh sign-in of the linked identity)
	IdentityRefused     Kind = "identity.refused"     // a sign-in at the IdP that did not count: stale, without the factor, someone else's, …
	IdentityVerified    Kind = "identity.verified"    // the linked identity signed in before a connection went on to its provider
	ConversationStopped Kind = "conversation.stopped" // a person stopped a conversation (Slack's Stop): nothing begun in it goes on
)

// Kinds returns every kind above, in their order (the metrics label them;
// a test keeps the list whole).
func Kinds() []Kind {
	return []Kind{
		StepProposed, PolicyDecided, ApprovalGranted, ApprovalDenied, InteractionRejected, RequestRefused,
		StepUpPassed, StepUpFailed, TokenIssued, TokenRefreshed, ProviderRequested, ProviderCalled,
		ActionSucceeded, ActionFailed, RequestExpired, RequestCanceled, GrantCreated, GrantRevoked,
		ConnectionCreated, ConnectionRevoked, ConnectionExpired, ProviderRevoked, LeaseIssued, VaultRekeyStarted, VaultRekeyed,
		ConnectStarted, ConnectRefused, WebhookRefused, IdentityLinked, IdentityUnlinked, IdentityRefused, IdentityVerified,
		ConversationStopped,
	}
}

// Event is one record of the audit trail. Callers fill in what happened
// (Kind, Actor, …, and Args); Record fills in Seq, Time, ArgsDigest,
// ArgsSummary, Prev and Hash.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      Kind      `json:"kind"`
	Actor     string    `json:"actor,omitempty"`  // the principal, "T123:U456"
	Agent     string    `json:"agent,omitempty"`  // "github", "calendar", "slack"
	Action    string    `json:"action,omitempty"` // "github.merge_pull_request"
	Resource  string    `json:"resource,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Decision  string    `json:"decision,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Result    string    `json:"result,omitempty"`
	// Detail holds kind-specific, non-secret facts, such as the method,
	// path and status of a provider call, or a service name.
	Detail map[string]string `json:"detail,omitempty"`

	// Args are the step's canonical arguments. They are never stored: the
	// recorder keeps only their HMAC digest and a redacted summary.
	Args map[string]any `json:"-"`

	ArgsDigest  string `json:"args_hmac,omitempty"`
	ArgsSummary string `json:"args_summary,omitempty"`
	Prev        string `json:"prev"`
	Hash        string `json:"hash"`
}

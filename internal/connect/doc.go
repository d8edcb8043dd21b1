// Package connect is AgentHub's OAuth adapter: it connects a person's
// account at a provider (GitHub, Google, Slack) to AgentHub, so that the
// vault holds the tokens and agents act through it. Nobody pastes a token
// anywhere, and no token reaches a page, a log or Slack.
//
// # The flow
//
//  1. The Slack app asks for a link for the person who clicked Connect
//     (Flows.Link). The link is signed, names that person and the service,
//     and is good for ten minutes and one use.
//  2. Opening the link shows a page that says what will be connected for
//     whom, with a Continue button. Nothing is spent by opening it, so a
//     link preview or a mail scanner that fetches it does no harm.
//  3. Continue (a POST from that page only) spends the link, keeps a
//     single-use state with a PKCE verifier in the store, sets a cookie
//     that binds the flow to this browser, and sends the browser to the
//     provider's consent page.
//  4. The provider sends the browser back to the callback of that service.
//     The state is spent on first sight, whatever follows; the callback is
//     refused when the state is unknown, spent, expired or of another
//     service, when the browser is not the one that started the flow (the
//     cookie), or when the person did not consent. Otherwise the code is
//     exchanged (with the verifier) and the token handed to the vault,
//     with the scopes the provider says it granted.
//  5. Options.Connected runs once the connection is stored: the Slack app
//     goes on with the requests that waited for it.
//
// Every refusal is on the audit record (connect.refused, counted per actor
// and reason by the broker's refusal counters, so that a flood of forged
// callbacks costs the trail two events per window); every started flow is
// too (connect.started), and the vault records connection.created.
//
// # Whose account
//
// A provider's Exchanger (internal/provider) names the account the code
// was for: the page and Options.Connected say it to the person, and the
// vault keeps it with the connection; connecting another account in place
// of one revokes the old one's grant at the provider. At Slack the account
// must be the link's own Slack user in the link's workspace, or nothing is
// connected (ErrWrongAccount: the Exchanger revokes what it obtained).
//
// At GitHub and Google the provider's answer does not tie the browser to
// the Slack user the link names. With an identity provider (Options.
// SignIn) such a provider signs in first (Provider.SignInFirst): Continue
// goes to the identity provider, and only a sign-in of the identity linked
// to the link's Slack user lets the flow go on to the provider (its state
// waits, AwaitSignIn, and its callback is refused until then). Without one,
// a link works for whoever opens it: someone who forwards their own link
// to a colleague already signed in at the provider gets the colleague's
// account stored under their own name (and the colleague's name shown on
// the page), and a leaked link stores the opener's account under the
// link's person; the link is therefore given to its person alone (an
// ephemeral reply) and says so.
//
// # Sign-ins
//
// The same flow signs people in at an identity provider (internal/identity):
// its Provider sets Nonce, Describe and Finish. The link then carries a
// purpose (LinkFor: link, unlink, the step-up of one request), the start
// page says what the sign-in is for, a fresh nonce goes with the
// authorization request and is kept with the state, and Finish, given the
// code, the verifier, the nonce and the purpose, does the rest instead of
// the vault; a *Refused it returns is refused like any callback, with its
// own audit kind and reason.
//
// Pages are small and self-contained: no scripts, no external assets, a
// content security policy that allows nothing else, no framing, no
// referrer, no caching, and no redirect anywhere but to the provider's own
// consent page.
package connect

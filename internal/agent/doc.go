// Package agent is the action registry: every thing an agent can do for a person is an Action
// with a JSON-schema for its parameters, the provider scopes it needs, a base risk, a way to find
// the resource it touches, and the code that performs it.
//
// The broker validates a planned step with Registry.Validate, which also canonicalises the
// arguments (integral numbers become int64, strings are trimmed, defaults are filled in, unknown
// fields are refused) so that the same request always yields the same arguments and therefore the
// same argument hash, which is what single-use approvals are bound to.
//
// Agents never see a credential. Resource and Execute receive the *http.Client of a vault lease,
// whose transport injects the token; this package and its sub-packages must not import the vault
// (internal/deptest enforces it). Provider failures come back as *ProviderError, whose message is
// safe to show to people: it carries the provider's status and message, never a token or header.
//
// A resource says who may see it, and so who may see what a step on it shows: attrs "private"
// false for something anyone may see (a public repository); false with "audience" "workspace" for
// something the members of the Slack workspace may see but no guest or partner (its public
// channels); anything else (private true, or no "private" at all) is for its owner alone. The
// broker shows a result in a shared channel only when its resource is public to everyone.
package agent

package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what every printed or encoded form of a Secret shows.
const Redacted = "REDACTED"

// Secret holds a credential (an access token, a refresh token) so that it
// cannot leak by accident: every way Go prints or encodes a value — fmt with
// any verb, encoding/json, encoding.TextMarshaler, log/slog — yields
// REDACTED. Reveal is the one way out, and it is called only where the
// secret must be sent to the provider that issued it.
//
// The zero Secret is empty.
type Secret struct {
	// A pointer to the string, rather than the string, keeps reflection-based
	// printers that bypass the methods below (such as a struct printed with
	// %v by a package that ignores fmt.Formatter) from showing the bytes.
	v *string
}

// New wraps s.
func New(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{v: &s}
}

// Reveal returns the secret itself. Call it only to hand the secret to the
// provider that issued it, never to print, log, store in the clear, or
// return it to an agent.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == nil || *s.v == "" }

// String returns REDACTED.
func (s Secret) String() string { return Redacted }

// GoString returns REDACTED, for %#v.
func (s Secret) GoString() string { return Redacted }

// Format prints REDACTED for every verb (%q quotes it), so no fmt verb,
// width or flag can reach the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	fmt.Fprint(f, Redacted)
}

// MarshalJSON encodes the secret as the JSON string "REDACTED".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText encodes the secret as REDACTED.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue makes log/slog record REDACTED.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

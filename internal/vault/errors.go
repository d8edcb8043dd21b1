package vault

import (
	"errors"

	"github.com/agenthub/agenthub/internal/secret"
)

// Sentinel errors. The vault wraps them with context; callers test them
// with errors.Is and map them to user-facing error kinds. No error the vault
// returns contains token material or key bytes.
var (
	// ErrNotConnected means the principal has no active connection to the
	// service (never connected, or revoked).
	ErrNotConnected = errors.New("not connected")
	// ErrReconnect means the connection expired (the provider refused its
	// refresh token), so the person must connect again.
	ErrReconnect = errors.New("connection expired, reconnect needed")
	// ErrInsufficientScope means the connection lacks a scope the lease asks
	// for; the person must reconnect granting it.
	ErrInsufficientScope = errors.New("insufficient scope")
	// ErrLeaseRevoked means the lease was released or revoked, or its
	// connection was revoked or replaced.
	ErrLeaseRevoked = errors.New("lease revoked")
	// ErrLeaseExpired means the lease outlived its expiry.
	ErrLeaseExpired = errors.New("lease expired")
	// ErrHostNotAllowed means a lease's client was asked to call a host that
	// is not one of its service's API hosts, or over plain HTTP.
	ErrHostNotAllowed = errors.New("host not allowed")
	// ErrUnknownService means no service of that name is configured.
	ErrUnknownService = errors.New("unknown service")
	// ErrUnknownKey means a record was sealed under a key the keyring does
	// not hold (add it to AGENTHUB_VAULT_OLD_KEYS). It is the keyring's
	// secret.ErrUnknownKey, so either name matches.
	ErrUnknownKey = secret.ErrUnknownKey
	// ErrProviderRevoke means Revoke revoked the connection locally, but
	// the service's Revoke hook failed, so the tokens may still be live at
	// the provider until they expire.
	ErrProviderRevoke = errors.New("provider did not revoke the tokens")
	// ErrCorrupt means a sealed record failed to open: altered, sealed under
	// a different key with the same ID, or moved to another principal or
	// service. It is the keyring's secret.ErrCorrupt, which the vault also
	// returns for a record that opens but does not decode.
	ErrCorrupt = secret.ErrCorrupt
)

// Package secret holds the two types everything that touches a credential
// shares: Secret, a string that prints and encodes as REDACTED whichever way
// it is formatted, marshalled or logged, and Keyring, the AES-256-GCM keys
// that seal secrets at rest (the vault's tokens, step-up's TOTP seeds),
// with the current key sealing and old keys only opening, so that a key
// can be rotated without locking anyone out.
//
// It is a leaf: it imports only the standard library, so packages that
// only carry or seal a secret (config, step-up) need not import the vault,
// which performs operations with them.
package secret

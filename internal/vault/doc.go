// Package vault holds people's OAuth connections and performs provider calls
// with them, without ever handing a token to its callers.
//
// # The factotum model
//
// The vault is a factotum: it performs operations with secrets and never
// returns them. An execution does not ask for a token; it asks for a Lease,
// a short-lived, revocable capability bound to one principal, one service,
// the provider scopes it needs and the resource it touches, and gets an
// *http.Client from it. The client's transport adds the token to each
// request on the way out. No exported method returns a token: Connection
// and Connections return metadata only, errors never quote token material or
// keys, and Secret — the type that carries a token to the one place it must
// go, the provider — prints and encodes as REDACTED whichever way it is
// formatted, marshalled or logged.
//
// # Sealing
//
// A connection is one store record, (principal, "connection", service). Its
// public metadata (scopes, status, times) is in the clear; the token
// material (access token, refresh token, token type, expiry) exists only as
// AES-256-GCM ciphertext under a random 12-byte nonce. The additional data
// is "agenthub.connection.v1", the principal and the service, taken from
// where the record is found, so a ciphertext copied to another principal or
// service does not open. Each record names the ID of the key that sealed it
// (the first 16 hex digits of the key's SHA-256). A Keyring holds the
// current key and old ones: records sealed under an old key open with it and
// are resealed under the current key by the next write of their token (a
// refresh, a reconnect) or by Rekey, after which the old key can be dropped.
//
// # Leases
//
// A lease is a record (principal, "lease", ID) whose time-to-live is the
// lease's, at most one hour. On every request the lease's transport checks,
// before anything is sent: that the lease has not expired by the vault's
// clock, that the URL's host is one of the service's API hosts (and HTTPS,
// except to loopback addresses), and that the lease record still exists —
// one store read. Then it adds the access token to a clone of the request,
// sends it, and records a provider.called audit event with the method, the
// path and the status, never headers or the query. Issuing a lease records
// token.issued; if either event cannot be stored, the lease is not issued or
// the response is withheld (fail closed).
//
// # Refresh
//
// Access tokens are cached in memory. When one has expired, the callers in
// one process share one refresh (singleflight) and processes sharing the
// store share one refresh under the store lock "refresh:<service>" in the
// principal's scope. After taking the lock the refresher re-reads the
// record: if another process has refreshed meanwhile it uses that token
// without calling the provider. Otherwise it refreshes with golang.org/x/oauth2
// and stores the new tokens — a rotated refresh token is the only valid one
// from then on — with compare-and-swap before the new access token is used.
// When the provider answers invalid_grant the refresher reads the store once
// more, because another process may have rotated the refresh token; if it
// has not, the connection is marked expired and the error wraps
// ErrReconnect, so the person is asked to connect again.
//
// # Revocation
//
// Revoke marks the connection revoked and deletes its sealed token, deletes
// every lease of that principal and service, forgets the cached access
// token, and calls the service's Revoke hook with the refresh token. Because
// every request re-reads its lease record, every live lease in every process
// sharing the store fails with ErrLeaseRevoked on its next request, and no
// request reaches the provider. Lease stores its record before its final
// read of the connection, so a lease issued concurrently with a revocation
// is either refused or deleted by it.
package vault

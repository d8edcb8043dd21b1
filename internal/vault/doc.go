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
// keys, and secret.Secret — the type that carries a token to the one place
// it must go, the provider — prints and encodes as REDACTED whichever way it
// is formatted, marshalled or logged. A Service, and so the Options and the
// Vault, print their names and hosts only, never the OAuth client secret.
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
// (the first 16 hex digits of the key's SHA-256). A secret.Keyring holds
// the current key and old ones: records sealed under an old key open with it
// and are resealed under the current key by the next write of their token (a
// refresh, a reconnect) or by Rekey (one principal) and RekeyAll (everyone,
// with progress; "bot rekey" runs it), after which the old key can be
// dropped. Both skip records already under the current key, so an
// interrupted run is finished by running it again. SealedByKey counts the
// records under each key, so that a bot can say at start that some need a
// key it lacks (they are refused: ErrUnknownKey) or an old key it still
// needs. Both find the principals in a global index, ("", "vault-principal",
// principal), that Connect writes before the connection itself, so neither
// scans the keyspace.
//
// # Leases
//
// A lease is a record (principal, "lease", ID) whose time-to-live is the
// lease's, at most one hour. On every request the lease's transport checks,
// before anything is sent: that the lease has not expired by the vault's
// clock; that the URL's host is one of the service's API hosts (and HTTPS,
// except to loopback addresses), and that the Host header, if set, names
// the same host; that the lease record still exists unchanged; and that the
// connection is still active and still the one the lease was issued on —
// two store reads. Then it records a provider.requested audit event (method,
// path, lease, request), adds the access token to a clone of the request,
// sends it, and records a provider.called event with the status as well;
// never headers or the query. Issuing a lease records token.issued. If
// token.issued or provider.requested cannot be stored, the lease is not
// issued or the request not sent; if provider.called cannot be, the
// response is withheld (fail closed).
//
// The token never comes back to the agent: http.Transport sets a response's
// Request to the request it sent, the clone with the token, so the
// transport puts the agent's own request back; on a redirect the client
// builds each hop from the agent's request, so no request reachable from a
// response or an error carries the Authorization header.
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
// The deadline of the re-read and the token endpoint call starts once the
// lock is held (waiting for the lock has its own); the write of the answer
// ignores that deadline and the callers' cancellation and is retried a few
// times, still under the lock, because the provider has already invalidated
// the old refresh token. All of it stays within the lock's time-to-live. If
// the write still fails, the vault logs it at error level and returns an
// error: the connection will need reconnecting. If the connection was
// revoked or replaced during the refresh, the tokens just issued are
// revoked at the provider.
//
// When the provider answers invalid_grant (or GitHub's HTTP 200 with
// bad_refresh_token) the refresher reads the store once more, because
// another process may have rotated the refresh token; if it has not, the
// connection is marked expired and the error wraps ErrReconnect, so the
// person is asked to connect again. Every OAuth configuration must name its
// AuthStyle: oauth2's auto-detection answers a failed refresh by sending
// the same refresh token again, which providers with reuse detection
// punish.
//
// A service with Renew gets its access tokens another way, under the same
// lock, cache, audit events and expiry: Auth0 Token Vault's exchange of
// the person's Auth0 refresh token (the connection's stored refresh token,
// never rotated) for the provider's access token. A renewal the person
// must connect again for (the account is not connected at Auth0, or the
// Auth0 refresh token was refused) expires the connection as an
// invalid_grant does. Leases cannot tell the two apart, and a conformance
// suite runs the same promises on both (conformance_test.go).
//
// A provider may also refuse an access token before its stated expiry: it
// revoked or expired it early, or the clocks disagree. A request answered
// 401 is then sent once more with a token refreshed for it (the same shared
// refresh, which now treats the refused token as expired), as a new call:
// the lease and the connection are checked before the refresh and again
// before the retry, and both attempts are audited (the second with detail
// attempt=2). A 401 means the provider did nothing, so this holds for
// writes too; a body that cannot be read twice (no GetBody) is not sent
// twice. A 401 is not always about the token (GitHub answers GET /app with
// one to any user token), so a connection without a refresh token is
// never expired for one, and each process renews a connection's token at
// most once a minute. If no new token comes, the provider's 401 is
// returned; an invalid_grant from the refresh has marked the connection
// expired. Slack answers an expired token with HTTP 200 and ok=false,
// which this does not see.
//
// # Revocation
//
// Revoke marks the connection revoked and deletes its sealed token, forgets
// the cached access token, deletes every lease of that principal and
// service, and calls the service's Revoke hook with the access and refresh
// tokens (whichever exist: GitHub's non-expiring tokens and Slack user
// tokens have no refresh token). It tries every step even when one fails and
// returns the failures joined; the hook's error is described by its type or
// HTTP status, never quoted, since it may carry a token-bearing URL.
//
// Because every request reads the connection record, marking it revoked is
// what stops the leases: every live lease in every process sharing the
// store fails with ErrLeaseRevoked on its next request, and no request
// reaches the provider, even if deleting the lease records failed. A
// connection that was replaced by a reconnect, expired, damaged or is gone
// blocks its leases the same way. Lease stores its record before its final
// read of the connection, so a lease issued concurrently with a revocation
// is either refused or sees the revocation on its first request.
//
// # Redis
//
// Redis must run with maxmemory-policy noeviction. Under an eviction
// policy Redis may drop any record when memory runs short: a refresh lock
// (two refreshers then reuse one refresh token), a rotated token, or an
// audit event. The vault is built so that a lost record never grants
// access — a lease or connection record that is gone blocks the lease, as
// "not connected" — but it cannot make a lost token or audit event come
// back.
package vault

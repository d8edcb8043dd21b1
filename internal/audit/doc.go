// Package audit is AgentHub's tamper-evident audit trail: every request,
// decision, approval, rejected click, step-up, token issue and refresh,
// provider call, result and revocation becomes one Event in a hash chain
// kept in a store log.
//
// # The chain
//
// Each event carries the hash of its predecessor (Prev; 64 zeros for the
// first) and its own hash (Hash), the SHA-256 of its canonical encoding up
// to and including Prev. Changing, removing, reordering or inserting an
// event therefore breaks the chain at that point: its own hash no longer
// matches, or the next event's Prev no longer does, or the sequence numbers
// are no longer consecutive. Verify and VerifyStore report the first bad
// sequence number as a *ChainError.
//
// A chain proves its own consistency, not its completeness: someone who can
// write the store could cut off its last events, or rewrite everything from
// some event to the end and re-hash it. The head hash is what anchors the
// chain; it goes to the second sink (a slog JSON line per event, for log
// shippers) and to the Slack audit channel, so Summary.Head of a later
// verification can be compared with a copy the attacker does not control.
//
// Arguments are never stored. An event keeps an HMAC-SHA256 of their
// canonical JSON, keyed by AGENTHUB_AUDIT_KEY, which proves which arguments
// were used to someone who holds the key and the arguments, without letting
// anyone guess low-entropy arguments from the trail; and a summary for
// people in which secret-looking values read REDACTED and long strings are
// cut short.
//
// # The encoding
//
// An entry is one line of JSON with a fixed field order and no
// insignificant whitespace:
//
//	{"seq":7,"time":"2025-06-01T09:30:00.000Z","kind":"policy.decided",…,"prev":"<64 hex>","hash":"<64 hex>"}
//
// It starts with {"seq":N, and ends with ,"prev":"<64 hex>","hash":"<64 hex>"}
// (lowercase hex); Hash covers every byte before ,"hash":. Empty fields
// are left out; detail keys are sorted. The store keeps these bytes and
// Export writes them verbatim, so verification hashes exactly what was
// stored and never re-encodes anything: it reads seq from the fixed prefix
// and prev and hash from the fixed-length suffix. Decode parses an entry
// for display.
//
// # Fail closed
//
// The store is the source of truth. Recorder.Record returns only after the
// event is in the store, and a caller that gets an error must not carry out
// what the event describes: if the event that authorizes an action cannot be
// recorded, the action does not run. The slog line is written only after
// the event is stored.
//
// # Group commit
//
// Concurrent Record calls share store round trips without a background
// goroutine. Each call queues its event; a caller that finds no batch in
// progress becomes the leader, takes the queue as one batch, reads the head
// of the log, chains the batch to it, appends it with one store.Append, and
// wakes the others with their results; the next waiter then leads the
// events that queued meanwhile. Append succeeds only if the log still ends
// at the seq the batch was chained to, so several Recorders (processes)
// sharing one log cannot fork it: the loser waits a random moment, re-reads
// the head, re-chains and retries, a bounded number of times.
package audit

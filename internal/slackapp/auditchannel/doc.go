// Package auditchannel posts AgentHub's audit trail to a Slack channel
// (AGENTHUB_AUDIT_CHANNEL): every event of the store's audit log as one
// compact line (slackapp.AuditChannelLine), in order, in batches.
//
// # Why the channel matters
//
// A hash chain proves its own consistency, not its completeness: whoever
// can write the store can cut its last events off, or rewrite it from some
// event to the end and re-hash everything after. The channel is the copy
// the attacker does not control. Every posted batch ends with a context
// line naming its last event and that event's full hash,
//
//	chain head #1234 <64 hex>
//
// so anyone can later compare the head that `bot audit verify` prints, or
// any event's hash, with the channel.
//
// # Batching and Slack's limits
//
// chat.postMessage allows about one message per second per channel, so the
// poster posts at most once per Interval (1.1 s by default) and packs as
// many events into one message as fit: mrkdwn sections of at most 3,000
// characters, at most 49 of them plus the chain head line, and well under
// 40,000 characters in all; the plain text fallback names the range and
// the head. When the log is idle it polls the log head (store.Head) every
// Interval. A 429 is retried with the same batch after its Retry-After;
// any other failure (channel_not_found, not_in_channel, the network) is
// logged, with the error text only, and retried with the same batch after
// an exponential backoff of up to a minute.
//
// # Nothing lost, nothing posted twice
//
// The cursor, the last posted seq and its hash, lives in the store under
// (scope "", kind CursorKind, ID channel) and moves by compare-and-swap only
// after a post succeeded; a batch that was not posted never moves it. A
// poster starts after the cursor, or, with no cursor yet, at seq 1 (the
// whole trail; Options.SkipBacklog starts after the current head instead).
// So restarts, Slack outages and rate limits neither lose nor repeat
// events. Run finishes a post in flight when its context ends, and writes
// the cursor after it, so a graceful shutdown repeats nothing either.
//
// One replica posts at a time: the one holding the lock record
// (scope "", kind store.LockKind, ID "audit-channel:" + channel), which it
// renews every third of LockTTL and releases when Run ends. The others
// try again every Interval, so when the holder dies another takes over
// after LockTTL at most. A post is never started, or left running, past
// the holder's lease, so a replica that takes over cannot post alongside
// a holder that was cut off from the store.
//
// The window that remains, honestly: Slack has no idempotency key for
// chat.postMessage, so when a post succeeds and the cursor cannot be
// written after it (the process is killed in between, or the store stays
// unreachable until Run's context ends), or when a post's answer is lost
// (a timeout after Slack accepted it), that one batch is posted again by
// whoever posts next. Its lines carry their seq and the head line its
// hash, so a repeated batch is recognisable as such; events are never
// lost.
//
// # A broken chain
//
// The poster checks every entry before posting it, as audit.VerifyStore
// does: its hash covers its bytes, its seq follows the last posted one,
// and its prev is the hash posted for that one. It also checks, while
// idle, that the last posted event is still in the log unchanged. When a
// check fails at seq N, it posts the events before N, then one loud
// message (with @here) saying the chain is broken at seq N and why, logs
// an error, and posts nothing past N; the cursor remembers the alarm so
// that restarts and other replicas do not repeat it. If the log later
// verifies again (restored from a backup), posting resumes.
//
// # Metrics
//
// agenthub_audit_channel_posted_events_total, _posts_total,
// _rate_limited_total, _errors_total (failures that were retried) and the
// gauge _lag_events (events recorded but not yet posted).
package auditchannel

// Package stepup checks a fresh second factor before a high-risk action
// runs: today a TOTP code (RFC 6238) from the person's authenticator app,
// later also an OIDC re-authentication beside it.
//
// # Why a Slack click is not enough
//
// An approval button proves only that someone holding the person's Slack
// session clicked it. A stolen laptop, a leaked session cookie or a
// malicious Slack app is enough for that, and on its own it must not be
// enough to merge into a protected branch, delete something or deploy. So
// for those actions the broker asks, after the approval, for a code that
// only the person's phone can produce, and binds the check to that one
// request: Verify takes the request ID, and every attempt is an audit event
// carrying it.
//
// # Enrolment
//
// Enroll creates a pending enrolment and hands out the TOTP secret exactly
// once (as a secret.Secret, together with the otpauth:// URI that an
// authenticator app scans). The secret is stored only sealed with
// AES-256-GCM under Options.Key (through a secret.Keyring, so each record
// names its key ID), bound to the principal. Confirm activates
// the enrolment with the first valid code, which proves the app really holds
// the secret; until then step-up refuses the principal (ErrPending). A
// pending enrolment can be confirmed for PendingTTL only (ErrExpired after
// that): its secret was shown in a chat, and one left unconfirmed there is
// a key waiting for the wrong reader; Enroll again for a new one. A
// confirmed enrolment is never replaced silently: Reset, an administrator's
// action, must remove it first.
//
// # The enrolment gate
//
// Whoever can enrol can replace the second factor, and a Slack session is
// all an approval button asks for. With Options.Gated (the bot on real
// providers) Enroll fails with ErrNotAllowed and creates nothing; only
// EnrollAfterGate enrols, called where the gate was passed: the page after
// a fresh sign-in of the principal's linked identity at the identity
// provider (internal/identity), or the page of a single-use link that an
// administrator (after approving in Slack, never their own) or the
// operator ("bot stepup enrol-link") handed over out of band. That page
// shows the secret; it never travels through Slack, where a stolen session
// could read it. The stepup.enrolled event says how the gate was passed.
// With reset the new enrolment replaces a confirmed one: that is the way
// back for someone who lost their authenticator, through the same gate as
// the first enrolment. The new secret waits beside the confirmed one,
// which keeps counting until a code of the new one confirms it: a reset
// nobody finishes (a stale link, a scanner that pressed Continue) takes
// nothing away. The confirmation clears the failure count and the ladder;
// a lockout running at the time must end first (someone guessing codes in
// the person's Slack session can delay a reset that long, not stop it).
//
// # Replay and lockout
//
// A code is valid for its 30-second time step and, to forgive clock drift,
// one step either side. Within those 90 seconds an observed code (shoulder
// surfing, a phishing page relaying it) could be used again, so each
// principal's record remembers the highest time step ever used, and a code
// for that step or an earlier one is refused (ErrReplay). The record is
// updated with compare-and-swap, so when two requests, in one process or
// in several sharing Redis, present the same code at the same moment,
// exactly one of them succeeds.
//
// Six digits are a million possibilities; unlimited guessing would find one
// in hours. Five failed attempts (wrong or replayed codes) within
// FailureWindow lock step-up. While locked even the right code fails with
// ErrLocked, so guessing gains nothing; the lock lifts by itself. A success
// clears the failure count.
//
// A lockout of fixed length would still let someone holding the person's
// Slack session try five codes every quarter of an hour, day and night. So
// lockouts in a row grow, along a ladder kept as data (lockoutLadder):
//
//	lockout                                        lasts
//	1st                                            15 minutes (LockoutDuration)
//	2nd, within a day after the 1st ended          1 hour
//	3rd and later, within a day after the last one 24 hours
//
// "A day" is EscalationWindow, counted from the previous lockout's end: once
// the top rung is reached it stays there while the guessing goes on, about
// five guesses a day. A right code (Verify or Confirm), or a whole
// EscalationWindow without a lockout, puts the ladder back to its first
// rung. Enrolling again over a pending enrolment keeps the rung, like the
// failure count and the lockout itself, or re-enrolling would be a way to
// keep guessing; only Reset, an administrator's action, clears it.
//
// The attempt whose failure engages a lockout returns its own error
// (ErrBadCode or ErrReplay) joined with a *LockedOut, which says until when
// and at which rung; that is when the adapter tells the owner that someone
// is failing codes on their account. Attempts refused during a lockout
// return ErrLocked joined with a *LockedOut too. Both audit events carry
// locked_until, lock_level and the lockout's length.
//
// # Key rotation
//
// Options.Key seals every new secret; Options.OldKeys, the keys it
// replaced, still open the secrets sealed before, so that a rotation does
// not force anyone to enrol again. Each record names the key it is sealed
// under. To retire an old key: deploy with the new Key and the old one in
// OldKeys, run ResealAll until it reports no error (it moves every
// enrolment to Key), then drop the old key. A record left under a key that
// is in neither fails to open, and step-up fails closed for its principal
// until an administrator resets them.
//
// The store lists records one scope (principal) at a time, so Enroll also
// writes a global index record per principal, which ResealAll walks.
// Principals enrolled before the index existed are not in it until Enroll
// or Reseal is called for them once.
//
// Every attempt, passed or failed, is recorded through Options.Audit before
// Verify returns, and if the record cannot be stored Verify fails: a
// step-up that left no trace does not authorize anything. Neither the
// secret nor any code, right or wrong, appears in an audit event, a log
// line or an error.
package stepup

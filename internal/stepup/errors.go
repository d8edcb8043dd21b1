package stepup

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by the Service. Their messages are safe to show the
// person; callers test them with errors.Is. Errors may wrap them with more
// context, never with a code or the secret.
var (
	// ErrNotEnrolled means the principal has no authenticator enrolled.
	ErrNotEnrolled = errors.New("no authenticator is set up for step-up")
	// ErrPending means the principal's enrolment has not been confirmed
	// with a first code yet.
	ErrPending = errors.New("the authenticator is not confirmed yet: enter a code from it to finish setting it up")
	// ErrAlreadyEnrolled means a confirmed enrolment exists; it must be
	// Reset before a new one can be made.
	ErrAlreadyEnrolled = errors.New("an authenticator is already set up; ask an administrator to reset it")
	// ErrBadCode means the code is not the current one (or was mistyped).
	ErrBadCode = errors.New("that code is not valid")
	// ErrReplay means the code, or a later one, was already used.
	ErrReplay = errors.New("that code was already used: wait for the next one")
	// ErrLocked means too many failed attempts; step-up is locked for a
	// while. The lockout grows with each one in a row, so the text names no
	// length: a *LockedOut joined with it says until when.
	ErrLocked = errors.New("too many failed attempts: step-up is locked for a while")
	// ErrNotAllowed means enrolment is gated (Options.Gated): only
	// EnrollAfterGate enrols, after a fresh sign-in at the identity
	// provider or with a link an administrator or the operator handed
	// over.
	ErrNotAllowed = errors.New("setting up an authenticator needs more than a Slack session: a sign-in at your identity provider, or an administrator's approval")
	// ErrNotDemo means DemoCode was called on a Service not in demo mode.
	ErrNotDemo = errors.New("demo codes are only available in the demo")
)

// errCorrupt means a sealed enrolment did not open: altered, sealed under
// another key, or copied from another principal.
var errCorrupt = errors.New("stepup: sealed enrolment does not open")

// LockedOut says that step-up is locked for a principal and until when. It
// comes joined with the sentinel of the attempt it describes: with
// ErrBadCode or ErrReplay when that attempt's failure engaged the lockout,
// with ErrLocked when the attempt was refused because a lockout was already
// running. The first is the moment to tell the owner that someone is typing
// wrong codes on their account; the adapter finds it with errors.As. Its
// text, like every error here, is safe to show the person.
type LockedOut struct {
	// Until is when the lockout ends.
	Until time.Time
	// Failures is how many failed attempts engaged it.
	Failures int
	// Level is the lockout's rung on the ladder, from 1: how many lockouts
	// in a row this one is, as far as the ladder counts (see doc.go).
	Level int
}

func (e *LockedOut) Error() string {
	until := e.Until.UTC().Format("2006-01-02 15:04 UTC")
	if e.Failures <= 0 {
		return "step-up is locked until " + until
	}
	return fmt.Sprintf("step-up is locked until %s after %d failed attempts", until, e.Failures)
}

package stepup

import "errors"

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
	// while.
	ErrLocked = errors.New("too many failed attempts: step-up is locked for 15 minutes")
	// ErrNotDemo means DemoCode was called on a Service not in demo mode.
	ErrNotDemo = errors.New("demo codes are only available in the demo")
)

// errCorrupt means a sealed enrolment did not open: altered, sealed under
// another key, or copied from another principal.
var errCorrupt = errors.New("stepup: sealed enrolment does not open")

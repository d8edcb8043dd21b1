package stepup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
)

// The TOTP parameters. They are the ones every authenticator app supports
// without asking (Google Authenticator ignores anything else in the URI).
const (
	// Period is the length of one time step.
	Period = 30 * time.Second
	// Skew is how many steps before and after the current one are accepted,
	// to forgive clock drift and a person who types slowly.
	Skew = 1
	// Digits is the length of a code.
	Digits = 6
)

// The lockout policy.
const (
	// MaxFailures failed attempts within FailureWindow lock step-up.
	MaxFailures = 5
	// FailureWindow is how long failures count towards a lockout, from the
	// first of them.
	FailureWindow = 15 * time.Minute
	// LockoutDuration is how long the first lockout lasts, the bottom rung
	// of the ladder.
	LockoutDuration = 15 * time.Minute
	// EscalationWindow is how long after a lockout ends the next one still
	// counts as following it, and lasts longer. A day without a lockout
	// (or one right code) puts the ladder back to its bottom rung, so that
	// an owner who mistypes now and then is not punished for last month.
	EscalationWindow = 24 * time.Hour
)

// lockoutLadder is how long each lockout in a row lasts; the last rung
// repeats. A fixed lockout lets someone holding a Slack session guess
// MaxFailures codes every LockoutDuration for ever, about 480 a day; the
// ladder brings that down to about MaxFailures a day once the top rung is
// reached. The owner, who has the right code, is locked out only as long
// as the attacker keeps at it.
var lockoutLadder = []time.Duration{LockoutDuration, time.Hour, 24 * time.Hour}

// Method names this second factor in audit events, beside a future "oidc".
const Method = "totp"

// Reasons, in the Detail["reason"] of a stepup.failed audit event.
const (
	ReasonBadCode         = "bad_code"
	ReasonReplay          = "replay"
	ReasonLocked          = "locked"
	ReasonNotEnrolled     = "not_enrolled"
	ReasonPending         = "pending"
	ReasonAlreadyEnrolled = "already_enrolled"
	ReasonExpired         = "expired" // a pending enrolment older than PendingTTL
	ReasonError           = "error"   // the check itself failed (store, corrupt record)
)

// Audit kinds for changes of an enrolment. Attempts use audit.StepUpPassed
// and audit.StepUpFailed.
const (
	KindEnrolled audit.Kind = "stepup.enrolled"
	KindReset    audit.Kind = "stepup.reset"
	// KindLinkIssued: the operator made a link that lets a principal enrol
	// ("bot stepup enrol-link").
	KindLinkIssued audit.Kind = "stepup.enrol_link_issued"
)

// PendingTTL is how long a pending enrolment can be confirmed. Its secret
// was shown in a chat message; one nobody confirmed soon after is more
// likely to be read later by someone else than typed by its owner, so it
// dies, and the person starts over with a new one.
const PendingTTL = 10 * time.Minute

// ErrExpired means the pending enrolment is older than PendingTTL: Enroll
// again for a new secret.
var ErrExpired = errors.New("this set-up expired: start it again for a new key")

// DefaultIssuer is the issuer shown in authenticator apps.
const DefaultIssuer = "AgentHub"

// Recorder stores audit events; *audit.Recorder is one. An error means the
// event may not be stored, and the attempt it describes then fails.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Options configure a Service.
type Options struct {
	// Store holds enrolments and their replay and lockout state. Required.
	Store store.Store
	// Key seals TOTP secrets with AES-256-GCM through a secret.Keyring; it
	// must be 32 bytes.
	// Required.
	Key []byte
	// OldKeys are keys that Key replaced, 32 bytes each. They only open
	// secrets sealed before the rotation, so that nobody has to enrol again
	// when the key changes; every new seal uses Key. Once ResealAll has
	// moved every enrolment to Key, drop them.
	OldKeys [][]byte
	// Audit records every attempt and every enrolment change. Required.
	Audit Recorder
	// Issuer is shown in authenticator apps. Default: DefaultIssuer.
	Issuer string
	// Logger receives failed rollbacks. Default: discard. (Lockouts reach
	// the caller as a *LockedOut, and the audit trail as an event.)
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Rand is the source of secrets and nonces. Default: crypto/rand.
	Rand io.Reader
	// Demo enables DemoCode, with which the terminal demo plays the
	// person's phone. Never set it in production.
	Demo bool
	// Gated refuses Enroll (ErrNotAllowed): only EnrollAfterGate enrols,
	// so that a Slack session alone cannot (see "The enrolment gate" in
	// doc.go).
	Gated bool
}

// Enrolment is what Enroll hands out, once: the TOTP secret and the
// otpauth:// URI that carries it (for a QR code or a manual entry). Both are
// secrets; every printed form of them is REDACTED.
type Enrolment struct {
	Secret secret.Secret // base32, as typed into an authenticator app
	URI    secret.Secret // otpauth://totp/…
	// Generation tells which of two racing enrolments is live.
	Generation Generation
}

// Generation orders the enrolments of one principal: a later Enroll (in
// the order the store applied them, whichever process made them) returns a
// larger one, so that a caller showing secrets can tell which one is live
// when two enrolments race.
type Generation uint64

// String prints the number, so that an Enrolment prints with %s.
func (g Generation) String() string { return strconv.FormatUint(uint64(g), 10) }

// Service enrols principals and checks their codes. It is safe for
// concurrent use, and any number of Services, in any number of processes,
// may share one store.
type Service struct {
	store  store.Store
	sealer sealer
	audit  Recorder
	issuer string
	logger *slog.Logger
	now    func() time.Time
	rand   io.Reader
	demo   bool
	gated  bool
}

// New returns a Service.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("stepup: store is required")
	}
	if opts.Audit == nil {
		return nil, errors.New("stepup: audit recorder is required")
	}
	s := &Service{
		store: opts.Store, audit: opts.Audit, issuer: opts.Issuer, logger: opts.Logger,
		now: opts.Now, rand: opts.Rand, demo: opts.Demo, gated: opts.Gated,
	}
	if s.issuer == "" {
		s.issuer = DefaultIssuer
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	var err error
	if s.sealer, err = newSealer(opts.Key, opts.OldKeys, s.rand); err != nil {
		return nil, err
	}
	return s, nil
}

// Enroll creates a pending enrolment for principal with a new secret,
// replacing a pending one, and returns the secret and its URI. accountName
// is the label shown in the authenticator app ("" means the principal).
// The enrolment counts for step-up only after Confirm. Enroll refuses with
// ErrAlreadyEnrolled when a confirmed enrolment exists.
func (s *Service) Enroll(ctx context.Context, principal, accountName string) (Enrolment, error) {
	if s.gated {
		return Enrolment{}, ErrNotAllowed
	}
	return s.enroll(ctx, principal, accountName, "", false)
}

// EnrollAfterGate is Enroll for a principal who passed the enrolment gate:
// by says how ("oidc:<subject>" for a fresh sign-in of their linked
// identity, "link:<who issued it>" for a link handed over out of band), and
// is on the stepup.enrolled record. With reset, the new enrolment waits
// beside a confirmed one (a lost authenticator) and replaces it when a code
// of it confirms it; a lockout running then must end first.
// The caller shows the secret where the gate was passed (the browser that
// signed in or opened the link), never in a chat.
func (s *Service) EnrollAfterGate(ctx context.Context, principal, by string, reset bool) (Enrolment, error) {
	if by == "" {
		return Enrolment{}, errors.New("stepup: EnrollAfterGate needs how the gate was passed")
	}
	return s.enroll(ctx, principal, "", by, reset)
}

func (s *Service) enroll(ctx context.Context, principal, accountName, by string, reset bool) (Enrolment, error) {
	key, err := recordKey(principal)
	if err != nil {
		return Enrolment{}, err
	}
	if accountName == "" {
		accountName = principal
	}
	otpKey, err := totp.Generate(totp.GenerateOpts{
		Issuer:      s.issuer,
		AccountName: accountName,
		Period:      uint(Period / time.Second),
		SecretSize:  20, // 160 bits, as RFC 4226 recommends for HMAC-SHA1
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
		Rand:        s.rand,
	})
	if err != nil {
		return Enrolment{}, fmt.Errorf("stepup: generating a secret: %w", err)
	}
	enr := Enrolment{Secret: secret.New(otpKey.Secret()), URI: secret.New(otpKey.URL())}
	keyID, sealed, err := s.sealer.seal(principal, []byte(otpKey.Secret()))
	if err != nil {
		return Enrolment{}, err
	}
	created := s.now().UTC()
	// A fresh record starts its generations at the clock, so that an
	// enrolment made after a Reset still outranks the ones before it.
	rec := record{Status: statusPending, KeyID: keyID, Sealed: sealed, Created: created, Generation: clockGeneration(created)}

	// Indexed before the record is written, so that no enrolment exists
	// that ResealAll cannot find; an entry whose enrolment then failed, or
	// was Reset, is skipped there.
	if err := s.index(ctx, principal); err != nil {
		return Enrolment{}, err
	}
	var old, written []byte
	_, err = store.Update(ctx, s.store, key, 0, func(cur []byte) ([]byte, error) {
		old, written = cur, nil
		next := rec
		if cur != nil {
			prev, err := decode(cur)
			if err != nil {
				return nil, err
			}
			if prev.Status == statusActive && !reset {
				return nil, ErrAlreadyEnrolled
			}
			if prev.Status == statusActive {
				// A reset through the gate: the new secret waits beside the
				// confirmed one, which keeps counting until a code of the
				// new one confirms it (a reset nobody finishes, or someone
				// else's, then takes nothing away).
				kept := prev
				kept.Next = &nextSecret{KeyID: keyID, Sealed: sealed, Created: created, Generation: max(rec.Generation, prev.Generation+1)}
				if prev.Next != nil {
					kept.Next.Generation = max(kept.Next.Generation, prev.Next.Generation+1)
				}
				enr.Generation = kept.Next.Generation
				var err error
				written, err = kept.encode()
				return written, err
			}
			// A new pending secret does not wipe the lockout, its rung on
			// the ladder or the replay state: re-enrolling must not be a way
			// to keep guessing.
			next.LastStep, next.Failures, next.WindowStart, next.LockedUntil = prev.LastStep, prev.Failures, prev.WindowStart, prev.LockedUntil
			next.LockLevel = prev.LockLevel
			next.Generation = max(rec.Generation, prev.Generation+1)
		}
		enr.Generation = next.Generation
		var err error
		written, err = next.encode()
		return written, err
	})
	switch {
	case errors.Is(err, ErrAlreadyEnrolled):
		return Enrolment{}, err
	case err != nil:
		return Enrolment{}, fmt.Errorf("stepup: storing enrolment: %w", err)
	}

	detail := map[string]string{"method": Method}
	if by != "" {
		detail["by"] = by
	}
	if reset {
		detail["reset"] = "true"
	}
	if _, err := s.audit.Record(ctx, audit.Event{
		Kind: KindEnrolled, Actor: principal, Result: statusPending, Detail: detail,
	}); err != nil {
		// Unaudited, the enrolment must not exist: put back what was there.
		var rerr error
		if old == nil {
			rerr = s.store.CompareAndDelete(ctx, key, written)
		} else {
			rerr = s.store.CompareAndSwap(ctx, key, written, old, 0)
		}
		if rerr != nil {
			s.logger.ErrorContext(ctx, "stepup enrolment rollback failed", "principal", principal, "err", rerr)
		}
		return Enrolment{}, fmt.Errorf("stepup: recording enrolment: %w", err)
	}
	return enr, nil
}

// Confirm activates principal's pending enrolment with a first valid code,
// proving the authenticator holds the secret. The code is then used up. A
// wrong code counts towards the lockout like one given to Verify, and its
// errors carry a *LockedOut the same way.
func (s *Service) Confirm(ctx context.Context, principal, code string) error {
	key, err := recordKey(principal)
	if err != nil {
		return err
	}
	res, err := s.attempt(ctx, key, principal, code, true)
	ev := s.event(principal, "", "confirm", res, err)
	if _, aerr := s.audit.Record(ctx, ev); aerr != nil {
		if res.reason == "" && err == nil {
			s.rollbackConfirm(ctx, key, principal, res.written, res.previous)
		}
		return joinAudit(res, err, aerr)
	}
	if err != nil {
		return err
	}
	return res.err()
}

// rollbackConfirm puts back the record a confirmation replaced (a pending
// enrolment, or a confirmed one with its replacement waiting) when its
// audit event failed. The code stays used up.
func (s *Service) rollbackConfirm(ctx context.Context, key store.Key, principal string, written, previous []byte) {
	now, err := decode(written)
	var back []byte
	if err == nil {
		var prev record
		if prev, err = decode(previous); err == nil {
			prev.LastStep = now.LastStep
			back, err = prev.encode()
		}
	}
	if err == nil {
		err = s.store.CompareAndSwap(ctx, key, written, back, 0)
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "stepup confirm rollback failed", "principal", principal, "err", err)
	}
}

// Enrolled reports whether principal has a confirmed enrolment, so that
// step-up can be asked of them.
func (s *Service) Enrolled(ctx context.Context, principal string) (bool, error) {
	key, err := recordKey(principal)
	if err != nil {
		return false, err
	}
	item, err := s.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stepup: reading enrolment: %w", err)
	}
	rec, err := decode(item.Value)
	if err != nil {
		return false, err
	}
	return rec.Status == statusActive, nil
}

// Verify is the step-up check for one request: it returns nil only when
// code is valid now (±Skew steps) for principal's confirmed enrolment, no
// code of its time step or a later one was used before, step-up is not
// locked, and the passed attempt was recorded in the audit trail. Of
// several concurrent calls with the same code exactly one succeeds.
//
// Failures return ErrNotEnrolled, ErrPending, ErrBadCode, ErrReplay or
// ErrLocked, or a wrapped store or audit error; in every case the step-up
// did not pass. When the attempt's failure engaged a lockout, or found one
// running (ErrLocked), a *LockedOut is joined to the error: errors.As finds
// it, and with it when the lockout ends.
func (s *Service) Verify(ctx context.Context, principal, requestID, code string) error {
	key, err := recordKey(principal)
	if err != nil {
		return err
	}
	res, err := s.attempt(ctx, key, principal, code, false)
	if _, aerr := s.audit.Record(ctx, s.event(principal, requestID, "verify", res, err)); aerr != nil {
		// Fail closed: the code is used up, but a step-up nobody can see
		// later authorizes nothing.
		return joinAudit(res, err, aerr)
	}
	if err != nil {
		return err
	}
	return res.err()
}

// Reset removes principal's enrolment, pending or confirmed, with its
// replay and lockout state, so that they can enrol again. It is an
// administrator's action: whoever can reset can replace the second factor.
func (s *Service) Reset(ctx context.Context, principal string) error {
	key, err := recordKey(principal)
	if err != nil {
		return err
	}
	if _, err := s.audit.Record(ctx, audit.Event{
		Kind: KindReset, Actor: principal, Detail: map[string]string{"method": Method},
	}); err != nil {
		return fmt.Errorf("stepup: recording reset: %w", err)
	}
	if err := s.store.Delete(ctx, key); err != nil {
		return fmt.Errorf("stepup: deleting enrolment: %w", err)
	}
	return nil
}

// DemoCode returns the code principal's authenticator shows now, for the
// terminal demo, which plays the person's phone. When the current step's
// code is already used it returns the next step's, as a person would wait
// for the next code. It fails with ErrNotDemo unless Options.Demo is set.
func (s *Service) DemoCode(ctx context.Context, principal string) (string, error) {
	if !s.demo {
		return "", ErrNotDemo
	}
	key, err := recordKey(principal)
	if err != nil {
		return "", err
	}
	item, err := s.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNotEnrolled
	}
	if err != nil {
		return "", fmt.Errorf("stepup: reading enrolment: %w", err)
	}
	rec, err := decode(item.Value)
	if err != nil {
		return "", err
	}
	secret, err := s.sealer.open(principal, rec.KeyID, rec.Sealed)
	if err != nil {
		return "", err
	}
	now := stepOf(s.now())
	for _, step := range []uint64{now, now + 1} {
		if step > rec.LastStep {
			code, err := totp.GenerateCodeCustom(string(secret), stepTime(step), validateOpts)
			if err != nil {
				return "", fmt.Errorf("stepup: demo code: %w", err)
			}
			return code, nil
		}
	}
	return "", fmt.Errorf("stepup: demo code: %w", ErrReplay)
}

// result is the outcome of one attempt.
type result struct {
	reason      string    // "" when the code was accepted
	engaged     bool      // this failure engaged the lockout
	lockedUntil time.Time // when engaged or locked
	level       int       // the lockout's rung, when engaged or locked
	written     []byte    // the record as stored by a success
	previous    []byte    // the record a success replaced
}

// err maps the outcome to the error the caller returns.
func (r result) err() error {
	var err error
	switch r.reason {
	case "":
		return nil
	case ReasonBadCode:
		err = ErrBadCode
	case ReasonReplay:
		err = ErrReplay
	case ReasonLocked:
		err = ErrLocked
	case ReasonNotEnrolled:
		err = ErrNotEnrolled
	case ReasonPending:
		err = ErrPending
	case ReasonAlreadyEnrolled:
		err = ErrAlreadyEnrolled
	case ReasonExpired:
		err = ErrExpired
	default:
		return fmt.Errorf("stepup: unknown outcome %q", r.reason)
	}
	if r.engaged || r.reason == ReasonLocked {
		// Every lockout is engaged by MaxFailures failures; the record
		// keeps no other count.
		return errors.Join(err, &LockedOut{Until: r.lockedUntil, Failures: MaxFailures, Level: r.level})
	}
	return err
}

// attempt checks code against principal's record and stores the outcome
// with compare-and-swap: a success moves LastStep forward, a failure counts
// towards the lockout. confirm selects Confirm's rules (the record must be
// pending, a success activates it) over Verify's (it must be active).
//
// The swap is conditional on the record as read, and a lost swap re-reads
// and re-decides, so a code accepted here was, at the moment it was
// stored, unused and not locked out, whatever ran concurrently.
func (s *Service) attempt(ctx context.Context, key store.Key, principal, code string, confirm bool) (result, error) {
	now := s.now()
	code = normalize(code)
	var res result
	written, err := store.Update(ctx, s.store, key, 0, func(cur []byte) ([]byte, error) {
		res = result{}
		if cur == nil {
			res.reason = ReasonNotEnrolled
			return nil, store.Keep
		}
		rec, err := decode(cur)
		if err != nil {
			return nil, err
		}
		// The secret the code is checked against: the confirmed one, the
		// pending one, or for Confirm during a reset the replacement.
		keyID, sealed, created := rec.KeyID, rec.Sealed, rec.Created
		replacing := confirm && rec.Status == statusActive && rec.Next != nil
		if replacing {
			keyID, sealed, created = rec.Next.KeyID, rec.Next.Sealed, rec.Next.Created
		}
		switch {
		case confirm && rec.Status == statusActive && !replacing:
			res.reason = ReasonAlreadyEnrolled
			return nil, store.Keep
		case !confirm && rec.Status == statusPending:
			res.reason = ReasonPending
			return nil, store.Keep
		case confirm && !now.Before(created.Add(PendingTTL)):
			// Before the lockout and the code: an expired secret is dead
			// whatever is typed with it.
			res.reason = ReasonExpired
			return nil, store.Keep
		case rec.locked(now):
			// Checked before the code, so that guessing during a lockout
			// learns nothing.
			res.reason, res.lockedUntil, res.level = ReasonLocked, rec.LockedUntil, max(rec.LockLevel, 1)
			return nil, store.Keep
		}
		secret, err := s.sealer.open(principal, keyID, sealed)
		if err != nil {
			return nil, err
		}
		step, matched, err := match(string(secret), code, now, rec.LastStep)
		if err != nil {
			return nil, err
		}
		var next record
		switch {
		case matched && step > rec.LastStep:
			next = rec.withSuccess(step)
			switch {
			case replacing:
				next.KeyID, next.Sealed, next.Created, next.Generation = rec.Next.KeyID, rec.Next.Sealed, rec.Next.Created, rec.Next.Generation
				next.Next, next.LockedUntil = nil, time.Time{}
			case confirm:
				next.Status = statusActive
			}
			res.previous = cur
		case matched:
			res.reason = ReasonReplay
			next, res.engaged = rec.withFailure(now)
		default:
			res.reason = ReasonBadCode
			next, res.engaged = rec.withFailure(now)
		}
		if res.engaged {
			res.lockedUntil, res.level = next.LockedUntil, next.LockLevel
		}
		return next.encode()
	})
	if err != nil {
		return result{}, fmt.Errorf("stepup: checking code: %w", err)
	}
	if res.reason == "" {
		res.written = written
	}
	return res, nil
}

// event describes one attempt for the audit trail: never the code.
func (s *Service) event(principal, requestID, op string, res result, err error) audit.Event {
	ev := audit.Event{
		Kind: audit.StepUpPassed, Actor: principal, RequestID: requestID, Result: "passed",
		Detail: map[string]string{"method": Method, "op": op},
	}
	reason := res.reason
	if err != nil {
		reason = ReasonError
	}
	if reason != "" {
		ev.Kind, ev.Result = audit.StepUpFailed, "failed"
		ev.Detail["reason"] = reason
	}
	if res.engaged || reason == ReasonLocked {
		ev.Detail["locked_until"] = res.lockedUntil.UTC().Format(time.RFC3339)
		ev.Detail["lock_level"] = strconv.Itoa(res.level)
		ev.Detail["lockout"] = lockoutFor(res.level).String()
	}
	return ev
}

// joinAudit builds the error of an attempt whose audit event failed: it
// still matches the attempt's own failure with errors.Is, and a success
// becomes a failure.
func joinAudit(res result, err, aerr error) error {
	aerr = fmt.Errorf("stepup: recording the attempt: %w", aerr)
	if err == nil {
		err = res.err()
	}
	if err == nil {
		return aerr
	}
	return errors.Join(err, aerr)
}

// validateOpts are the TOTP parameters for one time step; match applies
// the skew itself so that it learns which step a code belongs to.
var validateOpts = totp.ValidateOpts{
	Period:    uint(Period / time.Second),
	Skew:      0,
	Digits:    otp.DigitsSix,
	Algorithm: otp.AlgorithmSHA1,
}

// match reports whether code is valid at now within ±Skew steps, and for
// which step. totp.ValidateCustom with a skew says only yes or no, and
// replay protection needs the step, so each step is validated on its own.
// Should one code be valid for several steps (a one-in-a-million
// coincidence), the earliest one after lastStep is taken.
func match(secret, code string, now time.Time, lastStep uint64) (step uint64, ok bool, err error) {
	if len(code) != Digits || strings.ContainsFunc(code, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false, nil
	}
	cur := stepOf(now)
	for d := -Skew; d <= Skew; d++ {
		if d < 0 && cur < uint64(-d) {
			continue
		}
		candidate := uint64(int64(cur) + int64(d))
		valid, err := totp.ValidateCustom(code, secret, stepTime(candidate), validateOpts)
		if err != nil {
			return 0, false, fmt.Errorf("stepup: validating code: %w", err)
		}
		if !valid {
			continue
		}
		if !ok || (step <= lastStep && candidate > lastStep) {
			step, ok = candidate, true
		}
	}
	return step, ok, nil
}

// normalize drops the spaces people type or paste inside a code ("123 456").
func normalize(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\u00a0' {
			return -1
		}
		return r
	}, strings.TrimSpace(code))
}

// stepOf returns the time step of t.
func stepOf(t time.Time) uint64 {
	u := t.Unix()
	if u < 0 {
		return 0
	}
	return uint64(u) / uint64(Period/time.Second)
}

// stepTime returns the first instant of a time step.
func stepTime(step uint64) time.Time {
	return time.Unix(int64(step*uint64(Period/time.Second)), 0)
}

// recordKey returns the store key of principal's enrolment.
func recordKey(principal string) (store.Key, error) {
	if principal == "" {
		return store.Key{}, errors.New("stepup: principal is required")
	}
	k := store.Key{Scope: principal, Kind: recordKind, ID: recordID}
	if err := k.Validate(); err != nil {
		return store.Key{}, fmt.Errorf("stepup: %w", err)
	}
	return k, nil
}

// clockGeneration is the generation of a new enrolment record made at t.
func clockGeneration(t time.Time) Generation {
	if n := t.UnixNano(); n > 0 {
		return Generation(n)
	}
	return 1
}

package stepup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/agenthub/agenthub/internal/secret"
)

// The record kind and ID of a principal's TOTP enrolment. The scope is the
// principal, so on Redis Cluster it shares a slot with the principal's
// other records; an OIDC link can later live beside it under another ID.
const (
	recordKind = "stepup"
	recordID   = "totp"
)

// Enrolment states.
const (
	statusPending = "pending"
	statusActive  = "active"
)

// aadPrefix versions the additional data that binds a sealed secret to its
// principal, so a record copied to another principal does not open.
const aadPrefix = "agenthub/stepup/totp/v1\x00"

// record is one principal's enrolment and its replay and lockout state, in
// one store record so that every change is one compare-and-swap.
type record struct {
	Status  string    `json:"status"`
	KeyID   string    `json:"key_id"` // the key the secret is sealed under
	Sealed  []byte    `json:"sealed"` // nonce || AES-256-GCM(secret)
	Created time.Time `json:"created"`
	// Generation grows with every Enroll (see Enrolment.Generation).
	Generation Generation `json:"generation,omitempty"`
	// LastStep is the highest time step whose code was accepted; codes for
	// it and earlier steps are replays.
	LastStep uint64 `json:"last_step,omitempty"`
	// Failures counts failed attempts since WindowStart.
	Failures    int       `json:"failures,omitempty"`
	WindowStart time.Time `json:"window_start,omitzero"`
	// LockedUntil is when a lockout ends; every attempt before it fails.
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// LockLevel is the rung of the lockout ladder the last lockout took,
	// from 1; 0 means no lockout counts towards the next one (none yet, or
	// a success since). It outlives the lockout so that the next one, if it
	// comes within EscalationWindow, lasts longer. Records written before
	// the ladder lack it and start from the bottom rung.
	LockLevel int `json:"lock_level,omitempty"`
	// Next is a replacement waiting for its first code (a reset through
	// the enrolment gate): the confirmed secret above keeps counting until
	// Confirm takes a code of Next, which then replaces it.
	Next *nextSecret `json:"next,omitempty"`
}

// nextSecret is a replacement secret, sealed as the record's own.
type nextSecret struct {
	KeyID      string     `json:"key_id"`
	Sealed     []byte     `json:"sealed"`
	Created    time.Time  `json:"created"`
	Generation Generation `json:"generation"`
}

func (r record) encode() ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("stepup: encoding enrolment: %w", err)
	}
	return b, nil
}

func decode(b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("stepup: decoding enrolment: %w", err)
	}
	if r.Status != statusPending && r.Status != statusActive {
		return record{}, fmt.Errorf("stepup: enrolment has unknown status %q", r.Status)
	}
	return r, nil
}

// locked reports whether the record is locked out at now.
func (r record) locked(now time.Time) bool { return now.Before(r.LockedUntil) }

// withFailure returns the record after one more failed attempt at now, and
// whether that attempt engaged the lock.
func (r record) withFailure(now time.Time) (record, bool) {
	if r.WindowStart.IsZero() || !now.Before(r.WindowStart.Add(FailureWindow)) {
		r.Failures, r.WindowStart = 0, now
	}
	r.Failures++
	if r.Failures < MaxFailures {
		return r, false
	}
	r.Failures, r.WindowStart = 0, time.Time{}
	// A lockout that follows the last one within the escalation window
	// climbs a rung: the person has not typed a right code in between, so
	// whoever is guessing is still at it.
	if r.LockLevel > 0 && now.Before(r.LockedUntil.Add(EscalationWindow)) {
		r.LockLevel = min(r.LockLevel+1, len(lockoutLadder))
	} else {
		r.LockLevel = 1
	}
	r.LockedUntil = now.Add(lockoutFor(r.LockLevel))
	return r, true
}

// withSuccess returns the record after a code for step was accepted. A
// right code proves the owner is back, so the ladder starts over.
func (r record) withSuccess(step uint64) record {
	r.LastStep = step
	r.Failures, r.WindowStart = 0, time.Time{}
	r.LockLevel = 0
	return r
}

// lockoutFor returns how long a lockout at level lasts.
func lockoutFor(level int) time.Duration {
	return lockoutLadder[min(max(level, 1), len(lockoutLadder))-1]
}

// sealer seals TOTP secrets with a secret.Keyring, bound to the
// principal: new seals under the current key, opening under it or any old
// one, so that a key rotation does not lock anyone out.
type sealer struct {
	keys *secret.Keyring
	rand io.Reader
}

// newSealer builds the keyring from raw keys; a short or empty old key is
// a wiring mistake, refused by position, never by value.
func newSealer(key []byte, old [][]byte, rand io.Reader) (sealer, error) {
	keys, err := secret.NewKeyring(key, old)
	if err != nil {
		return sealer{}, fmt.Errorf("stepup: %w", err)
	}
	return sealer{keys: keys, rand: rand}, nil
}

// current returns the ID of the key new seals use.
func (s sealer) current() string { return s.keys.CurrentKeyID() }

func (s sealer) seal(principal string, plain []byte) (keyID string, sealed []byte, err error) {
	keyID, sealed, err = s.keys.Seal(s.rand, plain, []byte(aadPrefix+principal))
	if err != nil {
		return "", nil, fmt.Errorf("stepup: %w", err)
	}
	return keyID, sealed, nil
}

func (s sealer) open(principal, keyID string, sealed []byte) ([]byte, error) {
	plain, err := s.keys.Open(keyID, sealed, []byte(aadPrefix+principal))
	if errors.Is(err, secret.ErrUnknownKey) {
		// The one case an operator can fix: an old key dropped from
		// OldKeys before every record was resealed. The key ID is a hash
		// prefix, safe to print.
		return nil, fmt.Errorf("stepup: enrolment sealed under key %s, which is neither Key nor one of OldKeys: %w", keyID, errCorrupt)
	}
	if err != nil {
		// Altered bytes or a record moved between principals: the sentinel
		// is the whole story.
		return nil, errCorrupt
	}
	return plain, nil
}

package stepup

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/agenthub/agenthub/internal/vault"
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
	KeyID   string    `json:"key_id"` // the vault key the secret is sealed under
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
	r.LockedUntil = now.Add(LockoutDuration)
	return r, true
}

// withSuccess returns the record after a code for step was accepted.
func (r record) withSuccess(step uint64) record {
	r.LastStep = step
	r.Failures, r.WindowStart = 0, time.Time{}
	return r
}

// sealer seals TOTP secrets with the vault's keyring, bound to the
// principal.
type sealer struct {
	keys *vault.Keyring
	rand io.Reader
}

func newSealer(key []byte, rand io.Reader) (sealer, error) {
	if len(key) != vault.KeySize {
		return sealer{}, fmt.Errorf("stepup: key must be %d bytes, got %d", vault.KeySize, len(key))
	}
	keys, err := vault.ParseKeys(base64.StdEncoding.EncodeToString(key), nil)
	if err != nil {
		return sealer{}, fmt.Errorf("stepup: key: %w", err)
	}
	return sealer{keys: keys, rand: rand}, nil
}

func (s sealer) seal(principal string, secret []byte) (keyID string, sealed []byte, err error) {
	keyID, sealed, err = s.keys.Seal(s.rand, secret, []byte(aadPrefix+principal))
	if err != nil {
		return "", nil, fmt.Errorf("stepup: %w", err)
	}
	return keyID, sealed, nil
}

func (s sealer) open(principal, keyID string, sealed []byte) ([]byte, error) {
	secret, err := s.keys.Open(keyID, sealed, []byte(aadPrefix+principal))
	if err != nil {
		// Another key, altered bytes or a record moved between principals:
		// the sentinel is the whole story.
		return nil, errCorrupt
	}
	return secret, nil
}

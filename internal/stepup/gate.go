package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
)

// AllowTTL is how long a permission to enrol waits to be spent.
const AllowTTL = 15 * time.Minute

// allowKind holds the permissions to enrol: one per principal, spent by
// the next Enroll.
const allowKind = "stepup-allow"

// allowance is a permission to enrol once.
type allowance struct {
	By    string    `json:"by"`              // who or what let them: "oidc:<subject>", "admin:<principal>", "operator"
	Reset bool      `json:"reset,omitempty"` // a confirmed enrolment may be replaced (a lost authenticator)
	At    time.Time `json:"at"`
}

func allowKey(principal string) (store.Key, error) {
	k := store.Key{Scope: principal, Kind: allowKind, ID: "enrol"}
	return k, k.Validate()
}

// Allow lets principal enrol once within AllowTTL; with reset, the new
// enrolment replaces a confirmed one (a person who lost their
// authenticator). by says who let them, for the audit trail. The gate
// itself (a fresh sign-in of the principal's linked identity, an
// administrator who is not the principal, a link handed over out of band)
// is the caller's: Allow records its word and keeps it. A later Allow
// replaces an unspent one.
func (s *Service) Allow(ctx context.Context, principal, by string, reset bool) error {
	key, err := allowKey(principal)
	if err != nil {
		return err
	}
	if by == "" {
		return errors.New("stepup: Allow needs who allowed it")
	}
	value, err := json.Marshal(allowance{By: by, Reset: reset, At: s.now().UTC()})
	if err != nil {
		return err
	}
	// On the record before it can be spent.
	if _, err := s.audit.Record(ctx, audit.Event{Kind: KindAllowed, Actor: principal,
		Detail: map[string]string{"by": by, "reset": strconv.FormatBool(reset)}}); err != nil {
		return fmt.Errorf("stepup: recording the permission to enrol: %w", err)
	}
	if err := s.store.Put(ctx, key, value, AllowTTL); err != nil {
		return fmt.Errorf("stepup: storing the permission to enrol: %w", err)
	}
	return nil
}

// spendAllowance takes principal's permission to enrol, so that it
// serves one Enroll; it says whether it allows a reset.
func (s *Service) spendAllowance(ctx context.Context, principal string) (reset bool, err error) {
	key, err := allowKey(principal)
	if err != nil {
		return false, err
	}
	var a *allowance
	_, err = store.Update(ctx, s.store, key, store.KeepTTL, func(cur []byte) ([]byte, error) {
		a = nil
		if cur == nil {
			return nil, store.Keep
		}
		var got allowance
		if err := json.Unmarshal(cur, &got); err != nil {
			return nil, store.Remove // a damaged permission permits nothing
		}
		if s.now().Before(got.At.Add(AllowTTL)) {
			a = &got // the store's TTL is the backstop; the clock decides
		}
		return nil, store.Remove
	})
	if err != nil {
		return false, fmt.Errorf("stepup: spending the permission to enrol: %w", err)
	}
	if a == nil {
		return false, ErrNotAllowed
	}
	return a.Reset, nil
}

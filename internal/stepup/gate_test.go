package stepup

import (
	"context"
	"errors"
	"testing"
	"time"
)

// gated returns a gated service on the fixture's store, clock and audit.
func (f *fixture) gated(tb testing.TB) *Service {
	tb.Helper()
	svc, err := New(Options{Store: f.store, Key: testKey, Audit: f.audit, Now: f.clock.Now, Gated: true})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return svc
}

// TestEnrolmentGate: a gated service enrols only with a permission, each
// permission serves one enrolment, a permission expires, and only a reset
// permission replaces a confirmed enrolment, whose old secret then stops
// working; every permission is on the record with who gave it.
func TestEnrolmentGate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, _ func() *Service) {
		ctx := context.Background()
		svc := f.gated(t)
		const p = "T1:U1"
		if _, err := svc.Enroll(ctx, p, ""); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("Enroll without a permission: %v, want ErrNotAllowed", err)
		}
		if err := svc.Allow(ctx, p, "admin:T1:U2", false); err != nil {
			t.Fatal(err)
		}
		if e := f.audit.last(t); e.Kind != KindAllowed || e.Actor != p || e.Detail["by"] != "admin:T1:U2" {
			t.Errorf("permission on the record as %+v", e)
		}
		enr, err := svc.Enroll(ctx, p, "")
		if err != nil {
			t.Fatalf("Enroll with a permission: %v", err)
		}
		// Spent: a second enrolment (a stolen session replacing the
		// pending secret with one it reads) needs a permission of its own.
		if _, err := svc.Enroll(ctx, p, ""); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("second Enroll on one permission: %v, want ErrNotAllowed", err)
		}
		old := enr.Secret.Reveal()
		if err := svc.Confirm(ctx, p, codeAt(t, old, f.clock.Now())); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		// A permission that is not a reset does not replace a confirmed
		// enrolment (and is spent trying).
		if err := svc.Allow(ctx, p, "oidc:idp|anna", false); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Enroll(ctx, p, ""); !errors.Is(err, ErrAlreadyEnrolled) {
			t.Fatalf("Enroll over a confirmed enrolment: %v, want ErrAlreadyEnrolled", err)
		}
		// A permission waits AllowTTL, no longer.
		if err := svc.Allow(ctx, p, "operator", true); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(AllowTTL + time.Second)
		if _, err := svc.Enroll(ctx, p, ""); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("Enroll on an expired permission: %v, want ErrNotAllowed", err)
		}
		// A reset permission replaces it: the lost authenticator's codes
		// stop counting.
		if err := svc.Allow(ctx, p, "oidc:idp|anna", true); err != nil {
			t.Fatal(err)
		}
		fresh, err := svc.Enroll(ctx, p, "")
		if err != nil {
			t.Fatalf("Enroll on a reset permission: %v", err)
		}
		f.clock.Advance(time.Minute)
		if err := svc.Verify(ctx, p, "req-1", codeAt(t, old, f.clock.Now())); !errors.Is(err, ErrPending) {
			t.Fatalf("the old authenticator after a reset: %v, want ErrPending", err)
		}
		if err := svc.Confirm(ctx, p, codeAt(t, fresh.Secret.Reveal(), f.clock.Now())); err != nil {
			t.Fatalf("Confirm the new one: %v", err)
		}
	})
}

// TestEnrolmentGateFailsClosed: a permission the trail cannot record is
// not given.
func TestEnrolmentGateFailsClosed(t *testing.T) {
	f := newFixture(t, nil, false)
	svc := f.gated(t)
	f.audit.setFail(errAuditDown)
	if err := svc.Allow(context.Background(), "T1:U1", "operator", false); err == nil {
		t.Fatal("Allow with the audit trail down succeeded")
	}
	f.audit.setFail(nil)
	if _, err := svc.Enroll(context.Background(), "T1:U1", ""); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("Enroll after an unrecorded permission: %v, want ErrNotAllowed", err)
	}
}

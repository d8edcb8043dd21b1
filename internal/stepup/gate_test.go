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

// TestEnrolmentGate: a gated service never enrols through Enroll, neither
// a first authenticator nor one in place of a pending or a confirmed one;
// EnrollAfterGate does, saying on the record how the gate was passed, and
// only with reset replaces a confirmed enrolment: the old secret counts
// until a code of the new one confirms it, and stops then.
func TestEnrolmentGate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, _ func() *Service) {
		ctx := context.Background()
		svc := f.gated(t)
		const p = "T1:U1"
		if _, err := svc.Enroll(ctx, p, ""); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("Enroll on a gated service: %v, want ErrNotAllowed", err)
		}
		if _, err := svc.EnrollAfterGate(ctx, p, "", false); err == nil {
			t.Fatal("EnrollAfterGate without saying how the gate was passed succeeded")
		}
		enr, err := svc.EnrollAfterGate(ctx, p, "oidc:idp|anna", false)
		if err != nil {
			t.Fatalf("EnrollAfterGate: %v", err)
		}
		if e := f.audit.last(t); e.Kind != KindEnrolled || e.Actor != p || e.Detail["by"] != "oidc:idp|anna" {
			t.Errorf("enrolment on the record as %+v", e)
		}
		// A stolen session cannot swap the pending secret for one it reads.
		if _, err := svc.Enroll(ctx, p, ""); !errors.Is(err, ErrNotAllowed) {
			t.Fatalf("Enroll over a pending enrolment: %v, want ErrNotAllowed", err)
		}
		old := enr.Secret.Reveal()
		if err := svc.Confirm(ctx, p, codeAt(t, old, f.clock.Now())); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		if _, err := svc.EnrollAfterGate(ctx, p, "link:operator", false); !errors.Is(err, ErrAlreadyEnrolled) {
			t.Fatalf("EnrollAfterGate over a confirmed enrolment: %v, want ErrAlreadyEnrolled", err)
		}
		fresh, err := svc.EnrollAfterGate(ctx, p, "oidc:idp|anna", true)
		if err != nil {
			t.Fatalf("EnrollAfterGate with reset: %v", err)
		}
		if e := f.audit.last(t); e.Detail["reset"] != "true" {
			t.Errorf("reset not on the record: %+v", e)
		}
		// Until the new one is confirmed, the old one counts: a reset
		// nobody finishes takes nothing away.
		f.clock.Advance(time.Minute)
		if ok, err := svc.Enrolled(ctx, p); !ok || err != nil {
			t.Fatalf("Enrolled during a reset = %v, %v; want true", ok, err)
		}
		if err := svc.Verify(ctx, p, "req-1", codeAt(t, old, f.clock.Now())); err != nil {
			t.Fatalf("the old authenticator during a reset: %v, want it to count", err)
		}
		// A code of the old one does not confirm the new one.
		f.clock.Advance(time.Minute)
		if err := svc.Confirm(ctx, p, codeAt(t, old, f.clock.Now())); !errors.Is(err, ErrBadCode) {
			t.Fatalf("Confirm with the old authenticator: %v, want ErrBadCode", err)
		}
		f.clock.Advance(time.Minute)
		if err := svc.Confirm(ctx, p, codeAt(t, fresh.Secret.Reveal(), f.clock.Now())); err != nil {
			t.Fatalf("Confirm the new one: %v", err)
		}
		f.clock.Advance(time.Minute)
		if err := svc.Verify(ctx, p, "req-2", codeAt(t, old, f.clock.Now())); !errors.Is(err, ErrBadCode) {
			t.Fatalf("the old authenticator after the new one was confirmed: %v, want ErrBadCode", err)
		}
		if err := svc.Verify(ctx, p, "req-3", codeAt(t, fresh.Secret.Reveal(), f.clock.Now())); err != nil {
			t.Fatalf("the new authenticator: %v", err)
		}
	})
}

// TestEnrolmentGateFailsClosed: an enrolment the trail cannot record does
// not exist.
func TestEnrolmentGateFailsClosed(t *testing.T) {
	f := newFixture(t, nil, false)
	svc := f.gated(t)
	f.audit.setFail(errAuditDown)
	if _, err := svc.EnrollAfterGate(context.Background(), "T1:U1", "link:operator", false); err == nil {
		t.Fatal("EnrollAfterGate with the audit trail down succeeded")
	}
	f.audit.setFail(nil)
	if ok, err := svc.Enrolled(context.Background(), "T1:U1"); ok || err != nil {
		t.Fatalf("Enrolled after an unrecorded enrolment = %v, %v", ok, err)
	}
	if err := svc.Confirm(context.Background(), "T1:U1", "123456"); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("Confirm after an unrecorded enrolment: %v, want ErrNotEnrolled", err)
	}
}

// TestResetSurvivesRekey: a replacement waiting for its first code is
// resealed with the enrolment, and still confirms after a key rotation.
func TestResetSurvivesRekey(t *testing.T) {
	f := newFixture(t, nil, false)
	ctx := context.Background()
	svc := f.gated(t)
	const p = "T1:U1"
	enr, err := svc.EnrollAfterGate(ctx, p, "link:operator", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Confirm(ctx, p, codeAt(t, enr.Secret.Reveal(), f.clock.Now())); err != nil {
		t.Fatal(err)
	}
	fresh, err := svc.EnrollAfterGate(ctx, p, "link:operator", true)
	if err != nil {
		t.Fatal(err)
	}
	newKey := make([]byte, 32)
	newKey[0] = 9
	rotated, err := New(Options{Store: f.store, Key: newKey, OldKeys: [][]byte{testKey}, Audit: f.audit, Now: f.clock.Now, Gated: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.ResealAll(ctx, nil); err != nil {
		t.Fatalf("ResealAll: %v", err)
	}
	onlyNew, err := New(Options{Store: f.store, Key: newKey, Audit: f.audit, Now: f.clock.Now, Gated: true})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if err := onlyNew.Confirm(ctx, p, codeAt(t, fresh.Secret.Reveal(), f.clock.Now())); err != nil {
		t.Fatalf("Confirm the replacement under the new key alone: %v", err)
	}
}

package stepup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

const alice = "T1:UALICE"

func TestVerifyWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, _ func() *Service) {
		tests := []struct {
			name   string
			offset time.Duration // of the code's time from now
			code   func(secret string) string
			want   error
		}{
			{name: "current step", offset: 0, want: nil},
			{name: "previous step", offset: -Period, want: nil},
			{name: "next step", offset: Period, want: nil},
			{name: "two steps before", offset: -2 * Period, want: ErrBadCode},
			{name: "two steps after", offset: 2 * Period, want: ErrBadCode},
			{name: "ten minutes old", offset: -10 * time.Minute, want: ErrBadCode},
			{name: "spaces inside", code: func(s string) string {
				c := codeAt(t, s, f.clock.Now())
				return " " + c[:3] + " " + c[3:] + "\t"
			}, want: nil},
			{name: "empty", code: func(string) string { return "" }, want: ErrBadCode},
			{name: "five digits", code: func(s string) string { return codeAt(t, s, f.clock.Now())[:5] }, want: ErrBadCode},
			{name: "seven digits", code: func(s string) string { return codeAt(t, s, f.clock.Now()) + "0" }, want: ErrBadCode},
			{name: "letters", code: func(string) string { return "abcdef" }, want: ErrBadCode},
			{name: "wrong", code: func(s string) string { return wrongCode(t, s, f.clock.Now()) }, want: ErrBadCode},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				principal := fmt.Sprintf("T1:U%d", i)
				secret := f.enrol(t, principal)
				code := codeAt(t, secret, f.clock.Now().Add(tt.offset))
				if tt.code != nil {
					code = tt.code(secret)
				}
				err := f.svc.Verify(context.Background(), principal, "req-1", code)
				if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Errorf("Verify = %v, want %v", err, tt.want)
				}
			})
		}
	})
}

func TestReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, another func() *Service) {
		ctx := context.Background()
		secret := f.enrol(t, alice)
		now := f.clock.Now()
		prev, cur, next := codeAt(t, secret, now.Add(-Period)), codeAt(t, secret, now), codeAt(t, secret, now.Add(Period))
		other := another()
		steps := []struct {
			name string
			svc  *Service
			code string
			want error
		}{
			{"current code", f.svc, cur, nil},
			{"current code again", f.svc, cur, ErrReplay},
			{"current code again in another process", other, cur, ErrReplay},
			{"next code", other, next, nil},
			{"earlier unused step after a later one", f.svc, prev, ErrReplay},
			{"current code after the next one", f.svc, cur, ErrReplay},
		}
		for i, s := range steps {
			err := s.svc.Verify(ctx, alice, fmt.Sprintf("req-%d", i), s.code)
			if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
				t.Fatalf("%s: Verify = %v, want %v", s.name, err, s.want)
			}
		}
		// A minute later the step after "next" is fresh.
		f.clock.Advance(time.Minute)
		if err := f.svc.Verify(ctx, alice, "req-later", codeAt(t, secret, f.clock.Now())); err != nil {
			t.Errorf("Verify with a fresh code a minute later = %v, want nil", err)
		}
	})
}

func TestConcurrentVerifyOneWins(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, another func() *Service) {
		secret := f.enrol(t, alice)
		code := codeAt(t, secret, f.clock.Now())
		// Two services on two handles, as two replicas sharing a store.
		svcs := []*Service{f.svc, another()}
		const n = 100
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = svcs[i%2].Verify(context.Background(), alice, fmt.Sprintf("req-%d", i), code)
			})
		}
		close(start)
		wg.Wait()
		var passed int
		for i, err := range errs {
			switch {
			case err == nil:
				passed++
			case errors.Is(err, ErrReplay), errors.Is(err, ErrLocked):
			default:
				t.Errorf("goroutine %d: Verify = %v, want nil, ErrReplay or ErrLocked", i, err)
			}
		}
		if passed != 1 {
			t.Errorf("successful verifications = %d, want 1", passed)
		}
		var audited int
		for _, ev := range f.audit.all() {
			if ev.Kind == audit.StepUpPassed && ev.Detail["op"] == "verify" {
				audited++
			}
		}
		if audited != 1 {
			t.Errorf("stepup.passed events = %d, want 1", audited)
		}
	})
}

func TestLockout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, another func() *Service) {
		ctx := context.Background()
		secret := f.enrol(t, alice)
		verify := func(svc *Service, code string) error { return svc.Verify(ctx, alice, "req", code) }
		for i := range MaxFailures {
			if err := verify(f.svc, wrongCode(t, secret, f.clock.Now())); !errors.Is(err, ErrBadCode) {
				t.Fatalf("failure %d: Verify = %v, want ErrBadCode", i+1, err)
			}
			f.clock.Advance(time.Second)
		}
		lockedAt := f.clock.Now().Add(-time.Second)
		if got := f.audit.last(t).Detail["locked_until"]; got != lockedAt.Add(LockoutDuration).Format(time.RFC3339) {
			t.Errorf("locked_until of the fifth failure = %q, want %s", got, lockedAt.Add(LockoutDuration).Format(time.RFC3339))
		}
		// Locked for everyone, with the right code, in every process, until
		// the end of the lockout; attempts meanwhile do not extend it.
		other := another()
		for _, at := range []time.Duration{0, time.Minute, 14*time.Minute + 59*time.Second} {
			f.clock.Advance(lockedAt.Add(at).Sub(f.clock.Now()))
			for _, svc := range []*Service{f.svc, other} {
				if err := verify(svc, codeAt(t, secret, f.clock.Now())); !errors.Is(err, ErrLocked) {
					t.Fatalf("%v into the lockout: Verify with the right code = %v, want ErrLocked", at, err)
				}
			}
			if got := f.audit.last(t).Detail["reason"]; got != ReasonLocked {
				t.Errorf("audit reason = %q, want %q", got, ReasonLocked)
			}
		}
		f.clock.Advance(lockedAt.Add(LockoutDuration).Sub(f.clock.Now()))
		if err := verify(other, codeAt(t, secret, f.clock.Now())); err != nil {
			t.Errorf("after the lockout: Verify = %v, want nil", err)
		}
	})
}

func TestFailuresCount(t *testing.T) {
	// steps: "x" is a wrong code, "ok" a right one, "+" waits a window.
	tests := []struct {
		name  string
		steps []string
		want  error // of a right code after the steps
	}{
		{"four failures do not lock", []string{"x", "x", "x", "x"}, nil},
		{"replays count", []string{"ok", "r", "r", "r", "r", "r"}, ErrLocked},
		{"a success clears the count", []string{"x", "x", "x", "x", "ok", "x", "x", "x", "x"}, nil},
		{"failures outside the window expire", []string{"x", "x", "x", "x", "+", "x"}, nil},
		{"five within the window lock", []string{"x", "x", "+", "x", "x", "x", "x", "x"}, ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, nil, false)
			secret := f.enrol(t, alice)
			var last string
			for _, s := range tt.steps {
				f.clock.Advance(Period) // a new step each time, so "ok" is fresh
				now := f.clock.Now()
				switch s {
				case "x":
					f.svc.Verify(ctx, alice, "r", wrongCode(t, secret, now))
				case "ok":
					last = codeAt(t, secret, now)
					if err := f.svc.Verify(ctx, alice, "r", last); err != nil {
						t.Fatalf("Verify with the right code = %v", err)
					}
				case "r":
					f.clock.Advance(-Period) // stay within the used code's skew
					if err := f.svc.Verify(ctx, alice, "r", last); !errors.Is(err, ErrReplay) && !errors.Is(err, ErrLocked) {
						t.Fatalf("replay: Verify = %v, want ErrReplay", err)
					}
				case "+":
					f.clock.Advance(FailureWindow)
				}
			}
			f.clock.Advance(Period)
			err := f.svc.Verify(ctx, alice, "r", codeAt(t, secret, f.clock.Now()))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify with the right code = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEnrolmentFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, another func() *Service) {
		ctx := context.Background()
		s := f.svc
		check := func(what string, err, want error) {
			t.Helper()
			if !errors.Is(err, want) || (want == nil && err != nil) {
				t.Fatalf("%s = %v, want %v", what, err, want)
			}
		}
		enrolled := func(want bool) {
			t.Helper()
			got, err := s.Enrolled(ctx, alice)
			if err != nil || got != want {
				t.Fatalf("Enrolled = %v, %v; want %v, nil", got, err, want)
			}
		}
		code := func(secret string, d time.Duration) string { return codeAt(t, secret, f.clock.Now().Add(d)) }

		enrolled(false)
		check("Verify before enrolling", s.Verify(ctx, alice, "r", "123456"), ErrNotEnrolled)
		check("Confirm before enrolling", s.Confirm(ctx, alice, "123456"), ErrNotEnrolled)

		first, err := s.Enroll(ctx, alice, "alice@example.com")
		check("Enroll", err, nil)
		uri := first.URI.Reveal()
		for _, want := range []string{"otpauth://totp/", "issuer=AgentHub", "secret=" + first.Secret.Reveal(), "alice@example.com", "period=30", "digits=6", "algorithm=SHA1"} {
			if !containsFold(uri, want) {
				t.Errorf("the enrolment URI lacks %q", want)
			}
		}
		enrolled(false)
		check("Verify with a pending enrolment", s.Verify(ctx, alice, "r", code(first.Secret.Reveal(), 0)), ErrPending)

		// Enrolling again while pending replaces the secret.
		second, err := another().Enroll(ctx, alice, "")
		check("Enroll over a pending one", err, nil)
		if second.Secret.Reveal() == first.Secret.Reveal() {
			t.Fatal("the second enrolment has the first one's secret")
		}
		check("Confirm with the replaced secret", s.Confirm(ctx, alice, code(first.Secret.Reveal(), 0)), ErrBadCode)
		enrolled(false)
		check("Confirm", s.Confirm(ctx, alice, code(second.Secret.Reveal(), 0)), nil)
		enrolled(true)
		check("Confirm twice", s.Confirm(ctx, alice, code(second.Secret.Reveal(), Period)), ErrAlreadyEnrolled)
		check("Verify with the confirmation code", s.Verify(ctx, alice, "r", code(second.Secret.Reveal(), 0)), ErrReplay)
		check("Verify", s.Verify(ctx, alice, "r", code(second.Secret.Reveal(), Period)), nil)

		_, err = s.Enroll(ctx, alice, "")
		check("Enroll over a confirmed one", err, ErrAlreadyEnrolled)
		enrolled(true)

		check("Reset", s.Reset(ctx, alice), nil)
		enrolled(false)
		check("Verify after Reset", s.Verify(ctx, alice, "r", code(second.Secret.Reveal(), 0)), ErrNotEnrolled)
		third, err := s.Enroll(ctx, alice, "")
		check("Enroll after Reset", err, nil)
		f.clock.Advance(time.Minute)
		check("Confirm after Reset", s.Confirm(ctx, alice, code(third.Secret.Reveal(), 0)), nil)
		enrolled(true)
	})
}

func TestAuditEvents(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, false)
	f.svc.Verify(ctx, "T1:UNOBODY", "req-0", "123456")
	enr, err := f.svc.Enroll(ctx, alice, "")
	if err != nil {
		t.Fatal(err)
	}
	secret := enr.Secret.Reveal()
	f.svc.Verify(ctx, alice, "req-1", codeAt(t, secret, t0))
	f.svc.Confirm(ctx, alice, wrongCode(t, secret, t0))
	f.svc.Confirm(ctx, alice, codeAt(t, secret, t0))
	f.svc.Verify(ctx, alice, "req-2", codeAt(t, secret, t0))
	f.svc.Verify(ctx, alice, "req-3", codeAt(t, secret, t0.Add(Period)))
	for range MaxFailures {
		f.svc.Verify(ctx, alice, "req-4", wrongCode(t, secret, t0))
	}
	f.svc.Verify(ctx, alice, "req-5", codeAt(t, secret, t0.Add(Period)))
	f.svc.Verify(ctx, alice, "req-6", codeAt(t, secret, t0.Add(-Period)))
	if err := f.svc.Reset(ctx, alice); err != nil {
		t.Fatal(err)
	}
	lockedUntil := t0.Add(LockoutDuration).Format(time.RFC3339)

	failed := func(who, req, op, reason string) audit.Event {
		return audit.Event{Kind: audit.StepUpFailed, Actor: who, RequestID: req, Result: "failed",
			Detail: map[string]string{"method": "totp", "op": op, "reason": reason}}
	}
	passed := func(req, op string) audit.Event {
		return audit.Event{Kind: audit.StepUpPassed, Actor: alice, RequestID: req, Result: "passed",
			Detail: map[string]string{"method": "totp", "op": op}}
	}
	// The first lockout: the bottom rung, for LockoutDuration.
	withLock := func(ev audit.Event) audit.Event {
		ev.Detail["locked_until"], ev.Detail["lock_level"], ev.Detail["lockout"] = lockedUntil, "1", "15m0s"
		return ev
	}
	want := []audit.Event{
		failed("T1:UNOBODY", "req-0", "verify", ReasonNotEnrolled),
		{Kind: KindEnrolled, Actor: alice, Result: "pending", Detail: map[string]string{"method": "totp"}},
		failed(alice, "req-1", "verify", ReasonPending),
		failed(alice, "", "confirm", ReasonBadCode),
		passed("", "confirm"),
		failed(alice, "req-2", "verify", ReasonReplay),
		passed("req-3", "verify"),
		failed(alice, "req-4", "verify", ReasonBadCode),
		failed(alice, "req-4", "verify", ReasonBadCode),
		failed(alice, "req-4", "verify", ReasonBadCode),
		failed(alice, "req-4", "verify", ReasonBadCode),
		withLock(failed(alice, "req-4", "verify", ReasonBadCode)),
		withLock(failed(alice, "req-5", "verify", ReasonLocked)),
		withLock(failed(alice, "req-6", "verify", ReasonLocked)),
		{Kind: KindReset, Actor: alice, Detail: map[string]string{"method": "totp"}},
	}
	if diff := cmp.Diff(want, f.audit.all(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
}

func TestAuditFailureBlocks(t *testing.T) {
	ctx := context.Background()

	t.Run("verify", func(t *testing.T) {
		f := newFixture(t, nil, false)
		secret := f.enrol(t, alice)
		code := codeAt(t, secret, f.clock.Now())
		f.audit.setFail(errAuditDown)
		err := f.svc.Verify(ctx, alice, "req", code)
		if err == nil || !errors.Is(err, errAuditDown) {
			t.Fatalf("Verify with the audit down = %v, want an error wrapping the audit's", err)
		}
		// A failed attempt still reports why, besides the audit failure.
		if err := f.svc.Verify(ctx, alice, "req", wrongCode(t, secret, f.clock.Now())); !errors.Is(err, ErrBadCode) || !errors.Is(err, errAuditDown) {
			t.Errorf("Verify with a wrong code and the audit down = %v, want ErrBadCode and the audit's error", err)
		}
		f.audit.setFail(nil)
		// The code was used up by the attempt that could not be audited.
		if err := f.svc.Verify(ctx, alice, "req", code); !errors.Is(err, ErrReplay) {
			t.Errorf("Verify with the same code after the audit is back = %v, want ErrReplay", err)
		}
		if err := f.svc.Verify(ctx, alice, "req", codeAt(t, secret, f.clock.Now().Add(Period))); err != nil {
			t.Errorf("Verify with a fresh code after the audit is back = %v, want nil", err)
		}
	})

	t.Run("enroll", func(t *testing.T) {
		f := newFixture(t, nil, false)
		f.audit.setFail(errAuditDown)
		if enr, err := f.svc.Enroll(ctx, alice, ""); err == nil || !enr.Secret.IsZero() {
			t.Fatalf("Enroll with the audit down = %v (secret returned: %v), want an error and no secret", err, !enr.Secret.IsZero())
		}
		f.audit.setFail(nil)
		if err := f.svc.Confirm(ctx, alice, "123456"); !errors.Is(err, ErrNotEnrolled) {
			t.Errorf("Confirm after an unaudited Enroll = %v, want ErrNotEnrolled", err)
		}
	})

	t.Run("enroll over a pending one", func(t *testing.T) {
		f := newFixture(t, nil, false)
		enr, err := f.svc.Enroll(ctx, alice, "")
		if err != nil {
			t.Fatal(err)
		}
		f.audit.setFail(errAuditDown)
		if _, err := f.svc.Enroll(ctx, alice, ""); err == nil {
			t.Fatal("Enroll with the audit down succeeded")
		}
		f.audit.setFail(nil)
		if err := f.svc.Confirm(ctx, alice, codeAt(t, enr.Secret.Reveal(), f.clock.Now())); err != nil {
			t.Errorf("Confirm with the first secret = %v, want nil (the pending enrolment restored)", err)
		}
	})

	t.Run("confirm", func(t *testing.T) {
		f := newFixture(t, nil, false)
		enr, err := f.svc.Enroll(ctx, alice, "")
		if err != nil {
			t.Fatal(err)
		}
		f.audit.setFail(errAuditDown)
		if err := f.svc.Confirm(ctx, alice, codeAt(t, enr.Secret.Reveal(), f.clock.Now())); err == nil {
			t.Fatal("Confirm with the audit down succeeded")
		}
		f.audit.setFail(nil)
		if got, err := f.svc.Enrolled(ctx, alice); err != nil || got {
			t.Errorf("Enrolled after an unaudited Confirm = %v, %v; want false, nil", got, err)
		}
		if err := f.svc.Confirm(ctx, alice, codeAt(t, enr.Secret.Reveal(), f.clock.Now().Add(Period))); err != nil {
			t.Errorf("Confirm with the next code = %v, want nil", err)
		}
	})

	t.Run("reset", func(t *testing.T) {
		f := newFixture(t, nil, false)
		f.enrol(t, alice)
		f.audit.setFail(errAuditDown)
		if err := f.svc.Reset(ctx, alice); err == nil {
			t.Fatal("Reset with the audit down succeeded")
		}
		if got, err := f.svc.Enrolled(ctx, alice); err != nil || !got {
			t.Errorf("Enrolled after an unaudited Reset = %v, %v; want true, nil", got, err)
		}
	})
}

func TestDemoCode(t *testing.T) {
	ctx := context.Background()

	t.Run("off", func(t *testing.T) {
		f := newFixture(t, nil, false)
		f.enrol(t, alice)
		if code, err := f.svc.DemoCode(ctx, alice); !errors.Is(err, ErrNotDemo) || code != "" {
			t.Errorf("DemoCode without Demo = %q, %v; want \"\", ErrNotDemo", code, err)
		}
	})

	t.Run("on", func(t *testing.T) {
		f := newFixture(t, nil, true)
		if _, err := f.svc.DemoCode(ctx, alice); !errors.Is(err, ErrNotEnrolled) {
			t.Errorf("DemoCode before enrolling = %v, want ErrNotEnrolled", err)
		}
		if _, err := f.svc.Enroll(ctx, alice, ""); err != nil {
			t.Fatal(err)
		}
		code, err := f.svc.DemoCode(ctx, alice)
		if err != nil {
			t.Fatalf("DemoCode of a pending enrolment: %v", err)
		}
		if err := f.svc.Confirm(ctx, alice, code); err != nil {
			t.Fatalf("Confirm with the demo code = %v", err)
		}
		// The current step is used: the demo phone shows the next code,
		// then has none until time moves on.
		for i := range 2 {
			if i == 1 {
				f.clock.Advance(5 * time.Minute)
			}
			code, err := f.svc.DemoCode(ctx, alice)
			if err != nil {
				t.Fatalf("DemoCode %d: %v", i, err)
			}
			if err := f.svc.Verify(ctx, alice, "req", code); err != nil {
				t.Errorf("Verify with demo code %d = %v, want nil", i, err)
			}
		}
		code, err = f.svc.DemoCode(ctx, alice)
		if err != nil {
			t.Fatalf("DemoCode: %v", err)
		}
		if err := f.svc.Verify(ctx, alice, "req", code); err != nil {
			t.Errorf("Verify with the next step's demo code = %v, want nil", err)
		}
		if _, err := f.svc.DemoCode(ctx, alice); !errors.Is(err, ErrReplay) {
			t.Errorf("DemoCode with the current and next steps used = %v, want ErrReplay", err)
		}
	})
}

func TestSealedRecordBound(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, false)
	secret := f.enrol(t, alice)
	const mallory = "T1:UMALLORY"

	t.Run("copied to another principal", func(t *testing.T) {
		item, err := f.store.Get(ctx, store.Key{Scope: alice, Kind: recordKind, ID: recordID})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.store.Put(ctx, store.Key{Scope: mallory, Kind: recordKind, ID: recordID}, item.Value, 0); err != nil {
			t.Fatal(err)
		}
		err = f.svc.Verify(ctx, mallory, "req", codeAt(t, secret, f.clock.Now()))
		if err == nil || !errors.Is(err, errCorrupt) {
			t.Errorf("Verify with a record copied from another principal = %v, want errCorrupt", err)
		}
		if got := f.audit.last(t).Detail["reason"]; got != ReasonError {
			t.Errorf("audit reason = %q, want %q", got, ReasonError)
		}
	})

	t.Run("another key", func(t *testing.T) {
		other, err := New(Options{Store: f.store, Key: []byte("fedcba9876543210fedcba9876543210"), Audit: f.audit, Now: f.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Verify(ctx, alice, "req", codeAt(t, secret, f.clock.Now())); !errors.Is(err, errCorrupt) {
			t.Errorf("Verify under another key = %v, want errCorrupt", err)
		}
	})
}

func TestNewAndInput(t *testing.T) {
	st := memstore.New(memstore.Options{})
	rec := &auditLog{}
	tests := []struct {
		name string
		opts Options
	}{
		{"no store", Options{Key: testKey, Audit: rec}},
		{"no audit", Options{Store: st, Key: testKey}},
		{"no key", Options{Store: st, Audit: rec}},
		{"short key", Options{Store: st, Key: testKey[:16], Audit: rec}},
		{"short old key", Options{Store: st, Key: newKey, OldKeys: [][]byte{testKey[:16]}, Audit: rec}},
		{"empty old key", Options{Store: st, Key: newKey, OldKeys: [][]byte{testKey, nil}, Audit: rec}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}

	t.Run("bad principal", func(t *testing.T) {
		f := newFixture(t, nil, true)
		ctx := context.Background()
		for _, p := range []string{"", "T1:\nU1"} {
			if _, err := f.svc.Enroll(ctx, p, ""); err == nil {
				t.Errorf("Enroll(%q) succeeded", p)
			}
			if err := f.svc.Verify(ctx, p, "r", "123456"); err == nil {
				t.Errorf("Verify(%q) succeeded", p)
			}
		}
	})
}

func containsFold(s, sub string) bool {
	return len(sub) == 0 || indexFold(s, sub) >= 0
}

func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if equalFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

func equalFold(a, b string) bool {
	return len(a) == len(b) && (a == b || lower(a) == lower(b))
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestPendingEnrolmentExpires(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration // between Enroll and Confirm
		want  error
	}{
		{"just in time", PendingTTL - time.Second, nil},
		{"at the deadline", PendingTTL, ErrExpired},
		{"long after", 24 * time.Hour, ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, nil, false)
			enr, err := f.svc.Enroll(ctx, alice, "")
			if err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(tt.after)
			secret := enr.Secret.Reveal()
			// More tries than the lockout allows: an expired enrolment
			// refuses every one of them without counting them.
			tries := 1
			if tt.want != nil {
				tries = MaxFailures + 1
			}
			for range tries {
				if err := f.svc.Confirm(ctx, alice, codeAt(t, secret, f.clock.Now())); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
					t.Fatalf("Confirm %v after Enroll = %v, want %v", tt.after, err, tt.want)
				}
			}
			enrolled, err := f.svc.Enrolled(ctx, alice)
			if err != nil || enrolled != (tt.want == nil) {
				t.Fatalf("Enrolled = %v, %v; want %v", enrolled, err, tt.want == nil)
			}
			if tt.want == nil {
				return
			}
			if got := f.audit.last(t).Detail["reason"]; got != ReasonExpired {
				t.Errorf("audit reason = %q, want %q", got, ReasonExpired)
			}
			// Starting over gives a live enrolment with a later generation.
			again, err := f.svc.Enroll(ctx, alice, "")
			if err != nil {
				t.Fatal(err)
			}
			if again.Generation <= enr.Generation {
				t.Errorf("generation after enrolling again = %d, want more than %d", again.Generation, enr.Generation)
			}
			f.clock.Advance(Period)
			if err := f.svc.Confirm(ctx, alice, codeAt(t, again.Secret.Reveal(), f.clock.Now())); err != nil {
				t.Errorf("Confirm of the new enrolment = %v, want nil", err)
			}
		})
	}
}

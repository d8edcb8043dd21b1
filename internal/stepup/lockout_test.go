package stepup

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rung is one lockout as the caller saw it.
type rung struct {
	Level   int
	Lockout time.Duration
}

var (
	rung1 = rung{1, 15 * time.Minute}
	rung2 = rung{2, time.Hour}
	rung3 = rung{3, 24 * time.Hour}
)

func TestLockoutLadder(t *testing.T) {
	// Every step first waits for a running lockout to end.
	const (
		lock      = "lock"    // fail MaxFailures codes at once
		ok        = "ok"      // pass with the right code
		day       = "day"     // wait EscalationWindow more
		nearlyDay = "day-1s"  // wait a second less than that
		window    = "window"  // wait FailureWindow more
		oneWrong  = "1 wrong" // fail one code
	)
	tests := []struct {
		name  string
		steps []string
		want  []rung // each lockout in turn
	}{
		{"first lockout", []string{lock}, []rung{rung1}},
		{"second right after the first", []string{lock, lock}, []rung{rung1, rung2}},
		{"second just within a day of the first", []string{lock, nearlyDay, lock}, []rung{rung1, rung2}},
		{"third and later", []string{lock, lock, lock, lock, lock}, []rung{rung1, rung2, rung3, rung3, rung3}},
		{"third after waits within a day", []string{lock, nearlyDay, lock, nearlyDay, lock}, []rung{rung1, rung2, rung3}},
		{"a success starts over", []string{lock, ok, lock}, []rung{rung1, rung1}},
		{"a success at the top starts over", []string{lock, lock, lock, ok, lock, lock}, []rung{rung1, rung2, rung3, rung1, rung2}},
		{"a day without lockout starts over", []string{lock, day, lock}, []rung{rung1, rung1}},
		{"a day without lockout at the top starts over", []string{lock, lock, lock, day, lock}, []rung{rung1, rung2, rung3, rung1}},
		{"failures that lock nothing do not start over", []string{lock, oneWrong, window, lock}, []rung{rung1, rung2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, nil, false)
			secret := f.enrol(t, alice)
			verify := func(code string) error { return f.svc.Verify(ctx, alice, "req", code) }
			var (
				until time.Time
				got   []rung
			)
			for _, step := range tt.steps {
				if d := until.Sub(f.clock.Now()); d > 0 {
					f.clock.Advance(d)
				}
				now := f.clock.Now()
				switch step {
				case ok:
					if err := verify(codeAt(t, secret, now)); err != nil {
						t.Fatalf("Verify with the right code = %v, want nil", err)
					}
				case day:
					f.clock.Advance(EscalationWindow)
				case nearlyDay:
					f.clock.Advance(EscalationWindow - time.Second)
				case window:
					f.clock.Advance(FailureWindow)
				case oneWrong:
					if err := verify(wrongCode(t, secret, now)); !errors.Is(err, ErrBadCode) {
						t.Fatalf("Verify with a wrong code = %v, want ErrBadCode", err)
					}
				case lock:
					var err error
					for i := range MaxFailures {
						err = verify(wrongCode(t, secret, now))
						var lo *LockedOut
						if i < MaxFailures-1 && errors.As(err, &lo) {
							t.Fatalf("failure %d of %d: Verify = %v, want no lockout yet", i+1, MaxFailures, err)
						}
					}
					if !errors.Is(err, ErrBadCode) {
						t.Fatalf("the failure that locks: Verify = %v, want ErrBadCode", err)
					}
					lo := lockedOut(t, err)
					got = append(got, rung{lo.Level, lo.Until.Sub(now)})
					until = lo.Until
					wantDetail := map[string]string{
						"locked_until": lo.Until.UTC().Format(time.RFC3339),
						"lock_level":   strconv.Itoa(lo.Level),
						"lockout":      lo.Until.Sub(now).String(),
					}
					checkLockDetail(t, f.audit.last(t).Detail, wantDetail)
					// The lock holds to its last second, even for the right
					// code, and says so.
					f.clock.Advance(until.Sub(now) - time.Second)
					err = verify(codeAt(t, secret, f.clock.Now()))
					if !errors.Is(err, ErrLocked) {
						t.Fatalf("a second before the lockout ends: Verify with the right code = %v, want ErrLocked", err)
					}
					if held := lockedOut(t, err); !held.Until.Equal(until) || held.Level != lo.Level {
						t.Errorf("during the lockout: *LockedOut = %+v, want Until %v and Level %d", held, until, lo.Level)
					}
					checkLockDetail(t, f.audit.last(t).Detail, wantDetail)
				default:
					t.Fatalf("unknown step %q", step)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lockouts (-want +got):\n%s", diff)
			}
		})
	}
}

// checkLockDetail compares the lockout keys of an audit event's detail.
func checkLockDetail(tb testing.TB, detail, want map[string]string) {
	tb.Helper()
	got := map[string]string{}
	for k := range want {
		if v, ok := detail[k]; ok {
			got[k] = v
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		tb.Errorf("lockout in the audit event (-want +got):\n%s", diff)
	}
}

func TestEngagingAttemptReportsLockout(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// attempt sets up and returns the attempt to repeat MaxFailures
		// times.
		attempt  func(t *testing.T, f *fixture) func() error
		auditErr error
		want     error
	}{
		{
			name: "wrong codes to Verify",
			attempt: func(t *testing.T, f *fixture) func() error {
				secret := f.enrol(t, alice)
				return func() error { return f.svc.Verify(ctx, alice, "req", wrongCode(t, secret, f.clock.Now())) }
			},
			want: ErrBadCode,
		},
		{
			name: "replayed codes to Verify",
			attempt: func(t *testing.T, f *fixture) func() error {
				secret := f.enrol(t, alice)
				used := codeAt(t, secret, f.clock.Now())
				if err := f.svc.Verify(ctx, alice, "req", used); err != nil {
					t.Fatal(err)
				}
				return func() error { return f.svc.Verify(ctx, alice, "req", used) }
			},
			want: ErrReplay,
		},
		{
			name: "wrong codes to Confirm",
			attempt: func(t *testing.T, f *fixture) func() error {
				enr, err := f.svc.Enroll(ctx, alice, "")
				if err != nil {
					t.Fatal(err)
				}
				return func() error { return f.svc.Confirm(ctx, alice, wrongCode(t, enr.Secret.Reveal(), f.clock.Now())) }
			},
			want: ErrBadCode,
		},
		{
			name: "wrong codes to Verify with the audit down",
			attempt: func(t *testing.T, f *fixture) func() error {
				secret := f.enrol(t, alice)
				return func() error { return f.svc.Verify(ctx, alice, "req", wrongCode(t, secret, f.clock.Now())) }
			},
			auditErr: errAuditDown,
			want:     ErrBadCode,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil, false)
			attempt := tt.attempt(t, f)
			f.audit.setFail(tt.auditErr)
			var err error
			for range MaxFailures {
				err = attempt()
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("the attempt that locks = %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrLocked) {
				t.Errorf("the attempt that locks = %v, want not ErrLocked: its code was checked", err)
			}
			if tt.auditErr != nil && !errors.Is(err, tt.auditErr) {
				t.Errorf("the attempt that locks = %v, want the audit's error too", err)
			}
			want := &LockedOut{Until: f.clock.Now().Add(LockoutDuration), Failures: MaxFailures, Level: 1}
			if diff := cmp.Diff(want, lockedOut(t, err)); diff != "" {
				t.Errorf("*LockedOut (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLockedAttemptReportsLockout(t *testing.T) {
	ctx := context.Background()
	// lockVerify locks alice's confirmed enrolment n times in a row and
	// returns her secret and when the last lockout began.
	lockVerify := func(t *testing.T, f *fixture, n int) (string, time.Time) {
		t.Helper()
		secret := f.enrol(t, alice)
		var start time.Time
		for i := range n {
			if i > 0 {
				f.clock.Advance(lockoutFor(i))
			}
			start = f.clock.Now()
			for range MaxFailures {
				f.svc.Verify(ctx, alice, "req", wrongCode(t, secret, start))
			}
		}
		f.clock.Advance(time.Minute)
		return secret, start
	}
	tests := []struct {
		name    string
		attempt func(t *testing.T, f *fixture) (err error, lockedAt time.Time)
		want    rung
	}{
		{"right code to Verify", func(t *testing.T, f *fixture) (error, time.Time) {
			secret, at := lockVerify(t, f, 1)
			return f.svc.Verify(ctx, alice, "req", codeAt(t, secret, f.clock.Now())), at
		}, rung1},
		{"wrong code to Verify", func(t *testing.T, f *fixture) (error, time.Time) {
			secret, at := lockVerify(t, f, 1)
			return f.svc.Verify(ctx, alice, "req", wrongCode(t, secret, f.clock.Now())), at
		}, rung1},
		{"right code to Verify on the second rung", func(t *testing.T, f *fixture) (error, time.Time) {
			secret, at := lockVerify(t, f, 2)
			return f.svc.Verify(ctx, alice, "req", codeAt(t, secret, f.clock.Now())), at
		}, rung2},
		{"right code to Confirm", func(t *testing.T, f *fixture) (error, time.Time) {
			enr, err := f.svc.Enroll(ctx, alice, "")
			if err != nil {
				t.Fatal(err)
			}
			at := f.clock.Now()
			for range MaxFailures {
				f.svc.Confirm(ctx, alice, wrongCode(t, enr.Secret.Reveal(), at))
			}
			f.clock.Advance(time.Minute)
			return f.svc.Confirm(ctx, alice, codeAt(t, enr.Secret.Reveal(), f.clock.Now())), at
		}, rung1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil, false)
			err, at := tt.attempt(t, f)
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("attempt during the lockout = %v, want ErrLocked", err)
			}
			want := &LockedOut{Until: at.Add(tt.want.Lockout), Failures: MaxFailures, Level: tt.want.Level}
			if diff := cmp.Diff(want, lockedOut(t, err)); diff != "" {
				t.Errorf("*LockedOut (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReenrolKeepsLockoutLadder(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, false)
	// lockConfirm enrols alice anew and fails MaxFailures confirmations.
	lockConfirm := func() *LockedOut {
		t.Helper()
		enr, err := f.svc.Enroll(ctx, alice, "")
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		for range MaxFailures {
			err = f.svc.Confirm(ctx, alice, wrongCode(t, enr.Secret.Reveal(), f.clock.Now()))
		}
		if !errors.Is(err, ErrBadCode) {
			t.Fatalf("the confirmation that locks = %v, want ErrBadCode", err)
		}
		return lockedOut(t, err)
	}
	first := lockConfirm()
	if first.Level != 1 {
		t.Fatalf("first lockout at level %d, want 1", first.Level)
	}
	f.clock.Advance(first.Until.Sub(f.clock.Now()))
	start := f.clock.Now()
	second := lockConfirm()
	want := &LockedOut{Until: start.Add(time.Hour), Failures: MaxFailures, Level: 2}
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("lockout after enrolling again (-want +got):\n%s", diff)
	}
	// Past the first rung's length, and past PendingTTL: a third enrolment
	// is still locked by the second lockout.
	f.clock.Advance(59 * time.Minute)
	enr, err := f.svc.Enroll(ctx, alice, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Confirm(ctx, alice, codeAt(t, enr.Secret.Reveal(), f.clock.Now())); !errors.Is(err, ErrLocked) {
		t.Errorf("Confirm with the right code 59 minutes into the second lockout = %v, want ErrLocked", err)
	}
}

func TestLockedOutText(t *testing.T) {
	until := time.Date(2026, 3, 2, 10, 15, 40, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"with failures", &LockedOut{Until: until, Failures: 5, Level: 2}, "step-up is locked until 2026-03-02 09:15 UTC after 5 failed attempts"},
		{"without failures", &LockedOut{Until: until}, "step-up is locked until 2026-03-02 09:15 UTC"},
		{"joined", errors.Join(ErrBadCode, &LockedOut{Until: until, Failures: 5, Level: 1}), "that code is not valid\nstep-up is locked until 2026-03-02 09:15 UTC after 5 failed attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if strings.Contains(tt.err.Error(), "stepup:") {
				t.Errorf("Error() = %q, want a text for a person, without the package prefix", tt.err.Error())
			}
		})
	}
}

package auditchannel_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/slackapp/auditchannel"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func TestNewRequires(t *testing.T) {
	st := memstore.New(memstore.Options{})
	api := slack.New(botToken)
	for _, tt := range []struct {
		name string
		opts auditchannel.Options
	}{
		{"no store", auditchannel.Options{Channel: channelID, Poster: api}},
		{"no channel", auditchannel.Options{Store: st, Poster: api}},
		{"no poster", auditchannel.Options{Store: st, Channel: channelID}},
		{"control character in channel", auditchannel.Options{Store: st, Channel: "C1\n", Poster: api}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := auditchannel.New(tt.opts); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}

func TestPostsEveryEventOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, _ := b.open(t)
			f := newFixture(t, st)
			// Long lines, so the backlog needs several messages.
			f.record(t, 250, 300)
			reg := prometheus.NewRegistry()
			opts := f.options()
			opts.Registerer = reg
			start(t, opts)
			f.waitPosted(t, 250)
			if got := len(f.messages(t)); got < 2 {
				t.Errorf("the backlog of 250 long lines went out in %d message, want several", got)
			}
			// Events recorded while the poster runs follow.
			for range 5 {
				f.record(t, 7, 0)
				f.waitPosted(t, f.count())
			}
			if alarms := f.checkChannel(t); len(alarms) != 0 {
				t.Errorf("%d alarms posted for a sound chain: %q", len(alarms), alarms[0].text)
			}
			if got, want := metric(t, reg, "agenthub_audit_channel_posted_events_total"), float64(f.count()); got != want {
				t.Errorf("posted_events_total = %v, want %v", got, want)
			}
			if got, want := metric(t, reg, "agenthub_audit_channel_posts_total"), float64(len(f.messages(t))); got != want {
				t.Errorf("posts_total = %v, want %v", got, want)
			}
			waitFor(t, "lag 0", func() bool { return metric(t, reg, "agenthub_audit_channel_lag_events") == 0 })
		})
	}
}

func TestSkipBacklog(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	f.record(t, 5, 0)
	opts := f.options()
	opts.SkipBacklog = true
	st := &countingStore{Store: f.st}
	opts.Store = st
	start(t, opts)
	waitPolls(t, st, 3)
	if got := len(f.messages(t)); got != 0 {
		t.Fatalf("%d messages posted for the backlog, want none", got)
	}
	f.record(t, 3, 0)
	f.waitPosted(t, 8)
	var seqs []uint64
	for _, p := range f.messages(t) {
		seqs = append(seqs, p.seqs...)
	}
	if got, want := seqs, []uint64{6, 7, 8}; !equal(got, want) {
		t.Errorf("posted seqs %v, want %v", got, want)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRateLimited(t *testing.T) {
	// Slack's window runs on the fake server's clock, which only the test
	// moves: the second post is refused until the test ends the window.
	var clock atomic.Int64
	clock.Store(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	f := newFixture(t, memstore.New(memstore.Options{}), slacktest.WithClock(now))
	f.srv.LimitPostMessage(1, time.Second)
	reg := prometheus.NewRegistry()
	opts := f.options()
	opts.Registerer = reg
	// The first three are in the log before the poster starts, so they go
	// in one post: recorded while it polls, they could be split over two,
	// and the second would meet the limit on a clock that does not move.
	f.record(t, 3, 0)
	start(t, opts)
	f.waitPosted(t, 3)
	f.record(t, 3, 0)
	limited := func() int {
		n := 0
		for _, c := range f.srv.Calls("chat.postMessage") {
			if c.Status == 429 {
				n++
			}
		}
		return n
	}
	waitFor(t, "a 429", func() bool { return limited() >= 1 })
	if got := f.lastHead(t); got != 3 {
		t.Errorf("chain head #%d in the channel while rate limited, want #3", got)
	}
	clock.Add(int64(time.Second)) // the next window
	f.waitPosted(t, 6)

	f.checkChannel(t)
	if got, want := metric(t, reg, "agenthub_audit_channel_rate_limited_total"), float64(limited()); got != want {
		t.Errorf("rate_limited_total = %v, want %v (the 429s answered)", got, want)
	}
	if got, want := metric(t, reg, "agenthub_audit_channel_errors_total"), 0.0; got != want {
		t.Errorf("errors_total = %v, want %v", got, want)
	}
}

func TestRestart(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, reopen := b.open(t)
			f := newFixture(t, st)
			f.record(t, 30, 0)
			stop := start(t, f.options())
			f.waitPosted(t, 30)
			f.record(t, 5, 0)
			stop()
			f.record(t, 30, 0)

			// A new process: a new handle on the same store.
			opts := f.options()
			opts.Store = reopen()
			stop = start(t, opts)
			f.waitPosted(t, f.count())
			stop()
			f.checkChannel(t)
		})
	}
}

// flakyPoster fails its first n posts with each of errs in turn, then
// passes posts to the real client.
type flakyPoster struct {
	auditchannel.Poster
	mu    sync.Mutex
	n     int
	errs  []error
	calls int
}

func (p *flakyPoster) PostMessageContext(ctx context.Context, ch string, opts ...slack.MsgOption) (string, string, error) {
	p.mu.Lock()
	i := p.calls
	p.calls++
	p.mu.Unlock()
	if i < p.n {
		return "", "", p.errs[i%len(p.errs)]
	}
	return p.Poster.PostMessageContext(ctx, ch, opts...)
}

func TestOutage(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	f.record(t, 10, 0)
	// A real network error, with the URL slack-go puts into it.
	_, netErr := net.Dial("tcp", "127.0.0.1:1")
	fp := &flakyPoster{Poster: f.api, n: 4, errs: []error{
		slack.SlackErrorResponse{Err: "not_in_channel"},
		&net.OpError{Op: "dial", Net: "tcp", Err: netErr},
		slack.SlackErrorResponse{Err: "channel_not_found"},
	}}
	reg := prometheus.NewRegistry()
	opts := f.options()
	opts.Poster, opts.Registerer = fp, reg
	start(t, opts)
	f.record(t, 10, 0)
	f.waitPosted(t, 20)
	f.checkChannel(t)
	if got, want := metric(t, reg, "agenthub_audit_channel_errors_total"), 4.0; got != want {
		t.Errorf("errors_total = %v, want %v", got, want)
	}
	for _, want := range []string{"not_in_channel", "channel_not_found"} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("the log does not name the error %s", want)
		}
	}
}

func TestTwoPosters(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, reopen := b.open(t)
			f := newFixture(t, st)
			// A short lock TTL, shorter than the test: the holder must renew
			// it while posting or the other would take over.
			const ttl = time.Second
			regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
			optsA := f.options()
			optsA.LockTTL, optsA.Registerer = ttl, regA
			optsB := f.options()
			optsB.Store, optsB.LockTTL, optsB.Registerer = reopen(), ttl, regB

			f.record(t, 20, 0)
			stopA := start(t, optsA)
			f.waitPosted(t, 20)
			start(t, optsB)
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for range 10 {
						if err := f.tryRecord(5, 0); err != nil {
							t.Error(err)
							return
						}
						// Spread the events over two lock TTLs of polls.
						time.Sleep(ttl / 5)
					}
				})
			}
			wg.Wait()
			f.waitPosted(t, f.count())
			stopA() // B takes over
			f.record(t, 20, 0)
			f.waitPosted(t, f.count())
			f.checkChannel(t)
			if got := metric(t, regB, "agenthub_audit_channel_posts_total"); got == 0 {
				t.Error("B posted nothing after A stopped")
			}
			if got := metric(t, regA, "agenthub_audit_channel_errors_total") + metric(t, regB, "agenthub_audit_channel_errors_total"); got != 0 {
				t.Errorf("errors_total = %v, want 0 (the lock changed hands only when A stopped); log:\n%s", got, f.logs.String())
			}
		})
	}
}

func TestWaitsForTheLock(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	f.record(t, 5, 0)
	// Another replica holds the lock, and stays silent (it hangs).
	other, err := store.TryLock(context.Background(), f.st, "", auditchannel.CursorKind+":"+channelID, time.Minute)
	if err != nil {
		t.Fatalf("TryLock: %v", err)
	}
	st := &countingStore{Store: f.st}
	opts := f.options()
	opts.Store = st
	start(t, opts)
	waitFor(t, "3 tries for the lock", func() bool { return st.creates.Load() >= 3 })
	if got := len(f.messages(t)); got != 0 {
		t.Fatalf("%d messages posted without the lock, want none", got)
	}
	if err := other.Unlock(context.Background()); err != nil { // as its TTL running out would
		t.Fatalf("Unlock: %v", err)
	}
	f.waitPosted(t, 5)
	f.checkChannel(t)
}

func TestTakesOverAfterLockTTL(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	f.record(t, 5, 0)
	// A holder that died without releasing the lock.
	if _, err := store.TryLock(context.Background(), f.st, "", auditchannel.CursorKind+":"+channelID, 200*time.Millisecond); err != nil {
		t.Fatalf("TryLock: %v", err)
	}
	start(t, f.options())
	f.waitPosted(t, 5)
	f.checkChannel(t)
}

func TestBrokenChain(t *testing.T) {
	alter := func(seq int) func([][]byte) [][]byte {
		return func(l [][]byte) [][]byte {
			l[seq-1] = []byte(strings.Replace(string(l[seq-1]), "acme/payments", "acme/paymentz", 1))
			return l
		}
	}
	for _, tt := range []struct {
		name   string
		tamper func([][]byte) [][]byte // the log holds 15 events, 10 of them posted
		posted uint64                  // the chain head after the alarm
		seq    string                  // "broken at seq N"
		reason string                  // part of the alarm
	}{
		{"an unposted event altered", alter(13), 12, "broken at seq 13", "hash does not match"},
		{"posted events cut off", func(l [][]byte) [][]byte { return l[:7] }, 10, "broken at seq 8", "cut off"},
		{"an unposted event removed", func(l [][]byte) [][]byte { return append(l[:11:11], l[12:]...) }, 11, "broken at seq 12", ""},
		{"the last posted event altered", func(l [][]byte) [][]byte { return alter(10)(l[:10]) }, 10, "broken at seq 10", "no longer matches"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mem := memstore.New(memstore.Options{})
			f := newFixture(t, mem)
			f.record(t, 10, 0)
			stop := start(t, f.options())
			f.waitPosted(t, 10)
			stop()
			f.record(t, 5, 0)
			var original [][]byte
			mem.EditLog(audit.DefaultLog, func(l [][]byte) [][]byte {
				original = l
				return tt.tamper(append([][]byte(nil), l...))
			})

			st := &countingStore{Store: mem}
			opts := f.options()
			opts.Store = st
			stop = start(t, opts)
			var alarms []posted
			waitFor(t, "the alarm", func() bool {
				alarms = nil
				for _, p := range f.messages(t) {
					if len(p.seqs) == 0 {
						alarms = append(alarms, p)
					}
				}
				return len(alarms) > 0
			})
			waitPolls(t, st, 3) // nothing past the break goes out
			stop()
			// Another replica, or a restart, does not repeat the alarm.
			stop = start(t, opts)
			waitPolls(t, st, 3)
			stop()

			alarms = nil
			for _, p := range f.messages(t) {
				if len(p.seqs) == 0 {
					alarms = append(alarms, p)
				}
			}
			if got := len(alarms); got != 1 {
				t.Fatalf("%d alarms, want 1", got)
			}
			a := alarms[0]
			for _, want := range []string{tt.seq, tt.reason, "<!here>"} {
				if !strings.Contains(a.text, want) {
					t.Errorf("alarm %q does not say %q", a.text, want)
				}
			}
			if got := f.lastHead(t); got != tt.posted {
				t.Errorf("chain head #%d in the channel, want #%d", got, tt.posted)
			}
			if got := strings.Count(f.logs.String(), "level=ERROR msg=\"audit channel: the audit chain is broken"); got != 1 {
				t.Errorf("%d error logs of the broken chain, want 1", got)
			}

			// Restored from a backup: posting resumes where it stopped.
			mem.EditLog(audit.DefaultLog, func([][]byte) [][]byte { return original })
			if _, err := audit.VerifyStore(context.Background(), mem, audit.DefaultLog); err != nil {
				t.Fatalf("the restored log does not verify: %v", err)
			}
			start(t, opts)
			f.waitPosted(t, f.count())
			if alarms := f.checkChannel(t); len(alarms) != 1 {
				t.Errorf("%d alarms after the repair, want the 1 from before", len(alarms))
			}
		})
	}
}

// cursorFailing fails every write of the poster's cursor while fail is set.
type cursorFailing struct {
	store.Store
	fail atomic.Bool
}

func (c *cursorFailing) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	if k.Kind == auditchannel.CursorKind && c.fail.Load() {
		return errors.New("store down")
	}
	return c.Store.CompareAndSwap(ctx, k, old, next, ttl)
}

func TestCursorWriteFails(t *testing.T) {
	f := newFixture(t, memstore.New(memstore.Options{}))
	st := &cursorFailing{Store: f.st}
	reg := prometheus.NewRegistry()
	opts := f.options()
	opts.Store, opts.Registerer = st, reg
	start(t, opts)
	f.record(t, 5, 0)
	f.waitPosted(t, 5)
	// The batch is posted and the cursor cannot follow: the poster retries
	// the cursor write, not the post.
	st.fail.Store(true)
	f.record(t, 5, 0)
	waitFor(t, "retried cursor writes", func() bool { return metric(t, reg, "agenthub_audit_channel_errors_total") >= 3 })
	st.fail.Store(false)
	f.record(t, 5, 0)
	f.waitPosted(t, 15)
	f.checkChannel(t)
}

package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// The tokens of the transport tests. They are canaries: no log line, error
// or message may ever contain them.
const (
	socketBotToken = "xoxb-test-50ck3t-b0t-canary"
	socketAppToken = "xapp-test-1-A0FAKEAPP01-50ck3t-app-canary"
)

// socketBroker satisfies Broker for the transport tests, whose handlers are
// replaced and never reach it.
type socketBroker struct{}

var errSocketBroker = errors.New("socketBroker: not used by the transport tests")

func (socketBroker) Handle(context.Context, broker.Message) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) Decide(context.Context, broker.Decision) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) StepUp(context.Context, string, broker.Principal, string) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) SignedIn(context.Context, string, broker.Principal) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) Cancel(context.Context, string, broker.Principal, string) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) StopConversation(context.Context, broker.Principal, string) error {
	return errSocketBroker
}
func (socketBroker) Revoke(context.Context, broker.Principal, string) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) RevokeAll(context.Context, broker.Principal) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) RevokeGrant(context.Context, broker.Principal, string) ([]broker.Output, error) {
	return nil, errSocketBroker
}
func (socketBroker) Pending(context.Context, broker.Principal) ([]broker.Request, error) {
	return nil, errSocketBroker
}
func (socketBroker) Grants(context.Context, broker.Principal) ([]broker.Grant, error) {
	return nil, errSocketBroker
}
func (socketBroker) Lookup(context.Context, string) (broker.Request, error) {
	return broker.Request{}, errSocketBroker
}
func (socketBroker) Connected(context.Context, broker.Principal, string) ([]broker.Output, error) {
	return nil, nil
}
func (socketBroker) Refuse(context.Context, broker.Refusal) error { return nil }
func (socketBroker) FlushRefusals(context.Context) error          { return nil }
func (socketBroker) Recover(context.Context, string) ([]broker.Output, error) {
	return nil, errSocketBroker
}

// socketLogs is a log destination safe for concurrent writers.
type socketLogs = logtest.Buffer

// socketApp is an App under test with its log and its Run.
type socketApp struct {
	*App
	logs *socketLogs
	reg  *prometheus.Registry

	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

// socketConfig adjusts a socketApp before it is built.
type socketConfig struct {
	bot, app string // the tokens; default socketBotToken, socketAppToken
	apiURL   string // default the fake's
	opts     func(*Options)
}

// socketNew builds an App against srv and st whose handler does nothing;
// tests replace a.handle before start. Every App's log is checked for the
// tokens when the test ends.
func socketNew(tb testing.TB, srv *slacktest.Server, st store.Store, cfg socketConfig) *socketApp {
	tb.Helper()
	if cfg.bot == "" {
		cfg.bot = socketBotToken
	}
	if cfg.app == "" {
		cfg.app = socketAppToken
	}
	if cfg.apiURL == "" {
		cfg.apiURL = srv.APIURL()
	}
	logs := &socketLogs{}
	reg := prometheus.NewRegistry()
	opts := Options{
		Broker:     socketBroker{},
		Store:      st,
		API:        slack.New(cfg.bot, slack.OptionAPIURL(cfg.apiURL), slack.OptionAppLevelToken(cfg.app)),
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: reg,
		Workers:    4,
		Queue:      1000,
	}
	if cfg.opts != nil {
		cfg.opts(&opts)
	}
	a, err := New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	a.tr.grace = 2 * time.Second
	a.tr.backoffMin, a.tr.backoffMax = 10*time.Millisecond, 100*time.Millisecond
	a.ackPayload = func(*work) any { return nil }
	a.handle = func(context.Context, work) error { return nil }
	a.background = func(ctx context.Context) error { <-ctx.Done(); return nil }
	sa := &socketApp{App: a, logs: logs, reg: reg}
	tb.Cleanup(func() {
		socketNoTokens(tb, "log", logs.String(), cfg.bot, cfg.app)
	})
	return sa
}

// start runs the App until the test ends or stop is called.
func (sa *socketApp) start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sa.cancel = cancel
	sa.done = make(chan struct{})
	go func() {
		defer close(sa.done)
		sa.err = sa.Run(ctx)
	}()
	tb.Cleanup(func() {
		if err := sa.stop(tb); err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
}

// stop ends Run's context and returns Run's result.
func (sa *socketApp) stop(tb testing.TB) error {
	tb.Helper()
	sa.cancel()
	select {
	case <-sa.done:
		return sa.err
	case <-time.After(30 * time.Second):
		tb.Fatal("Run did not return 30 s after its context ended")
		return nil
	}
}

func (sa *socketApp) counter(v *prometheus.CounterVec, typ string) int {
	return int(testutil.ToFloat64(v.WithLabelValues(typ)))
}

func socketNoTokens(tb testing.TB, what, text string, tokens ...string) {
	tb.Helper()
	for _, tok := range tokens {
		if tok != "" && strings.Contains(text, tok) {
			tb.Errorf("%s contains a token (%d chars of %s)", what, len(tok), tok[:5])
		}
	}
}

// socketWait polls cond until it holds, failing the test after 20 s.
func socketWait(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func socketCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func socketPush(tb testing.TB, srv *slacktest.Server, env slacktest.Envelope) string {
	tb.Helper()
	id, err := srv.Push(socketCtx(tb), env)
	if err != nil {
		tb.Fatalf("Push: %v", err)
	}
	return id
}

func socketWaitAck(tb testing.TB, srv *slacktest.Server, id string) {
	tb.Helper()
	if _, err := srv.WaitAck(socketCtx(tb), id); err != nil {
		tb.Fatal(err)
	}
}

// socketRecorder remembers the work handlers ran.
// blockHandlers makes every handler wait for release to be closed (or its
// context to end), saying on entered that it started and recording the
// work in rec once it is let go.
func (sa *socketApp) blockHandlers() (release chan struct{}, entered chan struct{}, rec *socketRecorder) {
	release, entered, rec = make(chan struct{}), make(chan struct{}, 1000), &socketRecorder{}
	sa.handle = func(ctx context.Context, w work) error {
		rec.started.Add(1)
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		rec.add(w)
		return nil
	}
	return release, entered, rec
}

type socketRecorder struct {
	started atomic.Int64 // handlers entered

	mu   sync.Mutex
	done []work
}

func (r *socketRecorder) add(w work) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, w)
}

func (r *socketRecorder) count(match func(work) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, w := range r.done {
		if match == nil || match(w) {
			n++
		}
	}
	return n
}

func (r *socketRecorder) len() int { return r.count(nil) }

func (r *socketRecorder) has(envelopeID string) bool {
	return r.count(func(w work) bool { return w.envelopeID == envelopeID }) > 0
}

func socketMention(srv *slacktest.Server, user, text string) slacktest.Envelope {
	return srv.AppMention(slacktest.Msg{User: user, Channel: "C0SOCKET", Text: "<@" + slacktest.BotUserID + "> " + text})
}

func TestSocketAcksBeforeWork(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{opts: func(o *Options) { o.Workers, o.Queue = 4, 1000 }})
	release, _, rec := sa.blockHandlers()
	started := &rec.started
	sa.start(t)

	const n = 100
	var ids []string
	for i := range n {
		var env slacktest.Envelope
		switch i % 3 {
		case 0:
			env = socketMention(srv, fmt.Sprintf("U%02d", i%7), "hello")
		case 1:
			env = srv.SlashCommand(slacktest.Command{User: fmt.Sprintf("U%02d", i%5), Channel: "D1", Command: "/agenthub", Text: "help"})
		default:
			env = srv.BlockAction(slacktest.Action{User: fmt.Sprintf("U%02d", i%3), Channel: "D1", MessageTS: "1.1", BlockID: "b", ActionID: ActionConnect, Value: "github"})
		}
		ids = append(ids, socketPush(t, srv, env))
	}
	for _, id := range ids {
		socketWaitAck(t, srv, id)
	}
	if got := rec.len(); got != 0 {
		t.Fatalf("handlers finished before the release: %d", got)
	}
	depth := func() int { return int(testutil.ToFloat64(sa.tr.m.queueDepth)) }
	socketWait(t, "every envelope waiting or running", func() bool { return depth()+int(started.Load()) == n })
	if got, max := int(started.Load()), sa.opts.Workers; got > max {
		t.Errorf("handlers running = %d, want at most %d (one per worker)", got, max)
	}
	if got, want := depth(), n-int(started.Load()); got != want || got == 0 {
		t.Errorf("queue depth = %d, want %d (> 0)", got, want)
	}
	var acks int
	for _, typ := range envelopeTypes {
		acks += sa.counter(sa.tr.m.acks, string(typ))
	}
	if acks != n {
		t.Errorf("acks counted = %d, want %d", acks, n)
	}

	close(release)
	socketWait(t, "all work to run", func() bool { return rec.len() == n })
	if got := depth(); got != 0 {
		t.Errorf("queue depth after the release = %d, want 0", got)
	}
	if got, want := socketAckHistogram(t, sa.reg).GetSampleCount(), uint64(n); got != want {
		t.Errorf("ack latencies observed = %d, want %d", got, want)
	}
}

func TestSocketFullQueue(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{opts: func(o *Options) { o.Workers, o.Queue = 1, 2 }})
	release, entered, rec := sa.blockHandlers()
	sa.start(t)

	first := socketPush(t, srv, socketMention(srv, "U1", "first"))
	select {
	case <-entered: // the worker holds it; its queue is empty
	case <-socketCtx(t).Done():
		t.Fatal("the first envelope never reached its handler")
	}
	queued := []string{
		socketPush(t, srv, socketMention(srv, "U2", "second")),
		socketPush(t, srv, socketMention(srv, "U3", "third")),
	}
	for _, id := range append([]string{first}, queued...) {
		socketWaitAck(t, srv, id)
	}

	var extra []slacktest.Envelope
	var extraIDs []string
	for i := range 3 {
		env := socketMention(srv, fmt.Sprintf("U%d", 4+i), "one too many")
		extra = append(extra, env)
		extraIDs = append(extraIDs, socketPush(t, srv, env))
	}
	socketWait(t, "3 events dropped", func() bool { return sa.counter(sa.tr.m.dropped, "events_api") == 3 })
	// A slash command is acked even when it cannot be handled.
	cmd := socketPush(t, srv, srv.SlashCommand(slacktest.Command{User: "U9", Channel: "D9", Command: "/agenthub", Text: "help"}))
	cmdAck, err := srv.WaitAck(socketCtx(t), cmd)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sa.counter(sa.tr.m.dropped, "slash_commands"), 1; got != want {
		t.Errorf("slash commands dropped = %d, want %d", got, want)
	}
	// The person hears that nothing was done: in the slash command's ack,
	// and through a click's response_url.
	if !strings.Contains(string(cmdAck.Payload), "try again") || !strings.Contains(string(cmdAck.Payload), "ephemeral") {
		t.Errorf("dropped slash command's ack = %s, want an ephemeral busy answer", cmdAck.Payload)
	}
	click := srv.BlockAction(slacktest.Action{User: "U8", Channel: "D8", MessageTS: "1.2", ActionID: ActionConnect, Value: "github"})
	socketWaitAck(t, srv, socketPush(t, srv, click))
	socketWait(t, "the dropped click's busy answer", func() bool {
		for _, r := range srv.Responses() {
			if r.URL == click.ResponseURL() && strings.Contains(r.Text, "try again") {
				return true
			}
		}
		return false
	})
	// A click in App Home has no response_url: the answer is a DM.
	homeClick := srv.BlockAction(slacktest.Action{User: "U7", ActionID: ActionRevokeAll, Value: "all"})
	socketWaitAck(t, srv, socketPush(t, srv, homeClick))
	socketWait(t, "the dropped App Home click's busy answer", func() bool {
		for _, m := range srv.Messages(srv.DMChannel("U7")) {
			if strings.Contains(m.Text, "try again") {
				return true
			}
		}
		return false
	})
	for _, a := range srv.Acks() {
		if slices.Contains(extraIDs, a.EnvelopeID) {
			t.Errorf("dropped event %s was acked; Slack would not redeliver it", a.EnvelopeID)
		}
	}
	if !strings.Contains(sa.logs.String(), cmd) {
		t.Errorf("log does not name the dropped slash command %s", cmd)
	}

	close(release)
	socketWait(t, "the queued work to run", func() bool { return rec.len() == 3 })
	retry := socketPush(t, srv, extra[0].Retry(1, "timeout"))
	socketWaitAck(t, srv, retry)
	socketWait(t, "the redelivery to run", func() bool { return rec.has(retry) })
	if rec.has(cmd) {
		t.Errorf("the dropped slash command %s was handled", cmd)
	}
}

// TestSocketQueueBoundIsShared: the bound is on all queues together, so a
// burst from one person, whose work shares one queue, is taken while the
// other queues are empty, and the bound still holds.
func TestSocketQueueBoundIsShared(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{opts: func(o *Options) { o.Workers, o.Queue = 4, 6 }})
	release, entered, rec := sa.blockHandlers()
	sa.start(t)
	first := socketPush(t, srv, socketMention(srv, "U1", "first"))
	select {
	case <-entered:
	case <-socketCtx(t).Done():
		t.Fatal("the first envelope never reached its handler")
	}
	socketWaitAck(t, srv, first)
	// Six more from the same person: one queue, which takes them all.
	for i := range 6 {
		socketWaitAck(t, srv, socketPush(t, srv, socketMention(srv, "U1", fmt.Sprintf("burst %d", i))))
	}
	// The seventh waiting one, from anyone, is over the bound.
	socketPush(t, srv, socketMention(srv, "U2", "over the bound"))
	socketWait(t, "1 event dropped", func() bool { return sa.counter(sa.tr.m.dropped, "events_api") == 1 })
	close(release)
	socketWait(t, "the queued work to run", func() bool { return rec.len() == 7 })
}

func TestSocketRetryHandledOnce(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{})
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error { rec.add(w); return nil }
	sa.start(t)

	env := socketMention(srv, "U1", "merge PR 7")
	socketPush(t, srv, env)
	socketWait(t, "the event to run", func() bool { return rec.len() == 1 })
	retry := socketPush(t, srv, env.Retry(1, "timeout"))
	socketWaitAck(t, srv, retry)
	socketWait(t, "the retry to be seen as a duplicate", func() bool {
		return sa.counter(sa.tr.m.duplicates, "events_api") == 1
	})
	if got, want := rec.len(), 1; got != want {
		t.Errorf("handled %d times, want %d", got, want)
	}
}

func TestSocketTwoAppsShareDedupe(t *testing.T) {
	srv := slacktest.New(t)
	open := redistest.Open(t)
	var rec socketRecorder
	var apps []*socketApp
	for range 2 {
		sa := socketNew(t, srv, open(), socketConfig{opts: func(o *Options) { o.Workers = 8 }})
		sa.handle = func(ctx context.Context, w work) error { rec.add(w); return nil }
		sa.start(t)
		apps = append(apps, sa)
	}
	sum := func(get func(*socketApp) int) int {
		n := 0
		for _, sa := range apps {
			n += get(sa)
		}
		return n
	}
	// Probe until the fake round-robins over both connections.
	socketWait(t, "both apps to receive envelopes", func() bool {
		socketPush(t, srv, srv.SlashCommand(slacktest.Command{User: "U0", Channel: "D0", Command: "/agenthub", Text: "help"}))
		for _, sa := range apps {
			if sa.counter(sa.tr.m.acks, "slash_commands") == 0 {
				return false
			}
		}
		return true
	})

	t.Run("event and retry", func(t *testing.T) {
		env := socketMention(srv, "U1", "deploy")
		ids := []string{socketPush(t, srv, env), socketPush(t, srv, env.Retry(1, "timeout"))}
		for _, id := range ids {
			socketWaitAck(t, srv, id)
		}
		for i, sa := range apps {
			if got, want := sa.counter(sa.tr.m.envelopes, "events_api"), 1; got != want {
				t.Errorf("app %d received %d events, want %d (one each)", i, got, want)
			}
		}
		isEvent := func(w work) bool { return w.typ == "events_api" }
		socketWait(t, "both deliveries run or skipped", func() bool {
			return rec.count(isEvent)+sum(func(sa *socketApp) int { return sa.counter(sa.tr.m.duplicates, "events_api") }) == 2
		})
		if got, want := rec.count(isEvent), 1; got != want {
			t.Errorf("event handled %d times, want %d", got, want)
		}
	})

	t.Run("double clicks", func(t *testing.T) {
		click := func(user string) slacktest.Envelope {
			return srv.BlockAction(slacktest.Action{
				User: user, Channel: "D1", MessageTS: "1.1", BlockID: "decide",
				ActionID: ActionDecidePrefix + "approve", Value: "req-42",
			})
		}
		isClick := func(w work) bool { return w.dedupe != "" && strings.HasPrefix(w.dedupe, "click:") }
		interactive := func(sa *socketApp) int { return sa.counter(sa.tr.m.envelopes, "interactive") }
		before := sum(interactive)
		const n = 200
		var ids []string
		for range n {
			ids = append(ids, socketPush(t, srv, click("U1")))
		}
		for _, id := range ids {
			socketWaitAck(t, srv, id)
		}
		for i, sa := range apps {
			if interactive(sa) == 0 {
				t.Errorf("app %d received none of the clicks", i)
			}
		}
		if got, want := sum(interactive)-before, n; got != want {
			t.Errorf("clicks received = %d, want %d", got, want)
		}
		socketWait(t, "every click run or skipped", func() bool {
			return rec.count(isClick)+sum(func(sa *socketApp) int { return sa.counter(sa.tr.m.duplicates, "interactive") }) == n
		})
		if got, want := rec.count(isClick), 1; got != want {
			t.Errorf("clicks handled = %d, want %d", got, want)
		}

		other := socketPush(t, srv, click("U2"))
		socketWait(t, "another person's click to run", func() bool { return rec.has(other) })
	})
}

func TestSocketHandlerErrorForgetsKey(t *testing.T) {
	tests := []struct {
		name    string
		fail    func() error
		wantLog string
	}{
		{"error", func() error { return errors.New("broker unavailable") }, "broker unavailable"},
		{"panic", func() error { panic("handler bug") }, "handler panicked: handler bug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.New(t)
			sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{})
			var calls atomic.Int64
			var rec socketRecorder
			sa.handle = func(ctx context.Context, w work) error {
				if calls.Add(1) == 1 {
					return tt.fail()
				}
				rec.add(w)
				return nil
			}
			sa.start(t)

			env := socketMention(srv, "U1", "list my grants")
			socketPush(t, srv, env)
			socketWait(t, "the handler error", func() bool { return sa.counter(sa.tr.m.handlerErrors, "events_api") == 1 })
			// The retry has the same order key, so it runs after the key
			// was forgotten.
			retry := socketPush(t, srv, env.Retry(1, "http_error"))
			socketWait(t, "the retry to run", func() bool { return rec.has(retry) })
			// Once handled, the key holds again.
			socketPush(t, srv, env.Retry(2, "timeout"))
			socketWait(t, "the second retry to be a duplicate", func() bool { return sa.counter(sa.tr.m.duplicates, "events_api") == 1 })
			if got, want := rec.len(), 1; got != want {
				t.Errorf("handled %d times, want %d", got, want)
			}
			if !strings.Contains(sa.logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q", tt.wantLog)
			}
		})
	}
}

func TestSocketOrder(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{opts: func(o *Options) { o.Workers = 16 }})
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error {
		runtime.Gosched()
		rec.add(w)
		return nil
	}
	sa.start(t)

	var want []string
	for i := range 50 {
		want = append(want, socketPush(t, srv, socketMention(srv, "U0RDERED", fmt.Sprint(i))))
		socketPush(t, srv, socketMention(srv, fmt.Sprintf("U0THER%02d", i), fmt.Sprint(i)))
	}
	socketWait(t, "all work to run", func() bool { return rec.len() == 100 })
	var got []string
	rec.mu.Lock()
	for _, w := range rec.done {
		if w.order == "U0RDERED" {
			got = append(got, w.envelopeID)
		}
	}
	rec.mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("handling order of one user's envelopes (-pushed +handled):\n%s", diff)
	}
}

func TestSocketReconnect(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{})
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error { rec.add(w); return nil }
	sa.start(t)

	before := socketPush(t, srv, socketMention(srv, "U1", "before"))
	socketWait(t, "the first event to run", func() bool { return rec.has(before) })
	if !sa.Connected() {
		t.Error("Connected() = false while connected")
	}
	if got := testutil.ToFloat64(sa.tr.m.connected); got != 1 {
		t.Errorf("connected gauge = %v, want 1", got)
	}

	srv.Disconnect()
	if err := srv.WaitHellos(socketCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	after := socketPush(t, srv, socketMention(srv, "U1", "after"))
	socketWait(t, "work after the reconnect", func() bool { return rec.has(after) })
	if got := testutil.ToFloat64(sa.tr.m.reconnects); got < 1 {
		t.Errorf("reconnects = %v, want ≥ 1", got)
	}
	socketWait(t, "Connected() after the reconnect", sa.Connected)
}

func TestSocketWatchdog(t *testing.T) {
	srv := slacktest.New(t, slacktest.WithPingInterval(time.Hour)) // never pings
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{opts: func(o *Options) { o.PingInterval = 300 * time.Millisecond }})
	sa.start(t)
	if err := srv.WaitHellos(socketCtx(t), 2); err != nil {
		t.Fatalf("the app did not reconnect on its own: %v", err)
	}
	socketWait(t, "a reconnect counted", func() bool { return testutil.ToFloat64(sa.tr.m.reconnects) >= 1 })
}

func TestSocketFatalAuth(t *testing.T) {
	tests := []struct {
		name     string
		bot, app string
		wantCode string
		wantHint string
	}{
		{"bot token bare prefix", "xoxb-", socketAppToken, "invalid_auth", "SLACK_BOT_TOKEN"},
		{"bot token of the wrong kind", "xoxp-test-wrong-kind-canary", socketAppToken, "invalid_auth", "SLACK_BOT_TOKEN"},
		{"app token bare prefix", socketBotToken, "xapp-", "invalid_auth", "SLACK_APP_TOKEN"},
		{"app token of the wrong kind", socketBotToken, "xoxb-test-not-an-app-token-canary", "invalid_auth", "SLACK_APP_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := slacktest.New(t)
			sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{bot: tt.bot, app: tt.app})
			ctx := socketCtx(t)
			err := sa.Run(ctx)
			if ctx.Err() != nil {
				t.Fatalf("Run returned only when its context ended: %v", err)
			}
			if !errors.Is(err, ErrFatalAuth) {
				t.Fatalf("Run = %v, want an error wrapping ErrFatalAuth", err)
			}
			for _, want := range []string{tt.wantCode, tt.wantHint} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			socketNoTokens(t, "error", err.Error(), tt.bot, tt.app, socketBotToken, socketAppToken)
			socketNoTokens(t, "log", sa.logs.String(), tt.bot, tt.app, socketBotToken, socketAppToken)
			if sa.Connected() {
				t.Error("Connected() = true after a refusal")
			}
		})
	}
}

// TestSocketTokenRevokedWhileRunning: a bot token revoked while the app
// runs shows in the answer to the next Web API call; Run stops with
// ErrFatalAuth, naming the code, instead of failing every reply quietly.
func TestSocketTokenRevokedWhileRunning(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{})
	sa.handle = func(ctx context.Context, w work) error {
		_, _, err := sa.post(ctx, "C1", "", "hello", nil)
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sa.Run(ctx) }()
	socketWaitAck(t, srv, socketPush(t, srv, socketMention(srv, "U1", "before")))
	socketWait(t, "the first reply", func() bool { return len(srv.Messages("C1")) == 1 })
	srv.RevokeTokens()
	socketPush(t, srv, socketMention(srv, "U1", "after"))
	select {
	case err := <-done:
		if !errors.Is(err, ErrFatalAuth) || !strings.Contains(err.Error(), "token_revoked") {
			t.Fatalf("Run = %v, want ErrFatalAuth naming token_revoked", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop after Slack refused the token")
	}
	if sa.Connected() {
		t.Error("Connected() after the token was refused")
	}
}

func TestSocketShutdownDrains(t *testing.T) {
	srv := slacktest.New(t)
	st := memstore.New(memstore.Options{})
	base := runtime.NumGoroutine()
	sa := socketNew(t, srv, st, socketConfig{opts: func(o *Options) { o.Workers, o.Queue = 16, 1000 }})
	release := make(chan struct{})
	var started atomic.Int64
	var rec socketRecorder
	var liveCtx atomic.Int64
	sa.handle = func(ctx context.Context, w work) error {
		started.Add(1)
		<-release
		if ctx.Err() == nil {
			liveCtx.Add(1)
		}
		rec.add(w)
		return nil
	}
	var backgroundDone atomic.Bool
	sa.background = func(ctx context.Context) error {
		<-ctx.Done()
		backgroundDone.Store(true)
		return nil
	}
	sa.start(t)

	const n = 20
	var ids []string
	for i := range n {
		ids = append(ids, socketPush(t, srv, socketMention(srv, fmt.Sprintf("U%d", i%3), "queued")))
	}
	for _, id := range ids {
		socketWaitAck(t, srv, id)
	}
	socketWait(t, "a handler to start", func() bool { return started.Load() > 0 })
	sa.cancel()
	close(release)
	if err := sa.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil after a clean shutdown", err)
	}
	if got := rec.len(); got != n {
		t.Errorf("work run before Run returned = %d, want %d", got, n)
	}
	if got := int(liveCtx.Load()); got != n {
		t.Errorf("handlers with a live context = %d, want %d", got, n)
	}
	if !backgroundDone.Load() {
		t.Error("background still running after Run returned")
	}
	if sa.Connected() {
		t.Error("Connected() = true after Run returned")
	}
	// A leak of the worker pool alone would be 16 goroutines; idle HTTP
	// connections to the fake account for a few.
	socketWait(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base+6 })
}

func TestSocketShutdownGrace(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{opts: func(o *Options) { o.Workers = 1 }})
	sa.tr.grace = 100 * time.Millisecond
	entered := make(chan struct{}, 10)
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error {
		entered <- struct{}{}
		<-ctx.Done() // a handler stuck until the grace runs out
		rec.add(w)
		return ctx.Err()
	}
	sa.start(t)

	var ids []string
	for range 5 {
		ids = append(ids, socketPush(t, srv, socketMention(srv, "U1", "slow")))
	}
	for _, id := range ids {
		socketWaitAck(t, srv, id)
	}
	<-entered
	if err := sa.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got, want := rec.len(), 1; got != want {
		t.Errorf("handled = %d, want %d (the rest dropped after the grace)", got, want)
	}
	if got, want := sa.counter(sa.tr.m.dropped, "events_api"), 4; got != want {
		t.Errorf("dropped = %d, want %d", got, want)
	}
	if got, want := testutil.ToFloat64(sa.tr.m.queueDepth), 0.0; got != want {
		t.Errorf("queue depth = %v, want %v", got, want)
	}
}

func TestSocketTokensNeverLogged(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, redistest.Open(t)(), socketConfig{})
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error {
		rec.add(w)
		if w.typ == "slash_commands" {
			return errors.New("command failed")
		}
		return nil
	}
	sa.start(t)

	ids := []string{
		socketPush(t, srv, socketMention(srv, "U1", "hi")),
		socketPush(t, srv, srv.SlashCommand(slacktest.Command{User: "U1", Channel: "D1", Command: "/agenthub", Text: "whoami"})),
	}
	// An envelope still in flight when the connection closes may be lost
	// by slack-go unacked (Slack would redeliver it; the fake does not).
	for _, id := range ids {
		socketWaitAck(t, srv, id)
	}
	srv.Disconnect()
	if err := srv.WaitHellos(socketCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, socketPush(t, srv, srv.BlockAction(slacktest.Action{User: "U1", Channel: "D1", MessageTS: "1.1", BlockID: "b", ActionID: ActionStepUp, Value: "req-1"})))
	for _, id := range ids {
		socketWait(t, "work "+id, func() bool { return rec.has(id) })
	}
	if err := sa.stop(t); err != nil {
		t.Fatal(err)
	}
	logs := sa.logs.String()
	for _, want := range []string{"slack connected", "command failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q; the canary would check nothing:\n%s", want, logs)
		}
	}
	socketNoTokens(t, "log", logs, socketBotToken, socketAppToken)
	// Payloads hold people's words; the transport logs none.
	if strings.Contains(logs, "whoami") {
		t.Error("log holds a slash command's text")
	}
}

func TestSocketMetrics(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{})
	mfs, err := sa.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{
		"agenthub_slack_ack_seconds",
		"agenthub_slack_acks_total",
		"agenthub_slack_connected",
		"agenthub_slack_dropped_total",
		"agenthub_slack_duplicates_total",
		"agenthub_slack_envelopes_total",
		"agenthub_slack_handler_errors_total",
		"agenthub_slack_queue_depth",
		"agenthub_slack_reconnects_total",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registered metrics (-want +got):\n%s", diff)
	}

	opts := sa.opts
	if _, err := New(opts); err == nil {
		t.Error("New registering the same metrics twice: err = nil, want an error")
	}
	opts.Registerer = nil
	if _, err := New(opts); err != nil {
		t.Errorf("New without a Registerer: %v", err)
	}
}

func TestSocketWorksWithoutRegisterer(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{opts: func(o *Options) { o.Registerer = nil }})
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error { rec.add(w); return nil }
	sa.start(t)
	id := socketPush(t, srv, socketMention(srv, "U1", "hi"))
	socketWait(t, "the event to run", func() bool { return rec.has(id) })
}

func TestRouteKeys(t *testing.T) {
	click := func(actionID, value, user string) slack.InteractionCallback {
		return slack.InteractionCallback{
			Type:           slack.InteractionTypeBlockActions,
			User:           slack.User{ID: user},
			ActionCallback: slack.ActionCallbacks{BlockActions: []*slack.BlockAction{{ActionID: actionID, Value: value}}},
		}
	}
	submit := func(callbackID, metadata, user string) slack.InteractionCallback {
		return slack.InteractionCallback{
			Type: slack.InteractionTypeViewSubmission,
			User: slack.User{ID: user},
			View: slack.View{CallbackID: callbackID, PrivateMetadata: metadata},
		}
	}
	tests := []struct {
		name       string
		w          work
		payload    string
		wantDedupe string
		wantOrder  string
	}{
		{
			name:       "event by its event_id, ordered by user",
			w:          work{typ: "events_api", envelopeID: "E1"},
			payload:    `{"type":"event_callback","event_id":"Ev123","event":{"type":"app_mention","user":"U1","channel":"C1"}}`,
			wantDedupe: "event:Ev123", wantOrder: "U1",
		},
		{
			name:       "event without a user, ordered by channel",
			w:          work{typ: "events_api", envelopeID: "E1"},
			payload:    `{"event_id":"Ev124","event":{"type":"channel_rename","channel":"C9"}}`,
			wantDedupe: "event:Ev124", wantOrder: "C9",
		},
		{
			name:       "event whose user is an object",
			w:          work{typ: "events_api", envelopeID: "E1"},
			payload:    `{"event_id":"Ev125","event":{"type":"user_change","user":{"id":"U1"}}}`,
			wantDedupe: "event:Ev125", wantOrder: "E1",
		},
		{
			name:       "event without an event_id falls back to the envelope",
			w:          work{typ: "events_api", envelopeID: "E2"},
			payload:    `{"event":{"user":"U1"}}`,
			wantDedupe: "env:E2", wantOrder: "U1",
		},
		{
			name:       "approval click: request, choice and clicker",
			w:          work{typ: "interactive", envelopeID: "E3", interaction: click(ActionDecidePrefix+"approve", "req-1", "U1")},
			wantDedupe: "click:req-1:" + ActionDecidePrefix + "approve:U1", wantOrder: "req-1",
		},
		{
			name:       "another person's click on the same request",
			w:          work{typ: "interactive", envelopeID: "E4", interaction: click(ActionDecidePrefix+"approve", "req-1", "U2")},
			wantDedupe: "click:req-1:" + ActionDecidePrefix + "approve:U2", wantOrder: "req-1",
		},
		{
			name:       "step-up button, ordered by request",
			w:          work{typ: "interactive", envelopeID: "E5", interaction: click(ActionStepUp, "req-1", "U1")},
			wantDedupe: "env:E5", wantOrder: "req-1",
		},
		{
			name:       "other button, ordered by user",
			w:          work{typ: "interactive", envelopeID: "E6", interaction: click(ActionRevokeService, "github", "U1")},
			wantDedupe: "env:E6", wantOrder: "U1",
		},
		{
			name:       "step-up modal, ordered by its request",
			w:          work{typ: "interactive", envelopeID: "E7", interaction: submit(CallbackStepUp, "req-1", "U1")},
			wantDedupe: "env:E7", wantOrder: "req-1",
		},
		{
			name:       "other modal, ordered by user",
			w:          work{typ: "interactive", envelopeID: "E8", interaction: submit("other", "x", "U1")},
			wantDedupe: "env:E8", wantOrder: "U1",
		},
		{
			name:       "slash command, ordered by user",
			w:          work{typ: "slash_commands", envelopeID: "E9", command: slack.SlashCommand{UserID: "U1", Command: "/agenthub"}},
			wantDedupe: "env:E9", wantOrder: "U1",
		},
		{
			name:       "nothing to order by: the envelope",
			w:          work{typ: "slash_commands", envelopeID: "E10"},
			wantDedupe: "env:E10", wantOrder: "E10",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dedupe, order := routeKeys(&tt.w, []byte(tt.payload))
			if dedupe != tt.wantDedupe || order != tt.wantOrder {
				t.Errorf("routeKeys = (%q, %q), want (%q, %q)", dedupe, order, tt.wantDedupe, tt.wantOrder)
			}
		})
	}
}

func TestDedupeKey(t *testing.T) {
	k := dedupeKey("click:req-1:agenthub_decide_approve:U0SECRETUSER")
	if err := k.Validate(); err != nil {
		t.Errorf("dedupe key: %v", err)
	}
	if strings.Contains(k.String(), "U0SECRETUSER") {
		t.Errorf("dedupe key %s holds the user ID", k)
	}
	if dedupeKey("a") == dedupeKey("b") {
		t.Error("different dedupe strings share a key")
	}
	// The keys spread over dedupeBuckets scopes (Redis hash slots), evenly.
	counts := map[string]int{}
	const n = 100 * dedupeBuckets
	for i := range n {
		k := dedupeKey(fmt.Sprintf("event:Ev%08d", i))
		if k != dedupeKey(fmt.Sprintf("event:Ev%08d", i)) {
			t.Fatalf("dedupeKey is not stable: %v", k)
		}
		counts[k.Scope]++
	}
	if len(counts) != dedupeBuckets {
		t.Errorf("keys fell in %d scopes, want %d", len(counts), dedupeBuckets)
	}
	for scope, c := range counts {
		if c < 50 || c > 150 { // 100 expected; 5 standard deviations is 50
			t.Errorf("scope %s holds %d of %d keys, want about %d", scope, c, n, n/dedupeBuckets)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: time.Second, max: time.Minute}
	windows := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, w := range windows {
		w *= time.Second
		if got := b.next(); got < w/2 || got >= w {
			t.Errorf("wait %d = %v, want in [%v, %v)", i, got, w/2, w)
		}
	}
	b.reset()
	if got := b.next(); got >= time.Second {
		t.Errorf("wait after reset = %v, want < 1s", got)
	}
}

// The events_api data the reader hands on must be the parsed event.
func TestSocketWorkCarriesEvent(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{})
	got := make(chan work, 1)
	sa.handle = func(ctx context.Context, w work) error { got <- w; return nil }
	sa.start(t)
	id := socketPush(t, srv, socketMention(srv, "U1", "merge PR 7"))
	var w work
	select {
	case w = <-got:
	case <-socketCtx(t).Done():
		t.Fatal("no work")
	}
	m, ok := w.event.InnerEvent.Data.(*slackevents.AppMentionEvent)
	if !ok {
		t.Fatalf("inner event is %T, want *slackevents.AppMentionEvent", w.event.InnerEvent.Data)
	}
	if w.envelopeID != id || m.User != "U1" || !strings.HasSuffix(m.Text, "merge PR 7") || w.acked.IsZero() {
		t.Errorf("work = {envelope %q, user %q, text %q, acked %v}, want envelope %q from U1", w.envelopeID, m.User, m.Text, w.acked, id)
	}
	if sa.botUser != slacktest.BotUserID {
		t.Errorf("botUser = %q, want %q", sa.botUser, slacktest.BotUserID)
	}
}

// socketAckHistogram returns the ack latency histogram as gathered.
func socketAckHistogram(tb testing.TB, reg *prometheus.Registry) *dto.Histogram {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "agenthub_slack_ack_seconds" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	tb.Fatal("agenthub_slack_ack_seconds not gathered")
	return nil
}

func TestSocketAckPayload(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{})
	sa.ackPayload = func(w *work) any {
		switch w.command.Text {
		case "small":
			return map[string]string{"text": "On it."}
		case "big": // over Slack's 20 KB limit for a Socket Mode response
			return map[string]string{"text": strings.Repeat("x", 30<<10)}
		case "panic":
			panic("ack payload bug")
		}
		return nil
	}
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error { rec.add(w); return nil }
	sa.start(t)

	tests := []struct {
		text string
		want string // the ack's payload, "" for none
	}{
		{"small", `{"text":"On it."}`},
		{"big", ""},
		{"panic", ""},
		{"none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			id := socketPush(t, srv, srv.SlashCommand(slacktest.Command{User: "U1", Channel: "D1", Command: "/agenthub", Text: tt.text}))
			ack, err := srv.WaitAck(socketCtx(t), id)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			if len(ack.Payload) > 0 && string(ack.Payload) != "null" {
				var v any
				if err := json.Unmarshal(ack.Payload, &v); err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(v)
				got = string(b)
			}
			if got != tt.want {
				t.Errorf("ack payload = %.80s, want %q", got, tt.want)
			}
			socketWait(t, "the command to run", func() bool { return rec.has(id) })
		})
	}
	for _, want := range []string{"ack payload refused", "ack payload panicked"} {
		if !strings.Contains(sa.logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestSocketRetriesTransientFailures(t *testing.T) {
	srv := slacktest.New(t)
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(target)
	var authCalls, openCalls atomic.Int64
	// The first auth.test meets an outage and the first
	// apps.connections.open a 404, which slack-go's client gives up on.
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/auth.test":
			if authCalls.Add(1) == 1 {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
		case "/api/apps.connections.open":
			if openCalls.Add(1) == 1 {
				http.Error(w, "not found", http.StatusNotFound)
				return
			}
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)

	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{apiURL: flaky.URL + "/api/"})
	var rec socketRecorder
	sa.handle = func(ctx context.Context, w work) error { rec.add(w); return nil }
	sa.start(t)

	id := socketPush(t, srv, socketMention(srv, "U1", "hi"))
	socketWait(t, "work after the failures", func() bool { return rec.has(id) })
	if got := authCalls.Load(); got < 2 {
		t.Errorf("auth.test calls = %d, want ≥ 2", got)
	}
	if got := openCalls.Load(); got < 2 {
		t.Errorf("apps.connections.open calls = %d, want ≥ 2", got)
	}
	if got := testutil.ToFloat64(sa.tr.m.reconnects); got < 1 {
		t.Errorf("reconnects = %v, want ≥ 1", got)
	}
	if sa.botUser != slacktest.BotUserID {
		t.Errorf("botUser = %q, want %q", sa.botUser, slacktest.BotUserID)
	}
}

// BenchmarkSocketAck pushes envelopes as fast as the fake can write them
// and reports the ack latency the app measured (the p99 as the upper bound
// of its histogram bucket) next to the time per envelope.
func BenchmarkSocketAck(b *testing.B) {
	srv := slacktest.New(b)
	sa := socketNew(b, srv, memstore.New(memstore.Options{}), socketConfig{opts: func(o *Options) {
		o.Queue = 1 << 20
		o.Logger = slog.New(slog.DiscardHandler) // the work is to ack, not to format logs
	}})
	sa.start(b)
	envs := make([]slacktest.Envelope, b.N)
	for i := range envs {
		switch i % 3 {
		case 0:
			envs[i] = socketMention(srv, fmt.Sprintf("U%d", i%50), "hello")
		case 1:
			envs[i] = srv.SlashCommand(slacktest.Command{User: fmt.Sprintf("U%d", i%50), Channel: "D1", Command: "/agenthub", Text: "help"})
		default:
			envs[i] = srv.BlockAction(slacktest.Action{User: fmt.Sprintf("U%d", i%50), Channel: "D1", MessageTS: "1.1", BlockID: "b", ActionID: ActionDecidePrefix + "approve", Value: fmt.Sprint("req-", i)})
		}
	}
	if err := srv.WaitHellos(socketCtx(b), 1); err != nil {
		b.Fatal(err)
	}
	before := len(srv.Acks())
	b.ResetTimer()
	for _, env := range envs {
		socketPush(b, srv, env)
	}
	socketWait(b, "every ack", func() bool { return len(srv.Acks())-before >= b.N })
	b.StopTimer()

	h := socketAckHistogram(b, sa.reg)
	for _, bk := range h.GetBucket() {
		if float64(bk.GetCumulativeCount()) >= 0.99*float64(h.GetSampleCount()) {
			b.ReportMetric(bk.GetUpperBound()*1e3, "ack-p99-ms")
			break
		}
	}
}

package auditchannel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/slackapp/auditchannel"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

const (
	botToken  = "xoxb-test-4242-auditchannel-s3cr3t"
	channelID = "C0AUDIT01"
	interval  = 20 * time.Millisecond
)

var auditKey = bytes.Repeat([]byte("k"), audit.MinKeyLen)

// backend opens a store, and a second handle on the same data, as a second
// replica would have.
type backend struct {
	name string
	open func(t *testing.T) (store.Store, func() store.Store)
}

var backends = []backend{
	{"memstore", func(t *testing.T) (store.Store, func() store.Store) {
		s := memstore.New(memstore.Options{})
		return s, func() store.Store { return s.Reopen() }
	}},
	{"redis", func(t *testing.T) (store.Store, func() store.Store) {
		open := redistest.Open(t)
		return open(), func() store.Store { return open() }
	}},
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer = logtest.Buffer

// fixture is one fake Slack, one store and one recorder, and the events
// recorded so far.
type fixture struct {
	srv  *slacktest.Server
	api  *slack.Client
	st   store.Store
	rec  *audit.Recorder
	logs *syncBuffer

	mu     sync.Mutex
	hashes map[uint64]string // seq → hash of every recorded event
}

func newFixture(t *testing.T, st store.Store, opts ...slacktest.Option) *fixture {
	t.Helper()
	srv := slacktest.New(t, opts...)
	rec, err := audit.NewRecorder(st, auditKey, audit.Options{})
	if err != nil {
		t.Fatalf("audit.NewRecorder: %v", err)
	}
	return &fixture{
		srv: srv, api: slack.New(botToken, slack.OptionAPIURL(srv.APIURL())),
		st: st, rec: rec, logs: &syncBuffer{}, hashes: map[uint64]string{},
	}
}

// options are the poster's options for f, posting with f's client.
func (f *fixture) options() auditchannel.Options {
	return auditchannel.Options{
		Store: f.st, Channel: channelID, Poster: f.api, Interval: interval,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// record records n events, with a resource of resourceLen characters so
// tests can make the lines long.
func (f *fixture) record(t testing.TB, n, resourceLen int) {
	t.Helper()
	if err := f.tryRecord(n, resourceLen); err != nil {
		t.Fatal(err)
	}
}

// tryRecord is record for goroutines other than the test's.
func (f *fixture) tryRecord(n, resourceLen int) error {
	for i := range n {
		res := fmt.Sprintf("acme/payments#%d", i)
		res += strings.Repeat("x", max(0, resourceLen-len(res)))
		e, err := f.rec.Record(context.Background(), audit.Event{
			Kind: audit.ActionSucceeded, Actor: "T1:U0PEOPLE", Agent: "github",
			Action: "github.merge_pull_request", Resource: res, Result: "ok",
			Args: map[string]any{"repo": "acme/payments", "pr": i},
		})
		if err != nil {
			return fmt.Errorf("Record: %w", err)
		}
		f.mu.Lock()
		f.hashes[e.Seq] = e.Hash
		f.mu.Unlock()
	}
	return nil
}

func (f *fixture) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return uint64(len(f.hashes))
}

// start runs a poster until the returned stop is called (or the test ends);
// stop waits for Run to return and fails the test if it returned an error.
func start(t *testing.T, opts auditchannel.Options) (stop func()) {
	t.Helper()
	p, err := auditchannel.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// posted is what one message says.
type posted struct {
	seqs     []uint64 // of the event lines, in order
	headSeq  uint64   // of the chain head line; 0 when there is none
	headHash string
	text     string // every text of the message, fallback included
	sections []string
	blocks   int
}

var (
	lineSeq  = regexp.MustCompile("^`#([0-9]+)` ")
	headLine = regexp.MustCompile(`^chain head #([0-9]+) ([0-9a-f]{64})$`)
)

func parseMessage(t testing.TB, m slacktest.Message) posted {
	t.Helper()
	var blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Elements []struct {
			Text string `json:"text"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
		t.Fatalf("message %s: blocks: %v", m.TS, err)
	}
	p := posted{text: m.Text, blocks: len(blocks)}
	for _, b := range blocks {
		switch b.Type {
		case "section":
			p.sections = append(p.sections, b.Text.Text)
			p.text += "\n" + b.Text.Text
			for _, line := range strings.Split(b.Text.Text, "\n") {
				if sm := lineSeq.FindStringSubmatch(line); sm != nil {
					seq, _ := strconv.ParseUint(sm[1], 10, 64)
					p.seqs = append(p.seqs, seq)
				}
			}
		case "context":
			for _, el := range b.Elements {
				p.text += "\n" + el.Text
				if sm := headLine.FindStringSubmatch(el.Text); sm != nil {
					p.headSeq, _ = strconv.ParseUint(sm[1], 10, 64)
					p.headHash = sm[2]
				}
			}
		}
	}
	return p
}

func (f *fixture) messages(t testing.TB) []posted {
	t.Helper()
	var out []posted
	for _, m := range f.srv.Messages(channelID) {
		out = append(out, parseMessage(t, m))
	}
	return out
}

// lastHead is the highest chain head posted so far.
func (f *fixture) lastHead(t testing.TB) uint64 {
	t.Helper()
	var h uint64
	for _, p := range f.messages(t) {
		h = max(h, p.headSeq)
	}
	return h
}

// waitPosted waits until the channel's chain head reaches seq.
func (f *fixture) waitPosted(t testing.TB, seq uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("chain head #%d in the channel", seq), func() bool { return f.lastHead(t) >= seq })
}

// checkChannel checks the invariant: the event lines of the batch messages
// name seq 1 … every recorded seq once each, in order; each batch ends
// with the head line naming its last event and that event's stored hash;
// no message breaks Slack's limits; the token appears nowhere. It returns
// the alarm messages (those without event lines).
func (f *fixture) checkChannel(t testing.TB) (alarms []posted) {
	t.Helper()
	var seqs []uint64
	for i, p := range f.messages(t) {
		if len(p.seqs) == 0 {
			alarms = append(alarms, p)
			continue
		}
		seqs = append(seqs, p.seqs...)
		last := p.seqs[len(p.seqs)-1]
		if p.headSeq != last {
			t.Errorf("message %d: chain head #%d, want #%d (its last event)", i, p.headSeq, last)
		}
		f.mu.Lock()
		want := f.hashes[last]
		f.mu.Unlock()
		if p.headHash != want {
			t.Errorf("message %d: chain head hash %s, want the stored hash %s of seq %d", i, p.headHash, want, last)
		}
		if p.blocks > 50 {
			t.Errorf("message %d: %d blocks, want at most 50", i, p.blocks)
		}
		total := 0
		for _, s := range p.sections {
			n := utf8.RuneCountInString(s)
			total += n
			if n > 3000 {
				t.Errorf("message %d: a section of %d characters, want at most 3000", i, n)
			}
		}
		if total > 40000 {
			t.Errorf("message %d: %d characters, want at most 40000", i, total)
		}
	}
	for i, seq := range seqs {
		if want := uint64(i + 1); seq != want {
			t.Fatalf("posted seqs %v…: position %d holds #%d, want #%d (each seq once, in order)", seqs[:min(len(seqs), i+3)], i, seq, want)
		}
	}
	if got, want := uint64(len(seqs)), f.count(); got != want {
		t.Errorf("posted %d events, want %d", got, want)
	}
	f.checkNoToken(t)
	return alarms
}

// checkNoToken fails if the bot token is in a posted message, a recorded
// call or the log.
func (f *fixture) checkNoToken(t testing.TB) {
	t.Helper()
	for _, p := range f.messages(t) {
		if strings.Contains(p.text, botToken) {
			t.Errorf("a posted message holds the bot token")
		}
	}
	for _, c := range f.srv.Calls("") {
		for k, v := range c.Fields {
			if strings.Contains(v, botToken) {
				t.Errorf("call %s field %s holds the bot token", c.Method, k)
			}
		}
	}
	if strings.Contains(f.logs.String(), botToken) || strings.Contains(f.logs.String(), "xoxb-") {
		t.Errorf("the log holds the bot token")
	}
}

// metric reads one metric's value from reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// countingStore counts the calls the poster makes that a test waits on:
// Head (one per poll) and Create of the lock (one per try).
type countingStore struct {
	store.Store
	heads   atomic.Int64
	creates atomic.Int64
}

func (c *countingStore) Head(ctx context.Context, log string) (store.Entry, error) {
	c.heads.Add(1)
	return c.Store.Head(ctx, log)
}

func (c *countingStore) Create(ctx context.Context, k store.Key, v []byte, ttl time.Duration) error {
	if k.Kind == store.LockKind {
		c.creates.Add(1)
	}
	return c.Store.Create(ctx, k, v, ttl)
}

// waitPolls waits until the poster behind c has polled the log head n more
// times: long enough to have posted anything it was going to post.
func waitPolls(t testing.TB, c *countingStore, n int64) {
	t.Helper()
	from := c.heads.Load()
	waitFor(t, fmt.Sprintf("%d polls of the log head", n), func() bool { return c.heads.Load() >= from+n })
}

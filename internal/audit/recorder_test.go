package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testKey is a made-up HMAC key used only by these tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

var goldenTime = time.Date(2025, 6, 1, 9, 30, 0, 123456789, time.UTC)

func fixedClock() time.Time { return goldenTime }

func newRecorder(t testing.TB, s store.Store, opts Options) *Recorder {
	t.Helper()
	r, err := NewRecorder(s, testKey, opts)
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	return r
}

// sampleEvent is a typical event; i makes events distinct.
func sampleEvent(i int) Event {
	return Event{
		Kind:      PolicyDecided,
		Actor:     "T1:U1",
		Agent:     "github",
		Action:    "github.merge_pull_request",
		Resource:  fmt.Sprintf("acme/payments#%d", i),
		RequestID: fmt.Sprintf("req-%d", i),
		Decision:  "allow",
		Rule:      "public-repo",
		Args:      map[string]any{"repo": "acme/payments", "number": i},
	}
}

func record(t testing.TB, r *Recorder, e Event) Event {
	t.Helper()
	got, err := r.Record(context.Background(), e)
	if err != nil {
		t.Fatalf("Record(%s): %v", e.Kind, err)
	}
	return got
}

func readAll(t testing.TB, s store.Store, log string) []store.Entry {
	t.Helper()
	entries, err := s.Read(context.Background(), log, 1, 1<<30)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return entries
}

func TestNewRecorderKeyLength(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		wantErr bool
	}{
		{"empty", nil, true},
		{"31 bytes", []byte("CANARY-KEY-" + strings.Repeat("x", 20)), true},
		{"32 bytes", testKey, false},
		{"64 bytes", bytes.Repeat(testKey, 2), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRecorder(memstore.New(memstore.Options{}), tt.key, Options{})
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("NewRecorder with a %d-byte key: error = %v, want error %v", len(tt.key), err, tt.wantErr)
			}
			if err != nil && len(tt.key) > 0 && strings.Contains(err.Error(), string(tt.key)) {
				t.Errorf("NewRecorder error echoes the key")
			}
			if err != nil && strings.Contains(err.Error(), "CANARY") {
				t.Errorf("NewRecorder error echoes part of the key")
			}
		})
	}
}

// The expected entry was computed outside Go:
//
//	printf '%s' '{"number":7,"repo":"acme/payments","token":"CANARY-golden"}' |
//	  openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
//
// gives args_hmac, and sha256sum of the line up to and including prev gives
// hash.
const goldenEntry = `{"seq":1,"time":"2025-06-01T09:30:00.123Z","kind":"policy.decided","actor":"T1:U1","agent":"github","action":"github.merge_pull_request","resource":"acme/payments#7","request_id":"req-1","decision":"needs_stepup","rule":"protected-branch","detail":{"branch":"main","service":"github"},"args_hmac":"3eafced1560981f9af388d15f160d09fc6a8a341e69133d012be7ea5a585795d","args_summary":"number=7 repo=\"acme/payments\" token=REDACTED","prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"336cbadd59549f996af10a4c96c14ac2b03b815ec4f7d2c959466e1526242b40"}`

func TestRecordGolden(t *testing.T) {
	s := memstore.New(memstore.Options{})
	var logBuf bytes.Buffer
	r := newRecorder(t, s, Options{Now: fixedClock, Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	in := Event{
		Kind:      PolicyDecided,
		Actor:     "T1:U1",
		Agent:     "github",
		Action:    "github.merge_pull_request",
		Resource:  "acme/payments#7",
		RequestID: "req-1",
		Decision:  "needs_stepup",
		Rule:      "protected-branch",
		Detail:    map[string]string{"service": "github", "branch": "main"},
		Args:      map[string]any{"repo": "acme/payments", "number": 7, "token": "CANARY-golden"},
		// Fields Record owns are overwritten whatever the caller sets.
		Seq: 99, Hash: "forged", ArgsSummary: "CANARY-golden",
	}
	got := record(t, r, in)

	entries := readAll(t, s, DefaultLog)
	if len(entries) != 1 {
		t.Fatalf("log has %d entries, want 1", len(entries))
	}
	if got, want := string(entries[0].Value), goldenEntry; got != want {
		t.Errorf("stored entry:\n got %s\nwant %s", got, want)
	}

	want := in
	want.Seq = 1
	want.Time = time.Date(2025, 6, 1, 9, 30, 0, 123000000, time.UTC)
	want.ArgsDigest = "3eafced1560981f9af388d15f160d09fc6a8a341e69133d012be7ea5a585795d"
	want.ArgsSummary = `number=7 repo="acme/payments" token=REDACTED`
	want.Prev = strings.Repeat("0", 64)
	want.Hash = "336cbadd59549f996af10a4c96c14ac2b03b815ec4f7d2c959466e1526242b40"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Record returned (-want +got):\n%s", diff)
	}

	decoded, err := Decode(entries[0].Value)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(want, decoded, cmpopts.IgnoreFields(Event{}, "Args")); diff != "" {
		t.Errorf("Decode of the stored entry (-want +got):\n%s", diff)
	}

	var logged map[string]any
	if err := json.Unmarshal(logBuf.Bytes(), &logged); err != nil {
		t.Fatalf("slog output is not one JSON object: %v", err)
	}
	delete(logged, "time")
	wantLogged := map[string]any{
		"level": "INFO", "msg": "audit", "seq": 1.0, "kind": "policy.decided",
		"actor": "T1:U1", "agent": "github", "action": "github.merge_pull_request",
		"resource": "acme/payments#7", "request_id": "req-1", "decision": "needs_stepup",
		"rule": "protected-branch", "args_hmac": want.ArgsDigest, "args_summary": want.ArgsSummary,
		"hash": want.Hash,
	}
	if diff := cmp.Diff(wantLogged, logged); diff != "" {
		t.Errorf("slog line (-want +got):\n%s", diff)
	}
}

func TestRecordChainsAndTruncatesTime(t *testing.T) {
	s := memstore.New(memstore.Options{})
	now := time.Date(2025, 6, 1, 9, 30, 0, 999999999, time.FixedZone("CEST", 2*3600))
	r := newRecorder(t, s, Options{Now: func() time.Time { return now }, Log: "trail"})
	first := record(t, r, Event{Kind: StepProposed})
	second := record(t, r, Event{Kind: ActionSucceeded, Result: "merged"})

	if got, want := first.Time, time.Date(2025, 6, 1, 7, 30, 0, 999000000, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", got, want)
	}
	if got, want := [2]uint64{first.Seq, second.Seq}, [2]uint64{1, 2}; got != want {
		t.Errorf("seqs = %v, want %v", got, want)
	}
	if second.Prev != first.Hash {
		t.Errorf("second.Prev = %s, want first.Hash %s", second.Prev, first.Hash)
	}
	if first.ArgsDigest != "" || first.ArgsSummary != "" {
		t.Errorf("event without args has digest %q and summary %q, want both empty", first.ArgsDigest, first.ArgsSummary)
	}
	entries := readAll(t, s, "trail")
	if got, want := len(entries), 2; got != want {
		t.Fatalf("log %q has %d entries, want %d", "trail", got, want)
	}
	if got, want := string(entries[1].Value), `{"seq":2,"time":"2025-06-01T07:30:00.999Z","kind":"action.succeeded","result":"merged","prev":"`+first.Hash+`","hash":"`+second.Hash+`"}`; got != want {
		t.Errorf("entry 2:\n got %s\nwant %s", got, want)
	}
	sum := sha256.Sum256(entries[1].Value[:len(entries[1].Value)-len(`,"hash":"`)-64-2])
	if got, want := second.Hash, hex.EncodeToString(sum[:]); got != want {
		t.Errorf("hash = %s, want SHA-256 of the entry before hash %s", got, want)
	}
	if got := readAll(t, s, DefaultLog); len(got) != 0 {
		t.Errorf("default log has %d entries, want 0 (Options.Log is %q)", len(got), "trail")
	}
}

func TestRecordRequiresKind(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	if _, err := r.Record(context.Background(), Event{Actor: "T1:U1"}); err == nil {
		t.Fatal("Record of an event without a kind succeeded")
	}
	if got := readAll(t, s, DefaultLog); len(got) != 0 {
		t.Errorf("log has %d entries, want 0", len(got))
	}
}

func TestDecodeRoundTripsAwkwardStrings(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // what is stored when the text is not valid UTF-8
	}{
		{"quotes and backslashes", `say "hi" \o/`, ""},
		{"line breaks", "one\ntwo\r\nthree\u2028four\u2029", ""},
		{"control characters", "nul\x00bell\x07esc\x1bdel\x7f", ""},
		{"html", "<script>&amp;</script>", ""},
		{"unicode", "héllo 世界 🎉", ""},
		{"invalid utf-8", "bad\xffbyte", "bad\uFFFDbyte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memstore.New(memstore.Options{})
			r := newRecorder(t, s, Options{})
			got := record(t, r, Event{Kind: ProviderCalled, Resource: tt.text, Detail: map[string]string{tt.text: tt.text}})
			want := tt.want
			if want == "" {
				want = tt.text
			}
			if got.Resource != want {
				t.Errorf("Record returned Resource %q, want %q", got.Resource, want)
			}
			entry := readAll(t, s, DefaultLog)[0].Value
			if bytes.ContainsAny(entry, "\n\r") || bytes.Contains(entry, []byte("\u2028")) {
				t.Errorf("entry contains a raw line break: %q", entry)
			}
			decoded, err := Decode(entry)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(got, decoded); diff != "" {
				t.Errorf("Decode(stored) differs from Record's result (-record +decode):\n%s", diff)
			}
			if _, err := VerifyStore(context.Background(), s, DefaultLog); err != nil {
				t.Errorf("VerifyStore: %v", err)
			}
		})
	}
}

func TestRecordConcurrent(t *testing.T) {
	const goroutines, perGoroutine = 8, 1000
	tests := []struct {
		name      string
		recorders int
	}{
		{"one recorder", 1},
		{"two recorders sharing one store", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The delay stands for the round trip of a real store; without
			// one there would be nothing to wait for and little to batch.
			s := &countingStore{Store: slowStore{Store: memstore.New(memstore.Options{}), delay: 200 * time.Microsecond}}
			testConcurrentChain(t, s, tt.recorders, goroutines, perGoroutine)
			if got, max := s.appends.Load(), int64(goroutines*perGoroutine); got >= max {
				t.Errorf("%d appends for %d events: no batching", got, max)
			} else {
				t.Logf("%d appends for %d events", got, max)
			}
		})
	}
}

// testConcurrentChain records goroutines × perGoroutine events through
// recorders Recorders sharing s and checks the result is one valid chain in
// which every returned event is stored as returned.
func testConcurrentChain(t *testing.T, s store.Store, recorders, goroutines, perGoroutine int) {
	t.Helper()
	stores := make([]store.Store, recorders)
	for i := range stores {
		stores[i] = s
	}
	testConcurrentChainOn(t, stores, goroutines, perGoroutine)
}

// testConcurrentChainOn is testConcurrentChain with one Recorder on each of
// stores, which are handles on one database.
func testConcurrentChainOn(t *testing.T, stores []store.Store, goroutines, perGoroutine int) {
	t.Helper()
	ctx := context.Background()
	s := stores[0]
	rs := make([]*Recorder, len(stores))
	for i := range rs {
		rs[i] = newRecorder(t, stores[i], Options{})
	}
	results := make([][]Event, goroutines)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rs[g%len(rs)]
			for i := range perGoroutine {
				e, err := r.Record(ctx, sampleEvent(g*perGoroutine+i))
				if err != nil {
					errs <- err
					return
				}
				results[g] = append(results[g], e)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Record: %v", err)
	}

	total := uint64(goroutines * perGoroutine)
	sum, err := VerifyStore(ctx, s, DefaultLog)
	if err != nil {
		t.Fatalf("VerifyStore: %v", err)
	}
	if sum.Count != total {
		t.Errorf("VerifyStore count = %d, want %d", sum.Count, total)
	}
	entries := readAll(t, s, DefaultLog)
	seen := make(map[uint64]bool)
	for _, rs := range results {
		for _, e := range rs {
			if e.Seq == 0 || e.Seq > uint64(len(entries)) || seen[e.Seq] {
				t.Fatalf("Record returned seq %d: out of range or twice", e.Seq)
			}
			seen[e.Seq] = true
			stored, err := Decode(entries[e.Seq-1].Value)
			if err != nil {
				t.Fatalf("Decode(%d): %v", e.Seq, err)
			}
			if diff := cmp.Diff(e, stored, cmpopts.IgnoreFields(Event{}, "Args")); diff != "" {
				t.Fatalf("seq %d: stored event differs from Record's result (-record +stored):\n%s", e.Seq, diff)
			}
		}
	}
}

// racingStore lets another writer append just before the first Append that
// reaches it, as another process would between our Head and Append.
type racingStore struct {
	store.Store
	other   *Recorder // records straight into the wrapped store
	raced   bool
	appends int
}

func (s *racingStore) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	s.appends++
	if !s.raced {
		s.raced = true
		if _, err := s.other.Record(ctx, Event{Kind: GrantRevoked, Actor: "other process"}); err != nil {
			return err
		}
	}
	return s.Store.Append(ctx, log, after, values)
}

func TestRecordRechainsAfterAnotherWriter(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	s := &racingStore{Store: mem, other: newRecorder(t, mem, Options{})}
	r := newRecorder(t, s, Options{})
	got := record(t, r, Event{Kind: StepProposed})
	if got.Seq != 2 {
		t.Errorf("seq after losing a race = %d, want 2", got.Seq)
	}
	if s.appends != 2 {
		t.Errorf("appends = %d, want 2 (one conflict, one retry)", s.appends)
	}
	// A later event chains to whatever is the head now, whoever wrote it.
	record(t, s.other, Event{Kind: GrantRevoked, Actor: "other process"})
	if got := record(t, r, Event{Kind: ActionSucceeded}); got.Seq != 4 {
		t.Errorf("seq after another writer = %d, want 4", got.Seq)
	}
	sum, err := VerifyStore(context.Background(), mem, DefaultLog)
	if err != nil || sum.Count != 4 {
		t.Errorf("VerifyStore = %+v, %v; want 4 events", sum, err)
	}
}

func TestRecordGivesUpOnEndlessConflicts(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	mem.FailWrites(fmt.Errorf("someone else was first: %w", store.ErrConflict))
	s := &countingStore{Store: mem}
	r := newRecorder(t, s, Options{})
	_, err := r.Record(context.Background(), Event{Kind: StepProposed})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Record = %v, want an error wrapping ErrConflict", err)
	}
	if got, want := s.appends.Load(), int64(maxAttempts); got != want {
		t.Errorf("appends = %d, want %d", got, want)
	}
}

var errBroken = errors.New("disk on fire")

func TestRecordFailsClosed(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	mem.FailWrites(errBroken)
	var logBuf bytes.Buffer
	r := newRecorder(t, mem, Options{Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})

	got, err := r.Record(context.Background(), Event{Kind: PolicyDecided, RequestID: "req-lost"})
	if !errors.Is(err, errBroken) {
		t.Fatalf("Record on a failing store = %v, want an error wrapping %v", err, errBroken)
	}
	if diff := cmp.Diff(Event{}, got); diff != "" {
		t.Errorf("Record returned an event with its error (-want +got):\n%s", diff)
	}
	if logBuf.Len() != 0 {
		t.Errorf("slog sink got %q for an event that was not stored", logBuf.String())
	}
	if n := len(readAll(t, mem, DefaultLog)); n != 0 {
		t.Errorf("log has %d entries, want 0", n)
	}

	// Once the store recovers, the chain continues without a gap.
	mem.FailWrites(nil)
	if got := record(t, r, Event{Kind: PolicyDecided, RequestID: "req-ok"}); got.Seq != 1 {
		t.Errorf("seq after recovery = %d, want 1", got.Seq)
	}
	if !strings.Contains(logBuf.String(), "req-ok") || strings.Contains(logBuf.String(), "req-lost") {
		t.Errorf("slog sink = %q, want only the stored event", logBuf.String())
	}
}

// queued reports how many events wait in r's queue.
func queued(r *Recorder) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// waitQueued waits until n events wait in r's queue. It asserts nothing
// about time: it only waits for goroutines to get there.
func waitQueued(t testing.TB, r *Recorder, n int) {
	t.Helper()
	for queued(r) != n {
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	e   Event
	err error
}

func recordAsync(ctx context.Context, r *Recorder, e Event) <-chan result {
	ch := make(chan result, 1)
	go func() {
		got, err := r.Record(ctx, e)
		ch <- result{got, err}
	}()
	return ch
}

func TestRecordCanceledWhileQueuedIsNotStored(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	s := &blockingStore{Store: mem, entered: make(chan struct{}, 10), release: make(chan struct{})}
	r := newRecorder(t, s, Options{})

	leader := recordAsync(context.Background(), r, Event{Kind: StepProposed, RequestID: "leader"})
	<-s.entered
	ctx, cancel := context.WithCancel(context.Background())
	queuedRes := recordAsync(ctx, r, Event{Kind: StepProposed, RequestID: "canceled"})
	waitQueued(t, r, 1)
	cancel()
	if res := <-queuedRes; !errors.Is(res.err, context.Canceled) {
		t.Fatalf("Record canceled while queued = %+v, want context.Canceled", res)
	}
	s.release <- struct{}{}
	if res := <-leader; res.err != nil || res.e.Seq != 1 {
		t.Fatalf("leader Record = seq %d, %v; want seq 1", res.e.Seq, res.err)
	}
	if n := queued(r); n != 0 {
		t.Errorf("queue holds %d events after all calls returned", n)
	}
	entries := readAll(t, mem, DefaultLog)
	if len(entries) != 1 || bytes.Contains(entries[0].Value, []byte("canceled")) {
		t.Errorf("log has %d entries (%+v), want only the leader's event", len(entries), entries)
	}
	// The recorder still works: the next caller becomes leader.
	go func() { <-s.entered; s.release <- struct{}{} }()
	if got := record(t, r, Event{Kind: StepProposed}); got.Seq != 2 {
		t.Errorf("next seq = %d, want 2", got.Seq)
	}
}

func TestRecordCanceledInFlightReportsTheTruth(t *testing.T) {
	mem := memstore.New(memstore.Options{})
	s := &blockingStore{Store: mem, entered: make(chan struct{}, 10), release: make(chan struct{})}
	r := newRecorder(t, s, Options{})

	first := recordAsync(context.Background(), r, Event{Kind: StepProposed, RequestID: "first"})
	<-s.entered
	ctxB, cancelB := context.WithCancel(context.Background())
	ctxC, cancelC := context.WithCancel(context.Background())
	b := recordAsync(ctxB, r, Event{Kind: StepProposed, RequestID: "b"})
	waitQueued(t, r, 1)
	c := recordAsync(ctxC, r, Event{Kind: StepProposed, RequestID: "c"})
	waitQueued(t, r, 2)

	s.release <- struct{}{} // the first batch lands; b leads a batch of b and c
	<-s.entered
	cancelB()
	cancelC()
	s.release <- struct{}{}

	if res := <-first; res.err != nil || res.e.Seq != 1 {
		t.Errorf("first = seq %d, %v; want seq 1", res.e.Seq, res.err)
	}
	for name, ch := range map[string]<-chan result{"b": b, "c": c} {
		res := <-ch
		if res.err != nil || res.e.Seq < 2 || res.e.RequestID != name {
			t.Errorf("%s = %+v; want stored at seq 2 or 3: its batch was in flight when canceled", name, res)
		}
	}
	if sum, err := VerifyStore(context.Background(), mem, DefaultLog); err != nil || sum.Count != 3 {
		t.Errorf("VerifyStore = %+v, %v; want 3 events", sum, err)
	}
}

func TestArgsDigest(t *testing.T) {
	args := map[string]any{"repo": "acme/payments", "number": 7, "title": "<b>&</b>"}
	canonical := `{"number":7,"repo":"acme/payments","title":"<b>&</b>"}`
	otherKey := bytes.Repeat([]byte("k"), 32)

	digest := func(t *testing.T, key []byte, args map[string]any) string {
		t.Helper()
		r, err := NewRecorder(memstore.New(memstore.Options{}), key, Options{})
		if err != nil {
			t.Fatalf("NewRecorder: %v", err)
		}
		return record(t, r, Event{Kind: StepProposed, Args: args}).ArgsDigest
	}
	base := digest(t, testKey, args)
	plain := sha256.Sum256([]byte(canonical))

	tests := []struct {
		name  string
		got   string
		want  string
		equal bool
	}{
		{"same args, same digest", digest(t, testKey, map[string]any{"title": "<b>&</b>", "number": 7.0, "repo": "acme/payments"}), base, true},
		{"different key, different digest", digest(t, otherKey, args), base, false},
		{"different args, different digest", digest(t, testKey, map[string]any{"repo": "acme/payments", "number": 8, "title": "<b>&</b>"}), base, false},
		{"not a plain SHA-256", base, hex.EncodeToString(plain[:]), false},
		{"empty args still digested", digest(t, testKey, map[string]any{}), "", false},
		{"nil args, no digest", digest(t, testKey, nil), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (tt.got == tt.want) != tt.equal {
				t.Errorf("digest %q vs %q: equal = %v, want %v", tt.got, tt.want, !tt.equal, tt.equal)
			}
		})
	}
	if len(base) != 64 {
		t.Errorf("digest %q is not 64 hex digits", base)
	}
}

func TestRecordRejectsUnencodableArgs(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	if _, err := r.Record(context.Background(), Event{Kind: StepProposed, Args: map[string]any{"f": func() {}}}); err == nil {
		t.Fatal("Record with a func argument succeeded")
	}
	if n := len(readAll(t, s, DefaultLog)); n != 0 {
		t.Errorf("log has %d entries, want 0", n)
	}
}

func TestSummarize(t *testing.T) {
	long := strings.Repeat("é", 70)
	tests := []struct {
		name string
		args map[string]any
		want string
	}{
		{"sorted pairs", map[string]any{"repo": "acme/x", "number": 7, "draft": false, "labels": []any{"a", "b"}, "none": nil},
			`draft=false labels=["a","b"] none=null number=7 repo="acme/x"`},
		{"secret keys", map[string]any{"access_token": "x", "Client_Secret": "x", "PASSWORD": "x", "api_key": "x", "code": "x", "Authorization": "x", "cookie": "x", "credentials": "x"},
			`Authorization=REDACTED Client_Secret=REDACTED PASSWORD=REDACTED access_token=REDACTED api_key=REDACTED code=REDACTED cookie=REDACTED credentials=REDACTED`},
		{"secret-looking values", map[string]any{"note": "ghp_abc", "hdr": "Bearer abc", "list": []string{"xoxb-1", "ok"}},
			`hdr=REDACTED list=[REDACTED,"ok"] note=REDACTED`},
		{"nested secrets", map[string]any{"headers": map[string]any{"Authorization": "Bearer x", "Accept": "json"}},
			`headers={"Accept":"json","Authorization":REDACTED}`},
		{"structs go through their JSON form", map[string]any{"auth_info": struct{ Token string }{"x"}, "opt": struct{ Token string }{"x"}},
			`auth_info=REDACTED opt={"Token":REDACTED}`},
		{"long strings truncated", map[string]any{"text": long},
			`text="` + strings.Repeat("é", 64) + `…"`},
		{"odd keys quoted", map[string]any{"a b": 1},
			`"a b"=1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.args); got != tt.want {
				t.Errorf("summarize = %s, want %s", got, tt.want)
			}
		})
	}
	t.Run("whole summary bounded", func(t *testing.T) {
		args := map[string]any{}
		for i := range 100 {
			args[fmt.Sprintf("field%03d", i)] = strings.Repeat("x", 60)
		}
		got := summarize(args)
		if len(got) > summaryMaxLen+len("…") || !strings.HasSuffix(got, "…") {
			t.Errorf("summary of 100 long fields is %d bytes (ends %q), want at most %d ending in …", len(got), got[len(got)-10:], summaryMaxLen)
		}
	})
}

func TestCanaryNeverLeaks(t *testing.T) {
	canaries := []string{"CANARY-token-7d1f", "CANARY-bearer-3a9c", "CANARY-ghp-88aa", "CANARY-secret-55e0", "CANARY-cookie-0b1d"}
	args := map[string]any{
		"token":         canaries[0],
		"text":          "please merge",
		"headers":       map[string]any{"Authorization": "Bearer " + canaries[1]},
		"note":          "ghp_" + canaries[2],
		"client_secret": canaries[3],
		"list":          []any{map[string]any{"cookie": canaries[4]}},
	}
	s := memstore.New(memstore.Options{})
	var logBuf bytes.Buffer
	r := newRecorder(t, s, Options{Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	got := record(t, r, Event{Kind: ProviderCalled, Actor: "T1:U1", Args: args})

	var export bytes.Buffer
	if _, err := Export(context.Background(), s, DefaultLog, 0, &export); err != nil {
		t.Fatalf("Export: %v", err)
	}
	tail, err := r.Tail(context.Background(), 1)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	places := map[string]string{
		"stored bytes": string(s.Dump()),
		"export":       export.String(),
		"slog output":  logBuf.String(),
		"returned":     fmt.Sprintf("%s %s", got.ArgsSummary, got.ArgsDigest),
		"tail":         fmt.Sprintf("%+v", tail[0]),
	}
	for where, text := range places {
		if strings.Contains(text, "CANARY") {
			t.Errorf("a canary secret appears in the %s", where)
		}
	}
	if !strings.Contains(got.ArgsSummary, `text="please merge"`) {
		t.Errorf("summary %q lost the harmless argument", got.ArgsSummary)
	}
}

func TestTail(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	if got, err := r.Tail(context.Background(), 5); err != nil || len(got) != 0 {
		t.Fatalf("Tail of an empty log = %v, %v; want none", got, err)
	}
	var recorded []Event
	for i := range 10 {
		e := record(t, r, sampleEvent(i))
		e.Args = nil
		recorded = append(recorded, e)
	}
	tests := []struct {
		n    int
		want []Event
	}{
		{0, nil},
		{-1, nil},
		{3, recorded[7:]},
		{10, recorded},
		{50, recorded},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			got, err := r.Tail(context.Background(), tt.n)
			if err != nil {
				t.Fatalf("Tail(%d): %v", tt.n, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Tail(%d) (-want +got):\n%s", tt.n, diff)
			}
		})
	}
}

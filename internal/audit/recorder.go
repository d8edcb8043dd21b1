package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// MinKeyLen is the shortest HMAC key NewRecorder accepts, in bytes.
const MinKeyLen = 32

// MaxEntry is the largest encoded event, in bytes. Record refuses larger
// events and Verify larger lines: an audit event names things, it does not
// carry them.
const MaxEntry = 1 << 20

// DefaultLog is the name of the store log that holds the audit chain.
const DefaultLog = "audit"

// Limits of group commit.
const (
	// maxBatch bounds one Append so a burst cannot build a request the
	// backend rejects or that holds a Redis script for long.
	maxBatch = 1024
	// maxAttempts bounds the retries after another process appended first.
	// Each conflict means some writer made progress and the random wait
	// of store.PauseFor gives every writer a fair chance (without it two
	// writers fall into lockstep and one can lose every round, as seen on
	// a real Redis), so running out means heavy contention or a broken
	// store.
	maxAttempts = 100
)

// Options configure a Recorder. The zero value is usable.
type Options struct {
	// Log names the store log of the chain; "" means DefaultLog.
	Log string
	// Logger, when set, is the second sink: each stored event is logged at
	// Info with the message "audit", one JSON line with a JSON handler.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnRecord, when set, is called once with each event after it is
	// stored, where the slog sink is called, and never for an event that
	// was not stored. It runs on the path of the Record call that waits for
	// the event, so it must be cheap and must not block: bump a counter,
	// not send a message. It may be called concurrently, and must not
	// modify the event's Detail. The event has no Args: they are not stored.
	OnRecord func(Event)
}

// Recorder appends events to the audit chain in a store. It is safe for
// concurrent use, and any number of Recorders, in any number of processes,
// may share one store log: they produce one valid chain.
type Recorder struct {
	store  store.Store
	log    string
	logger *slog.Logger
	now    func() time.Time
	onRec  func(Event)
	macs   sync.Pool // of keyed HMAC-SHA256 states, reset before use

	mu      sync.Mutex
	queue   []*waiter // events waiting for the next batch
	leading bool      // a caller is committing a batch; invariant: !leading implies len(queue) == 0

	// The head of the log as last read or written, used only by the leader.
	headSeq  uint64
	headHash [hexLen]byte
}

// waiter is one Record call in the group-commit queue.
type waiter struct {
	ev   Event  // the caller's event with digest and summary filled in
	body []byte // its canonical fields, see appendBody
	wake chan struct{}

	// Guarded by Recorder.mu.
	lead bool // the waiter must take over as leader
	done bool // out and err hold the result
	out  Event
	err  error
}

// NewRecorder returns a Recorder that appends to s. key is the HMAC key for
// argument digests (AGENTHUB_AUDIT_KEY); it must be at least MinKeyLen
// bytes.
func NewRecorder(s store.Store, key []byte, opts Options) (*Recorder, error) {
	if s == nil {
		return nil, errors.New("audit: store is required")
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("audit: key must be at least %d bytes, got %d", MinKeyLen, len(key))
	}
	r := &Recorder{store: s, log: opts.Log, logger: opts.Logger, now: opts.Now, onRec: opts.OnRecord}
	if r.log == "" {
		r.log = DefaultLog
	}
	if r.now == nil {
		r.now = time.Now
	}
	key = slices.Clone(key)
	r.macs.New = func() any { return hmac.New(sha256.New, key) }
	return r, nil
}

// Record stores e as the next event of the chain and returns it with Seq,
// Time, ArgsDigest, ArgsSummary, Prev and Hash filled in. e.Args is never
// stored: only its HMAC digest and a redacted summary are.
//
// Record returns only after the event is in the store's log. An error means
// the event may not be recorded, and the caller must not carry out what the
// event describes (fail closed): an action whose authorization cannot be
// audited does not run. After an ambiguous failure (such as a timeout) the
// event may still have been stored; the chain stays valid either way.
//
// Concurrent calls are committed together: one store append per batch of
// waiting events. If ctx ends while e is still waiting for a batch, Record
// returns without storing it; once its batch is being appended, Record
// waits for the store's answer so that the outcome it reports is true.
func (r *Recorder) Record(ctx context.Context, e Event) (Event, error) {
	if e.Kind == "" {
		return Event{}, errors.New("audit: event kind is required")
	}
	if err := ctx.Err(); err != nil {
		return Event{}, fmt.Errorf("audit: record %s: %w", e.Kind, err)
	}
	sanitize(&e)
	e.Seq, e.Time, e.Prev, e.Hash = 0, time.Time{}, "", ""
	e.ArgsDigest, e.ArgsSummary = "", ""
	if e.Args != nil {
		canon, err := canonicalArgs(e.Args)
		if err != nil {
			return Event{}, err
		}
		m := r.macs.Get().(hash.Hash)
		m.Reset()
		m.Write(canon)
		var sum [sha256.Size]byte
		e.ArgsDigest = hex.EncodeToString(m.Sum(sum[:0]))
		r.macs.Put(m)
		e.ArgsSummary = summarize(e.Args)
	}
	w := &waiter{ev: e, body: appendBody(make([]byte, 0, bodySize(&e)), &e), wake: make(chan struct{}, 1)}
	if len(w.body)+minEntry+20 > MaxEntry {
		return Event{}, fmt.Errorf("audit: record %s: event of %d bytes is larger than %d", e.Kind, len(w.body), MaxEntry)
	}

	r.mu.Lock()
	r.queue = append(r.queue, w)
	if !r.leading {
		r.leading = true
		r.mu.Unlock()
		return r.finish(ctx, r.lead(ctx, w))
	}
	r.mu.Unlock()

	waitCtx := ctx.Done()
	for {
		select {
		case <-w.wake:
			r.mu.Lock()
			done, lead := w.done, w.lead
			r.mu.Unlock()
			if done {
				return r.finish(ctx, w)
			}
			if lead {
				return r.finish(ctx, r.lead(ctx, w))
			}
		case <-waitCtx:
			r.mu.Lock()
			if i := slices.Index(r.queue, w); i >= 0 {
				r.queue = slices.Delete(r.queue, i, i+1)
				if w.lead {
					r.handoff()
				}
				r.mu.Unlock()
				return Event{}, fmt.Errorf("audit: record %s: %w", e.Kind, ctx.Err())
			}
			r.mu.Unlock()
			// The batch holding w is being appended: wait for the answer.
			waitCtx = nil
		}
	}
}

// finish reports w's result to the second sink, the OnRecord hook and the
// caller.
func (r *Recorder) finish(ctx context.Context, w *waiter) (Event, error) {
	if w.err != nil {
		return Event{}, w.err
	}
	if r.logger != nil {
		r.logger.LogAttrs(ctx, slog.LevelInfo, "audit", logAttrs(&w.out)...)
	}
	if r.onRec != nil {
		// The hook sees what was stored, so the arguments stay with the caller.
		e := w.out
		e.Args = nil
		r.onRec(e)
	}
	return w.out, nil
}

// logAttrs are the event's fields for the slog sink: static keys, empty
// ones left out, never the arguments themselves.
func logAttrs(e *Event) []slog.Attr {
	attrs := make([]slog.Attr, 0, 13)
	attrs = append(attrs, slog.Uint64("seq", e.Seq), slog.String("kind", string(e.Kind)))
	for _, f := range []struct{ k, v string }{
		{"actor", e.Actor}, {"agent", e.Agent}, {"action", e.Action},
		{"resource", e.Resource}, {"request_id", e.RequestID},
		{"decision", e.Decision}, {"rule", e.Rule}, {"result", e.Result},
		{"args_hmac", e.ArgsDigest}, {"args_summary", e.ArgsSummary},
	} {
		if f.v != "" {
			attrs = append(attrs, slog.String(f.k, f.v))
		}
	}
	return append(attrs, slog.String("hash", e.Hash))
}

// lead commits one batch taken from the head of the queue, which includes
// w, hands leadership to the next waiter, and returns w with its result.
func (r *Recorder) lead(ctx context.Context, w *waiter) *waiter {
	r.mu.Lock()
	batch := r.take(nil)
	r.mu.Unlock()

	// The batch carries other callers' events, so one caller's cancellation
	// must not fail theirs; the store's own timeouts bound the wait.
	batch, outs, err := r.commit(context.WithoutCancel(ctx), batch)

	r.mu.Lock()
	for i, b := range batch {
		b.done = true
		if err != nil {
			b.err = err
		} else {
			b.out = outs[i]
		}
		if b != w {
			b.wake <- struct{}{}
		}
	}
	r.handoff()
	r.mu.Unlock()
	return w
}

// take moves waiters from the head of the queue to batch, up to maxBatch in
// all. r.mu must be held.
func (r *Recorder) take(batch []*waiter) []*waiter {
	n := min(len(r.queue), maxBatch-len(batch))
	batch = append(batch, r.queue[:n]...)
	r.queue = slices.Delete(r.queue, 0, n)
	return batch
}

// handoff passes leadership to the first queued waiter, or gives it up when
// nobody waits. r.mu must be held.
func (r *Recorder) handoff() {
	if len(r.queue) == 0 {
		r.leading = false
		return
	}
	next := r.queue[0]
	next.lead = true
	select {
	case next.wake <- struct{}{}:
	default: // already signalled
	}
}

// commit reads the head of the log, chains batch to it and appends it in
// one call. When another writer got there first it waits a random moment,
// adds the events that queued meanwhile (they would otherwise wait for
// another round trip) and tries again. It returns the batch it committed.
//
// The head is read before every append, although the head this Recorder
// wrote last is usually still current: a writer that skipped the read
// would need one round trip per batch where a writer that lost a race
// needs two, so under sustained load the one would win every race and the
// other would never get an event in.
func (r *Recorder) commit(ctx context.Context, batch []*waiter) ([]*waiter, []Event, error) {
	for attempt := 1; ; attempt++ {
		if err := r.loadHead(ctx); err != nil {
			return batch, nil, err
		}
		size := 0
		for _, w := range batch {
			size += len(w.body) + 64 + frameSuffix
		}
		t := r.now().UTC().Truncate(time.Millisecond)
		var tbuf [len(TimeFormat)]byte
		tf := t.AppendFormat(tbuf[:0], TimeFormat)
		// A fresh buffer on every attempt: a store may keep the values.
		buf := make([]byte, 0, size)
		values := make([][]byte, len(batch))
		outs := make([]Event, len(batch))
		seq, prev := r.headSeq, r.headHash
		prevStr := string(prev[:])
		for i, w := range batch {
			seq++
			start := len(buf)
			var h [hexLen]byte
			buf, h = appendEntry(buf, seq, tf, w.body, &prev)
			values[i] = buf[start:len(buf):len(buf)]
			hashStr := string(h[:])
			e := w.ev
			e.Seq, e.Time, e.Prev, e.Hash = seq, t, prevStr, hashStr
			outs[i] = e
			prev, prevStr = h, hashStr
		}
		err := r.store.Append(ctx, r.log, r.headSeq, values)
		if err == nil {
			return batch, outs, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return batch, nil, fmt.Errorf("audit: append to log %q: %w", r.log, err)
		}
		if attempt == maxAttempts {
			return batch, nil, fmt.Errorf("audit: append to log %q: gave up after %d attempts: %w", r.log, attempt, err)
		}
		time.Sleep(store.PauseFor(attempt))
		r.mu.Lock()
		batch = r.take(batch)
		r.mu.Unlock()
	}
}

// loadHead reads the log's last entry into the cache.
func (r *Recorder) loadHead(ctx context.Context) error {
	head, err := r.store.Head(ctx, r.log)
	if err != nil {
		return fmt.Errorf("audit: read head of log %q: %w", r.log, err)
	}
	if head.Seq == 0 {
		r.headSeq, r.headHash = 0, [hexLen]byte([]byte(genesis))
		return nil
	}
	f, err := parseFrame(head.Value)
	if err != nil {
		return fmt.Errorf("audit: head of log %q at seq %d: %w", r.log, head.Seq, err)
	}
	if f.seq != head.Seq || !isLowerHex(f.hash) {
		return fmt.Errorf("audit: head of log %q: entry %d is not a valid entry %d", r.log, head.Seq, head.Seq)
	}
	r.headSeq = head.Seq
	copy(r.headHash[:], f.hash)
	return nil
}

// Tail returns the last n events of the log, oldest first.
func (r *Recorder) Tail(ctx context.Context, n int) ([]Event, error) {
	if n <= 0 {
		return nil, nil
	}
	head, err := r.store.Head(ctx, r.log)
	if err != nil {
		return nil, fmt.Errorf("audit: read head of log %q: %w", r.log, err)
	}
	if head.Seq == 0 {
		return nil, nil
	}
	from := uint64(1)
	if head.Seq > uint64(n) {
		from = head.Seq - uint64(n) + 1
	}
	entries, err := r.store.Read(ctx, r.log, from, n)
	if err != nil {
		return nil, fmt.Errorf("audit: read log %q: %w", r.log, err)
	}
	events := make([]Event, 0, len(entries))
	for _, en := range entries {
		e, err := Decode(en.Value)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, nil
}

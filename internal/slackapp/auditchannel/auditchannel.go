package auditchannel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"golang.org/x/sync/errgroup"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/store"
)

// CursorKind is the store record kind of the cursor: the record
// (scope "", CursorKind, channel ID) holds the last posted seq and hash.
const CursorKind = "audit-channel"

// Defaults of Options.
const (
	DefaultInterval = 1100 * time.Millisecond
	DefaultLockTTL  = 30 * time.Second
)

// Slack's limits for one message, with room to spare: Slack refuses a
// section over 3,000 characters and a message over 50 blocks, and cuts
// messages past 40,000 characters.
const (
	maxSectionText = 3000
	maxSections    = 49 // and one context block: the chain head
	maxMessageText = 36000
	// readLimit bounds the entries read for one message; a message rarely
	// holds more, since a line is about a hundred characters.
	readLimit = 500
)

// Timings that are not worth an option.
const (
	maxBackoff   = time.Minute
	postTimeout  = 20 * time.Second // bounds one chat.postMessage call
	storeTimeout = 5 * time.Second  // bounds a cursor write or unlock after ctx ended
)

// Poster posts a message; *slack.Client is one.
type Poster interface {
	PostMessageContext(ctx context.Context, channel string, options ...slack.MsgOption) (string, string, error)
}

// Options configure a Channel. Store, Channel and Poster are required.
type Options struct {
	// Store holds the audit log, and the poster's cursor and lock.
	Store store.Store
	// Log names the audit store log; "" means audit.DefaultLog.
	Log string
	// Channel is the Slack channel ID to post to (AGENTHUB_AUDIT_CHANNEL).
	Channel string
	// Poster posts the messages, with the bot token it keeps to itself.
	Poster Poster
	// Logger receives failures and progress; nil discards.
	Logger *slog.Logger
	// Registerer, when set, gets the poster's metrics.
	Registerer prometheus.Registerer
	// Interval is the least time between two posts, and between two
	// polls of the log head when idle (default DefaultInterval: Slack
	// allows about one message per second per channel).
	Interval time.Duration
	// LockTTL is how long the posting lock outlives a holder that died
	// without releasing it (default DefaultLockTTL). The holder renews it
	// every third of that.
	LockTTL time.Duration
	// SkipBacklog, when no cursor exists yet, starts after the events
	// already in the log instead of posting the whole trail from seq 1.
	SkipBacklog bool
	// Now is the clock of the lock's lease; nil means time.Now.
	Now func() time.Time
}

// Channel posts the audit trail to a Slack channel; see the package
// comment. Run it on every replica: one at a time posts.
type Channel struct {
	store    store.Store
	log      string
	channel  string
	poster   Poster
	logger   *slog.Logger
	interval time.Duration
	lockTTL  time.Duration
	skip     bool
	now      func() time.Time
	cursorAt store.Key
	lockID   string
	m        metrics
}

type metrics struct {
	events      prometheus.Counter
	posts       prometheus.Counter
	rateLimited prometheus.Counter
	errors      prometheus.Counter
	lag         prometheus.Gauge
}

// New checks opts and builds a Channel; Run starts it.
func New(opts Options) (*Channel, error) {
	if opts.Store == nil || opts.Channel == "" || opts.Poster == nil {
		return nil, errors.New("auditchannel: Store, Channel and Poster are required")
	}
	c := &Channel{
		store: opts.Store, log: opts.Log, channel: opts.Channel, poster: opts.Poster,
		logger: opts.Logger, interval: opts.Interval, lockTTL: opts.LockTTL,
		skip: opts.SkipBacklog, now: opts.Now,
		cursorAt: store.Key{Kind: CursorKind, ID: opts.Channel},
		lockID:   CursorKind + ":" + opts.Channel,
	}
	if err := c.cursorAt.Validate(); err != nil {
		return nil, fmt.Errorf("auditchannel: channel: %w", err)
	}
	if c.log == "" {
		c.log = audit.DefaultLog
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.interval <= 0 {
		c.interval = DefaultInterval
	}
	if c.lockTTL <= 0 {
		c.lockTTL = DefaultLockTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.m = metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agenthub_audit_channel_posted_events_total",
			Help: "Audit events posted to the audit channel.",
		}),
		posts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agenthub_audit_channel_posts_total",
			Help: "Messages posted to the audit channel.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agenthub_audit_channel_rate_limited_total",
			Help: "Posts to the audit channel that Slack answered with 429 and were retried.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agenthub_audit_channel_errors_total",
			Help: "Failed posts and store operations of the audit channel poster, all retried.",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agenthub_audit_channel_lag_events",
			Help: "Audit events recorded but not yet posted to the audit channel, as last seen by the poster holding the lock.",
		}),
	}
	if opts.Registerer != nil {
		for _, col := range []prometheus.Collector{c.m.events, c.m.posts, c.m.rateLimited, c.m.errors, c.m.lag} {
			if err := opts.Registerer.Register(col); err != nil {
				return nil, fmt.Errorf("auditchannel: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Run posts until ctx ends, then returns nil. It first waits for the
// posting lock, which one replica holds at a time; after losing it (the
// store unreachable for longer than LockTTL) it waits again. Failures are
// logged and retried, never returned. A post in flight when ctx ends is
// finished, and the cursor written, before Run returns (bounded by a
// timeout), so a restart does not post that batch again.
func (c *Channel) Run(ctx context.Context) error {
	for {
		l, err := c.acquire(ctx)
		if err != nil {
			return nil // ctx ended
		}
		c.logger.InfoContext(ctx, "audit channel: posting", "channel", c.channel)
		err = c.hold(ctx, l)
		c.release(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
		c.logger.WarnContext(ctx, "audit channel: stopped posting, waiting for the lock again", "channel", c.channel, "error", err)
		if !sleep(ctx, c.interval) {
			return nil
		}
	}
}

// errLockLost ends a hold: another poster may have the lock now.
var errLockLost = errors.New("auditchannel: lost the posting lock")

// lease is the held posting lock and how long it is held at least.
type lease struct {
	*store.Lock
	until atomic.Int64 // unix nanoseconds on c.now's clock: held until then at least
}

// acquire waits until it holds the lock or ctx ends, trying every Interval.
func (c *Channel) acquire(ctx context.Context) (*lease, error) {
	waiting := false
	for {
		start := c.now()
		lock, err := store.TryLock(ctx, c.store, "", c.lockID, c.lockTTL)
		switch {
		case err == nil:
			l := &lease{Lock: lock}
			l.until.Store(start.Add(c.lockTTL).UnixNano())
			return l, nil
		case errors.Is(err, store.ErrExists):
			if !waiting {
				c.logger.DebugContext(ctx, "audit channel: another replica posts, waiting for the lock", "channel", c.channel)
				waiting = true
			}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			c.fail(ctx, "taking the posting lock", err)
		}
		if !sleep(ctx, c.interval) {
			return nil, ctx.Err()
		}
	}
}

// release gives the lock up so another replica takes over at once rather
// than after LockTTL. It runs after ctx ended too.
func (c *Channel) release(ctx context.Context, l *lease) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := l.Unlock(uctx); err != nil {
		c.fail(ctx, "releasing the posting lock", err)
	}
}

// hold posts while it holds l: renew keeps the lease, loop posts; either
// ending ends both.
func (c *Channel) hold(ctx context.Context, l *lease) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.renew(gctx, l) })
	g.Go(func() error { return c.loop(gctx, l) })
	return g.Wait()
}

// renew extends the lease every third of LockTTL until ctx ends. It
// returns errLockLost when the record holds another token or is gone, or
// when the lease ran out while the store could not be reached.
func (c *Channel) renew(ctx context.Context, l *lease) error {
	t := time.NewTicker(c.lockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		start := c.now()
		err := l.Renew(ctx, c.lockTTL)
		switch {
		case err == nil:
			l.until.Store(start.Add(c.lockTTL).UnixNano())
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			return errLockLost
		default:
			c.fail(ctx, "renewing the posting lock", err)
			if c.now().UnixNano() >= l.until.Load() {
				return errLockLost
			}
		}
	}
}

// cursor is the last posted event and, when the chain was found broken,
// the seq it broke at (an alarm was posted for it).
type cursor struct {
	Seq      uint64 `json:"seq"`
	Hash     string `json:"hash,omitempty"`
	BrokenAt uint64 `json:"broken_at,omitempty"`

	raw []byte // the stored value, for compare-and-swap
}

// message is one post and the cursor it moves to once posted.
type message struct {
	text   string
	blocks []slack.Block
	events int
	next   cursor
}

// loop posts batches and alarms until ctx ends.
func (c *Channel) loop(ctx context.Context, l *lease) error {
	var (
		cur     cursor
		loaded  bool
		pending *message // built and not yet posted: retried as it is
		backoff time.Duration
		wait    time.Duration
	)
	for {
		if !sleep(ctx, wait) {
			return nil
		}
		wait = c.interval
		if !loaded {
			var err error
			if cur, err = c.loadCursor(ctx); err != nil {
				c.fail(ctx, "reading the cursor", err)
				continue
			}
			loaded = true
			if cur.BrokenAt != 0 {
				c.logger.ErrorContext(ctx, "audit channel: the audit chain was found broken; posting stays stopped before it until the log verifies again",
					"channel", c.channel, "broken_at", cur.BrokenAt)
			}
		}
		if pending == nil {
			m, err := c.next(ctx, &cur)
			if err != nil {
				if errors.Is(err, errCursorMoved) {
					loaded = false
				}
				c.fail(ctx, "reading the audit log", err)
				continue
			}
			if m == nil {
				continue // idle: poll again after Interval
			}
			pending = m
		}
		err := c.send(ctx, l, pending)
		var rl *slack.RateLimitedError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &rl):
			c.m.rateLimited.Inc()
			c.logger.InfoContext(ctx, "audit channel: rate limited by Slack, retrying the same batch",
				"channel", c.channel, "retry_after", rl.RetryAfter)
			wait = max(rl.RetryAfter, c.interval)
			continue
		default:
			backoff = min(max(2*backoff, c.interval), maxBackoff)
			c.m.errors.Inc()
			c.logger.WarnContext(ctx, "audit channel: post failed, retrying the same batch",
				"channel", c.channel, "backoff", backoff, "error", err)
			wait = backoff
			continue
		}
		backoff = 0
		c.m.posts.Inc()
		c.m.events.Add(float64(pending.events))
		if err := c.advance(ctx, &cur, pending.next); err != nil {
			c.logger.ErrorContext(ctx, "audit channel: posted, but the cursor did not move; the batch may be posted again",
				"channel", c.channel, "to_seq", pending.next.Seq, "error", err)
			c.m.errors.Inc()
			loaded = false
		}
		pending = nil
	}
}

// send posts m, within the lease: a post that could outlive the lease is
// not started, and one in flight is cut off before the lease ends so that
// a replica taking over cannot post alongside. It is not cut off when ctx
// ends: an interrupted post may or may not have reached Slack.
func (c *Channel) send(ctx context.Context, l *lease, m *message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	left := time.Duration(l.until.Load()-c.now().UnixNano()) - c.lockTTL/6
	if left <= 0 {
		return errors.New("auditchannel: the posting lock was not renewed in time")
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(left, postTimeout))
	defer cancel()
	_, _, err := c.poster.PostMessageContext(pctx, c.channel,
		slack.MsgOptionText(m.text, false), slack.MsgOptionBlocks(m.blocks...))
	if err != nil {
		return fmt.Errorf("auditchannel: post to %s: %w", c.channel, err)
	}
	return nil
}

// errCursorMoved means the cursor record changed under this poster.
var errCursorMoved = errors.New("auditchannel: the cursor was moved by someone else")

// loadCursor reads the cursor, creating it when there is none.
func (c *Channel) loadCursor(ctx context.Context) (cursor, error) {
	for {
		it, err := c.store.Get(ctx, c.cursorAt)
		if err == nil {
			var cur cursor
			if err := json.Unmarshal(it.Value, &cur); err != nil {
				return cursor{}, fmt.Errorf("auditchannel: cursor %s: %w", c.cursorAt, err)
			}
			cur.raw = it.Value
			return cur, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return cursor{}, fmt.Errorf("auditchannel: read cursor: %w", err)
		}
		var cur cursor
		if c.skip {
			head, err := c.store.Head(ctx, c.log)
			if err != nil {
				return cursor{}, fmt.Errorf("auditchannel: read head of log %q: %w", c.log, err)
			}
			if head.Seq > 0 {
				sum, err := audit.Verify(bytes.NewReader(head.Value))
				if err != nil || sum.Count != 1 || sum.First != head.Seq {
					return cursor{}, fmt.Errorf("auditchannel: head of log %q at seq %d does not verify: %v", c.log, head.Seq, err)
				}
				cur = cursor{Seq: head.Seq, Hash: sum.Head}
			}
		}
		raw, err := json.Marshal(cur)
		if err != nil {
			return cursor{}, err
		}
		err = c.store.Create(ctx, c.cursorAt, raw, 0)
		if err == nil {
			cur.raw = raw
			c.logger.InfoContext(ctx, "audit channel: no cursor yet, starting", "channel", c.channel, "after_seq", cur.Seq)
			return cur, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return cursor{}, fmt.Errorf("auditchannel: create cursor: %w", err)
		}
	}
}

// advance moves the cursor from *cur to next by compare-and-swap, retrying
// store failures with backoff. It writes even after ctx ended, once: the
// batch has been posted and a restart must not post it again.
func (c *Channel) advance(ctx context.Context, cur *cursor, next cursor) error {
	raw, err := json.Marshal(next)
	if err != nil {
		return err
	}
	backoff := c.interval
	for {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err := c.store.CompareAndSwap(wctx, c.cursorAt, cur.raw, raw, 0)
		cancel()
		switch {
		case err == nil:
			next.raw = raw
			*cur = next
			return nil
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("%w: %w", errCursorMoved, err)
		}
		c.fail(ctx, "writing the cursor", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("auditchannel: write cursor: %w", err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// next checks the log after the cursor and returns the next message to
// post, or nil when there is nothing to post.
func (c *Channel) next(ctx context.Context, cur *cursor) (*message, error) {
	head, err := c.store.Head(ctx, c.log)
	if err != nil {
		return nil, fmt.Errorf("auditchannel: read head of log %q: %w", c.log, err)
	}
	var (
		events []audit.Event
		brk    *audit.ChainError
	)
	switch {
	case head.Seq < cur.Seq:
		brk = &audit.ChainError{Seq: head.Seq + 1, Reason: fmt.Sprintf(
			"the log ends at seq %d, but seq %d was already posted here (events cut off)", head.Seq, cur.Seq)}
	case head.Seq == cur.Seq:
		if cur.Seq > 0 {
			// The last posted event must still be what was posted.
			sum, err := audit.Verify(bytes.NewReader(head.Value))
			if err != nil || sum.Count != 1 || sum.First != cur.Seq || sum.Head != cur.Hash {
				brk = &audit.ChainError{Seq: cur.Seq, Reason: fmt.Sprintf(
					"seq %d no longer matches the hash posted here (altered, or the chain rewritten)", cur.Seq)}
			}
		}
	default:
		c.m.lag.Set(float64(head.Seq - cur.Seq))
		entries, err := c.store.Read(ctx, c.log, cur.Seq+1, readLimit)
		if err != nil {
			return nil, fmt.Errorf("auditchannel: read log %q: %w", c.log, err)
		}
		events, brk = check(entries, *cur)
	}
	if head.Seq <= cur.Seq {
		c.m.lag.Set(0)
	}
	if brk == nil && cur.BrokenAt != 0 {
		next := *cur
		next.BrokenAt = 0
		if err := c.advance(ctx, cur, next); err != nil {
			return nil, err
		}
		c.logger.WarnContext(ctx, "audit channel: the audit chain verifies again, posting resumes",
			"channel", c.channel, "seq", cur.Seq)
	}
	switch {
	case len(events) > 0:
		return c.batch(events, *cur), nil
	case brk != nil && brk.Seq != cur.BrokenAt:
		c.logger.ErrorContext(ctx, "audit channel: the audit chain is broken; posting stops before it",
			"channel", c.channel, "broken_at", brk.Seq, "reason", brk.Reason)
		return c.alarm(brk, *cur), nil
	}
	return nil, nil
}

// check verifies entries (read from cur.Seq+1) against the chain posted so
// far: each is one well-formed line at the seq it names, its hash covers
// its bytes, and it links to the previous one, the first to cur.Hash. It
// returns the events that pass, in order, and where the chain breaks
// after them, if it does within entries.
func check(entries []store.Entry, cur cursor) ([]audit.Event, *audit.ChainError) {
	var brk *audit.ChainError
	for i, en := range entries {
		want := cur.Seq + 1 + uint64(i)
		switch {
		case en.Seq != want:
			brk = &audit.ChainError{Seq: want, Reason: fmt.Sprintf("seq %d is missing from the log", want)}
		case len(en.Value) == 0 || bytes.ContainsAny(en.Value, "\r\n"):
			brk = &audit.ChainError{Seq: want, Reason: "malformed entry: empty or more than one line"}
		}
		if brk != nil {
			entries = entries[:i]
			break
		}
	}
	if len(entries) == 0 {
		return nil, brk
	}
	var buf bytes.Buffer
	for _, en := range entries {
		buf.Write(en.Value)
		buf.WriteByte('\n')
	}
	// Each entry is one non-empty line, so the lines Verify counts are the
	// entries in order.
	sum, err := audit.Verify(&buf)
	if err != nil {
		reason := err.Error()
		if ce := (*audit.ChainError)(nil); errors.As(err, &ce) {
			reason = ce.Reason
		}
		brk = &audit.ChainError{Seq: entries[sum.Count].Seq, Reason: reason}
		entries = entries[:sum.Count]
	}
	if len(entries) == 0 {
		return nil, brk
	}
	switch {
	case sum.First != entries[0].Seq:
		return nil, &audit.ChainError{Seq: entries[0].Seq, Reason: fmt.Sprintf("store entry %d holds seq %d", entries[0].Seq, sum.First)}
	case cur.Seq > 0 && sum.Prev != cur.Hash:
		return nil, &audit.ChainError{Seq: entries[0].Seq, Reason: fmt.Sprintf(
			"its prev does not match the hash of seq %d posted here (seq %d altered or the chain rewritten)", cur.Seq, cur.Seq)}
	}
	events := make([]audit.Event, 0, len(entries))
	for _, en := range entries {
		e, err := audit.Decode(en.Value)
		if err != nil {
			return events, &audit.ChainError{Seq: en.Seq, Reason: err.Error()}
		}
		events = append(events, e)
	}
	return events, brk
}

// batch renders as many of events as fit one message: their lines in
// mrkdwn sections, then the chain head line naming the last one's seq and
// hash.
func (c *Channel) batch(events []audit.Event, cur cursor) *message {
	var (
		sections []string
		b        strings.Builder
		runes    int // in b
		total    int // in sections and b
		n        int // events taken
	)
	for _, e := range events {
		line := slackapp.AuditChannelLine(e)
		lr := utf8.RuneCountInString(line)
		if n > 0 && total+lr+1 > maxMessageText {
			break
		}
		if b.Len() > 0 && runes+1+lr > maxSectionText {
			if len(sections)+1 == maxSections {
				break
			}
			sections = append(sections, b.String())
			b.Reset()
			runes = 0
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
			runes++
			total++
		}
		b.WriteString(line)
		runes += lr
		total += lr
		n++
	}
	sections = append(sections, b.String())
	last := events[n-1]
	blocks := make([]slack.Block, 0, len(sections)+1)
	for _, s := range sections {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, s, false, false), nil, nil))
	}
	blocks = append(blocks, headBlock(last.Seq, last.Hash))
	first := events[0].Seq
	text := fmt.Sprintf("Audit events #%d–#%d. %s", first, last.Seq, headLine(last.Seq, last.Hash))
	if n == 1 {
		text = fmt.Sprintf("Audit event #%d. %s", first, headLine(last.Seq, last.Hash))
	}
	return &message{
		text: text, blocks: blocks, events: n,
		next: cursor{Seq: last.Seq, Hash: last.Hash},
	}
}

// alarm is the message that says the chain is broken, naming the last
// head that verified.
func (c *Channel) alarm(brk *audit.ChainError, cur cursor) *message {
	say := fmt.Sprintf(":rotating_light: <!here> *The audit chain is broken at seq %d*: %s. "+
		"The audit channel posts nothing past it until the log verifies again; check the store with `bot audit verify`.",
		brk.Seq, escape(brk.Reason))
	blocks := []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, clip(say), false, false), nil, nil)}
	text := fmt.Sprintf("Audit chain broken at seq %d: %s", brk.Seq, escape(brk.Reason))
	if cur.Seq > 0 {
		blocks = append(blocks, headBlock(cur.Seq, cur.Hash))
		text += ". Last verified " + headLine(cur.Seq, cur.Hash)
	}
	next := cur
	next.BrokenAt = brk.Seq
	return &message{text: clip(text), blocks: blocks, next: next}
}

// headLine is the line that anchors the chain: compare it with the
// Summary.Head that `bot audit verify` prints.
func headLine(seq uint64, hash string) string {
	return fmt.Sprintf("chain head #%d %s", seq, hash)
}

func headBlock(seq uint64, hash string) slack.Block {
	return slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, headLine(seq, hash), false, false))
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// escape keeps text from the log (a chain error's reason) from forming
// mentions or links.
func escape(s string) string { return mrkdwnEscaper.Replace(s) }

// clip keeps a text within a section's limit; the alarm's reason is the
// only text here that could grow.
func clip(s string) string {
	if utf8.RuneCountInString(s) <= maxSectionText {
		return s
	}
	r := []rune(s)
	return string(r[:maxSectionText-1]) + "…"
}

// fail counts and logs a failure that will be retried. A read cut short
// because the poster is stopping is not a failure.
func (c *Channel) fail(ctx context.Context, doing string, err error) {
	if ctx.Err() != nil {
		return
	}
	c.m.errors.Inc()
	c.logger.WarnContext(ctx, "audit channel: "+doing+" failed, retrying", "channel", c.channel, "error", err)
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

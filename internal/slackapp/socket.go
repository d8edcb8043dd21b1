package slackapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"golang.org/x/sync/errgroup"

	"github.com/agenthub/agenthub/internal/store"
)

// dedupeKind is the store kind of the records that make an envelope's work
// happen once across retries, double clicks and replicas.
const dedupeKind = "slack-dedupe"

// fatalAuthCodes are the Slack error codes that no retry can fix.
var fatalAuthCodes = map[string]bool{
	"invalid_auth":     true,
	"token_revoked":    true,
	"account_inactive": true,
	"not_authed":       true,
}

// transport is the Socket Mode side of the App: the connection, the reader
// that acks every envelope at once, and the workers that run the handlers.
//
// Slack wants an ack within 3 s and redelivers (or shows the person an
// error) otherwise, so the reader never waits on anything slow: it parses,
// acks and hands the envelope to a worker queue. Dedupe against the store
// happens on the worker, because it is I/O.
//
// The connection is read and acked on one goroutine, with slack-go's
// Socket Mode types and its apps.connections.open call but not its client
// loop, which hands each envelope through three goroutines before its ack is
// written: with the workers keeping both cores busy, every hand-off waited
// for a core, and the ack p99 at 1,000 reads/s fell from 5.0 ms to 3.4 ms
// without them (docs/PERFORMANCE.md).
type transport struct {
	m         *metrics
	connected atomic.Bool

	// grace is how long the workers may keep draining their queues after
	// Run's context ends; backoffMin and backoffMax bound the wait between
	// reconnects, and a connection that lived stableAfter resets it. Tests
	// shorten them.
	grace       time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	stableAfter time.Duration

	// refused carries the code of a Web API answer that says the bot token
	// no longer works (revoked while running); Run stops on it.
	refused chan string
}

func (t *transport) init(a *App) error {
	m, err := newMetrics(a.opts.Registerer)
	if err != nil {
		return err
	}
	t.m = m
	t.grace = 10 * time.Second
	t.backoffMin = time.Second
	t.backoffMax = time.Minute
	t.stableAfter = time.Minute
	t.refused = make(chan string, 1)
	return nil
}

// noteAuth watches a Web API call's error for a refusal of the bot token:
// the handlers call it after every call, so a token revoked while the app
// runs stops Run with ErrFatalAuth instead of failing every reply quietly.
func (a *App) noteAuth(err error) {
	if code := fatalAuthCode(err); code != "" {
		select {
		case a.tr.refused <- code:
		default:
		}
	}
}

func (t *transport) setConnected(up bool) {
	t.connected.Store(up)
	if up {
		t.m.connected.Set(1)
	} else {
		t.m.connected.Set(0)
	}
}

// Connected reports whether a Socket Mode connection is open: true from
// Slack's hello until the connection drops.
func (a *App) Connected() bool { return a.tr.connected.Load() }

// Run checks the bot token with auth.test, connects to Slack in Socket Mode
// and serves envelopes until ctx ends, reconnecting whenever the connection
// drops. It returns nil after a clean shutdown, once the workers have run
// the work they held (or the grace period ran out), and an error wrapping
// ErrFatalAuth when Slack refuses either token.
func (a *App) Run(ctx context.Context) error {
	if err := a.authenticate(ctx); err != nil {
		if errors.Is(err, ErrFatalAuth) {
			return err
		}
		return nil // ctx ended while auth.test was being retried
	}

	s := &session{a: a, t: &a.tr, m: a.tr.m, busy: make(chan busyClick, 64)}
	// The queues hold pointers: a work is over 4 KB, and a channel
	// allocates its whole buffer up front (8 bytes × Queue per worker,
	// 5 MB by default, untouched until used). The bound is shared: see
	// session.queued.
	s.queues = make([]chan *work, a.opts.Workers)
	for i := range s.queues {
		s.queues[i] = make(chan *work, a.opts.Queue)
	}

	// The workers outlive ctx by the grace period, so work that was acked
	// (and so will not be redelivered) still gets its chance to run.
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	var workers sync.WaitGroup
	for _, q := range s.queues {
		workers.Go(func() { s.worker(wctx, q) })
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.background(gctx) })
	g.Go(func() error { return s.serve(gctx) })
	g.Go(func() error { s.notifyBusy(gctx); return nil })
	g.Go(func() error {
		select {
		case code := <-a.tr.refused:
			a.tr.setConnected(false)
			return fmt.Errorf("%w: a Web API call answered %s: check the bot token (SLACK_BOT_TOKEN)", ErrFatalAuth, code)
		case <-gctx.Done():
			return nil
		}
	})
	err := g.Wait()

	// serve has returned, so its reader is gone and nothing sends any more.
	for _, q := range s.queues {
		close(q)
	}
	grace := time.AfterFunc(a.tr.grace, wcancel)
	workers.Wait()
	grace.Stop()
	a.tr.setConnected(false)

	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// authenticate learns the bot's user ID from auth.test, retrying anything
// but a refusal of the token.
func (a *App) authenticate(ctx context.Context) error {
	b := backoff{min: a.tr.backoffMin, max: a.tr.backoffMax}
	for {
		resp, err := a.opts.API.AuthTestContext(ctx)
		if err == nil {
			a.botUser, a.botTeam = resp.UserID, resp.TeamID
			return nil
		}
		if code := fatalAuthCode(err); code != "" {
			return fmt.Errorf("%w: auth.test answered %s: check the bot token (SLACK_BOT_TOKEN)", ErrFatalAuth, code)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := b.next()
		a.log.Warn("slack auth.test failed, retrying", "error", err, "backoff", d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// fatalAuthCode returns the Slack error code of err when it is one that
// retrying cannot fix, and "" otherwise. slack-go reports Web API errors as
// SlackErrorResponse and Socket Mode's connect errors as their bare code.
func fatalAuthCode(err error) string {
	if err == nil {
		return ""
	}
	code := err.Error()
	if resp, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		code = resp.Err
	}
	if fatalAuthCodes[code] {
		return code
	}
	return ""
}

// session is the state of one Run: the worker queues the reader fills.
type session struct {
	a      *App
	t      *transport
	m      *metrics
	queues []chan *work
	// busy takes the clicks that were acked but not handled (the queues
	// were full), for notifyBusy to answer.
	busy chan busyClick
	// queued counts the envelopes waiting in all queues; Options.Queue
	// bounds it. Each queue could hold the whole bound, so a burst from
	// one person (one queue) is not refused while the others are empty.
	queued atomic.Int64
}

// serve keeps one Socket Mode connection open at a time until ctx ends or
// Slack refuses the app-level token. A connection ends when Slack asks for
// a new one (disconnect: reconnect at once), when no ping or message came
// for PingInterval (the watchdog), or on a network error (reconnect after a
// backoff that resets once a connection has lived stableAfter).
func (s *session) serve(ctx context.Context) error {
	b := backoff{min: s.t.backoffMin, max: s.t.backoffMax}
	for {
		lived, err := s.connection(ctx)
		s.t.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if code := fatalAuthCode(err); code != "" {
			return fmt.Errorf("%w: apps.connections.open answered %s: check the app-level token (SLACK_APP_TOKEN)", ErrFatalAuth, code)
		}
		s.m.reconnects.Inc()
		if errors.Is(err, errDisconnect) {
			s.a.log.Info("slack asked for a new connection")
			continue
		}
		if lived >= s.t.stableAfter {
			b.reset()
		}
		d := b.next()
		s.a.log.Warn("slack socket mode connection ended, reconnecting", "error", err, "backoff", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// errDisconnect is Slack asking the app to open a new connection.
var errDisconnect = errors.New("slackapp: slack asked for a new connection")

// connection opens one Socket Mode connection (apps.connections.open with
// the app-level token, then the websocket) and reads it until it ends,
// acking every envelope from this goroutine, the one that read its frame:
// an ack waits for no other goroutine, whatever the workers are doing.
// It returns how long the connection lived.
func (s *session) connection(ctx context.Context) (time.Duration, error) {
	_, url, err := s.a.opts.API.StartSocketModeContext(ctx)
	if err != nil {
		return 0, err
	}
	dialer := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := dialer.DialContext(ctx, url, http.Header{"Origin": {"https://api.slack.com"}})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		// The URL carries a single-use ticket: it is not in the error.
		return 0, fmt.Errorf("slackapp: open the socket mode websocket: %w", err)
	}
	opened := time.Now()
	conn.SetReadLimit(maxFrame)
	w := &wsWriter{conn: conn}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-cctx.Done()
		conn.Close() // ends the read below
	}()
	watchdog := func() { _ = conn.SetReadDeadline(time.Now().Add(s.a.opts.PingInterval)) }
	watchdog()
	conn.SetPingHandler(func(data string) error {
		watchdog()
		return w.control(websocket.PongMessage, []byte(data))
	})
	r := &reader{session: s, client: w}
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return time.Since(opened), ctx.Err()
			}
			return time.Since(opened), fmt.Errorf("slackapp: socket mode read: %w", err)
		}
		received := time.Now()
		watchdog()
		var req socketmode.Request
		if err := json.Unmarshal(msg, &req); err != nil {
			s.a.log.Warn("slack sent a frame that is not a socket mode request", "error", err)
			continue
		}
		if err := r.request(cctx, &req, received); err != nil {
			return time.Since(opened), err
		}
	}
}

// reader turns one connection's requests into acked work. It is the only
// producer of the worker queues, which is why checking a queue's free space
// before acking is enough to make the enqueue after the ack never block.
type reader struct {
	*session
	client acker
}

// acker writes acks; *wsWriter is the real one.
type acker interface {
	AckCtx(ctx context.Context, envelopeID string, payload any) error
}

// request handles one Socket Mode request. Lifecycle requests only log and
// track the connection; nothing logs payloads, which hold people's words.
func (r *reader) request(ctx context.Context, req *socketmode.Request, received time.Time) error {
	log := r.a.log
	var evt socketmode.Event
	switch req.Type {
	case socketmode.RequestTypeHello:
		r.t.setConnected(true)
		log.Info("slack connected", "num_connections", req.NumConnections)
		return nil
	case socketmode.RequestTypeDisconnect:
		log.Info("slack asked to disconnect", "reason", req.Reason)
		return errDisconnect
	case socketmode.RequestTypeEventsAPI:
		ev, err := slackevents.ParseEvent(req.Payload, slackevents.OptionNoVerifyToken())
		if err != nil {
			log.Warn("slack sent an event that could not be parsed", "envelope_id", req.EnvelopeID, "error", err)
			return nil
		}
		evt = socketmode.Event{Type: socketmode.EventTypeEventsAPI, Data: ev, Request: req}
	case socketmode.RequestTypeInteractive:
		var cb slack.InteractionCallback
		if err := json.Unmarshal(req.Payload, &cb); err != nil {
			log.Warn("slack sent an interaction that could not be parsed", "envelope_id", req.EnvelopeID, "error", err)
			return nil
		}
		evt = socketmode.Event{Type: socketmode.EventTypeInteractive, Data: cb, Request: req}
	case socketmode.RequestTypeSlashCommands:
		var cmd slack.SlashCommand
		if err := json.Unmarshal(req.Payload, &cmd); err != nil {
			log.Warn("slack sent a slash command that could not be parsed", "envelope_id", req.EnvelopeID, "error", err)
			return nil
		}
		evt = socketmode.Event{Type: socketmode.EventTypeSlashCommand, Data: cmd, Request: req}
	default:
		log.Debug("slack request ignored", "type", req.Type)
		return nil
	}
	r.envelope(ctx, evt, received)
	return nil
}

// maxFrame bounds one incoming frame, so a broken peer cannot make the
// reader buffer without end; Slack's envelopes are far smaller.
const maxFrame = 4 << 20

// maxAckSize is Slack's limit on a Socket Mode response: it silently drops
// larger ones.
const maxAckSize = 20 << 10

// wsWriter writes to one websocket; gorilla allows one writer at a time.
type wsWriter struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

// AckCtx acks envelopeID with payload (nil: a bare ack).
func (w *wsWriter) AckCtx(ctx context.Context, envelopeID string, payload any) error {
	resp := struct {
		EnvelopeID string `json:"envelope_id"`
		Payload    any    `json:"payload,omitempty"`
	}{envelopeID, payload}
	b, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("slackapp: encode ack: %w", err)
	}
	if len(b) >= maxAckSize {
		return fmt.Errorf("slackapp: ack of %d bytes is over Slack's %d", len(b), maxAckSize)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return w.conn.WriteMessage(websocket.TextMessage, b)
}

func (w *wsWriter) control(kind int, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn.WriteControl(kind, data, time.Now().Add(10*time.Second))
}

// envelope acks one envelope and queues its work, or refuses it when its
// worker is full.
func (r *reader) envelope(ctx context.Context, evt socketmode.Event, received time.Time) {
	typ := string(evt.Type)
	r.m.envelopes.WithLabelValues(typ).Inc()
	if evt.Request == nil {
		r.a.log.Warn("slack envelope without a request", "type", typ)
		return
	}
	w := &work{typ: evt.Type, envelopeID: evt.Request.EnvelopeID, acked: r.a.now()}
	switch data := evt.Data.(type) {
	case slackevents.EventsAPIEvent:
		w.event = data
	case slack.InteractionCallback:
		w.interaction = data
	case slack.SlashCommand:
		w.command = data
	default:
		r.a.log.Warn("slack envelope with unexpected data", "type", typ, "envelope_id", w.envelopeID)
		return
	}
	w.dedupe, w.order = routeKeys(w, evt.Request.Payload)

	q := r.queues[shard(w.order, len(r.queues))]
	if r.queued.Load() >= int64(r.a.opts.Queue) || len(q) == cap(q) {
		r.m.dropped.WithLabelValues(typ).Inc()
		if w.typ == socketmode.EventTypeEventsAPI {
			// Unacked, the event comes back in a while: nothing is lost.
			r.a.log.Debug("slack worker queue full, event left for redelivery", "type", typ, "envelope_id", w.envelopeID)
			return
		}
		// A click or command is not redelivered: ack it with a word to the
		// person (in the ack where Slack takes one, else through the
		// response_url, off the reader) so they know to try again.
		r.a.log.Warn("slack worker queue full, envelope acked but not handled", "type", typ, "envelope_id", w.envelopeID)
		r.ack(ctx, w, busyPayload(w), received)
		if w.interaction.Type == slack.InteractionTypeBlockActions && w.interaction.User.ID != "" {
			select {
			case r.busy <- busyClick{user: w.interaction.User.ID, responseURL: w.interaction.ResponseURL}:
			default: // the notifier is behind too: the log has it
			}
		}
		return
	}
	if !r.ack(ctx, w, r.payload(w), received) {
		return
	}
	r.m.queueDepth.Inc()
	r.queued.Add(1)
	select {
	case q <- w:
	default:
		// Unreachable while the reader is the only producer; kept so a
		// future second producer can never block the acks.
		r.m.queueDepth.Dec()
		r.queued.Add(-1)
		r.m.dropped.WithLabelValues(typ).Inc()
		r.a.log.Warn("slack worker queue full after ack", "type", typ, "envelope_id", w.envelopeID)
	}
}

// payload is a.ackPayload, with a panic turned into a bare ack: a bug in
// one response must not take the reader, and so every ack, down with it.
func (r *reader) payload(w *work) (p any) {
	defer func() {
		if v := recover(); v != nil {
			r.a.log.Error("slack ack payload panicked, acking without it", "type", string(w.typ), "envelope_id", w.envelopeID, "panic", fmt.Sprint(v))
			p = nil
		}
	}()
	return r.a.ackPayload(w)
}

// ack hands the ack to the websocket writer and reports whether it did.
func (r *reader) ack(ctx context.Context, w *work, payload any, received time.Time) bool {
	typ := string(w.typ)
	err := r.client.AckCtx(ctx, w.envelopeID, payload)
	if err != nil && payload != nil && ctx.Err() == nil {
		// The payload was refused (Slack drops responses of 20 KB or
		// more); a bare ack at least stops the redelivery.
		r.a.log.Warn("slack ack payload refused, acking without it", "type", typ, "envelope_id", w.envelopeID, "error", err)
		err = r.client.AckCtx(ctx, w.envelopeID, nil)
	}
	if err != nil {
		r.a.log.Debug("slack ack not sent", "type", typ, "envelope_id", w.envelopeID, "error", err)
		return false
	}
	r.m.ackSeconds.Observe(time.Since(received).Seconds())
	r.m.acks.WithLabelValues(typ).Inc()
	return true
}

// worker runs the work of one queue in order until the queue is closed.
// Once ctx has ended (the shutdown grace ran out) what is left is dropped.
func (s *session) worker(ctx context.Context, q <-chan *work) {
	dropped := 0
	for w := range q {
		s.m.queueDepth.Dec()
		s.queued.Add(-1)
		if ctx.Err() != nil {
			s.m.dropped.WithLabelValues(string(w.typ)).Inc()
			dropped++
			continue
		}
		s.run(ctx, *w)
	}
	if dropped > 0 {
		s.a.log.Warn("slack shutdown grace ran out, acked envelopes not handled", "count", dropped)
	}
}

// run claims w's dedupe key and hands w to the handler.
func (s *session) run(ctx context.Context, w work) {
	typ := string(w.typ)
	var key store.Key
	if w.dedupe != "" {
		key = dedupeKey(w.dedupe)
		err := s.a.opts.Store.Create(ctx, key, []byte("1"), s.a.opts.DedupeTTL)
		switch {
		case errors.Is(err, store.ErrExists):
			s.m.duplicates.WithLabelValues(typ).Inc()
			s.a.log.Debug("slack duplicate envelope skipped", "type", typ, "envelope_id", w.envelopeID)
			return
		case err != nil:
			// Without the store the broker cannot work either; running
			// without the key could run the work twice.
			s.m.handlerErrors.WithLabelValues(typ).Inc()
			s.a.log.Error("slack dedupe failed, envelope skipped", "type", typ, "envelope_id", w.envelopeID, "error", err)
			return
		}
	}
	if err := s.handle(ctx, w); err != nil {
		s.m.handlerErrors.WithLabelValues(typ).Inc()
		s.a.log.Error("slack handler failed", "type", typ, "envelope_id", w.envelopeID, "error", err)
		if w.dedupe == "" {
			return
		}
		// Forget the key so a redelivery or a second click may try again,
		// even when the failure was the shutdown's context ending.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.a.opts.Store.Delete(dctx, key); err != nil {
			s.a.log.Error("slack dedupe key not forgotten", "type", typ, "envelope_id", w.envelopeID, "error", err)
		}
	}
}

// handlerTimeout bounds one envelope's work, so that a hung connection to
// Slack, the store or a provider cannot hold a worker (and the envelopes
// queued behind it) for ever.
const handlerTimeout = 2 * time.Minute

// handle calls the handler, turning a panic into an error so one bad
// envelope cannot take the process down.
func (s *session) handle(ctx context.Context, w work) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, handlerTimeout)
	defer cancel()
	return s.a.handle(ctx, w)
}

// routeKeys returns w's dedupe and order keys; payload is the envelope's
// payload, which holds the event_id that slackevents.EventsAPIEvent drops.
//
// Dedupe: an event is its event_id (Slack keeps it across retries); an
// approval click is request, choice and clicker, so one person's double
// click is one decision but another person's click is not swallowed;
// everything else is its envelope. Order: work on one request (its clicks,
// its step-up) or from one person runs in arrival order, except a Stop,
// which must overtake the work it stops.
func routeKeys(w *work, payload json.RawMessage) (dedupe, order string) {
	env := ""
	if w.envelopeID != "" {
		env = "env:" + w.envelopeID
	}
	dedupe = env
	switch w.typ {
	case socketmode.EventTypeEventsAPI:
		var p struct {
			EventID string `json:"event_id"`
			Event   struct {
				Type    string `json:"type"`
				User    any    `json:"user"`
				Channel any    `json:"channel"`
			} `json:"event"`
		}
		if err := json.Unmarshal(payload, &p); err == nil && p.EventID != "" {
			dedupe = "event:" + p.EventID
		}
		// Some events carry a user or channel object rather than an ID.
		order, _ = p.Event.User.(string)
		if order == "" {
			order, _ = p.Event.Channel.(string)
		}
		if p.Event.Type == "agent_session_stopped" && order != "" {
			// A Stop must not wait behind the person's message it
			// stops: it has a queue of its own.
			order = "stop:" + order
		}
	case socketmode.EventTypeInteractive:
		ic := &w.interaction
		order = ic.User.ID
		switch ic.Type {
		case slack.InteractionTypeBlockActions:
			if acts := ic.ActionCallback.BlockActions; len(acts) > 0 && acts[0] != nil {
				act := acts[0]
				switch {
				case strings.HasPrefix(act.ActionID, ActionDecidePrefix):
					dedupe = "click:" + act.Value + ":" + act.ActionID + ":" + ic.User.ID
					order = act.Value
				case act.ActionID == ActionStepUp:
					order = act.Value
				}
			}
		case slack.InteractionTypeViewSubmission:
			if ic.View.CallbackID == CallbackStepUp {
				order = ic.View.PrivateMetadata
			}
		}
	case socketmode.EventTypeSlashCommand:
		order = w.command.UserID
	}
	if order == "" {
		order = w.envelopeID
	}
	return dedupe, order
}

// dedupeBuckets is how many scopes the dedupe records are spread over.
// One scope is one Redis hash slot and one index, and at 1,000 events a
// second kept for DedupeTTL (an hour) a single one would hold 3.6 million
// entries, all on one Cluster node, pruned on every write.
const dedupeBuckets = 256

// dedupeKey maps a dedupe string to a store key. Hashing keeps the ID
// valid whatever the payload put in it and keeps user IDs out of the store;
// the hash's first byte, two hex digits, picks one of the dedupeBuckets
// scopes, so they fill evenly.
func dedupeKey(dedupe string) store.Key {
	sum := sha256.Sum256([]byte(dedupe))
	id := hex.EncodeToString(sum[:])
	return store.Key{Scope: dedupeKind + "-" + id[:2], Kind: dedupeKind, ID: id}
}

// shard picks the worker for an order key.
func shard(order string, n int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(order))
	return int(h.Sum64() % uint64(n))
}

// backoff is exponential with jitter: each wait is drawn from the upper
// half of a window that doubles from min up to max, so replicas that lost
// Slack together do not come back in lockstep.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.max
	if b.n < 32 {
		if w := b.min << b.n; w > 0 && w < b.max {
			d = w
			b.n++
		}
	}
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits for d and reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// busyText tells someone whose click or command could not be taken.
const busyText = "AgentHub is very busy right now and could not take that. Nothing was done: try again in a moment."

// busyPayload is the ack of an envelope the queues had no room for: a
// slash command's ephemeral answer, or a modal's error that keeps it open.
// A click's ack carries nothing Slack shows, so notifyBusy answers it.
func busyPayload(w *work) any {
	switch {
	case w.typ == socketmode.EventTypeSlashCommand:
		return map[string]any{"response_type": "ephemeral", "text": busyText}
	case w.interaction.Type == slack.InteractionTypeViewSubmission:
		if block, _, ok := codeField(w.interaction.View.CallbackID); ok {
			return map[string]any{"response_action": "errors", "errors": map[string]string{block: busyText}}
		}
	}
	return nil
}

// busyClick is a click that was acked but not handled: who clicked, and
// the response_url of the message they clicked in ("" in App Home, where
// Slack gives none).
type busyClick struct {
	user        string
	responseURL string
}

// notifyBusy answers clicks that were acked but not handled, one at a
// time, until ctx ends: through the click's response_url, or in the
// person's DM for a click in App Home.
func (s *session) notifyBusy(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-s.busy:
			s.a.ephemeral(ctx, "", c.user, c.responseURL, busyText)
		}
	}
}

package slacktest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Identities the fake answers with, so tests can assert on them.
const (
	AppID     = "A0FAKEAPP01"
	TeamID    = "T0FAKETEAM1"
	TeamName  = "agenthub-test"
	BotUserID = "U0FAKEBOT01"
	BotID     = "B0FAKEBOT01"
)

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server read time from now: ack arrival times, message
// timestamps and the postMessage rate-limit windows all follow it.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithPingInterval sets how often the websocket pings each client. slack-go
// drops a connection that has not been pinged for 30 s, so the default is
// well below that.
func WithPingInterval(d time.Duration) Option { return func(s *Server) { s.pingEvery = d } }

// Server is a running fake Slack. It is safe for concurrent use.
type Server struct {
	// URL is the base URL of the server, without a trailing slash.
	URL string

	srv       *httptest.Server
	now       func() time.Time
	pingEvery time.Duration
	upgrader  websocket.Upgrader

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever acks or connections change
	closed   bool
	seq      int
	tickets  map[string]bool
	conns    []*wsConn
	next     int // round-robin cursor into conns
	hellos   int
	acks     []Ack
	calls    []Call
	messages map[string][]Message
	ephemera map[string][]Message
	dms      map[string]string // user ID → D channel
	views    []View
	// responses are the messages posted to response_urls.
	responses []Response
	triggers  map[string]bool // trigger_id → already exchanged
	limit     postLimit
	windows   map[string]*window
	revoked   bool // RevokeTokens was called
	users     map[string]User
	sessions  []SessionStatus
	noAgents  bool
	streams   []*Stream
	noStreams bool
}

// New starts a fake Slack on loopback and stops it when the test ends.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := Start(opts...)
	tb.Cleanup(s.Close)
	return s
}

// Start starts a fake Slack on loopback outside a test (the load command
// uses it); the caller stops it with Close.
func Start(opts ...Option) *Server {
	s := &Server{
		now:       time.Now,
		pingEvery: 5 * time.Second,
		changed:   make(chan struct{}),
		tickets:   map[string]bool{},
		messages:  map[string][]Message{},
		ephemera:  map[string][]Message{},
		dms:       map[string]string{},
		triggers:  map[string]bool{},
		windows:   map[string]*window{},
	}
	for _, o := range opts {
		o(s)
	}
	// slack-go dials with Origin: https://api.slack.com, which the default
	// same-origin check would refuse.
	s.upgrader.CheckOrigin = func(*http.Request) bool { return true }
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/apps.connections.open", s.connectionsOpen)
	mux.HandleFunc("/api/{method}", s.webAPI)
	mux.HandleFunc("GET /link", s.link)
	mux.HandleFunc("POST /commands/response/{id}", s.response)
	mux.HandleFunc("POST /actions/response/{id}", s.response)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s
}

// APIURL is the value for slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.URL + "/api/" }

// Close disconnects every client and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.srv.Close()
}

// notifyLocked wakes everyone waiting for a change. s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// nextIDLocked returns a fresh sequence number. s.mu must be held.
func (s *Server) nextIDLocked() int {
	s.seq++
	return s.seq
}

func (s *Server) nextID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextIDLocked()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func slackError(w http.ResponseWriter, code string) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(v)
}

// authError checks a token against the prefix a method needs and returns
// the Slack error code, or "" when the token is acceptable.
func authError(token, prefix string) string {
	switch {
	case token == "":
		return "not_authed"
	case !strings.HasPrefix(token, prefix) || len(token) == len(prefix):
		return "invalid_auth"
	}
	return ""
}

func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	if code := authError(bearer(r), "xapp-"); code != "" {
		s.record(Call{Method: "apps.connections.open", Error: code, Status: http.StatusOK})
		slackError(w, code)
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	ticket := hex.EncodeToString(b)
	s.mu.Lock()
	s.tickets[ticket] = true
	s.mu.Unlock()
	s.record(Call{Method: "apps.connections.open", Status: http.StatusOK})
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/link?ticket=" + ticket
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "url": url})
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.At = s.now()
	s.calls = append(s.calls, c)
}

// ts makes a Slack message timestamp, unique within the server.
func (s *Server) tsLocked() string {
	return fmt.Sprintf("%d.%06d", s.now().Unix(), s.nextIDLocked()%1000000)
}

package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"
)

// Service names, the same words the vault and the policy use for providers.
const (
	ServiceGitHub = "github"
	ServiceGoogle = "google"
	ServiceSlack  = "slack"
)

// Path prefixes of the simulated APIs under a server's base URL; clients append them to it.
const (
	GitHubPrefix   = "/github/"      // go-github BaseURL
	CalendarPrefix = "/calendar/v3/" // calendar/v3 option.WithEndpoint
	SlackPrefix    = "/slack/api/"   // slack.OptionAPIURL
)

// TokenPath is the path of a service's OAuth token endpoint.
func TokenPath(service string) string { return "/oauth/" + service + "/token" }

// RevokePath is the path of a service's RFC 7009 revocation endpoint.
func RevokePath(service string) string { return "/oauth/" + service + "/revoke" }

// AuthorizePath is the path of a service's stand-in consent page (see the authorize endpoint in
// the package documentation).
func AuthorizePath(service string) string { return "/oauth/" + service + "/authorize" }

// DefaultAccessTTL is how long an access token lives when Options.AccessTTL is zero: short, like
// the providers' own expiring user tokens, so refresh paths are exercised in every demo session.
const DefaultAccessTTL = 10 * time.Minute

// Client is the OAuth client registration a token endpoint expects.
type Client struct {
	ID     string
	Secret string
}

// DefaultClients returns the demo client registrations, one per service. They are not secrets:
// they only exist inside a simulated world.
func DefaultClients() map[string]Client {
	return map[string]Client{
		ServiceGitHub: {ID: "sim-github-client", Secret: "sim-github-secret"},
		ServiceGoogle: {ID: "sim-google-client", Secret: "sim-google-secret"},
		ServiceSlack:  {ID: "sim-slack-client", Secret: "sim-slack-secret"},
	}
}

// Options configures a World. The zero value is a seeded world on the real clock.
type Options struct {
	// Now is the clock for token expiry, timestamps and the seeded calendar; default time.Now.
	Now func() time.Time
	// AccessTTL is the lifetime of issued access tokens; default DefaultAccessTTL.
	AccessTTL time.Duration
	// Logger receives one debug line per call (never a token); default discards.
	Logger *slog.Logger
	// Empty starts a world with no repositories, events or channels.
	Empty bool
	// Location is the zone of the seeded calendar and of event times in responses; default UTC,
	// which needs no tzdata on the machine.
	Location *time.Location
	// Clients are the expected client credentials per service; default DefaultClients().
	Clients map[string]Client
	// Rand is the source of token bytes; default crypto/rand.
	Rand io.Reader
}

// Call is one request that reached a simulated provider. It never holds a token.
type Call struct {
	Service   string    // ServiceGitHub, ServiceGoogle or ServiceSlack; "" for an unknown /oauth/ path
	Method    string    // HTTP method
	Path      string    // URL path without the query, e.g. /github/repos/acme/payments/pulls/7/merge
	Principal string    // whom the presented token belongs to; "" when there was no valid token
	Status    int       // HTTP status sent (Slack answers most errors with 200)
	Error     string    // the provider's error code or message when the call failed, else ""
	Time      time.Time // when the call arrived, by Options.Now
}

// World is a simulated GitHub, Google Calendar and Slack, with their OAuth endpoints. All methods
// are safe for concurrent use.
type World struct {
	now       func() time.Time
	accessTTL time.Duration
	log       *slog.Logger
	loc       *time.Location
	clients   map[string]Client
	rand      io.Reader

	mu    sync.Mutex
	seq   int64
	calls []Call
	auth  authState
	gh    githubState
	cal   calendarState
	slk   slackState

	mux *http.ServeMux
}

// New returns a World, seeded with the demo data unless opts.Empty.
func New(opts Options) *World {
	w := &World{
		now:       opts.Now,
		accessTTL: opts.AccessTTL,
		log:       opts.Logger,
		loc:       opts.Location,
		clients:   opts.Clients,
		rand:      opts.Rand,
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.accessTTL <= 0 {
		w.accessTTL = DefaultAccessTTL
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.loc == nil {
		w.loc = time.UTC
	}
	if w.clients == nil {
		w.clients = DefaultClients()
	}
	if w.rand == nil {
		w.rand = rand.Reader
	}
	w.auth.init()
	w.gh.init()
	w.cal.init(w.loc)
	w.slk.init()
	if !opts.Empty {
		w.seedGitHub()
		w.seedCalendar()
		w.seedSlack()
	}
	w.mux = http.NewServeMux()
	w.routeOAuth(w.mux)
	w.routeGitHub(w.mux)
	w.routeCalendar(w.mux)
	w.routeSlack(w.mux)
	return w
}

// Handler serves every simulated API: /github/, /calendar/v3/, /slack/api/ and /oauth/{service}/.
func (w *World) Handler() http.Handler { return w.mux }

// NewServer starts an httptest.Server for w on a loopback port; the caller closes it. Tests and the
// demo may equally use Transport, which needs no socket.
func NewServer(w *World) *httptest.Server { return httptest.NewServer(w.Handler()) }

// Transport returns a RoundTripper that serves each request in-process with w's Handler, whatever
// the host in its URL (e.g. http://sim.invalid/github/). It lets the demo run with no listener.
func (w *World) Transport() http.RoundTripper { return inProcess{h: w.mux} }

type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, fmt.Errorf("sim round trip: %w", err)
	}
	// The server side may read the body; give it its own request so the caller's stays untouched,
	// and close the caller's body as the RoundTripper contract requires.
	in := r.Clone(r.Context())
	if r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("sim round trip: read body: %w", err)
		}
		in.Body = io.NopCloser(bytes.NewReader(body))
	} else {
		in.Body = http.NoBody
	}
	in.RequestURI = r.URL.RequestURI()
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, in)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// Calls returns every call recorded so far, oldest first.
func (w *World) Calls() []Call {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// CallsFor returns the recorded calls to one service, oldest first.
func (w *World) CallsFor(service string) []Call {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Call
	for _, c := range w.calls {
		if c.Service == service {
			out = append(out, c)
		}
	}
	return out
}

// note is what a handler tells the recorder about a call besides its status.
type note struct {
	principal string
	err       string
}

type noteHandler func(rw http.ResponseWriter, r *http.Request, n *note)

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// recorded wraps a handler so that every request it serves becomes a Call.
func (w *World) recorded(service string, h noteHandler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := w.now()
		sw := &statusWriter{ResponseWriter: rw}
		n := &note{}
		h(sw, r, n)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		c := Call{
			Service:   service,
			Method:    r.Method,
			Path:      r.URL.Path,
			Principal: n.principal,
			Status:    sw.status,
			Error:     n.err,
			Time:      start,
		}
		w.mu.Lock()
		w.calls = append(w.calls, c)
		w.mu.Unlock()
		w.log.Debug("sim call", "service", c.Service, "method", c.Method, "path", c.Path,
			"principal", c.Principal, "status", c.Status, "error", c.Error)
	})
}

// nextID returns the next value of the world's single counter; w.mu must be held.
func (w *World) nextID() int64 {
	w.seq++
	return w.seq
}

func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json; charset=utf-8")
	rw.WriteHeader(status)
	if v == nil {
		return
	}
	// An encoding error here can only be a bug in the sim's own response types.
	_ = json.NewEncoder(rw).Encode(v)
}

// decodeJSON reads a JSON request body into v; an empty body leaves v as it is.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode body: %w", err)
	}
	return nil
}

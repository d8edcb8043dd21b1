package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the server. The endpoints are small and fast; the limits are
// there so a slow or idle client cannot hold a connection for long.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10

	// CheckTimeout bounds each readiness check.
	CheckTimeout = 2 * time.Second
	// ShutdownTimeout bounds the graceful shutdown when Run's context ends.
	ShutdownTimeout = 10 * time.Second
)

// Check is one readiness check, such as a store ping or a Slack
// connection test.
type Check struct {
	// Name is what /readyz reports when the check fails, such as "store".
	Name string
	// Check returns nil when the dependency is ready. It must return soon
	// after ctx ends. Its error is logged, never shown over HTTP.
	Check func(ctx context.Context) error
}

// Options configure a Server.
type Options struct {
	// Addr is the TCP address Listen and Run listen on, such as ":8080"
	// or "127.0.0.1:0".
	Addr string
	// Gatherer is what /metrics exposes, usually the registry from
	// NewRegistry. Required.
	Gatherer prometheus.Gatherer
	// Ready are the checks of /readyz. Their names must be distinct and
	// not empty. With none, /readyz reports ready.
	Ready []Check
	// Logger receives failed readiness checks and serving errors; nil
	// discards them.
	Logger *slog.Logger
	// Public, when set, is served too, for every other path: the public
	// listener's routes, when a person puts both on one address.
	Public http.Handler
}

// Server serves /healthz, /readyz and /metrics.
type Server struct {
	addr         string
	ready        []Check
	log          *slog.Logger
	handler      http.Handler
	checkTimeout time.Duration // CheckTimeout; tests shorten it

	mu  sync.Mutex
	ln  net.Listener // set by Listen
	ran bool         // Run was called
}

// New returns a Server for opts. It does not listen yet.
func New(opts Options) (*Server, error) {
	if opts.Gatherer == nil {
		return nil, errors.New("web: gatherer is required")
	}
	names := make(map[string]bool, len(opts.Ready))
	for i, c := range opts.Ready {
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("web: readiness check %d has no name", i)
		case c.Check == nil:
			return nil, fmt.Errorf("web: readiness check %q has no function", c.Name)
		case names[c.Name]:
			return nil, fmt.Errorf("web: readiness check %q is listed twice", c.Name)
		}
		names[c.Name] = true
	}
	s := &Server{
		addr:         opts.Addr,
		ready:        slices.Clone(opts.Ready),
		log:          opts.Logger,
		checkTimeout: CheckTimeout,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}

	mux := http.NewServeMux()
	// Method patterns make the mux answer 405 (with Allow) for other
	// methods and 404 for other paths. GET covers HEAD.
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		// A failing collector should not hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are rare; more at once means something is wrong.
		MaxRequestsInFlight: 4,
	}))
	if opts.Public != nil {
		mux.Handle("/", opts.Public)
	}
	s.handler = mux
	return s, nil
}

// NewPublic returns a Server that serves h on addr: the public listener,
// whose routes (the OAuth connect flow) are for people's browsers, apart
// from the operator's endpoints.
func NewPublic(addr string, h http.Handler, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{addr: addr, log: logger, handler: h, checkTimeout: CheckTimeout}
}

// Handler returns the server's routes, for tests and for mounting them in
// another server.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen opens the listening socket on Options.Addr, so that Addr is known
// before Run serves; Run calls it when it has not been called. A Server
// listens once, and only Run closes the socket: call Run after Listen. The error, such as the address being in use, names the
// address.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("web: already listening")
	}
	if s.addr == "" {
		return errors.New("web: address is required")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", s.addr)
	if err != nil {
		// A *net.OpError names the address already.
		var op *net.OpError
		if errors.As(err, &op) && op.Addr != nil {
			return fmt.Errorf("web: %w", err)
		}
		return fmt.Errorf("web: listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the address the server listens on, such as
// "127.0.0.1:43127", or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run listens (unless Listen was called) and serves until ctx ends, then
// shuts down gracefully, giving requests in flight up to ShutdownTimeout.
// It returns nil after a clean shutdown, and at once an error when it
// cannot listen or serve. A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("web: server already ran")
	}
	s.ran = true
	listening := s.ln != nil
	s.mu.Unlock()
	if !listening {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests keep ctx's values but not its end: Shutdown lets those
		// in flight finish instead of cancelling them.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("web: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	<-served // http.ErrServerClosed, once Serve has returned
	if err != nil {
		return fmt.Errorf("web: shutdown: %w", err)
	}
	return nil
}

// healthz answers while the process serves at all.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	noCache(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok"))
}

// readiness is the body of /readyz.
type readiness struct {
	Status  string   `json:"status"`
	Failing []string `json:"failing,omitempty"`
}

// readyz runs the readiness checks and reports the names of those that
// fail.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	failing := s.failing(r.Context())
	body, status := readiness{Status: "ready"}, http.StatusOK
	if len(failing) > 0 {
		body, status = readiness{Status: "not ready", Failing: failing}, http.StatusServiceUnavailable
	}
	noCache(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// failing runs every check concurrently and returns the sorted names of
// those that failed or did not answer in time. It answers by the deadline
// even if a check ignores its context: a readiness probe that hangs is
// worse than one that says no. Such a check's goroutine ends when the
// check does.
func (s *Server) failing(ctx context.Context) []string {
	if len(s.ready) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.checkTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.ready)) // buffered: a late check never blocks
	for _, c := range s.ready {
		go func() { results <- result{c.Name, runCheck(ctx, c)} }()
	}

	answered := make(map[string]bool, len(s.ready))
	var failing []string
	take := func(res result) {
		answered[res.name] = true
		if res.err != nil {
			failing = append(failing, res.name)
			s.log.LogAttrs(ctx, slog.LevelWarn, "readiness check failed",
				slog.String("check", res.name), slog.String("error", res.err.Error()))
		}
	}
wait:
	for range s.ready {
		select {
		case res := <-results:
			take(res)
		case <-ctx.Done():
			break wait
		}
	}
	// Take the answers that came in with the deadline.
drain:
	for len(answered) < len(s.ready) {
		select {
		case res := <-results:
			take(res)
		default:
			break drain
		}
	}
	for _, c := range s.ready {
		if !answered[c.Name] {
			failing = append(failing, c.Name)
			s.log.LogAttrs(ctx, slog.LevelWarn, "readiness check did not answer in time",
				slog.String("check", c.Name), slog.Duration("timeout", s.checkTimeout))
		}
	}
	slices.Sort(failing)
	return failing
}

// runCheck runs c, turning a panic into an error so that one broken check
// cannot take the process down through a probe.
func runCheck(ctx context.Context, c Check) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("check panicked: %v", p)
		}
	}()
	return c.Check(ctx)
}

// noCache keeps proxies from answering probes with an old answer.
func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
}

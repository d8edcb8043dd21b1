package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/logtest"
)

// canary stands for a secret that a dependency's error might carry.
const canary = "canary-s3cret-7f3a"

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer = logtest.Buffer

func newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Gatherer == nil {
		opts.Gatherer = NewRegistry()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// get serves one request with the server's handler.
func get(t testing.TB, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func ok(context.Context) error { return nil }

func fail(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no gatherer", Options{}},
		{"check without a name", Options{Gatherer: NewRegistry(), Ready: []Check{{Check: ok}}}},
		{"check without a function", Options{Gatherer: NewRegistry(), Ready: []Check{{Name: "store"}}}},
		{"check twice", Options{Gatherer: NewRegistry(), Ready: []Check{{"store", ok}, {"store", ok}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Errorf("New(%+v) succeeded, want an error", tt.opts)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	h := newServer(t, Options{}).Handler()
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string // "" means not checked
	}{
		{"GET", "/healthz", http.StatusOK, "ok"},
		{"HEAD", "/healthz", http.StatusOK, ""},
		{"GET", "/readyz", http.StatusOK, `{"status":"ready"}` + "\n"},
		{"GET", "/metrics", http.StatusOK, ""},
		{"POST", "/healthz", http.StatusMethodNotAllowed, ""},
		{"DELETE", "/readyz", http.StatusMethodNotAllowed, ""},
		{"PUT", "/metrics", http.StatusMethodNotAllowed, ""},
		{"GET", "/", http.StatusNotFound, ""},
		{"GET", "/healthz/", http.StatusNotFound, ""},
		{"GET", "/admin", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := get(t, h, tt.method, tt.path)
			if rec.Code != tt.wantStatus {
				t.Errorf("%s %s status = %d, want %d", tt.method, tt.path, rec.Code, tt.wantStatus)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("%s %s body = %q, want %q", tt.method, tt.path, rec.Body.String(), tt.wantBody)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && !strings.Contains(rec.Header().Get("Allow"), "GET") {
				t.Errorf("%s %s Allow = %q, want GET in it", tt.method, tt.path, rec.Header().Get("Allow"))
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	secretErr := errors.New("dial redis://agenthub:" + canary + "@redis:6379/0: connection refused")
	tests := []struct {
		name       string
		checks     []Check
		wantStatus int
		wantBody   readiness
		wantLogged []string // substrings of the log
	}{
		{"no checks", nil, http.StatusOK, readiness{Status: "ready"}, nil},
		{"all pass", []Check{{"store", ok}, {"slack", ok}}, http.StatusOK, readiness{Status: "ready"}, nil},
		{
			"one fails", []Check{{"store", fail(secretErr)}, {"slack", ok}},
			http.StatusServiceUnavailable, readiness{Status: "not ready", Failing: []string{"store"}},
			[]string{"level=WARN", "check=store", canary},
		},
		{
			"two fail, sorted", []Check{{"store", fail(secretErr)}, {"slack", fail(errors.New("auth.test: invalid_auth"))}, {"llm", ok}},
			http.StatusServiceUnavailable, readiness{Status: "not ready", Failing: []string{"slack", "store"}},
			[]string{"check=slack", "invalid_auth"},
		},
		{
			"a check that panics", []Check{{"store", func(context.Context) error { panic("boom " + canary) }}},
			http.StatusServiceUnavailable, readiness{Status: "not ready", Failing: []string{"store"}},
			[]string{"check=store", "panicked"},
		},
		{
			"a check that times out", []Check{{"slack", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}, {"store", ok}},
			http.StatusServiceUnavailable, readiness{Status: "not ready", Failing: []string{"slack"}},
			[]string{"check=slack"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf syncBuffer
			s := newServer(t, Options{Ready: tt.checks, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
			s.checkTimeout = 50 * time.Millisecond
			rec := get(t, s.Handler(), "GET", "/readyz")
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			var got readiness
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if diff := cmp.Diff(tt.wantBody, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
			// Names only: no error text, and so no secret, goes over HTTP.
			if body := rec.Body.String(); strings.Contains(body, canary) || strings.Contains(body, "redis") || strings.Contains(body, "invalid_auth") {
				t.Errorf("body %q shows a check's error", body)
			}
			log := logBuf.String()
			for _, want := range tt.wantLogged {
				if !strings.Contains(log, want) {
					t.Errorf("log %q does not contain %q", log, want)
				}
			}
			if len(tt.wantLogged) == 0 && log != "" {
				t.Errorf("log = %q, want nothing when all checks pass", log)
			}
		})
	}
}

// TestReadyzAnswersDespiteAStuckCheck checks that a check ignoring its
// context makes /readyz say no rather than hang.
func TestReadyzAnswersDespiteAStuckCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	stuck := func(context.Context) error { <-release; return nil }
	s := newServer(t, Options{Ready: []Check{{"store", ok}, {"slack", stuck}}})
	s.checkTimeout = 20 * time.Millisecond

	rec := get(t, s.Handler(), "GET", "/readyz")
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want %d", rec.Code, http.StatusServiceUnavailable)
	}
	if got, want := rec.Body.String(), `{"status":"not ready","failing":["slack"]}`+"\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

// TestReadyzRunsChecksConcurrently checks that every check has started
// before any returns: run one after another, the checks would deadlock
// until the deadline and fail.
func TestReadyzRunsChecksConcurrently(t *testing.T) {
	const n = 3
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	check := func(ctx context.Context) error {
		started.Done()
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s := newServer(t, Options{Ready: []Check{{"a", check}, {"b", check}, {"c", check}}})
	s.checkTimeout = time.Minute // the test's own timeout catches a hang
	if rec := get(t, s.Handler(), "GET", "/readyz"); rec.Code != http.StatusOK {
		t.Errorf("status = %d, body %q; want %d", rec.Code, rec.Body.String(), http.StatusOK)
	}
}

// serve runs s in the background and returns a function that stops it and
// returns Run's error.
func serve(t testing.TB, s *Server) (stop func() error) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestRunServesUntilCanceled(t *testing.T) {
	s := newServer(t, Options{Addr: "127.0.0.1:0"})
	if got := s.Addr(); got != "" {
		t.Errorf("Addr before Listen = %q, want empty", got)
	}
	stop := serve(t, s)
	addr := s.Addr()
	if code, body := httpGet(t, "http://"+addr+"/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("GET /healthz = %d %q, want 200 \"ok\"", code, body)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", addr)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded, want an error")
	}
}

// TestRunListensItself checks Run without Listen.
func TestRunListensItself(t *testing.T) {
	s := newServer(t, Options{Addr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Poll for the address: Run gives no other sign that it listens.
	deadline := time.Now().Add(10 * time.Second)
	for s.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("Run did not listen")
		}
		time.Sleep(time.Millisecond)
	}
	if code, _ := httpGet(t, "http://"+s.Addr()+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

// TestRunFinishesRequestsInFlight checks the graceful shutdown: a request
// being served when ctx ends still gets its answer.
func TestRunFinishesRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context) error {
		close(entered)
		<-release
		return ctx.Err()
	}
	s := newServer(t, Options{Addr: "127.0.0.1:0", Ready: []Check{{"store", slow}}})
	s.checkTimeout = time.Minute
	stop := serve(t, s)

	type answer struct {
		code int
		body string
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/readyz")
		if err != nil {
			answered <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(b)}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Shutdown closes the listener first: once it refuses connections,
	// shutdown is under way and the request is still in flight.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener stayed open after ctx ended")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if got, want := <-answered, (answer{http.StatusOK, `{"status":"ready"}` + "\n"}); got != want {
		t.Errorf("request in flight at shutdown got %+v, want %+v", got, want)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

func TestRunPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()

	s := newServer(t, Options{Addr: addr})
	// Run must return at once, without ctx ending.
	err = s.Run(context.Background())
	if err == nil {
		t.Fatalf("Run on a taken port %s succeeded", addr)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("Run error %q does not name the address %s", err, addr)
	}
}

func TestListenRequiresAddr(t *testing.T) {
	s := newServer(t, Options{})
	if err := s.Listen(); err == nil {
		t.Error("Listen without an address succeeded")
	}
}

// TestPublicListener: the public listener serves its own routes and none of
// the operator's, unless a person put both on one address.
func TestPublicListener(t *testing.T) {
	public := http.NewServeMux()
	public.HandleFunc("GET /connect", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "connect page") })

	apart := NewPublic("127.0.0.1:0", public, nil).Handler()
	if rec := get(t, apart, "GET", "/connect"); rec.Code != http.StatusOK || rec.Body.String() != "connect page" {
		t.Errorf("public /connect = %d %q", rec.Code, rec.Body.String())
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if rec := get(t, apart, "GET", path); rec.Code != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404: the operator's endpoints are not public", path, rec.Code)
		}
	}

	together := newServer(t, Options{Public: public}).Handler()
	for path, want := range map[string]int{"/connect": http.StatusOK, "/healthz": http.StatusOK, "/nowhere": http.StatusNotFound} {
		if rec := get(t, together, "GET", path); rec.Code != want {
			t.Errorf("one listener: %s = %d, want %d", path, rec.Code, want)
		}
	}
}

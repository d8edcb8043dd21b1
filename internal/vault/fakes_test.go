package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
)

// tokenServer is an OAuth token endpoint (POST /token, grant_type
// refresh_token) that rotates refresh tokens: each is valid once, and
// reusing one gets 400 invalid_grant. It issues access tokens that expire
// after ttl, and counts its calls.
type tokenServer struct {
	*httptest.Server
	prefix string        // token prefix, e.g. "CANARY-"
	ttl    time.Duration // access token lifetime
	delay  time.Duration // widens the window in which concurrent refreshes would overlap
	// onRefresh, if set, runs before a refresh is answered; returning true
	// means it has answered.
	onRefresh func(w http.ResponseWriter, refresh string) bool
	// errorDescription is sent with invalid_grant, to check the vault does
	// not repeat what the provider says.
	errorDescription string

	calls atomic.Int64
	mu    sync.Mutex
	n     int
	valid map[string]bool      // live refresh tokens
	acc   map[string]time.Time // access token → expiry
}

func newTokenServer(tb testing.TB, prefix string) *tokenServer {
	tb.Helper()
	ts := &tokenServer{prefix: prefix, ttl: time.Hour, valid: map[string]bool{}, acc: map[string]time.Time{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	tb.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	ts.calls.Add(1)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("client_id") != "client" || r.PostForm.Get("client_secret") != "client-secret" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	rt := r.PostForm.Get("refresh_token")
	if ts.delay > 0 {
		time.Sleep(ts.delay)
	}
	if ts.onRefresh != nil && ts.onRefresh(w, rt) {
		return
	}
	ts.mu.Lock()
	ok := ts.valid[rt]
	delete(ts.valid, rt)
	var access, refresh string
	if ok {
		access, refresh = ts.mintLocked()
	}
	ts.mu.Unlock()
	if !ok {
		body := map[string]string{"error": "invalid_grant"}
		if ts.errorDescription != "" {
			body["error_description"] = ts.errorDescription
		}
		writeJSON(w, http.StatusBadRequest, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": int(ts.ttl / time.Second),
	})
}

func (ts *tokenServer) mintLocked() (access, refresh string) {
	ts.n++
	access = fmt.Sprintf("%sACCESS-%d", ts.prefix, ts.n)
	refresh = fmt.Sprintf("%sREFRESH-%d", ts.prefix, ts.n)
	ts.valid[refresh] = true
	ts.acc[access] = time.Now().Add(ts.ttl)
	return access, refresh
}

// initial returns a token for Connect whose access token has already
// expired (also at the API), so the first use must refresh.
func (ts *tokenServer) initial() *oauth2.Token {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	access, refresh := ts.mintLocked()
	ts.acc[access] = time.Now().Add(-time.Hour)
	return &oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: time.Now().Add(-time.Hour)}
}

// fresh returns a token for Connect that needs no refresh.
func (ts *tokenServer) fresh() *oauth2.Token {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	access, refresh := ts.mintLocked()
	return &oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: ts.acc[access]}
}

// revoke invalidates a refresh token, as a provider does when the person
// revokes the app.
func (ts *tokenServer) revoke(refresh string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.valid, refresh)
}

// expireAccess makes the API refuse an access token from now on, before
// the expiry it was issued with: a provider revoking or expiring it early.
func (ts *tokenServer) expireAccess(access string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.acc[access] = time.Now().Add(-time.Second)
}

// refreshValid reports whether the refresh token is live here.
func (ts *tokenServer) refreshValid(refresh string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.valid[refresh]
}

// accessValid reports whether the access token was issued here and has not
// expired.
func (ts *tokenServer) accessValid(access string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.acc[access]
	return ok && time.Now().Before(exp)
}

func (ts *tokenServer) oauthConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID: "client", ClientSecret: "client-secret",
		Endpoint: oauth2.Endpoint{TokenURL: ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiServer is a provider API: it answers 200 to requests carrying a valid
// Bearer token from its token server and 401 otherwise, and counts calls
// and the tokens it saw. GET /redirect/P answers (with a valid token) with
// a redirect to /P.
type apiServer struct {
	*httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	seen  map[string]int // access token → requests
	other []string       // headers other than Authorization that leaked a token
	// onCall, if set, runs first for every request.
	onCall func(r *http.Request)
}

func newAPIServer(tb testing.TB, tokens *tokenServer) *apiServer {
	tb.Helper()
	return newAPIServerWith(tb, tokens.accessValid)
}

// newAPIServerWith is an API that takes the access tokens valid says are.
func newAPIServerWith(tb testing.TB, valid func(string) bool) *apiServer {
	tb.Helper()
	api := &apiServer{seen: map[string]int{}}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.calls.Add(1)
		if api.onCall != nil {
			api.onCall(r)
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		api.mu.Lock()
		api.seen[tok]++
		api.mu.Unlock()
		// /forbidden-path answers 401 to every token, as GitHub's GET /app
		// does to a user's.
		if !ok || !valid(tok) || r.URL.Path == "/forbidden-path" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
			return
		}
		if target, ok := strings.CutPrefix(r.URL.Path, "/redirect"); ok {
			// A redirect on the same host, which the lease's client follows.
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path})
	}))
	tb.Cleanup(api.Close)
	return api
}

func (api *apiServer) host() string { return api.Listener.Addr().String() }

func (api *apiServer) seenTokens() map[string]int {
	api.mu.Lock()
	defer api.mu.Unlock()
	out := make(map[string]int, len(api.seen))
	for k, v := range api.seen {
		out[k] = v
	}
	return out
}

// fakeRecorder is an audit.Recorder double that keeps events in memory and
// fails every Record while fail is set, and every Record of a kind in
// failKinds.
type fakeRecorder struct {
	mu        sync.Mutex
	events    []audit.Event
	fail      error
	failKinds map[audit.Kind]error
}

func (r *fakeRecorder) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return audit.Event{}, r.fail
	}
	if err := r.failKinds[e.Kind]; err != nil {
		return audit.Event{}, err
	}
	if err := ctx.Err(); err != nil {
		return audit.Event{}, err
	}
	e.Seq = uint64(len(r.events) + 1)
	e.Time = time.Now().UTC()
	r.events = append(r.events, e)
	return e, nil
}

func (r *fakeRecorder) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// setFailKind makes Record fail for events of kind k (nil: succeed again).
func (r *fakeRecorder) setFailKind(k audit.Kind, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failKinds == nil {
		r.failKinds = map[audit.Kind]error{}
	}
	r.failKinds[k] = err
}

// kinds returns how many events of each kind were recorded.
func (r *fakeRecorder) kinds() map[audit.Kind]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[audit.Kind]int{}
	for _, e := range r.events {
		out[e.Kind]++
	}
	return out
}

func (r *fakeRecorder) ofKind(k audit.Kind) []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []audit.Event
	for _, e := range r.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

var errAuditDown = errors.New("audit store unavailable")

// flakyStore fails chosen operations, as a Redis hiccup would, and counts
// the connection writes and lock attempts it sees.
type flakyStore struct {
	store.Store
	failLeaseDelete atomic.Bool
	failConnCAS     atomic.Int64 // how many connection compare-and-swaps to fail
	connCAS         atomic.Int64 // connection compare-and-swaps attempted
	lockCreates     atomic.Int64 // lock acquisition attempts
}

var errFlaky = errors.New("flaky: i/o timeout")

func (s *flakyStore) Delete(ctx context.Context, k store.Key) error {
	if k.Kind == LeaseKind && s.failLeaseDelete.Load() {
		return errFlaky
	}
	return s.Store.Delete(ctx, k)
}

func (s *flakyStore) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	if k.Kind == ConnectionKind {
		s.connCAS.Add(1)
		if s.failConnCAS.Add(-1) >= 0 {
			return errFlaky
		}
	}
	return s.Store.CompareAndSwap(ctx, k, old, next, ttl)
}

func (s *flakyStore) Create(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if k.Kind == store.LockKind {
		s.lockCreates.Add(1)
	}
	return s.Store.Create(ctx, k, value, ttl)
}

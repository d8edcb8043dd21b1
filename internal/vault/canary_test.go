package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// TestCanary sends distinctive tokens through every path of the vault —
// connect, refresh, leases, provider calls, a redirect, a failing token
// endpoint, invalid_grant, revocation with a hook whose error quotes both
// tokens — and checks that they reach the provider but appear nowhere else:
// not in the slog output, the audit export, any error string, anything
// reachable from the responses and errors the lease's client returns (their
// Request, every header, earlier redirect hops), nor, in the clear, in the
// raw store.
func TestCanary(t *testing.T) {
	backends := []struct {
		name string
		// open returns the store and a function returning its raw bytes
		// once the flow is done.
		open func(t *testing.T) (store.Store, func() []byte)
	}{
		{"memory", func(t *testing.T) (store.Store, func() []byte) {
			m := memstore.New(memstore.Options{})
			return m, m.Dump
		}},
		{"bolt file", func(t *testing.T) (store.Store, func() []byte) {
			path := filepath.Join(t.TempDir(), "canary.db")
			st, err := boltstore.Open(path, boltstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return st, func() []byte {
				if err := st.Close(); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			runCanary(t, bk.open)
		})
	}
}

func runCanary(t *testing.T, open func(t *testing.T) (store.Store, func() []byte)) {
	ctx := context.Background()
	f := newFixture(t, "CANARY-")
	// A careless provider repeats the refresh token in its error text.
	f.tokens.errorDescription = "refresh token CANARY-REFRESH-1 was revoked"
	st, raw := open(t)

	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := newRecorder(t, st, audit.Options{Logger: logger})

	var hookSaw [][2]string
	var hookMu sync.Mutex
	v := f.vault(t, st, rec, mustKeys(t, testKey('a')), func(o *Options) {
		o.Logger = logger
		for i := range o.Services {
			o.Services[i].Revoke = func(ctx context.Context, access, refresh secret.Secret) error {
				hookMu.Lock()
				hookSaw = append(hookSaw, [2]string{access.Reveal(), refresh.Reveal()})
				hookMu.Unlock()
				f.tokens.revoke(refresh.Reveal())
				// A careless hook: its error quotes both tokens, as net/http
				// does when the revocation URL carries them.
				return &url.Error{Op: "Post", URL: "https://provider.test/revoke?token=" + refresh.Reveal() + "&access=" + access.Reveal(), Err: errors.New("connection refused")}
			}
		}
	})

	// Everything the lease's client hands back, walked at the end.
	var returned []any
	do := func(l *Lease, url string) (int, error) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := l.Client().Do(req)
		returned = append(returned, resp, err)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	var errs []error
	expect := func(what string, err error, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: error = %q, want %v", what, maskCanaries(fmt.Sprint(err)), want)
		}
		errs = append(errs, err)
	}

	// Connect with an expired access token; the first refresh fails with a
	// 500 whose body repeats the refresh token, the second succeeds.
	mustConnect(t, v, alice, "github", f.tokens.initial()) // CANARY-ACCESS-1, CANARY-REFRESH-1
	var failOnce atomic.Bool
	f.tokens.onRefresh = func(w http.ResponseWriter, rt string) bool {
		if failOnce.CompareAndSwap(false, true) {
			http.Error(w, "internal error while rotating "+rt, http.StatusInternalServerError)
			return true
		}
		return false
	}
	l, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github", Scopes: []string{"repo"}, Resource: "acme/payments", RequestID: "req-canary"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = do(l, f.api.URL+"/user")
	if err == nil {
		t.Fatal("request through a failing token endpoint succeeded")
	}
	errs = append(errs, err)
	for _, path := range []string{"/user", "/repos/acme/payments?access_token=query-is-not-logged", "/redirect/user"} {
		if status, err := do(l, f.api.URL+path); err != nil || status != http.StatusOK {
			t.Fatalf("GET %s = %d, %q", path, status, maskCanaries(fmt.Sprint(err)))
		}
	}
	_, err = do(l, "http://127.0.0.2:1/elsewhere")
	expect("other host", err, ErrHostNotAllowed)
	_, err = v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github", Scopes: []string{"admin:org"}})
	expect("missing scope", err, ErrInsufficientScope)

	// invalid_grant on a second connection.
	google := f.tokens.initial()
	mustConnect(t, v, alice, "google", google)
	f.tokens.revoke(google.RefreshToken)
	lg, err := v.Lease(ctx, LeaseRequest{Principal: alice, Service: "google"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = do(lg, f.api.URL+"/calendar")
	expect("invalid_grant", err, ErrReconnect)

	// Revocation with a hook that fails, quoting the tokens, then the dead
	// lease.
	err = v.Revoke(ctx, alice, "github")
	expect("Revoke with a failing hook", err, ErrProviderRevoke)
	_, err = do(l, f.api.URL+"/user")
	expect("after revocation", err, ErrLeaseRevoked)
	_, err = v.Lease(ctx, LeaseRequest{Principal: alice, Service: "github"})
	expect("lease after revocation", err, ErrNotConnected)

	// A key rotation: RekeyAll under a new key with the old one listed,
	// then under a keyring that lacks the key the records now name (its
	// errors are checked with the others below).
	mustConnect(t, v, bob, "github", f.tokens.fresh())
	withLogger := func(o *Options) { o.Logger = logger }
	if n, err := f.vault(t, st, rec, mustKeys(t, testKey('b'), testKey('a')), withLogger).RekeyAll(ctx, nil); err != nil || n == 0 {
		t.Fatalf("RekeyAll under a new key = %d, %q; want records resealed", n, maskCanaries(fmt.Sprint(err)))
	}
	lost := f.vault(t, st, rec, mustKeys(t, testKey('c')), withLogger)
	_, err = lost.RekeyAll(ctx, nil)
	expect("RekeyAll without the key", err, ErrUnknownKey)
	sealedBy, err := lost.SealedByKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("sealed by key", "counts", sealedBy)

	// Metadata, printed every way a careless caller might.
	conns, err := v.Connections(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("connections", "conns", conns, "printed", fmt.Sprintf("%+v %#v", conns, conns))

	// Positive controls: the tokens did flow where they must.
	if got := f.api.seenTokens()["CANARY-ACCESS-2"]; got != 4 {
		t.Errorf("API saw the refreshed canary access token %d times, want 4 (two GETs, a redirect and its target)", got)
	}
	hookMu.Lock()
	if len(hookSaw) != 1 || hookSaw[0] != [2]string{"CANARY-ACCESS-2", "CANARY-REFRESH-2"} {
		t.Errorf("revocation hook was called %d times; want once, with the refreshed canary access and refresh tokens", len(hookSaw))
	}
	hookMu.Unlock()

	var export bytes.Buffer
	n, err := audit.Export(ctx, st, audit.DefaultLog, 0, &export)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []audit.Kind{audit.ConnectionCreated, audit.TokenIssued, audit.TokenRefreshed, audit.ProviderRequested, audit.ProviderCalled, audit.ConnectionExpired, audit.ConnectionRevoked} {
		if !strings.Contains(export.String(), `"`+string(kind)+`"`) {
			t.Errorf("audit export lacks a %s event", kind)
		}
	}
	if n < 8 {
		t.Errorf("audit export has %d events, want at least 8", n)
	}

	var errText strings.Builder
	for _, err := range errs {
		fmt.Fprintf(&errText, "%v\n%+v\n%#v\n", err, err, err.Error())
	}
	logMu.Lock()
	logText := logs.String()
	logMu.Unlock()
	rawStore := raw()
	reached := reachableText(returned...)
	if len(rawStore) == 0 || !strings.Contains(logText, "provider.called") || !strings.Contains(reached, "/redirect/user") {
		t.Fatal("nothing captured: the checks below would pass vacuously")
	}
	tokens := []string{"CANARY-ACCESS", "CANARY-REFRESH"}
	withQuery := []string{"CANARY-ACCESS", "CANARY-REFRESH", "query-is-not-logged"}
	places := []struct {
		name     string
		text     []byte
		canaries []string
	}{
		{"slog output", []byte(logText), withQuery},
		{"audit export", export.Bytes(), withQuery},
		{"error strings", []byte(errText.String()), withQuery},
		// The agent's own request, query included, comes back to it in
		// resp.Request; only the tokens must not.
		{"responses and errors of the lease's client", []byte(reached), tokens},
		{"raw store", rawStore, withQuery},
	}
	for _, p := range places {
		for _, canary := range p.canaries {
			if i := bytes.Index(p.text, []byte(canary)); i >= 0 {
				// Say where, never what: the context would print the token.
				t.Errorf("%s contains %s at byte %d", p.name, canary, i)
			}
		}
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

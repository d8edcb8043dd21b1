package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

const (
	alice = "T1:U1"
	bob   = "T1:U2"
)

// testKey returns a base64 vault key made of one repeated byte.
func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, secret.KeySize))
}

func mustKeys(tb testing.TB, current string, old ...string) *secret.Keyring {
	tb.Helper()
	kr, err := secret.ParseKeys(current, old)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// keyID returns the ID of the base64 key k.
func keyID(tb testing.TB, k string) string {
	tb.Helper()
	return mustKeys(tb, k).CurrentKeyID()
}

// testHTTPClient bounds connections so a thousand goroutines share a pool
// instead of opening a thousand sockets.
func testHTTPClient(tb testing.TB) *http.Client {
	tb.Helper()
	tr := &http.Transport{MaxConnsPerHost: 32, MaxIdleConnsPerHost: 32, IdleConnTimeout: time.Minute}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// fixture is a token endpoint, a provider API and the services that use
// them.
type fixture struct {
	tokens *tokenServer
	api    *apiServer
	client *http.Client
}

func newFixture(tb testing.TB, prefix string) *fixture {
	tb.Helper()
	tokens := newTokenServer(tb, prefix)
	return &fixture{tokens: tokens, api: newAPIServer(tb, tokens), client: testHTTPClient(tb)}
}

// services are "github" and "google", both served by the fixture's fake
// endpoints (two services let tests move ciphertexts between them).
func (f *fixture) services(revoke func(ctx context.Context, access, refresh secret.Secret) error) []Service {
	return []Service{
		{Name: "github", APIHosts: []string{f.api.host()}, OAuth: f.tokens.oauthConfig(), Revoke: revoke},
		{Name: "google", APIHosts: []string{f.api.host()}, OAuth: f.tokens.oauthConfig(), Revoke: revoke},
	}
}

// vault returns a vault on st; mod may adjust the options.
func (f *fixture) vault(tb testing.TB, st store.Store, rec Recorder, keys *secret.Keyring, mod ...func(*Options)) *Vault {
	tb.Helper()
	opts := Options{
		Store: st, Keys: keys, Audit: rec, HTTPClient: f.client,
		Services: f.services(func(ctx context.Context, _, refresh secret.Secret) error {
			f.tokens.revoke(refresh.Reveal())
			return nil
		}),
	}
	for _, m := range mod {
		m(&opts)
	}
	v, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// get sends GET url through the lease's client and returns the status.
func get(ctx context.Context, l *Lease, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := l.Client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func mustConnect(tb testing.TB, v *Vault, principal, service string, tok *oauth2.Token) {
	tb.Helper()
	if err := v.Connect(context.Background(), principal, service, []string{"repo", "read:org"}, tok); err != nil {
		tb.Fatalf("Connect: %v", err)
	}
}

func mustLease(tb testing.TB, v *Vault, principal, service string) *Lease {
	tb.Helper()
	l, err := v.Lease(context.Background(), LeaseRequest{Principal: principal, Service: service, Scopes: []string{"repo"}, Resource: "acme/payments", RequestID: "req-1"})
	if err != nil {
		tb.Fatalf("Lease: %v", err)
	}
	return l
}

// storedRecord reads and decodes the connection record as stored.
func storedRecord(tb testing.TB, st store.Store, principal, service string) connRecord {
	tb.Helper()
	it, err := st.Get(context.Background(), connKey(principal, service))
	if err != nil {
		tb.Fatalf("reading stored connection: %v", err)
	}
	var rec connRecord
	if err := json.Unmarshal(it.Value, &rec); err != nil {
		tb.Fatal(err)
	}
	return rec
}

func openBolt(tb testing.TB) store.Store {
	tb.Helper()
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "vault.db"), boltstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// openRedis returns two clients (two "processes") on one test Redis.
func openRedis(tb testing.TB) (store.Store, store.Store) {
	tb.Helper()
	open := redistest.Open(tb)
	return open(), open()
}

func newRecorder(tb testing.TB, st store.Store, opts audit.Options) *audit.Recorder {
	tb.Helper()
	r, err := audit.NewRecorder(st, bytes.Repeat([]byte{'k'}, 32), opts)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

package vault

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func TestRevokeStopsLiveLeases(t *testing.T) {
	backends := []struct {
		name string
		// open returns the stores of the revoking vault and of the vault
		// that holds the lease (the same store seen by two processes).
		open func(t *testing.T) (store.Store, store.Store)
		// sameVault revokes from the vault that holds the lease.
		sameVault bool
	}{
		{"same vault", func(t *testing.T) (store.Store, store.Store) { s := memstore.New(memstore.Options{}); return s, s }, true},
		{"second vault, shared store", func(t *testing.T) (store.Store, store.Store) { s := memstore.New(memstore.Options{}); return s, s }, false},
		{"second vault, shared Redis", func(t *testing.T) (store.Store, store.Store) { return openRedis(t) }, false},
		{"second vault, shared bolt file", func(t *testing.T) (store.Store, store.Store) { s := openBolt(t); return s, s }, false},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, "")
			stRevoker, stHolder := bk.open(t)
			keys := mustKeys(t, testKey('a'))
			var (
				mu      sync.Mutex
				revoked [][2]string // access, refresh
			)
			revokeHook := func(o *Options) {
				for i := range o.Services {
					o.Services[i].Revoke = func(ctx context.Context, access, refresh secret.Secret) error {
						mu.Lock()
						defer mu.Unlock()
						revoked = append(revoked, [2]string{access.Reveal(), refresh.Reveal()})
						f.tokens.revoke(refresh.Reveal())
						return nil
					}
				}
			}
			rec := &fakeRecorder{}
			holder := f.vault(t, stHolder, &fakeRecorder{}, keys, revokeHook)
			revoker := holder
			if !bk.sameVault {
				revoker = f.vault(t, stRevoker, rec, keys, revokeHook)
			} else {
				holder.audit = rec
			}
			tok := f.tokens.fresh()
			mustConnect(t, holder, alice, "github", tok)
			mustConnect(t, holder, alice, "google", f.tokens.fresh())
			l := mustLease(t, holder, alice, "github")
			other := mustLease(t, holder, alice, "google")
			if _, err := get(ctx, l, f.api.URL+"/warm"); err != nil { // the token is now cached in the holder
				t.Fatal(err)
			}
			before := f.api.calls.Load()

			if err := revoker.Revoke(ctx, alice, "github"); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if _, err := get(ctx, l, f.api.URL+"/after"); !errors.Is(err, ErrLeaseRevoked) {
				t.Fatalf("request after revocation: error = %v, want ErrLeaseRevoked", err)
			}
			if got := f.api.calls.Load(); got != before {
				t.Errorf("API calls after revocation = %d, want 0", got-before)
			}
			if _, err := holder.Lease(ctx, LeaseRequest{Principal: alice, Service: "github"}); !errors.Is(err, ErrNotConnected) {
				t.Errorf("Lease after revocation: error = %v, want ErrNotConnected", err)
			}
			// Other services are untouched.
			if _, err := get(ctx, other, f.api.URL+"/google"); err != nil {
				t.Errorf("lease on another service: %v", err)
			}

			c, err := holder.Connection(ctx, alice, "github")
			if err != nil || c.Status != StatusRevoked {
				t.Errorf("connection = %+v, %v; want status revoked", c, err)
			}
			if r := storedRecord(t, stRevoker, alice, "github"); len(r.Sealed) != 0 || r.KeyID != "" {
				t.Error("the revoked connection still holds a sealed token")
			}
			mu.Lock()
			if len(revoked) != 1 || revoked[0] != [2]string{tok.AccessToken, tok.RefreshToken} {
				t.Errorf("provider hook called %d times; want once with the connection's access and refresh tokens", len(revoked))
			}
			mu.Unlock()
			events := rec.ofKind(audit.ConnectionRevoked)
			if len(events) != 1 || events[0].Detail["provider_revoke"] != "ok" || events[0].Detail["leases_deleted"] != "1" {
				t.Errorf("connection.revoked events = %+v, want one with provider_revoke ok and 1 lease deleted", events)
			}

			// Revoking again is harmless and does not call the provider.
			if err := revoker.Revoke(ctx, alice, "github"); err != nil {
				t.Errorf("second Revoke: %v", err)
			}
			mu.Lock()
			if len(revoked) != 1 {
				t.Errorf("provider hook called %d times, want 1", len(revoked))
			}
			mu.Unlock()
		})
	}
}

func TestRevokeHookFailureKeepsLocalRevocation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	rec := &fakeRecorder{}
	hookErr := errors.New("provider unavailable")
	v := f.vault(t, memstore.New(memstore.Options{}), rec, mustKeys(t, testKey('a')), func(o *Options) {
		o.Services[0].Revoke = func(context.Context, secret.Secret, secret.Secret) error { return hookErr }
	})
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	l := mustLease(t, v, alice, "github")
	err := v.Revoke(ctx, alice, "github")
	if !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("Revoke error = %v, want ErrProviderRevoke", err)
	}
	// The hook's error is described, never wrapped: its text may quote a
	// token.
	if errors.Is(err, hookErr) || strings.Contains(err.Error(), hookErr.Error()) {
		t.Errorf("Revoke error = %v, want it not to carry the hook's error", err)
	}
	if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, ErrLeaseRevoked) {
		t.Errorf("request after revocation: error = %v, want ErrLeaseRevoked", err)
	}
	if c, _ := v.Connection(ctx, alice, "github"); c.Status != StatusRevoked {
		t.Errorf("status = %s, want revoked", c.Status)
	}
	if ev := rec.ofKind(audit.ConnectionRevoked); len(ev) != 1 || ev[0].Detail["provider_revoke"] != "queued" {
		t.Errorf("connection.revoked events = %+v, want one with provider_revoke queued (to be retried)", ev)
	}
}

func TestRevokeAll(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')))
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	mustConnect(t, v, alice, "google", f.tokens.fresh())
	mustConnect(t, v, bob, "github", f.tokens.fresh())
	leases := []*Lease{mustLease(t, v, alice, "github"), mustLease(t, v, alice, "google")}
	bobs := mustLease(t, v, bob, "github")
	// A damaged record must not stop the panic button.
	if err := st.Put(ctx, connKey(alice, "google"), []byte("garbage"), 0); err != nil {
		t.Fatal(err)
	}

	if err := v.RevokeAll(ctx, alice); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("RevokeAll error = %v, want one reporting the damaged record", err)
	}
	for _, l := range leases {
		if _, err := get(ctx, l, f.api.URL+"/x"); !errors.Is(err, ErrLeaseRevoked) {
			t.Errorf("%s lease after RevokeAll: error = %v, want ErrLeaseRevoked", l.Service, err)
		}
	}
	if c, err := v.Connection(ctx, alice, "github"); err != nil || c.Status != StatusRevoked {
		t.Errorf("github connection = %+v, %v; want revoked", c, err)
	}
	if _, err := get(ctx, bobs, f.api.URL+"/x"); err != nil {
		t.Errorf("another principal's lease: %v", err)
	}
	if f.api.calls.Load() != 1 {
		t.Errorf("API calls = %d, want only bob's", f.api.calls.Load())
	}
}

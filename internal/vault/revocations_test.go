package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// flakyProvider is a provider's revocation endpoint that can be down, and
// remembers the refresh tokens it revoked.
type flakyProvider struct {
	mu      sync.Mutex
	down    bool
	revoked []string
	calls   atomic.Int32
}

func (p *flakyProvider) revoke(_ context.Context, _, refresh secret.Secret) error {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return &statusErr{503}
	}
	p.revoked = append(p.revoked, refresh.Reveal())
	return nil
}

func (p *flakyProvider) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

type statusErr struct{ code int }

func (e *statusErr) Error() string   { return fmt.Sprintf("provider answered %d", e.code) }
func (e *statusErr) StatusCode() int { return e.code }

// A revocation the provider does not confirm stays revoked here, is
// queued with its tokens sealed, and is asked again, with growing pauses,
// until the provider confirms it; that is on the record.
func TestRevocationRetriedUntilConfirmed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	prov := &flakyProvider{down: true}
	rec := &fakeRecorder{}
	st := memstore.New(memstore.Options{})
	v := f.vault(t, st, rec, mustKeys(t, testKey('a')), func(o *Options) {
		o.Now = clock.Now
		for i := range o.Services {
			o.Services[i].Revoke = prov.revoke
		}
	})
	tok := f.tokens.fresh()
	mustConnect(t, v, alice, "github", tok)

	err := v.Revoke(ctx, alice, "github")
	if !errors.Is(err, ErrProviderRevoke) || !strings.Contains(err.Error(), "queued") || strings.Contains(err.Error(), tok.RefreshToken) {
		t.Fatalf("Revoke with the provider down = %v; want ErrProviderRevoke saying it is queued, with no token", err)
	}
	if c, err := v.Connection(ctx, alice, "github"); err != nil || c.Status != StatusRevoked {
		t.Fatalf("connection = %s, %v; want revoked here whatever the provider said", c.Status, err)
	}
	if ev := rec.ofKind(audit.ConnectionRevoked); len(ev) != 1 || ev[0].Detail["provider_revoke"] != "queued" {
		t.Errorf("connection.revoked = %+v, want provider_revoke=queued", ev)
	}
	items, _ := st.List(ctx, "", RevocationKind)
	if len(items) != 1 || strings.Contains(string(items[0].Value), tok.RefreshToken) || strings.Contains(string(items[0].Value), tok.AccessToken) {
		t.Fatalf("queue = %d record(s); want one, holding no token in the clear", len(items))
	}

	if res, err := v.RetryRevocations(ctx); err != nil || res != (RetryResult{Waiting: 1}) {
		t.Fatalf("retry before it is due = %+v, %v; want it waiting", res, err)
	}
	clock.Advance(time.Minute)
	if res, err := v.RetryRevocations(ctx); !errors.Is(err, ErrProviderRevoke) || res != (RetryResult{Failed: 1}) {
		t.Fatalf("retry with the provider still down = %+v, %v; want one failure", res, err)
	}
	clock.Advance(time.Minute) // the second retry waits two minutes
	if res, _ := v.RetryRevocations(ctx); res != (RetryResult{Waiting: 1}) {
		t.Fatalf("retry a minute after the second failure = %+v, want it waiting (backoff)", res)
	}
	prov.setDown(false)
	clock.Advance(time.Minute)
	if res, err := v.RetryRevocations(ctx); err != nil || res != (RetryResult{Revoked: 1}) {
		t.Fatalf("retry with the provider up = %+v, %v; want it revoked", res, err)
	}
	if len(prov.revoked) != 1 || prov.revoked[0] != tok.RefreshToken {
		t.Errorf("the provider revoked %d token(s), want the connection's refresh token", len(prov.revoked))
	}
	if n, _ := v.QueuedRevocations(ctx); n != 0 {
		t.Errorf("queued after the provider confirmed = %d, want 0", n)
	}
	if ev := rec.ofKind(audit.ProviderRevoked); len(ev) != 1 || ev[0].Detail["attempts"] != "3" || ev[0].Actor != alice {
		t.Errorf("connection.provider_revoked = %+v, want one, after 3 attempts", ev)
	}
}

// Processes sharing the store retry a queued revocation once between them.
func TestRevocationRetryClaimedOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	prov := &flakyProvider{down: true}
	st := memstore.New(memstore.Options{})
	mod := func(o *Options) {
		o.Now = clock.Now
		for i := range o.Services {
			o.Services[i].Revoke = prov.revoke
		}
	}
	vs := []*Vault{f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), mod), f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), mod)}
	mustConnect(t, vs[0], alice, "github", f.tokens.fresh())
	vs[0].Revoke(ctx, alice, "github")
	prov.setDown(false)
	clock.Advance(time.Hour)
	before := prov.calls.Load()
	var wg sync.WaitGroup
	for _, v := range vs {
		wg.Go(func() { v.RetryRevocations(ctx) })
	}
	wg.Wait()
	if got := prov.calls.Load() - before; got != 1 {
		t.Errorf("provider asked %d time(s) by two processes, want 1", got)
	}
}

// A queued revocation's ciphertext is bound to its record: moved under
// another ID it does not open, and nothing is sent.
func TestQueuedRevocationBoundToItsRecord(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	prov := &flakyProvider{down: true}
	st := memstore.New(memstore.Options{})
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		o.Now = clock.Now
		for i := range o.Services {
			o.Services[i].Revoke = prov.revoke
		}
	})
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	v.Revoke(ctx, alice, "github")
	items, _ := st.List(ctx, "", RevocationKind)
	st.Delete(ctx, items[0].Key)
	if err := st.Put(ctx, store.Key{Kind: RevocationKind, ID: "moved"}, items[0].Value, 0); err != nil {
		t.Fatal(err)
	}
	prov.setDown(false)
	clock.Advance(time.Hour)
	before := prov.calls.Load()
	if _, err := v.RetryRevocations(ctx); err == nil {
		t.Error("a moved queued revocation opened")
	}
	if prov.calls.Load() != before {
		t.Error("the provider was called with tokens from a moved record")
	}
}

// The tokens are in the queue while the provider is asked, for a revoke
// and for a replaced account alike: a process killed during the call
// leaves them to a retry. The provider's confirmation empties the queue.
func TestRevocationQueuedWhileProviderAsked(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	var queuedDuringCall []int
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		for i := range o.Services {
			o.Services[i].Revoke = func(ctx context.Context, _, _ secret.Secret) error {
				items, _ := st.List(ctx, "", RevocationKind)
				queuedDuringCall = append(queuedDuringCall, len(items))
				return nil
			}
		}
	})
	if _, err := v.ConnectAccount(ctx, alice, "github", "octocat", "", nil, f.tokens.fresh()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ConnectAccount(ctx, alice, "github", "hubot", "", nil, f.tokens.fresh()); err != nil {
		t.Fatal(err)
	}
	if err := v.Revoke(ctx, alice, "github"); err != nil {
		t.Fatal(err)
	}
	if len(queuedDuringCall) != 2 || queuedDuringCall[0] != 1 || queuedDuringCall[1] != 1 {
		t.Errorf("records queued while the provider was asked = %v, want [1 1] (replaced account, then revoke)", queuedDuringCall)
	}
	if n, _ := v.QueuedRevocations(ctx); n != 0 {
		t.Errorf("queued after the provider confirmed = %d, want 0", n)
	}
}

type rotated struct{ access, refresh secret.Secret }

func (r *rotated) Error() string                                 { return "provider answered 500 after a refresh" }
func (r *rotated) StatusCode() int                               { return 500 }
func (r *rotated) RotatedTokens() (secret.Secret, secret.Secret) { return r.access, r.refresh }

// A hook that refreshed the tokens before failing spent the old refresh
// token: the retry asks with the rotated ones.
func TestRevocationRetriesWithRotatedTokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	var asked []string
	fail := true
	v := f.vault(t, memstore.New(memstore.Options{}), &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		o.Now = clock.Now
		for i := range o.Services {
			o.Services[i].Revoke = func(_ context.Context, _, refresh secret.Secret) error {
				asked = append(asked, refresh.Reveal())
				if fail {
					return &rotated{secret.New("access-2"), secret.New("refresh-2")}
				}
				return nil
			}
		}
	})
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	if err := v.Revoke(ctx, alice, "github"); !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("Revoke = %v, want ErrProviderRevoke", err)
	}
	fail = false
	clock.Advance(time.Hour)
	if res, err := v.RetryRevocations(ctx); err != nil || res.Revoked != 1 {
		t.Fatalf("retry = %+v, %v", res, err)
	}
	if len(asked) != 2 || asked[1] != "refresh-2" {
		t.Errorf("refresh tokens the provider was asked to revoke = %d, the retry's must be the rotated one", len(asked))
	}
}

// A key rotation reseals queued revocations too: after RekeyAll under a new
// key, a vault holding the new key alone still revokes the queued tokens.
func TestRekeyResealsQueuedRevocations(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	prov := &flakyProvider{down: true}
	st := memstore.New(memstore.Options{})
	withProvider := func(o *Options) {
		o.Now = clock.Now
		for i := range o.Services {
			o.Services[i].Revoke = prov.revoke
		}
	}
	old := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), withProvider)
	tok := f.tokens.fresh()
	mustConnect(t, old, alice, "github", tok)
	if err := old.Revoke(ctx, alice, "github"); !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("Revoke with the provider down: %v", err)
	}
	rotated := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('b'), testKey('a')), withProvider)
	if _, err := rotated.RekeyAll(ctx, nil); err != nil {
		t.Fatalf("RekeyAll: %v", err)
	}
	counts, err := rotated.QueuedByKey(ctx)
	if err != nil || len(counts) != 1 || counts[mustKeys(t, testKey('b')).CurrentKeyID()] != 1 {
		t.Fatalf("queued by key after the rekey = %v, %v; want one under the new key", counts, err)
	}
	onlyNew := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('b')), withProvider)
	prov.setDown(false)
	clock.Advance(time.Minute)
	if res, err := onlyNew.RetryRevocations(ctx); err != nil || res != (RetryResult{Revoked: 1}) {
		t.Fatalf("retry under the new key alone = %+v, %v; want it revoked", res, err)
	}
	if len(prov.revoked) != 1 || prov.revoked[0] != tok.RefreshToken {
		t.Errorf("the provider revoked %d token(s), want the queued refresh token", len(prov.revoked))
	}
}

// barrierStore holds the first two reads of a connection until both have
// read: two connects racing, each seeing the same earlier connection.
type barrierStore struct {
	store.Store
	mu      sync.Mutex
	arrived int
	both    chan struct{}
}

func (b *barrierStore) Get(ctx context.Context, k store.Key) (store.Item, error) {
	it, err := b.Store.Get(ctx, k)
	if k.Kind != ConnectionKind {
		return it, err
	}
	b.mu.Lock()
	b.arrived++
	n := b.arrived
	if n == 2 {
		close(b.both)
	}
	b.mu.Unlock()
	if n <= 2 {
		select {
		case <-b.both:
		case <-time.After(5 * time.Second):
		}
	}
	return it, err
}

// Two connections of different accounts landing at once: one is stored,
// and the other, which it replaced, is revoked at the provider; neither is
// dropped with its tokens alive.
func TestConcurrentConnectsRevokeTheReplaced(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	prov := &flakyProvider{}
	st := &barrierStore{Store: memstore.New(memstore.Options{}), both: make(chan struct{})}
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), func(o *Options) {
		for i := range o.Services {
			o.Services[i].Revoke = prov.revoke
		}
	})
	toks := map[string]*oauth2.Token{"ana": f.tokens.fresh(), "bea": f.tokens.fresh()}
	var wg sync.WaitGroup
	for account, tok := range toks {
		wg.Go(func() {
			if _, err := v.ConnectAccount(ctx, alice, "github", account, "", []string{"repo"}, tok); err != nil {
				t.Errorf("ConnectAccount(%s): %v", account, err)
			}
		})
	}
	wg.Wait()
	c, err := v.Connection(ctx, alice, "github")
	if err != nil {
		t.Fatal(err)
	}
	loser := "ana"
	if c.Account == "ana" {
		loser = "bea"
	}
	prov.mu.Lock()
	defer prov.mu.Unlock()
	if len(prov.revoked) != 1 || prov.revoked[0] != toks[loser].RefreshToken {
		t.Errorf("stored %s; the provider revoked %d token(s), want the replaced %s's refresh token", c.Account, len(prov.revoked), loser)
	}
}

// A retry whose hook refreshed the tokens and then failed keeps the
// rotated tokens even when a rekey rewrote the queued record meanwhile:
// the spent ones no longer name the grant.
func TestRotatedTokensSurviveARekeyDuringTheRetry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	st := memstore.New(memstore.Options{})
	var (
		asked []string
		mode  = "down"
		rekey func()
	)
	hook := func(o *Options) {
		o.Now = clock.Now
		for i := range o.Services {
			o.Services[i].Revoke = func(_ context.Context, _, refresh secret.Secret) error {
				asked = append(asked, refresh.Reveal())
				switch mode {
				case "down":
					return &statusErr{503}
				case "rotate while a rekey runs":
					rekey()
					return &rotated{secret.New("access-2"), secret.New("refresh-2")}
				}
				return nil
			}
		}
	}
	old := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')), hook)
	rot := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('b'), testKey('a')), hook)
	rekey = func() {
		if _, err := rot.RekeyAll(ctx, nil); err != nil {
			t.Errorf("rekey: %v", err)
		}
	}
	mustConnect(t, old, alice, "github", f.tokens.fresh())
	if err := old.Revoke(ctx, alice, "github"); !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("Revoke with the provider down: %v", err)
	}
	clock.Advance(time.Hour)
	mode = "rotate while a rekey runs"
	if _, err := rot.RetryRevocations(ctx); !errors.Is(err, ErrProviderRevoke) {
		t.Fatalf("retry that rotated and failed: %v", err)
	}
	mode = "up"
	clock.Advance(2 * time.Hour)
	if res, err := rot.RetryRevocations(ctx); err != nil || res != (RetryResult{Revoked: 1}) {
		t.Fatalf("next retry = %+v, %v", res, err)
	}
	if last := asked[len(asked)-1]; last != "refresh-2" {
		t.Errorf("the last retry asked with a spent refresh token, want the rotated one (asked %d times)", len(asked))
	}
}

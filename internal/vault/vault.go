package vault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
)

// Store record kinds used by the vault. Both live in the principal's scope,
// so listing a principal's connections or leases never scans the keyspace.
const (
	ConnectionKind = "connection" // ID: the service name
	LeaseKind      = "lease"      // ID: the lease ID
)

// DefaultMaxLease is the longest a lease may live, and the default.
const DefaultMaxLease = time.Hour

const (
	// refreshLockTTL bounds how long a crashed refresher can hold up others.
	refreshLockTTL = 30 * time.Second
	// refreshTimeout is shorter than the lock's ttl, so a refresh never
	// outlives the lock that makes it exclusive.
	refreshTimeout = 20 * time.Second
	lockPoll       = 10 * time.Millisecond
	// expiryMargin treats an access token as expired this long before its
	// expiry, so a request does not reach the provider with a token that
	// expires on the way (oauth2 uses the same margin).
	expiryMargin = 10 * time.Second
	// lastUsedGranularity limits the writes that keep Connection.LastUsed
	// current to one per connection per minute.
	lastUsedGranularity = time.Minute
	casAttempts         = 16
)

// Recorder stores audit events; *audit.Recorder implements it. Record returns
// only after the event is stored, and the vault treats its failure as "do
// not proceed".
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Service describes one provider the vault holds connections to.
type Service struct {
	// Name is the service name, such as "github"; it is the connection's ID
	// in the store.
	Name string
	// APIHosts are the exact hosts (host or host:port, as in a URL) that a
	// lease's client may call. Anything else is refused before it is sent.
	APIHosts []string
	// OAuth holds the token endpoint and client credentials used to refresh
	// access tokens. Nil means tokens cannot be refreshed: an expired access
	// token then needs a reconnect.
	OAuth *oauth2.Config
	// Revoke, if not nil, revokes a refresh token at the provider. Its error
	// must not contain the token.
	Revoke func(ctx context.Context, refreshToken Secret) error
}

// Options configure a Vault.
type Options struct {
	Store    store.Store // required
	Keys     *Keyring    // required
	Audit    Recorder    // required
	Services []Service
	Logger   *slog.Logger // default: discard
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand supplies nonces and IDs; default crypto/rand.Reader.
	Rand io.Reader
	// HTTPClient calls the token endpoints, and its Transport is the base
	// transport of lease clients; default http.DefaultClient.
	HTTPClient *http.Client
	// MaxLease caps lease lifetimes; at most (and by default) one hour.
	MaxLease time.Duration
}

// Vault holds connections and issues leases; see the package documentation.
type Vault struct {
	store    store.Store
	keys     *Keyring
	audit    Recorder
	services map[string]*Service
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	client   *http.Client
	base     http.RoundTripper
	maxLease time.Duration

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[string]cachedToken // by cacheKey(principal, service)
}

// New returns a vault. It checks the options but touches no store.
func New(opts Options) (*Vault, error) {
	var problems []string
	if opts.Store == nil {
		problems = append(problems, "store is required")
	}
	if opts.Keys == nil {
		problems = append(problems, "keys are required")
	}
	if opts.Audit == nil {
		problems = append(problems, "audit recorder is required")
	}
	if opts.MaxLease < 0 || opts.MaxLease > DefaultMaxLease {
		problems = append(problems, fmt.Sprintf("max lease %s is not between 0 and %s", opts.MaxLease, DefaultMaxLease))
	}
	services := make(map[string]*Service, len(opts.Services))
	for i := range opts.Services {
		s := opts.Services[i]
		s.APIHosts = slices.Clone(s.APIHosts)
		switch err := (store.Key{Scope: "", Kind: ConnectionKind, ID: s.Name}).Validate(); {
		case err != nil:
			problems = append(problems, fmt.Sprintf("service %d: invalid name %q", i+1, s.Name))
		case services[s.Name] != nil:
			problems = append(problems, fmt.Sprintf("service %q is listed twice", s.Name))
		case len(s.APIHosts) == 0:
			problems = append(problems, fmt.Sprintf("service %q has no API hosts", s.Name))
		}
		for j, h := range s.APIHosts {
			s.APIHosts[j] = strings.ToLower(h)
		}
		services[s.Name] = &s
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("vault: %s", strings.Join(problems, "; "))
	}
	v := &Vault{
		store:    opts.Store,
		keys:     opts.Keys,
		audit:    opts.Audit,
		services: services,
		log:      opts.Logger,
		now:      opts.Now,
		rand:     opts.Rand,
		client:   opts.HTTPClient,
		maxLease: opts.MaxLease,
		cache:    make(map[string]cachedToken),
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.rand == nil {
		v.rand = rand.Reader
	}
	if v.client == nil {
		v.client = http.DefaultClient
	}
	v.base = v.client.Transport
	if v.base == nil {
		v.base = http.DefaultTransport
	}
	if v.maxLease == 0 {
		v.maxLease = DefaultMaxLease
	}
	return v, nil
}

// Status is the state of a connection.
type Status string

// Connection states.
const (
	StatusActive  Status = "active"  // usable
	StatusExpired Status = "expired" // the provider refused the refresh token; reconnect
	StatusRevoked Status = "revoked" // revoked by the person; the token is deleted
)

// Connection is a connection's public metadata. It deliberately has no
// token fields.
type Connection struct {
	Principal string
	Service   string
	Scopes    []string
	Status    Status
	Created   time.Time
	// LastUsed is when a lease was last issued on the connection, to the
	// minute; zero if never.
	LastUsed time.Time
}

// connRecord is a connection as stored. Metadata is in the clear; the token
// material is only inside Sealed.
type connRecord struct {
	V         int       `json:"v"`
	ID        string    `json:"id"` // new on every Connect, so leases of a replaced connection stop working
	Principal string    `json:"principal"`
	Service   string    `json:"service"`
	Scopes    []string  `json:"scopes"`
	Status    Status    `json:"status"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	KeyID     string    `json:"key_id,omitempty"`
	Sealed    []byte    `json:"sealed,omitempty"` // nonce ‖ AES-256-GCM ciphertext of a material
}

// material is the plaintext inside a sealed record.
type material struct {
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// additionalData binds a sealed token to its principal and service: the
// same ciphertext under another key in the store fails to open. Principals
// and service names cannot contain NUL (store.Key.Validate), so the
// encoding is unambiguous.
func additionalData(principal, service string) []byte {
	return []byte("agenthub.connection.v1\x00" + principal + "\x00" + service)
}

func connKey(principal, service string) store.Key {
	return store.Key{Scope: principal, Kind: ConnectionKind, ID: service}
}

func (v *Vault) service(name string) (*Service, error) {
	s, ok := v.services[name]
	if !ok {
		return nil, fmt.Errorf("vault: service %q: %w", name, ErrUnknownService)
	}
	return s, nil
}

func (v *Vault) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(v.rand, b[:]); err != nil {
		return "", fmt.Errorf("vault: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (v *Vault) sealMaterial(rec *connRecord, m material) error {
	plain, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("vault: encode token: %w", err)
	}
	keyID, sealed, err := v.keys.seal(v.rand, plain, additionalData(rec.Principal, rec.Service))
	clear(plain)
	if err != nil {
		return err
	}
	rec.KeyID, rec.Sealed = keyID, sealed
	return nil
}

// openMaterial opens the record found under principal and service. The
// additional data comes from where the record was found, not from what it
// says about itself, so a record copied elsewhere fails to open.
func (v *Vault) openMaterial(principal, service string, rec *connRecord) (material, error) {
	if len(rec.Sealed) == 0 {
		return material{}, fmt.Errorf("vault: %s connection of %s holds no token: %w", service, principal, ErrNotConnected)
	}
	plain, err := v.keys.open(rec.KeyID, rec.Sealed, additionalData(principal, service))
	if err != nil {
		return material{}, err
	}
	var m material
	err = json.Unmarshal(plain, &m)
	clear(plain)
	if err != nil {
		return material{}, fmt.Errorf("vault: decode sealed token: %w", ErrCorrupt)
	}
	return m, nil
}

func decodeConn(principal, service string, value []byte) (connRecord, error) {
	var rec connRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return connRecord{}, fmt.Errorf("vault: decode %s connection of %s: %w", service, principal, ErrCorrupt)
	}
	if rec.Principal != principal || rec.Service != service {
		return connRecord{}, fmt.Errorf("vault: %s connection of %s names another principal or service: %w", service, principal, ErrCorrupt)
	}
	return rec, nil
}

// load reads and decodes a connection record.
func (v *Vault) load(ctx context.Context, principal, service string) (store.Item, connRecord, error) {
	item, err := v.store.Get(ctx, connKey(principal, service))
	if errors.Is(err, store.ErrNotFound) {
		return store.Item{}, connRecord{}, fmt.Errorf("vault: %s connection of %s: %w", service, principal, ErrNotConnected)
	}
	if err != nil {
		return store.Item{}, connRecord{}, fmt.Errorf("vault: read %s connection of %s: %w", service, principal, err)
	}
	rec, err := decodeConn(principal, service, item.Value)
	return item, rec, err
}

// errUnchanged, returned by an update's mutate function, ends the update
// without writing.
var errUnchanged = errors.New("unchanged")

// update applies mutate to the connection record and writes it with
// compare-and-swap, re-reading and re-applying on conflict, so concurrent
// writers (refresh, revoke, last-used) never lose each other's changes.
func (v *Vault) update(ctx context.Context, principal, service string, item store.Item, mutate func(*connRecord) error) (connRecord, error) {
	k := connKey(principal, service)
	for attempt := 1; ; attempt++ {
		rec, err := decodeConn(principal, service, item.Value)
		if err != nil {
			return connRecord{}, err
		}
		if err := mutate(&rec); err != nil {
			return rec, err
		}
		next, err := json.Marshal(rec)
		if err != nil {
			return connRecord{}, fmt.Errorf("vault: encode connection: %w", err)
		}
		err = v.store.CompareAndSwap(ctx, k, item.Value, next, store.KeepTTL)
		if err == nil {
			return rec, nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return connRecord{}, fmt.Errorf("vault: %s connection of %s: %w", service, principal, ErrNotConnected)
		}
		if !errors.Is(err, store.ErrConflict) || attempt == casAttempts {
			return connRecord{}, fmt.Errorf("vault: write %s connection of %s: %w", service, principal, err)
		}
		if item, err = v.store.Get(ctx, k); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return connRecord{}, fmt.Errorf("vault: %s connection of %s: %w", service, principal, ErrNotConnected)
			}
			return connRecord{}, fmt.Errorf("vault: read %s connection of %s: %w", service, principal, err)
		}
	}
}

func (v *Vault) record(ctx context.Context, e audit.Event) error {
	_, err := v.audit.Record(ctx, e)
	if err != nil {
		return fmt.Errorf("vault: audit %s: %w", e.Kind, err)
	}
	return nil
}

// Connect seals tok and stores it as principal's active connection to
// service with the provider scopes granted, replacing any earlier
// connection. The connection.created audit event is stored first: if it
// cannot be, nothing is connected.
func (v *Vault) Connect(ctx context.Context, principal, service string, scopes []string, tok *oauth2.Token) error {
	if _, err := v.service(service); err != nil {
		return err
	}
	if err := connKey(principal, service).Validate(); err != nil || principal == "" {
		return fmt.Errorf("vault: connect: invalid principal %q", principal)
	}
	if tok == nil || (tok.AccessToken == "" && tok.RefreshToken == "") {
		return fmt.Errorf("vault: connect %s for %s: no token", service, principal)
	}
	id, err := v.newID()
	if err != nil {
		return err
	}
	now := v.now().UTC()
	rec := connRecord{
		V: 1, ID: id, Principal: principal, Service: service,
		Scopes: normalizeScopes(scopes), Status: StatusActive, Created: now, Updated: now,
	}
	m := material{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, Expiry: tok.Expiry}
	if err := v.sealMaterial(&rec, m); err != nil {
		return err
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("vault: encode connection: %w", err)
	}
	if err := v.record(ctx, audit.Event{
		Kind: audit.ConnectionCreated, Actor: principal, Result: "ok",
		Detail: map[string]string{"service": service, "scopes": strings.Join(rec.Scopes, " ")},
	}); err != nil {
		return err
	}
	if err := v.store.Put(ctx, connKey(principal, service), value, 0); err != nil {
		return fmt.Errorf("vault: store %s connection of %s: %w", service, principal, err)
	}
	if m.AccessToken != "" && v.fresh(m.Expiry) {
		v.setCache(principal, service, cachedToken{connID: id, access: NewSecret(m.AccessToken), tokenType: m.TokenType, expiry: m.Expiry})
	} else {
		v.dropCache(principal, service)
	}
	v.log.InfoContext(ctx, "connection created", "principal", principal, "service", service)
	return nil
}

func normalizeScopes(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (rec *connRecord) public() Connection {
	return Connection{
		Principal: rec.Principal, Service: rec.Service, Scopes: slices.Clone(rec.Scopes),
		Status: rec.Status, Created: rec.Created, LastUsed: rec.LastUsed,
	}
}

// Connection returns the metadata of principal's connection to service, or
// an error wrapping ErrNotConnected if there is none.
func (v *Vault) Connection(ctx context.Context, principal, service string) (Connection, error) {
	_, rec, err := v.load(ctx, principal, service)
	if err != nil {
		return Connection{}, err
	}
	return rec.public(), nil
}

// Connections returns the metadata of all of principal's connections,
// ordered by service.
func (v *Vault) Connections(ctx context.Context, principal string) ([]Connection, error) {
	items, err := v.store.List(ctx, principal, ConnectionKind)
	if err != nil {
		return nil, fmt.Errorf("vault: list connections of %s: %w", principal, err)
	}
	out := make([]Connection, 0, len(items))
	for _, it := range items {
		rec, err := decodeConn(principal, it.Key.ID, it.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, rec.public())
	}
	return out, nil
}

// Revoke revokes principal's connection to service: it marks the connection
// revoked and deletes its sealed token, deletes every lease on it (so each
// live lease, in any process sharing the store, fails on its next request),
// forgets the cached access token, and asks the provider to revoke the
// refresh token through the service's Revoke hook. The local revocation
// stands even if the hook or the audit event fails; both are returned.
// Revoking a revoked connection is not an error.
func (v *Vault) Revoke(ctx context.Context, principal, service string) error {
	svc, err := v.service(service)
	if err != nil {
		return err
	}
	item, _, err := v.load(ctx, principal, service)
	if err != nil {
		return err
	}
	var refresh Secret
	var openErr error
	_, err = v.update(ctx, principal, service, item, func(rec *connRecord) error {
		refresh, openErr = Secret{}, nil
		if len(rec.Sealed) > 0 {
			m, err := v.openMaterial(principal, service, rec)
			if err != nil {
				openErr = err // revoke locally all the same
			}
			refresh = NewSecret(m.RefreshToken)
		}
		rec.Status, rec.KeyID, rec.Sealed, rec.Updated = StatusRevoked, "", nil, v.now().UTC()
		return nil
	})
	if err != nil {
		return fmt.Errorf("vault: revoke: %w", err)
	}
	v.dropCache(principal, service)
	var errs []error
	n, err := v.deleteLeases(ctx, principal, service)
	if err != nil {
		errs = append(errs, err)
	}
	if openErr != nil {
		errs = append(errs, fmt.Errorf("vault: revoked locally, but the refresh token could not be opened to revoke it at %s: %w", service, openErr))
	}
	providerResult := "not_called"
	if svc.Revoke != nil && !refresh.IsZero() {
		providerResult = "ok"
		if err := svc.Revoke(ctx, refresh); err != nil {
			providerResult = "failed"
			errs = append(errs, fmt.Errorf("vault: revoked locally, but %s did not revoke the token: %w", service, err))
		}
	}
	if err := v.record(ctx, audit.Event{
		Kind: audit.ConnectionRevoked, Actor: principal, Result: "ok",
		Detail: map[string]string{"service": service, "leases_deleted": fmt.Sprint(n), "provider_revoke": providerResult},
	}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RevokeAll revokes every connection of principal, then deletes any lease
// of principal left over, trying everything even when some steps fail.
func (v *Vault) RevokeAll(ctx context.Context, principal string) error {
	items, err := v.store.List(ctx, principal, ConnectionKind)
	if err != nil {
		return fmt.Errorf("vault: list connections of %s: %w", principal, err)
	}
	var errs []error
	for _, it := range items {
		if _, known := v.services[it.Key.ID]; !known {
			continue
		}
		if err := v.Revoke(ctx, principal, it.Key.ID); err != nil {
			errs = append(errs, err)
		}
	}
	// Leases of services no longer configured, or of connections whose
	// revocation failed, must not outlive the panic button either.
	if _, err := v.deleteLeases(ctx, principal, ""); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Rekey reseals every connection of principal that is sealed under an old
// key with the current key, and returns how many it rewrote. Every token
// write (connect, refresh) reseals too; Rekey lets an operator finish a
// rotation before dropping the old key.
func (v *Vault) Rekey(ctx context.Context, principal string) (int, error) {
	items, err := v.store.List(ctx, principal, ConnectionKind)
	if err != nil {
		return 0, fmt.Errorf("vault: list connections of %s: %w", principal, err)
	}
	n := 0
	for _, it := range items {
		service := it.Key.ID
		_, err := v.update(ctx, principal, service, it, func(rec *connRecord) error {
			if len(rec.Sealed) == 0 || rec.KeyID == v.keys.CurrentKeyID() {
				return errUnchanged
			}
			m, err := v.openMaterial(principal, service, rec)
			if err != nil {
				return err
			}
			return v.sealMaterial(rec, m)
		})
		switch {
		case errors.Is(err, errUnchanged):
		case err != nil:
			return n, fmt.Errorf("vault: rekey: %w", err)
		default:
			n++
		}
	}
	return n, nil
}

// deleteLeases deletes every lease of principal on service, or on any
// service if service is "".
func (v *Vault) deleteLeases(ctx context.Context, principal, service string) (int, error) {
	items, err := v.store.List(ctx, principal, LeaseKind)
	if err != nil {
		return 0, fmt.Errorf("vault: list leases of %s: %w", principal, err)
	}
	n := 0
	for _, it := range items {
		var lr leaseRecord
		if err := json.Unmarshal(it.Value, &lr); err == nil && service != "" && lr.Service != service {
			continue
		}
		// An undecodable lease is deleted too: when in doubt, revoke.
		if err := v.store.Delete(ctx, it.Key); err != nil {
			return n, fmt.Errorf("vault: delete lease %s: %w", it.Key.ID, err)
		}
		n++
	}
	return n, nil
}

package vault

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
)

// Store record kinds used by the vault. Connections and leases live in the
// principal's scope, so listing a principal's connections or leases never
// scans the keyspace; the principal index is global, so RekeyAll can find
// every principal without scanning either.
const (
	ConnectionKind = "connection"      // ID: the service name
	LeaseKind      = "lease"           // ID: the lease ID
	PrincipalKind  = "vault-principal" // scope "", ID: a principal that has connected
)

// DefaultMaxLease is the longest a lease may live, and the default.
const DefaultMaxLease = time.Hour

const (
	// refreshLockTTL bounds how long a crashed refresher can hold up others.
	refreshLockTTL = 30 * time.Second
	// lockWaitTimeout bounds the wait for another refresher's lock; a
	// crashed holder's lock expires within refreshLockTTL.
	lockWaitTimeout = refreshLockTTL + 5*time.Second
	// providerTimeout bounds the work under the lock before the token
	// endpoint's answer is stored: the re-read and the token endpoint call.
	// Its clock starts once the lock is held. Together with the bounded
	// write of the result (rotatedWriteAttempts × rotatedWriteTimeout plus
	// backoff, about 11 s) it stays below refreshLockTTL, so a refresh never
	// outlives the lock that makes it exclusive.
	providerTimeout = 15 * time.Second
	// rotatedWriteAttempts and rotatedWriteTimeout bound the writes of a
	// refreshed token: by then the provider has invalidated the old refresh
	// token, so a transient store error must not lose the new one.
	rotatedWriteAttempts = 5
	rotatedWriteTimeout  = 2 * time.Second
	rotatedWriteBackoff  = 25 * time.Millisecond // doubled after each failed attempt
	lockPoll             = 10 * time.Millisecond
	// expiryMargin treats an access token as expired this long before its
	// expiry, so a request does not reach the provider with a token that
	// expires on the way (oauth2 uses the same margin).
	expiryMargin = 10 * time.Second
	// lastUsedGranularity limits the writes that keep Connection.LastUsed
	// current to one per connection per minute.
	lastUsedGranularity = time.Minute
	// renewEvery bounds the renewals of refused access tokens to one per
	// connection per process in this time, so a provider that answers 401
	// to every token cannot make each request refresh (and rotate) one.
	renewEvery = time.Minute
	// maxRefusalBody is how much of a 401's body is kept while the token is
	// renewed; a longer one is returned as it is, without a retry.
	maxRefusalBody = 64 << 10
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
	// token then needs a reconnect. Its Endpoint.AuthStyle must be set:
	// auto-detection answers a failed refresh by sending the same refresh
	// token again in the other style, a second use that providers with
	// reuse detection punish by revoking the whole token family.
	OAuth *oauth2.Config
	// Renew, if not nil, gets a fresh access token in place of an OAuth
	// refresh, from the connection's stored refresh token, which it does
	// not rotate (Auth0 Token Vault's exchange: the stored token is the
	// person's Auth0 refresh token). It runs under the same lock, cache
	// and audit as a refresh, so leases cannot tell the two apart. An
	// error with a Reconnect() bool method that says true means the
	// person must connect again: the connection is marked expired. Its
	// error is shown by its type and status only, as a refresh's.
	Renew func(ctx context.Context, refresh secret.Secret) (*oauth2.Token, error)
	// Revoke, if not nil, revokes the connection's tokens at the provider.
	// Either may be zero (GitHub's non-expiring tokens and Slack user tokens
	// have no refresh token); Revoke is called when at least one is not.
	// The vault never shows its error, only the error's type or HTTP
	// status, because an error may quote a URL that carried a token.
	Revoke func(ctx context.Context, access, refresh secret.Secret) error
	// RevokeAccount, if not nil, is called in Revoke's place: it revokes
	// the account the connection is of (accountID, as ConnectAccount was
	// given it) with the connection's refresh token, which it must not
	// revoke itself (Auth0's connected account, deleted with the person's
	// Auth0 refresh token, which their other connections share). It is
	// queued and retried as Revoke is.
	RevokeAccount func(ctx context.Context, accountID string, refresh secret.Secret) error
	// Via names the service whose connection this one's are made
	// through (ConnectVia): Renew and RevokeAccount are given that
	// connection's current refresh token (the person's Auth0 one, as
	// their latest sign-in left it). A connection of the service that was
	// not made through it (before the deployment switched backends) is
	// never renewed or revoked through it: nothing of its token goes
	// there.
	Via string
	// Covers names, for a granted scope, the narrower scopes it includes
	// as the provider documents them (Google's calendar.events includes
	// calendar.events.readonly): a lease asking for a narrower scope is
	// served by a connection that holds the wider one.
	Covers map[string][]string
}

// String names the service and its API hosts only: the OAuth
// configuration holds the client secret and is never printed.
func (s Service) String() string {
	return fmt.Sprintf("vault.Service{Name: %q, APIHosts: %q}", s.Name, s.APIHosts)
}

// GoString is String, so %#v cannot walk into the OAuth configuration.
func (s Service) GoString() string { return s.String() }

// Format prints String for every verb.
func (s Service) Format(f fmt.State, verb rune) { io.WriteString(f, s.String()) }

// LogValue records the name and API hosts only.
func (s Service) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", s.Name), slog.Any("api_hosts", s.APIHosts))
}

// MarshalJSON encodes the name and API hosts only, for handlers (such as
// slog's JSON handler) that encode nested values with encoding/json.
func (s Service) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name     string   `json:"name"`
		APIHosts []string `json:"api_hosts"`
	}{s.Name, s.APIHosts})
}

// Options configure a Vault.
type Options struct {
	Store    store.Store     // required
	Keys     *secret.Keyring // required
	Audit    Recorder        // required
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
	keys     *secret.Keyring
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
	// renewed is when this process last renewed a refused access token, by
	// cacheKey(principal, service); see renewEvery.
	renewed map[string]time.Time
}

// String describes the vault by its services' names and its key IDs. The
// services' OAuth configurations hold client secrets, so they are never
// printed.
func (v *Vault) String() string {
	if v == nil {
		return "vault.Vault(nil)"
	}
	names := slices.Sorted(maps.Keys(v.services))
	return fmt.Sprintf("vault.Vault{services: %q, keys: %s}", names, v.keys)
}

// GoString is String, so %#v cannot walk into the vault's fields.
func (v *Vault) GoString() string { return v.String() }

// Format prints String for every verb.
func (v *Vault) Format(f fmt.State, verb rune) { io.WriteString(f, v.String()) }

// LogValue records String.
func (v *Vault) LogValue() slog.Value { return slog.StringValue(v.String()) }

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
		if s.OAuth != nil {
			if s.OAuth.Endpoint.AuthStyle == oauth2.AuthStyleAutoDetect {
				problems = append(problems, fmt.Sprintf("service %q: OAuth endpoint needs an explicit AuthStyle (oauth2.AuthStyleInParams or oauth2.AuthStyleInHeader): auto-detection sends a refresh token twice when the first try fails", s.Name))
			}
			// A copy, so a caller changing its config later cannot change
			// how the vault talks to the token endpoint.
			c := *s.OAuth
			c.Scopes = slices.Clone(c.Scopes)
			s.OAuth = &c
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
		renewed:  make(map[string]time.Time),
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

// Account is the provider's account a connection is of: Name as people
// know it (a GitHub login, a Google address), which may change, and ID,
// which does not (GitHub's user ID, Google's sub, Slack's user ID); either
// may be "" when the connect flow did not learn it.
type Account struct {
	Name, ID string
}

// same reports whether a and b are known to be one account: by ID when
// both have one, else by name. Unknown is not the same.
func (a Account) same(b Account) bool {
	if a.ID != "" && b.ID != "" {
		return a.ID == b.ID
	}
	return a.Name != "" && a.Name == b.Name
}

// known reports whether anything names the account.
func (a Account) known() bool { return a.Name != "" || a.ID != "" }

// Connection is a connection's public metadata. It deliberately has no
// token fields.
type Connection struct {
	Principal string
	Service   string
	// Account is the provider's name for the account connected (a GitHub
	// login, a Google address, a Slack user); "" when the connect flow
	// did not learn it.
	Account string
	Scopes  []string
	Status  Status
	Created time.Time
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
	Account   string    `json:"account,omitempty"`
	AccountID string    `json:"account_id,omitempty"` // Account.ID
	Scopes    []string  `json:"scopes"`
	Status    Status    `json:"status"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	KeyID     string    `json:"key_id,omitempty"`
	Sealed    []byte    `json:"sealed,omitempty"` // nonce ‖ AES-256-GCM ciphertext of a material
	// Via is the service this connection was made through (ConnectVia).
	Via string `json:"via,omitempty"`
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

func principalKey(principal string) store.Key {
	return store.Key{Scope: "", Kind: PrincipalKind, ID: principal}
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
	keyID, sealed, err := v.keys.Seal(v.rand, plain, additionalData(rec.Principal, rec.Service))
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
	plain, err := v.keys.Open(rec.KeyID, rec.Sealed, additionalData(principal, service))
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

// update applies mutate to the connection record (item, as just read) and
// writes it with store.UpdateFrom, so concurrent writers (refresh, revoke,
// last-used) never lose each other's changes: on a conflict mutate runs
// again on the record as it is then. mutate's own errors, errUnchanged
// among them, come back as they are.
func (v *Vault) update(ctx context.Context, principal, service string, item store.Item, mutate func(*connRecord) error) (connRecord, error) {
	var (
		rec       connRecord
		mutateErr error
	)
	notConnected := fmt.Errorf("vault: %s connection of %s: %w", service, principal, ErrNotConnected)
	_, err := store.UpdateFrom(ctx, v.store, connKey(principal, service), item.Value, store.KeepTTL, func(cur []byte) ([]byte, error) {
		if cur == nil {
			mutateErr = notConnected
			return nil, mutateErr
		}
		r, err := decodeConn(principal, service, cur)
		if err != nil {
			mutateErr = err
			return nil, err
		}
		if mutateErr = mutate(&r); mutateErr != nil {
			rec = r
			return nil, mutateErr
		}
		rec = r
		next, err := json.Marshal(r)
		if err != nil {
			mutateErr = fmt.Errorf("vault: encode connection: %w", err)
			return nil, mutateErr
		}
		return next, nil
	})
	switch {
	case mutateErr != nil:
		return rec, mutateErr
	case err != nil:
		return connRecord{}, fmt.Errorf("vault: write %s connection of %s: %w", service, principal, err)
	}
	return rec, nil
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
// connection; it is ConnectAccount for an account whose name is not known.
func (v *Vault) Connect(ctx context.Context, principal, service string, scopes []string, tok *oauth2.Token) error {
	_, err := v.ConnectAccount(ctx, principal, service, "", "", scopes, tok)
	return err
}

// ConnectAccount seals tok and stores it as principal's active connection
// to service: the provider's account (its name as people know it, and its
// stable ID; either may be ""), with the provider scopes granted. The connection.created audit event is stored first: if
// it cannot be, nothing is connected.
//
// It replaces any earlier connection, and returns the name of the account
// that one was of ("" if none, or not known), so the person can be told.
// When the earlier connection was of another account (by ID when both
// have one: a renamed GitHub login is the same account), its tokens are
// revoked at the provider: the person moved to another account, and the old one's
// access must not live on where nobody can see it. (Of the same account
// they are not: at GitHub and Google revoking one token of a grant ends
// the whole grant, the new token with it.) A failure there leaves the new
// connection stored and wraps ErrProviderRevoke.
func (v *Vault) ConnectAccount(ctx context.Context, principal, service, accountName, accountID string, scopes []string, tok *oauth2.Token) (replaced string, err error) {
	return v.connect(ctx, principal, service, accountName, accountID, "", scopes, tok)
}

// connect is ConnectAccount for a connection made through via ("" for
// none).
func (v *Vault) connect(ctx context.Context, principal, service, accountName, accountID, via string, scopes []string, tok *oauth2.Token) (replaced string, err error) {
	account := Account{Name: accountName, ID: accountID}
	svc, err := v.service(service)
	if err != nil {
		return "", err
	}
	if err := connKey(principal, service).Validate(); err != nil || principal == "" {
		return "", fmt.Errorf("vault: connect: invalid principal %q", principal)
	}
	if tok == nil || (tok.AccessToken == "" && tok.RefreshToken == "") {
		return "", fmt.Errorf("vault: connect %s for %s: no token", service, principal)
	}
	id, err := v.newID()
	if err != nil {
		return "", err
	}
	now := v.now().UTC()
	rec := connRecord{
		V: 1, ID: id, Principal: principal, Service: service, Account: account.Name, AccountID: account.ID,
		Scopes: normalizeScopes(scopes), Status: StatusActive, Created: now, Updated: now, Via: via,
	}
	m := material{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, Expiry: tok.Expiry}
	if err := v.sealMaterial(&rec, m); err != nil {
		return "", err
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("vault: encode connection: %w", err)
	}
	// The index entry is written first, so no sealed record exists that
	// RekeyAll cannot find.
	if err := v.store.Put(ctx, principalKey(principal), []byte(`{"v":1}`), 0); err != nil {
		return "", fmt.Errorf("vault: index principal %s: %w", principal, err)
	}
	var (
		oldAccess, oldRefresh secret.Secret
		oldAccount            string
		revokeOld             bool
		queueID               string
		qerr                  error
	)
	// The new record replaces the earlier one with compare-and-swap: two
	// callbacks landing at once, or a refresh of the earlier connection,
	// make it read again, so the tokens it replaces are the ones it read.
	for attempt := 1; ; attempt++ {
		item, prev, lerr := v.load(ctx, principal, service)
		if lerr != nil && !errors.Is(lerr, ErrNotConnected) && item.Value == nil {
			return "", lerr // the store did not answer: nothing is replaced blind
		}
		// The earlier connection, if any: its account, and its tokens when
		// they are to be revoked. One that cannot be opened is replaced
		// all the same.
		var (
			old   material
			oldID string
		)
		replaced = ""
		if lerr == nil {
			replaced = prev.Account
			was := Account{Name: prev.Account, ID: prev.AccountID}
			if prev.Status != StatusRevoked && len(prev.Sealed) > 0 && was.known() && account.known() && !was.same(account) &&
				prev.Via == svc.Via {
				old, _ = v.openMaterial(principal, service, &prev)
				oldID = prev.AccountID
				if svc.Via != "" {
					if sub, err := v.viaSubject(ctx, principal, svc); err == nil {
						old = material{RefreshToken: sub.Reveal()}
					}
				}
			}
		}
		// The replaced account's tokens are queued for revocation before
		// the record that holds them is overwritten: a process killed in
		// between leaves them to a retry, not live and forgotten.
		oldAccess, oldRefresh = secret.New(old.AccessToken), secret.New(old.RefreshToken)
		revokeOld = (old.AccessToken != "" || old.RefreshToken != "") && svc.revokes()
		oldAccount = oldID
		if revokeOld {
			queueID, qerr = v.enqueueRevocation(context.WithoutCancel(ctx), principal, service, oldAccount, oldAccess, oldRefresh)
		}
		var werr error
		if item.Value == nil {
			werr = v.store.Create(ctx, connKey(principal, service), value, 0)
		} else {
			werr = v.store.CompareAndSwap(ctx, connKey(principal, service), item.Value, value, 0)
		}
		if werr == nil {
			// On the record once stored; a record that cannot be written
			// puts back what was there: a connection the trail does not
			// know is not made.
			if err := v.record(ctx, v.createdEvent(principal, service, account.Name, replaced, rec.Scopes)); err != nil {
				var rerr error
				if item.Value == nil {
					rerr = v.store.CompareAndDelete(context.WithoutCancel(ctx), connKey(principal, service), value)
				} else {
					rerr = v.store.CompareAndSwap(context.WithoutCancel(ctx), connKey(principal, service), value, item.Value, 0)
				}
				if rerr != nil {
					v.log.ErrorContext(ctx, "unrecorded connection not rolled back", "principal", principal, "service", service, "error", rerr)
				}
				if revokeOld && qerr == nil {
					v.store.Delete(context.WithoutCancel(ctx), revocationKey(queueID)) // the old connection stands
				}
				return "", err
			}
			break
		}
		if revokeOld && qerr == nil {
			v.store.Delete(context.WithoutCancel(ctx), revocationKey(queueID)) // the old connection stands, or changed
		}
		lost := errors.Is(werr, store.ErrExists) || errors.Is(werr, store.ErrConflict) || errors.Is(werr, store.ErrNotFound)
		if !lost || attempt == connectTries {
			return "", fmt.Errorf("vault: store %s connection of %s: %w", service, principal, werr)
		}
	}
	if m.AccessToken != "" && v.fresh(m.Expiry) {
		v.setCache(principal, service, cachedToken{connID: id, access: secret.New(m.AccessToken), tokenType: m.TokenType, expiry: m.Expiry})
	} else {
		v.dropCache(principal, service)
	}
	v.log.InfoContext(ctx, "connection created", "principal", principal, "service", service)
	if revokeOld {
		if _, err := v.confirmRevocation(ctx, svc, principal, service, oldAccount, queueID, qerr, oldAccess, oldRefresh); err != nil {
			return replaced, fmt.Errorf("vault: the replaced account: %w", err)
		}
	}
	return replaced, nil
}

// connectTries bounds how often ConnectAccount reads again when the
// connection it replaces changed under it.
const connectTries = 8

// createdEvent is connection.created for an account that replaced another.
// ConnectVia stores principal's connection to service as one made through
// their connection to via (Auth0, with Token Vault): it holds via's
// refresh token, which the service's Renew exchanges for the provider's
// access tokens. The token never leaves the vault. It is ConnectAccount
// otherwise; via must be active.
func (v *Vault) ConnectVia(ctx context.Context, principal, service, via, accountName, accountID string, scopes []string) (replaced string, err error) {
	if service == via {
		return "", fmt.Errorf("vault: connect %s via itself", service)
	}
	if svc, err := v.service(service); err != nil {
		return "", err
	} else if svc.Via != via {
		return "", fmt.Errorf("vault: %s is not connected through %s", service, via)
	}
	_, rec, err := v.load(ctx, principal, via)
	if err != nil {
		return "", err
	}
	if err := activeErr(principal, via, rec.Status); err != nil {
		return "", err
	}
	m, err := v.openMaterial(principal, via, &rec)
	if err != nil {
		return "", err
	}
	if m.RefreshToken == "" {
		return "", fmt.Errorf("vault: %s connection of %s has no refresh token: %w", via, principal, ErrReconnect)
	}
	return v.connect(ctx, principal, service, accountName, accountID, via, scopes, &oauth2.Token{RefreshToken: m.RefreshToken})
}

// viaSubject is the current refresh token of principal's connection to
// svc.Via, which svc's connections are renewed and revoked with.
func (v *Vault) viaSubject(ctx context.Context, principal string, svc *Service) (secret.Secret, error) {
	_, rec, err := v.load(ctx, principal, svc.Via)
	if err != nil {
		return secret.Secret{}, err
	}
	if err := activeErr(principal, svc.Via, rec.Status); err != nil {
		return secret.Secret{}, err
	}
	m, err := v.openMaterial(principal, svc.Via, &rec)
	if err != nil {
		return secret.Secret{}, err
	}
	if m.RefreshToken == "" {
		return secret.Secret{}, fmt.Errorf("vault: %s connection of %s has no refresh token: %w", svc.Via, principal, ErrReconnect)
	}
	return secret.New(m.RefreshToken), nil
}

func (v *Vault) createdEvent(principal, service, account, replaced string, scopes []string) audit.Event {
	detail := map[string]string{"service": service, "scopes": strings.Join(scopes, " ")}
	if account != "" {
		detail["account"] = account
	}
	if replaced != "" && replaced != account {
		detail["replaced_account"] = replaced
	}
	return audit.Event{Kind: audit.ConnectionCreated, Actor: principal, Result: "ok", Detail: detail}
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
		Principal: rec.Principal, Service: rec.Service, Account: rec.Account, Scopes: slices.Clone(rec.Scopes),
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
// revoked and deletes its sealed token, forgets the cached access token,
// deletes every lease on it, and asks the provider to revoke the tokens
// through the service's Revoke hook. Every step is tried even when an
// earlier one fails, and every failure is returned, joined.
//
// Leases stop working once the connection is marked revoked, in every
// process sharing the store, because each request reads the connection's
// status; deleting the lease records is tidying, and a failure there does
// not keep a lease alive. The local revocation stands even if the hook or
// the audit event fails. A hook failure wraps ErrProviderRevoke and
// describes the hook's error by its type or HTTP status only. Revoking a
// revoked connection is not an error and does not call the hook.
func (v *Vault) Revoke(ctx context.Context, principal, service string) error {
	svc, err := v.service(service)
	if err != nil {
		return err
	}
	var (
		errs            []error
		access, refresh secret.Secret
		accountID       string
		via             string
		openErr         error
	)
	item, _, err := v.load(ctx, principal, service)
	if err == nil {
		_, err = v.update(ctx, principal, service, item, func(rec *connRecord) error {
			access, refresh, openErr = secret.Secret{}, secret.Secret{}, nil
			accountID, via = rec.AccountID, rec.Via
			if rec.Status == StatusRevoked && len(rec.Sealed) == 0 {
				return errUnchanged
			}
			if len(rec.Sealed) > 0 {
				m, err := v.openMaterial(principal, service, rec)
				if err != nil {
					openErr = err // revoke locally all the same
				}
				access, refresh = secret.New(m.AccessToken), secret.New(m.RefreshToken)
			}
			rec.Status, rec.KeyID, rec.Sealed, rec.Updated = StatusRevoked, "", nil, v.now().UTC()
			return nil
		})
		if errors.Is(err, errUnchanged) {
			err = nil
		}
	}
	marked := err == nil
	// A record that is not there has nothing to revoke (and blocks every
	// lease by its absence), but its leases are deleted all the same.
	exists := !errors.Is(err, ErrNotConnected)
	if err != nil {
		errs = append(errs, fmt.Errorf("vault: revoke: %w", err))
	}
	v.dropCache(principal, service)
	n, err := v.deleteLeases(ctx, principal, service)
	if err != nil {
		errs = append(errs, err)
	}
	if openErr != nil {
		errs = append(errs, fmt.Errorf("vault: revoked locally, but the tokens could not be opened to revoke them at %s: %w", service, openErr))
	}
	providerResult := "not_called"
	// The provider is asked even when marking failed: the person asked for
	// the tokens to die, and a dead token only makes the next refresh expire
	// the connection.
	if svc.Via != "" {
		// Revoked through the person's current connection to Via, even
		// when this one's token is gone (it expired); and only a
		// connection made through it.
		access, refresh = secret.Secret{}, secret.Secret{}
		switch {
		case via != svc.Via:
			providerResult = "not_made_through_" + svc.Via
			if exists && accountID != "" {
				v.log.WarnContext(ctx, "vault: a connection made before the switch to "+svc.Via+" is revoked here only: revoke it at the provider",
					"principal", principal, "service", service)
			}
		case accountID != "":
			if sub, err := v.viaSubject(ctx, principal, svc); err == nil {
				refresh = sub
			} else {
				errs = append(errs, fmt.Errorf("vault: revoked locally, but %s cannot be asked to delete the account without the %s connection: %w", svc.Via, svc.Via, err))
			}
		}
	}
	if svc.revokes() && (!access.IsZero() || !refresh.IsZero()) {
		var err error
		if providerResult, err = v.revokeAtProvider(ctx, svc, principal, service, accountID, access, refresh); err != nil {
			errs = append(errs, err)
		}
	}
	if exists {
		result := "ok"
		if !marked {
			result = "failed"
		}
		if err := v.record(ctx, audit.Event{
			Kind: audit.ConnectionRevoked, Actor: principal, Result: result,
			Detail: map[string]string{"service": service, "leases_deleted": fmt.Sprint(n), "provider_revoke": providerResult},
		}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hookFailure describes a provider-revocation hook's error without its text:
// net/http quotes the URL it failed on, and a revocation URL may carry the
// token (RFC 7009 endpoints accept ?token=). It says what kind of failure
// it was, and the HTTP status when the error reports one through a
// StatusCode() int method or is an *oauth2.RetrieveError.
func hookFailure(err error) string {
	var (
		status interface{ StatusCode() int }
		re     *oauth2.RetrieveError
		ue     *url.Error
	)
	switch {
	case errors.As(err, &status):
		return fmt.Sprintf("provider revocation failed: HTTP status %d", status.StatusCode())
	case errors.As(err, &re) && re.Response != nil:
		return fmt.Sprintf("provider revocation failed: HTTP status %d", re.Response.StatusCode)
	case errors.Is(err, context.DeadlineExceeded):
		return "provider revocation failed: timed out"
	case errors.Is(err, context.Canceled):
		return "provider revocation failed: canceled"
	case errors.As(err, &ue):
		if ue.Timeout() {
			return "provider revocation failed: request timed out"
		}
		return fmt.Sprintf("provider revocation failed: request failed (%T)", ue.Err)
	default:
		return fmt.Sprintf("provider revocation failed: error of type %T", err)
	}
}

// scrub replaces every occurrence of the secrets in s, as a last line of
// defence behind messages that are built from safe parts only.
func scrub(s string, secrets ...secret.Secret) string {
	for _, sec := range secrets {
		if !sec.IsZero() {
			s = strings.ReplaceAll(s, sec.Reveal(), secret.Redacted)
		}
	}
	return s
}

// RevokeAll revokes every connection of principal, then deletes any lease
// of principal left over, trying everything even when some steps fail.
func (v *Vault) RevokeAll(ctx context.Context, principal string) error {
	items, err := v.store.List(ctx, principal, ConnectionKind)
	if err != nil {
		return fmt.Errorf("vault: list connections of %s: %w", principal, err)
	}
	// Connections made through another are revoked before it: their
	// revocation at the provider goes through it.
	slices.SortStableFunc(items, func(a, b store.Item) int {
		return cmp.Compare(v.viaRank(a.Key.ID), v.viaRank(b.Key.ID))
	})
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

// viaRank orders services for RevokeAll: those made through another
// first.
func (v *Vault) viaRank(service string) int {
	if svc, ok := v.services[service]; ok && svc.Via != "" {
		return 0
	}
	return 1
}

// Rekey reseals every connection of principal that is sealed under an old
// key with the current key, and returns how many it rewrote. Every token
// write (connect, refresh) reseals too; Rekey lets an operator finish a
// rotation before dropping the old key. A record under the current key
// already, or holding no token (revoked), is not written, so running Rekey
// again after an interruption rewrites only what is left. It goes on past
// a connection that fails and returns every failure, joined, each naming
// the principal and the service.
func (v *Vault) Rekey(ctx context.Context, principal string) (int, error) {
	items, err := v.store.List(ctx, principal, ConnectionKind)
	if err != nil {
		return 0, fmt.Errorf("vault: rekey: list connections of %s: %w", principal, err)
	}
	n := 0
	var errs []error
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
			errs = append(errs, fmt.Errorf("vault: rekey %s connection of %s: %w", service, principal, err))
		default:
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Principals returns every principal in the principal index, in order:
// everyone who ever connected a service (Connect adds them before it
// stores the connection), including some whose connections are revoked
// or gone. It is what RekeyAll walks.
func (v *Vault) Principals(ctx context.Context) ([]string, error) {
	items, err := v.store.List(ctx, "", PrincipalKind)
	if err != nil {
		return nil, fmt.Errorf("vault: list principals: %w", err)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key.ID
	}
	return out, nil
}

// SealedByKey counts the connections that hold a sealed token, of every
// principal in the principal index, by the ID of the key that sealed them,
// so that an operator can be told, before anyone is refused, that some are
// sealed under a key the keyring lacks (an old key dropped too early) or
// under old keys that RekeyAll would move. It opens nothing.
func (v *Vault) SealedByKey(ctx context.Context) (map[string]int, error) {
	principals, err := v.Principals(ctx)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int)
	for _, p := range principals {
		items, err := v.store.List(ctx, p, ConnectionKind)
		if err != nil {
			return nil, fmt.Errorf("vault: list connections of %s: %w", p, err)
		}
		for _, it := range items {
			rec, err := decodeConn(p, it.Key.ID, it.Value)
			if err != nil {
				return nil, err
			}
			if len(rec.Sealed) > 0 {
				counts[rec.KeyID]++
			}
		}
	}
	return counts, nil
}

// RekeyAll reseals, under the current key, every connection of every
// principal in the principal index (see Rekey) and every queued
// revocation, and returns how many records it rewrote. It goes on past a principal that fails and returns
// every failure, joined; it stops when ctx ends. progress, when not nil,
// is called after each principal with how many are done of how many there
// are. When it returns nil no record needs an old key any more, and the
// old keys can be dropped.
func (v *Vault) RekeyAll(ctx context.Context, progress func(done, total int)) (int, error) {
	principals, err := v.Principals(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for i, p := range principals {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("vault: rekey stopped after %d of %d principals: %w", i, len(principals), err))
			break
		}
		k, err := v.Rekey(ctx, p)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
		if progress != nil {
			progress(i+1, len(principals))
		}
	}
	if ctx.Err() == nil {
		k, err := v.rekeyQueued(ctx)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// deleteLeases deletes every lease of principal on service, or on any
// service if service is "".
func (v *Vault) deleteLeases(ctx context.Context, principal, service string) (int, error) {
	items, err := v.store.List(ctx, principal, LeaseKind)
	if err != nil {
		return 0, fmt.Errorf("vault: list leases of %s: %w", principal, err)
	}
	n := 0
	var errs []error
	for _, it := range items {
		var lr leaseRecord
		if err := json.Unmarshal(it.Value, &lr); err == nil && service != "" && lr.Service != service {
			continue
		}
		// An undecodable lease is deleted too: when in doubt, revoke.
		if err := v.store.Delete(ctx, it.Key); err != nil {
			errs = append(errs, fmt.Errorf("vault: delete lease %s: %w", it.Key.ID, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

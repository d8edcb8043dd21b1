package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/loopback"
	"github.com/agenthub/agenthub/internal/store"
)

// LeaseRequest asks for a lease.
type LeaseRequest struct {
	Principal string
	Service   string
	// Scopes are the provider scopes the execution needs; the connection
	// must hold every one.
	Scopes []string
	// Resource and RequestID are recorded in the audit events of the lease.
	Resource  string
	RequestID string
	// TTL is the lease's lifetime, capped at the vault's MaxLease; zero
	// means MaxLease.
	TTL time.Duration
}

// Lease is the short-lived, revocable capability under which one execution
// calls a provider. It holds no token: its Client's transport fetches the
// token from the vault on every request.
type Lease struct {
	ID        string    // random; names the lease in the store and the audit trail
	Principal string    // whose connection it uses
	Service   string    // which provider it may call
	Scopes    []string  // the provider scopes it was issued for
	Resource  string    // what the execution touches, for the audit trail
	RequestID string    // the request it serves, for the audit trail
	ExpiresAt time.Time // by the vault's clock; requests after it fail with ErrLeaseExpired

	v      *Vault
	svc    *Service
	connID string
	value  []byte // the stored lease record, compared on every request
	client *http.Client
}

// leaseRecord is a lease as stored, under (principal, "lease", ID), with a
// time-to-live equal to the lease's.
type leaseRecord struct {
	V         int       `json:"v"`
	Service   string    `json:"service"`
	Scopes    []string  `json:"scopes,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Issued    time.Time `json:"issued"`
	Expires   time.Time `json:"expires"`
}

// Lease issues a lease on principal's connection to service. The
// connection must be active and hold every requested scope (else the error
// wraps ErrNotConnected, ErrReconnect or ErrInsufficientScope). The lease is
// stored and a token.issued event recorded before Lease returns; if the
// event cannot be stored there is no lease.
func (v *Vault) Lease(ctx context.Context, req LeaseRequest) (*Lease, error) {
	svc, err := v.service(req.Service)
	if err != nil {
		return nil, err
	}
	if req.Principal == "" || connKey(req.Principal, req.Service).Validate() != nil {
		return nil, fmt.Errorf("vault: lease: invalid principal %q", req.Principal)
	}
	ttl := req.TTL
	switch {
	case ttl < 0:
		return nil, fmt.Errorf("vault: lease: negative ttl %s", ttl)
	case ttl == 0 || ttl > v.maxLease:
		ttl = v.maxLease
	}
	id, err := v.newID()
	if err != nil {
		return nil, err
	}
	now := v.now().UTC()
	scopes := normalizeScopes(req.Scopes)

	lr := leaseRecord{
		V: 1, Service: req.Service, Scopes: scopes, Resource: req.Resource, RequestID: req.RequestID,
		Issued: now, Expires: now.Add(ttl),
	}
	value, err := json.Marshal(lr)
	if err != nil {
		return nil, fmt.Errorf("vault: encode lease: %w", err)
	}
	k := store.Key{Scope: req.Principal, Kind: LeaseKind, ID: id}
	if err := v.store.Create(ctx, k, value, ttl); err != nil {
		return nil, fmt.Errorf("vault: store lease: %w", err)
	}
	fail := func(err error) (*Lease, error) {
		// The refused lease's record is unusable (no Lease holds it) and
		// expires with its ttl; a failed delete is for the operator, while
		// the caller needs the reason for the refusal, which callers map to
		// what the person should do (connect, reconnect).
		if derr := v.store.Delete(context.WithoutCancel(ctx), k); derr != nil {
			v.log.WarnContext(ctx, "vault: refused lease not deleted; it expires by itself", "lease", id, "principal", req.Principal, "err", derr)
		}
		return nil, err
	}
	// Read the connection only now that the lease is stored. Revoke marks
	// the connection revoked and then deletes its leases, so either this
	// read sees the revocation or Revoke sees this lease: no lease outlives
	// a concurrent revocation. (Reading it before storing the lease as well
	// would only refuse a little earlier, for one more round trip on every
	// lease.) The lease is bound to the connection read here: its requests
	// stop if that connection is replaced.
	item, rec, err := v.load(ctx, req.Principal, req.Service)
	if err != nil {
		return fail(err)
	}
	if err := checkConn(&rec, scopes, svc.Covers); err != nil {
		return fail(err)
	}
	if err := v.record(ctx, audit.Event{
		Kind: audit.TokenIssued, Actor: req.Principal, Resource: req.Resource, RequestID: req.RequestID, Result: "ok",
		Detail: map[string]string{
			"service": req.Service, "lease": id, "scopes": strings.Join(scopes, " "),
			"expires": lr.Expires.Format(time.RFC3339),
		},
	}); err != nil {
		return fail(err)
	}
	if now.Sub(rec.LastUsed) >= lastUsedGranularity {
		v.touch(ctx, req.Principal, req.Service, item, rec.ID, now)
	}
	l := &Lease{
		ID: id, Principal: req.Principal, Service: req.Service, Scopes: scopes,
		Resource: req.Resource, RequestID: req.RequestID, ExpiresAt: lr.Expires,
		v: v, svc: svc, connID: rec.ID, value: value,
	}
	l.client = &http.Client{Transport: &transport{l: l}, Timeout: v.client.Timeout}
	return l, nil
}

func checkConn(rec *connRecord, scopes []string, covers map[string][]string) error {
	if err := activeErr(rec.Principal, rec.Service, rec.Status); err != nil {
		return err
	}
	var missing []string
	for _, s := range scopes {
		if !slices.ContainsFunc(rec.Scopes, func(granted string) bool { return granted == s || slices.Contains(covers[granted], s) }) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("vault: %s connection of %s lacks scopes %s: %w", rec.Service, rec.Principal, strings.Join(missing, " "), ErrInsufficientScope)
	}
	return nil
}

// touch records that the connection was used. It is best effort: a lost
// update only makes LastUsed a little stale, so failures are logged, not
// returned.
func (v *Vault) touch(ctx context.Context, principal, service string, item store.Item, connID string, now time.Time) {
	_, err := v.update(ctx, principal, service, item, func(r *connRecord) error {
		if r.ID != connID || now.Sub(r.LastUsed) < lastUsedGranularity {
			return errUnchanged
		}
		r.LastUsed = now.Truncate(lastUsedGranularity)
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		v.log.WarnContext(ctx, "vault: last-used update failed", "principal", principal, "service", service, "err", err)
	}
}

// Client returns the HTTP client bound to the lease. Agents use it like any
// client; it only reaches the service's API hosts, and only while the lease
// lives.
func (l *Lease) Client() *http.Client { return l.client }

// Release ends the lease early. Its client fails from then on.
func (l *Lease) Release(ctx context.Context) error {
	if err := l.v.store.Delete(ctx, store.Key{Scope: l.Principal, Kind: LeaseKind, ID: l.ID}); err != nil {
		return fmt.Errorf("vault: release lease %s: %w", l.ID, err)
	}
	return nil
}

// transport is a lease's http.RoundTripper. See RoundTrip.
type transport struct{ l *Lease }

// RoundTrip checks the lease and its connection and the host, records a
// provider.requested event, sends a clone of req with the access token
// added, and records a provider.called event (method, path, status; never
// headers or the query). Nothing is sent when a check fails or the first
// event cannot be stored. If the second cannot be stored the response is
// discarded and an error returned.
//
// The response's Request is req itself, never the clone that carried the
// token: http.Transport sets it to the request it sent, and the agent reads
// the response.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	l, v := t.l, t.l.v
	ctx := req.Context()
	tok, err := t.authorize(ctx, req)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.send(req, req.Body, tok, 1)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable {
		return resp, err
	}
	// The provider refused a token the vault thought good: it expired or
	// was revoked early. A 401 means the provider did nothing, so the
	// request may go once more with a new token, as a new call: every check
	// again, and its own audit events. When no new token comes, the
	// provider's answer stands. Its body is kept meanwhile, so that its
	// connection goes back to the pool.
	refusal, whole := readRefusal(resp)
	if !whole {
		return resp, nil
	}
	if _, err := t.authorize(ctx, req); err != nil {
		return nil, err // the lease or the connection ended meanwhile
	}
	if _, rerr := v.renew(ctx, l.Principal, l.Service, l.connID, tok); rerr != nil {
		v.log.WarnContext(ctx, "vault: the provider refused the access token and it was not renewed",
			"principal", l.Principal, "service", l.Service, "err", rerr)
		return refusal, nil
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return refusal, nil
		}
	}
	// renew left the new token in the cache, where authorize finds it once
	// the lease and the connection have been checked again.
	if tok, err = t.authorize(ctx, req); err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	return t.send(req, body, tok, 2)
}

// readRefusal reads a 401's body (up to maxRefusalBody) and closes it,
// returning the response with the body in memory; whole is false, and
// resp comes back as it was, when the body is longer.
func readRefusal(resp *http.Response) (_ *http.Response, whole bool) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody+1))
	if len(b) > maxRefusalBody {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		return resp, false
	}
	resp.Body.Close()
	if err != nil {
		b = nil // the provider's explanation is lost; its status stands
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp, true
}

// send records provider.requested, sends req with body and tok's
// Authorization, and records provider.called with the outcome. Neither
// event recorded, nothing is sent or returned. attempt is 2 for a request
// sent again after a 401, which the events say.
func (t *transport) send(req *http.Request, body io.ReadCloser, tok cachedToken, attempt int) (*http.Response, error) {
	l, v := t.l, t.l.v
	ctx := req.Context()
	detail := func(status string) map[string]string {
		d := map[string]string{"service": l.Service, "lease": l.ID, "method": req.Method, "path": req.URL.Path}
		if status != "" {
			d["status"] = status
		}
		if attempt > 1 {
			d["attempt"] = strconv.Itoa(attempt) // sent again after a 401, with a renewed token
		}
		return d
	}
	if err := v.record(ctx, audit.Event{
		Kind: audit.ProviderRequested, Actor: l.Principal, Resource: l.Resource, RequestID: l.RequestID,
		Detail: detail(""),
	}); err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	out := req.Clone(ctx)
	out.Body = body
	out.Header.Set("Authorization", authScheme(tok.tokenType)+" "+tok.access.Reveal())
	resp, err := v.base.RoundTrip(out)
	if resp != nil {
		resp.Request = req
	}
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	if aerr := v.record(ctx, audit.Event{
		Kind: audit.ProviderCalled, Actor: l.Principal, Resource: l.Resource, RequestID: l.RequestID, Result: status,
		Detail: detail(status),
	}); aerr != nil {
		if err == nil {
			resp.Body.Close()
		}
		return nil, aerr
	}
	if err != nil {
		return nil, fmt.Errorf("vault: %s %s %s: %w", l.Service, req.Method, req.URL.Path, err)
	}
	return resp, nil
}

// authorize runs the checks of RoundTrip, local ones first, and returns the
// token to send.
func (t *transport) authorize(ctx context.Context, req *http.Request) (cachedToken, error) {
	l, v := t.l, t.l.v
	if !v.now().Before(l.ExpiresAt) {
		return cachedToken{}, fmt.Errorf("vault: lease %s: %w", l.ID, ErrLeaseExpired)
	}
	if err := l.svc.allow(req); err != nil {
		return cachedToken{}, err
	}
	// Re-reading the lease on every request is what makes Release and lease
	// deletion immediate across processes; re-reading the connection, what
	// makes revocation immediate (see checkConn). Both live in the
	// principal's scope, so they are read together, in one round trip.
	leaseKey := store.Key{Scope: l.Principal, Kind: LeaseKind, ID: l.ID}
	items, err := v.store.GetMany(ctx, []store.Key{leaseKey, connKey(l.Principal, l.Service)})
	if err != nil {
		return cachedToken{}, fmt.Errorf("vault: check lease %s: %w", l.ID, err)
	}
	var lease, conn *store.Item
	for i := range items {
		switch items[i].Key.Kind {
		case LeaseKind:
			lease = &items[i]
		case ConnectionKind:
			conn = &items[i]
		}
	}
	if lease == nil {
		if !v.now().Before(l.ExpiresAt.Add(-time.Second)) {
			return cachedToken{}, fmt.Errorf("vault: lease %s: %w", l.ID, ErrLeaseExpired)
		}
		return cachedToken{}, fmt.Errorf("vault: lease %s: %w", l.ID, ErrLeaseRevoked)
	}
	if !bytes.Equal(lease.Value, l.value) {
		return cachedToken{}, fmt.Errorf("vault: lease %s was replaced: %w", l.ID, ErrLeaseRevoked)
	}
	if err := l.checkConn(conn); err != nil {
		return cachedToken{}, err
	}
	return v.accessToken(ctx, l.Principal, l.Service, l.connID)
}

// connState is the part of a connection record that every request checks;
// decoding only it skips the sealed token.
type connState struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
}

// checkConn checks the lease's connection record, read with the lease (nil
// when there is none), and refuses the request unless the connection is
// still active and still the one the lease was issued on. This is
// what makes revocation immediate and fail closed: Revoke marks the
// connection before it deletes any lease, so even when deleting leases
// fails every lease in every process stops at its next request, and a
// connection record that is gone (deleted, or evicted by a misconfigured
// Redis) blocks every lease on it rather than leaving one usable.
func (l *Lease) checkConn(item *store.Item) error {
	if item == nil {
		return fmt.Errorf("vault: lease %s: %s connection of %s is gone: %w", l.ID, l.Service, l.Principal, ErrLeaseRevoked)
	}
	var cs connState
	if err := json.Unmarshal(item.Value, &cs); err != nil {
		return fmt.Errorf("vault: lease %s: decode %s connection of %s: %w", l.ID, l.Service, l.Principal, ErrCorrupt)
	}
	switch {
	case cs.ID != l.connID:
		return fmt.Errorf("vault: lease %s: %s connection of %s was replaced: %w", l.ID, l.Service, l.Principal, ErrLeaseRevoked)
	case cs.Status == StatusActive:
		return nil
	case cs.Status == StatusExpired:
		return fmt.Errorf("vault: lease %s: %s connection of %s: %w", l.ID, l.Service, l.Principal, ErrReconnect)
	default:
		return fmt.Errorf("vault: lease %s: %s connection of %s is %s: %w", l.ID, l.Service, l.Principal, cs.Status, ErrLeaseRevoked)
	}
}

// allow refuses hosts outside the service's API hosts, plain HTTP to
// anything but a loopback address (which tests use), and a Host header
// that names another host than the URL: Go sends req.Host when it is set,
// so checking the URL alone would let the token go out under a Host the
// allow-list never saw.
func (s *Service) allow(req *http.Request) error {
	u := req.URL
	if u == nil {
		return fmt.Errorf("vault: request without URL: %w", ErrHostNotAllowed)
	}
	host := normalizeHost(u.Scheme, u.Host)
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback.Is(u.Hostname()) {
			return fmt.Errorf("vault: %s: plain http to %s: %w", s.Name, u.Host, ErrHostNotAllowed)
		}
	default:
		return fmt.Errorf("vault: %s: scheme %q: %w", s.Name, u.Scheme, ErrHostNotAllowed)
	}
	if req.Host != "" && normalizeHost(u.Scheme, req.Host) != host {
		return fmt.Errorf("vault: %s: Host header %q differs from the URL's host %s: %w", s.Name, req.Host, u.Host, ErrHostNotAllowed)
	}
	for _, h := range s.APIHosts {
		if normalizeHost(u.Scheme, h) == host {
			return nil
		}
	}
	return fmt.Errorf("vault: %s may not call %s: %w", s.Name, u.Host, ErrHostNotAllowed)
}

// normalizeHost lowercases host and drops the scheme's default port, so
// "API.github.com:443" and "api.github.com" compare equal over https.
func normalizeHost(scheme, host string) string {
	host = strings.ToLower(host)
	switch scheme {
	case "https":
		return strings.TrimSuffix(host, ":443")
	case "http":
		return strings.TrimSuffix(host, ":80")
	}
	return host
}

// authScheme is the Authorization scheme for a token type: "Bearer" for
// bearer tokens and an empty type, and for the types that name who a
// token is for rather than how it is sent (Slack's "user" and "bot", sent
// as bearer tokens); "MAC" for the one other type OAuth defined.
func authScheme(tokenType string) string {
	if strings.EqualFold(tokenType, "mac") {
		return "MAC"
	}
	return "Bearer"
}

package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
)

// cachedToken is an access token held in memory so that warm requests cost
// no store read, no unsealing and no token endpoint call.
type cachedToken struct {
	connID    string // the connection it belongs to; a reconnect makes it stale
	access    secret.Secret
	tokenType string
	expiry    time.Time
}

func cacheKey(principal, service string) string { return principal + "\x00" + service }

func (v *Vault) getCache(principal, service string) (cachedToken, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.cache[cacheKey(principal, service)]
	return c, ok
}

func (v *Vault) setCache(principal, service string, c cachedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cache[cacheKey(principal, service)] = c
}

func (v *Vault) dropCache(principal, service string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.cache, cacheKey(principal, service))
}

// fresh reports whether a token with this expiry can still be sent. A zero
// expiry means the token does not expire.
func (v *Vault) fresh(expiry time.Time) bool {
	return expiry.IsZero() || v.now().Add(expiryMargin).Before(expiry)
}

// accessToken returns a fresh access token of the connection connID.
// Callers in this process share one refresh (singleflight), and processes
// sharing the store share one refresh under a store lock.
func (v *Vault) accessToken(ctx context.Context, principal, service, connID string) (cachedToken, error) {
	if c, ok := v.getCache(principal, service); ok && c.connID == connID && v.fresh(c.expiry) {
		return c, nil
	}
	res, err, _ := v.flight.Do(cacheKey(principal, service), func() (any, error) {
		// A flight that ended just before this one began may have filled the
		// cache.
		if c, ok := v.getCache(principal, service); ok && c.connID == connID && v.fresh(c.expiry) {
			return c, nil
		}
		// The flight serves every waiting caller, so one caller's
		// cancellation must not fail the others; refresh bounds each of its
		// steps itself.
		return v.refresh(context.WithoutCancel(ctx), principal, service, "")
	})
	if err != nil {
		return cachedToken{}, err
	}
	c := res.(cachedToken)
	if c.connID != connID {
		return cachedToken{}, fmt.Errorf("vault: %s connection of %s was replaced: %w", service, principal, ErrLeaseRevoked)
	}
	return c, nil
}

// renew returns a new access token for the connection connID in place of
// refused, which the provider answered 401 to before its time was up (the
// provider expired or revoked it early, or the clocks disagree). Like
// accessToken it shares one refresh between callers in this process and,
// under the store lock, between processes; a token another caller has
// already put in refused's place is used as it is. It refreshes at most
// once per renewEvery per connection in this process, and never for a
// connection without a refresh token: a 401 is not always about the token
// (a path the token may not use answers 401 too), and must not cost the
// person their connection.
func (v *Vault) renew(ctx context.Context, principal, service, connID string, refused cachedToken) (cachedToken, error) {
	key := cacheKey(principal, service)
	stale := refused.access.Reveal()
	usable := func(c cachedToken) bool {
		return c.connID == connID && c.access.Reveal() != stale && (c.expiry.IsZero() || v.now().Before(c.expiry))
	}
	// A flight that began before the refusal may bring the refused token
	// back from the store: then one more, which sees the refusal.
	for range 2 {
		res, err, _ := v.flight.Do(key, func() (any, error) {
			if c, ok := v.getCache(principal, service); ok && usable(c) {
				return c, nil
			}
			v.mu.Lock()
			last, recent := v.renewed[key]
			recent = recent && v.now().Sub(last) < renewEvery
			if !recent {
				v.renewed[key] = v.now()
			}
			v.mu.Unlock()
			if recent {
				return nil, fmt.Errorf("vault: %s refused the access token of %s again within %v of renewing it", service, principal, renewEvery)
			}
			return v.refresh(context.WithoutCancel(ctx), principal, service, stale)
		})
		if err != nil {
			return cachedToken{}, err
		}
		c := res.(cachedToken)
		if c.connID != connID {
			return cachedToken{}, fmt.Errorf("vault: %s connection of %s was replaced: %w", service, principal, ErrLeaseRevoked)
		}
		if usable(c) {
			return c, nil
		}
	}
	return cachedToken{}, fmt.Errorf("vault: %s refused the access token of %s and no other came", service, principal)
}

// refresh returns the connection's access token, refreshing it at the
// provider if it has expired or is refused (the access token the provider
// has just answered 401 to, or ""), and caches it. It runs under the store lock
// "refresh:"+service in the principal's scope, and re-reads the record after
// taking the lock: another process may have refreshed already.
//
// Its time is budgeted so that the lock stays exclusive: the wait for the
// lock has its own bound (lockWaitTimeout); the re-read and the token
// endpoint call share providerTimeout, whose clock starts once the lock is
// held; the write of the result has its own bounded retries
// (storeRefreshed). ctx must not be cancelled by a caller that gives up:
// refresh serves a singleflight of callers.
func (v *Vault) refresh(ctx context.Context, principal, service, refused string) (cachedToken, error) {
	svc, err := v.service(service)
	if err != nil {
		return cachedToken{}, err
	}
	wctx, cancelWait := context.WithTimeout(ctx, lockWaitTimeout)
	lock, err := store.AcquireLock(wctx, v.store, principal, "refresh:"+service, refreshLockTTL, lockPoll)
	cancelWait()
	if err != nil {
		return cachedToken{}, fmt.Errorf("vault: refresh %s token of %s: %w", service, principal, err)
	}
	defer func() {
		if err := lock.Unlock(context.WithoutCancel(ctx)); err != nil {
			// The lock expires by itself; a failed unlock only delays the
			// next refresher.
			v.log.WarnContext(ctx, "vault: refresh unlock failed", "principal", principal, "service", service, "err", err)
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()

	_, rec, err := v.load(pctx, principal, service)
	if err != nil {
		return cachedToken{}, err
	}
	if err := activeErr(principal, service, rec.Status); err != nil {
		return cachedToken{}, err
	}
	m, err := v.openMaterial(principal, service, &rec)
	if err != nil {
		return cachedToken{}, err
	}
	if m.AccessToken != "" && v.fresh(m.Expiry) && m.AccessToken != refused {
		return v.cacheMaterial(principal, service, rec.ID, m), nil
	}
	if svc.OAuth == nil && svc.Renew == nil {
		return cachedToken{}, fmt.Errorf("vault: %s access token of %s expired and %s has no token endpoint: %w", service, principal, service, ErrReconnect)
	}
	if m.RefreshToken == "" {
		if refused != "" {
			return cachedToken{}, fmt.Errorf("vault: %s refused the access token of %s, which has no refresh token", service, principal)
		}
		return cachedToken{}, v.expire(pctx, principal, service, rec.ID, "no_refresh_token")
	}

	viaSubject := ""
	if svc.Via != "" {
		if rec.Via != svc.Via {
			// Made before the deployment reached the provider through
			// Via: its token is the provider's own, and goes nowhere else.
			return cachedToken{}, v.expire(pctx, principal, service, rec.ID, "made_before_"+svc.Via)
		}
		sub, err := v.viaSubject(pctx, principal, svc)
		if err != nil {
			return cachedToken{}, fmt.Errorf("vault: renew %s token of %s: %w", service, principal, err)
		}
		viaSubject = sub.Reveal()
	}
	octx := context.WithValue(pctx, oauth2.HTTPClient, v.client)
	reread := false
	var tok *oauth2.Token
	for {
		subject := m.RefreshToken // re-read below when another process rotated it
		if svc.Via != "" {
			subject = viaSubject
		}
		tok, err = svc.newToken(octx, subject)
		if err == nil {
			break
		}
		if !isInvalidGrant(err) && !asksReconnect(err) {
			return cachedToken{}, fmt.Errorf("vault: refresh %s token of %s: %s", service, principal, describeRefreshError(err))
		}
		why := refusal(err)
		if reread {
			return cachedToken{}, v.expire(pctx, principal, service, rec.ID, why)
		}
		// The provider refused the refresh token. Another process may have
		// rotated it meanwhile (its lock expired, or it ignored ours): read
		// the store once more before giving up on the connection.
		reread = true
		_, rec2, err := v.load(pctx, principal, service)
		if err != nil {
			return cachedToken{}, err
		}
		if rec2.ID != rec.ID {
			return cachedToken{}, fmt.Errorf("vault: %s connection of %s was replaced during refresh: %w", service, principal, ErrLeaseRevoked)
		}
		if err := activeErr(principal, service, rec2.Status); err != nil {
			return cachedToken{}, err
		}
		m2, err := v.openMaterial(principal, service, &rec2)
		if err != nil {
			return cachedToken{}, err
		}
		if m2.RefreshToken == m.RefreshToken || svc.Via != "" {
			return cachedToken{}, v.expire(pctx, principal, service, rec.ID, why)
		}
		rec, m = rec2, m2
		if m.AccessToken != "" && v.fresh(m.Expiry) && m.AccessToken != refused {
			return v.cacheMaterial(principal, service, rec.ID, m), nil
		}
	}

	if tok.RefreshToken == "" {
		tok.RefreshToken = m.RefreshToken // not rotated: kept
	}
	next := material{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, Expiry: tok.Expiry}
	rotated := next.RefreshToken != m.RefreshToken
	// Store the new tokens (a rotated refresh token is the only valid one
	// from now on) before the access token is used.
	if err := v.storeRefreshed(ctx, svc, principal, rec.ID, next); err != nil {
		return cachedToken{}, err
	}
	actx, cancelAudit := context.WithTimeout(ctx, rotatedWriteTimeout)
	defer cancelAudit()
	if err := v.record(actx, audit.Event{
		Kind: audit.TokenRefreshed, Actor: principal, Result: "ok",
		Detail: map[string]string{"service": service, "refresh_token_rotated": fmt.Sprint(rotated)},
	}); err != nil {
		return cachedToken{}, err
	}
	v.log.InfoContext(ctx, "vault: token refreshed", "principal", principal, "service", service, "rotated", rotated)
	return v.cacheMaterial(principal, service, rec.ID, next), nil
}

// storeRefreshed writes the tokens the provider has just issued into the
// connection connID. By now the provider has invalidated the old refresh
// token, so the new one must not be lost to a transient store error: the
// write ignores the caller's cancellation and the provider call's deadline,
// and is tried rotatedWriteAttempts times, each bounded, still under the
// refresh lock. If the connection was revoked or replaced meanwhile, the
// new tokens belong to nobody: they are revoked at the provider, best
// effort.
func (v *Vault) storeRefreshed(ctx context.Context, svc *Service, principal, connID string, next material) error {
	ctx = context.WithoutCancel(ctx)
	service := svc.Name
	backoff := rotatedWriteBackoff
	var err error
	for attempt := 1; ; attempt++ {
		err = v.writeRefreshed(ctx, principal, service, connID, next)
		if err == nil {
			return nil
		}
		if stale(err) {
			v.revokeOrphan(ctx, svc, principal, next)
			return err
		}
		if attempt == rotatedWriteAttempts {
			break
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	// Logged as well as returned: the agent gets the error, but only an
	// operator can act on a refresh token the provider has issued and the
	// vault could not keep. The store error names keys, never values.
	v.log.ErrorContext(ctx, "vault: refreshed token could not be stored; the connection will need reconnecting",
		"principal", principal, "service", service, "attempts", rotatedWriteAttempts, "err", err)
	return fmt.Errorf("vault: store refreshed %s token of %s after %d attempts: %w", service, principal, rotatedWriteAttempts, err)
}

func (v *Vault) writeRefreshed(ctx context.Context, principal, service, connID string, next material) error {
	ctx, cancel := context.WithTimeout(ctx, rotatedWriteTimeout)
	defer cancel()
	cur, _, err := v.load(ctx, principal, service)
	if err != nil {
		return err
	}
	_, err = v.update(ctx, principal, service, cur, func(r *connRecord) error {
		if r.ID != connID {
			return fmt.Errorf("vault: %s connection of %s was replaced during refresh: %w", service, principal, ErrLeaseRevoked)
		}
		if err := activeErr(principal, service, r.Status); err != nil {
			return err
		}
		r.Updated = v.now().UTC()
		return v.sealMaterial(r, next)
	})
	return err
}

// stale reports whether a write failed because the connection is no longer
// the one being written (revoked, expired, replaced, deleted or damaged),
// which no retry can change.
func stale(err error) bool {
	for _, target := range []error{ErrLeaseRevoked, ErrNotConnected, ErrReconnect, ErrCorrupt, ErrUnknownKey} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// revokeOrphan asks the provider to revoke tokens it issued to a refresh
// whose connection was revoked or replaced meanwhile, so they do not stay
// live at the provider with no record of them here.
func (v *Vault) revokeOrphan(ctx context.Context, svc *Service, principal string, m material) {
	if svc.Revoke == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, rotatedWriteTimeout)
	defer cancel()
	access, refresh := secret.New(m.AccessToken), secret.New(m.RefreshToken)
	if err := svc.Revoke(ctx, access, refresh); err != nil {
		v.log.WarnContext(ctx, "vault: tokens refreshed for a revoked connection could not be revoked at the provider",
			"principal", principal, "service", svc.Name, "failure", scrub(hookFailure(err), access, refresh))
	}
}

func (v *Vault) cacheMaterial(principal, service, connID string, m material) cachedToken {
	c := cachedToken{connID: connID, access: secret.New(m.AccessToken), tokenType: m.TokenType, expiry: m.Expiry}
	v.setCache(principal, service, c)
	return c
}

// expire marks the connection connID expired and deletes its sealed token,
// audits connection.expired, and returns an error wrapping ErrReconnect.
func (v *Vault) expire(ctx context.Context, principal, service, connID, reason string) error {
	v.dropCache(principal, service)
	reconnect := fmt.Errorf("vault: %s connection of %s expired (%s): %w", service, principal, reason, ErrReconnect)
	item, err := v.store.Get(ctx, connKey(principal, service))
	if err != nil {
		return errors.Join(reconnect, fmt.Errorf("vault: read %s connection of %s: %w", service, principal, err))
	}
	_, err = v.update(ctx, principal, service, item, func(r *connRecord) error {
		if r.ID != connID || r.Status != StatusActive {
			return errUnchanged
		}
		r.Status, r.KeyID, r.Sealed, r.Updated = StatusExpired, "", nil, v.now().UTC()
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return reconnect
	}
	if err != nil {
		return errors.Join(reconnect, err)
	}
	if err := v.record(ctx, audit.Event{
		Kind: audit.ConnectionExpired, Actor: principal, Result: reason,
		Detail: map[string]string{"service": service},
	}); err != nil {
		return errors.Join(reconnect, err)
	}
	return reconnect
}

func activeErr(principal, service string, s Status) error {
	switch s {
	case StatusActive:
		return nil
	case StatusExpired:
		return fmt.Errorf("vault: %s connection of %s: %w", service, principal, ErrReconnect)
	default:
		return fmt.Errorf("vault: %s connection of %s is %s: %w", service, principal, s, ErrNotConnected)
	}
}

// newToken gets a fresh access token with the refresh token: by Renew, or
// by an OAuth refresh.
func (s *Service) newToken(ctx context.Context, refresh string) (*oauth2.Token, error) {
	if s.Renew != nil {
		tok, err := s.Renew(ctx, secret.New(refresh))
		if err == nil && (tok == nil || tok.AccessToken == "") {
			return nil, errors.New("vault: the renewal gave no access token")
		}
		return tok, err
	}
	// An access token left empty makes TokenSource refresh at once.
	return s.OAuth.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
}

// refusal names why a refresh token was refused, for connection.expired.
func refusal(err error) string {
	if asksReconnect(err) {
		return "renewal_refused"
	}
	return "invalid_grant"
}

// asksReconnect reports whether a renewal's error says the person must
// connect again (Service.Renew).
func asksReconnect(err error) bool {
	var r interface{ Reconnect() bool }
	return errors.As(err, &r) && r.Reconnect()
}

// isInvalidGrant reports whether the token endpoint refused the refresh
// token itself. GitHub says so with HTTP 200 and error=bad_refresh_token,
// which oauth2 also returns as a *RetrieveError with that ErrorCode.
func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "bad_refresh_token")
}

// describeRefreshError says what went wrong at the token endpoint without
// quoting its response body, which a provider might fill with anything,
// tokens included.
func describeRefreshError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		var b strings.Builder
		b.WriteString("token endpoint refused")
		if re.Response != nil {
			fmt.Fprintf(&b, " with status %d", re.Response.StatusCode)
		}
		if re.ErrorCode != "" {
			fmt.Fprintf(&b, " (error %q)", safeCode(re.ErrorCode))
		}
		return b.String()
	}
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		return fmt.Sprintf("token exchange refused (%T, status %d)", err, sc.StatusCode())
	}
	// Transport and parse errors from oauth2 name the token URL and the
	// failure, never the request body that carried the refresh token.
	return err.Error()
}

// safeCode keeps an RFC 6749 error code to its allowed characters and a
// sane length, so a hostile endpoint cannot smuggle text through it.
func safeCode(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r == '_' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
)

// RevocationKind is the store kind of the revocations a provider did not
// confirm: the tokens, sealed, waiting to be revoked there again. They
// live in the global scope, one record each, so that any process sharing
// the store retries them.
const RevocationKind = "vault-revocation"

// Retry timing: the first retry a minute after the failure, then twice as
// long each time, up to an hour between tries. A revocation is retried
// until the provider confirms it: tokens the person asked to die must not
// be left alive because a provider was down for a day.
const (
	revocationFirstRetry = time.Minute
	revocationMaxBackoff = time.Hour
)

// queuedRevocation is a revocation waiting to be retried. The tokens are
// sealed under the vault key, bound to the record's ID, principal and
// service, so a queued ciphertext opens nowhere else.
type queuedRevocation struct {
	V         int       `json:"v"`
	Principal string    `json:"principal"`
	Service   string    `json:"service"`
	AccountID string    `json:"account_id,omitempty"` // for Service.RevokeAccount
	Queued    time.Time `json:"queued"`
	Attempts  int       `json:"attempts"` // tries so far, the first one included
	Next      time.Time `json:"next"`     // when it is due again
	Failure   string    `json:"failure,omitempty"`
	KeyID     string    `json:"key_id"`
	Sealed    []byte    `json:"sealed"`
}

func revocationAD(id, principal, service string) []byte {
	return []byte("agenthub.revocation.v1\x00" + id + "\x00" + principal + "\x00" + service)
}

func revocationKey(id string) store.Key { return store.Key{Kind: RevocationKind, ID: id} }

func backoff(attempts int) time.Duration {
	d := revocationFirstRetry
	for i := 1; i < attempts && d < revocationMaxBackoff; i++ {
		d *= 2
	}
	return min(d, revocationMaxBackoff)
}

// RotatedTokens is what a Revoke hook's error implements when the hook
// refreshed the tokens (GitHub needs a live access token to name a grant)
// and then failed: the refresh spent the old refresh token, so the tokens
// it returns are the ones to revoke from then on.
type RotatedTokens interface {
	RotatedTokens() (access, refresh secret.Secret)
}

// revokeAtProvider revokes tokens at the provider with the queue as its
// safety net. The tokens are queued first (due a minute later), so that a
// process killed during the provider's call leaves them to a retry rather
// than live and forgotten; the provider's confirmation drops the record.
// It returns the provider's result for the trail ("ok", "queued",
// "failed") and, unless confirmed, an error wrapping ErrProviderRevoke.
func (v *Vault) revokeAtProvider(ctx context.Context, svc *Service, principal, service, accountID string, access, refresh secret.Secret) (string, error) {
	id, qerr := v.enqueueRevocation(context.WithoutCancel(ctx), principal, service, accountID, access, refresh)
	return v.confirmRevocation(ctx, svc, principal, service, accountID, id, qerr, access, refresh)
}

// revokes reports whether the service revokes at the provider.
func (s *Service) revokes() bool { return s.Revoke != nil || s.RevokeAccount != nil }

// revokeAt asks the provider to revoke: the account (RevokeAccount), or
// the tokens (Revoke).
func (s *Service) revokeAt(ctx context.Context, accountID string, access, refresh secret.Secret) error {
	if s.RevokeAccount != nil {
		return s.RevokeAccount(ctx, accountID, refresh)
	}
	return s.Revoke(ctx, access, refresh)
}

// confirmRevocation is revokeAtProvider's second half, for tokens queued
// as id (qerr: they could not be).
func (v *Vault) confirmRevocation(ctx context.Context, svc *Service, principal, service, accountID, id string, qerr error, access, refresh secret.Secret) (string, error) {
	qctx := context.WithoutCancel(ctx)
	err := svc.revokeAt(ctx, accountID, access, refresh)
	if err == nil {
		if qerr == nil {
			if derr := v.store.Delete(qctx, revocationKey(id)); derr != nil {
				// A retry asks again; "already revoked" is success.
				v.log.WarnContext(ctx, "confirmed revocation left queued", "service", service, "error", derr)
			}
		}
		return "ok", nil
	}
	failure := scrub(hookFailure(err), access, refresh)
	if qerr != nil {
		return "failed", errors.Join(qerr, fmt.Errorf("vault: %s did not revoke the tokens (%s), and they could not be queued to be asked again: %w",
			service, failure, ErrProviderRevoke))
	}
	if item, gerr := v.store.Get(qctx, revocationKey(id)); gerr == nil {
		v.noteFailure(qctx, item, failure, err)
	}
	return "queued", fmt.Errorf("vault: %s did not revoke the tokens (%s); it is queued to be asked again until it does: %w", service, failure, ErrProviderRevoke)
}

// noteFailure writes a failed try's description into the queued record
// item and, when the hook rotated the tokens before failing, the rotated
// tokens in place of the spent ones, sealed under the current key. It
// reads again on a conflict (a rekey or another process changed the
// record meanwhile): rotated tokens must not be lost, since the spent ones
// no longer name the grant. Only a record that is gone is left gone.
func (v *Vault) noteFailure(ctx context.Context, item store.Item, failure string, err error) {
	var (
		rt                RotatedTokens
		rotated           = errors.As(err, &rt)
		access, refresh   secret.Secret
		service           string
		sealErr, writeErr error
	)
	if rotated {
		access, refresh = rt.RotatedTokens()
	}
	_, writeErr = store.UpdateFrom(ctx, v.store, item.Key, item.Value, store.KeepTTL, func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, store.Keep
		}
		var q queuedRevocation
		if json.Unmarshal(cur, &q) != nil {
			return nil, store.Keep
		}
		service = q.Service
		q.Failure = failure
		if rotated {
			keyID, sealed, serr := v.sealQueued(item.Key.ID, q.Principal, q.Service, access, refresh)
			if serr != nil {
				sealErr = serr
				return nil, store.Keep
			}
			q.KeyID, q.Sealed = keyID, sealed
		}
		return json.Marshal(q)
	})
	if sealErr != nil {
		v.log.ErrorContext(ctx, "rotated tokens not queued", "service", service, "error", sealErr)
	}
	if writeErr != nil {
		v.log.WarnContext(ctx, "queued revocation not updated", "service", service, "error", writeErr)
	}
}

func (v *Vault) sealQueued(id, principal, service string, access, refresh secret.Secret) (string, []byte, error) {
	plain, err := json.Marshal(material{AccessToken: access.Reveal(), RefreshToken: refresh.Reveal()})
	if err != nil {
		return "", nil, fmt.Errorf("vault: encode revocation: %w", err)
	}
	defer clear(plain)
	return v.keys.Seal(v.rand, plain, revocationAD(id, principal, service))
}

// enqueueRevocation keeps tokens to be revoked at the provider, sealed,
// for RetryRevocations, due a minute from now; it returns the record's ID.
func (v *Vault) enqueueRevocation(ctx context.Context, principal, service, accountID string, access, refresh secret.Secret) (string, error) {
	id, err := v.newID()
	if err != nil {
		return "", err
	}
	keyID, sealed, err := v.sealQueued(id, principal, service, access, refresh)
	if err != nil {
		return "", err
	}
	now := v.now().UTC()
	q := queuedRevocation{V: 1, Principal: principal, Service: service, AccountID: accountID, Queued: now, Attempts: 1, Next: now.Add(backoff(1)),
		KeyID: keyID, Sealed: sealed}
	value, err := json.Marshal(q)
	if err != nil {
		return "", fmt.Errorf("vault: encode revocation: %w", err)
	}
	if err := v.store.Create(ctx, revocationKey(id), value, 0); err != nil {
		return "", fmt.Errorf("vault: queue the %s revocation of %s: %w", service, principal, err)
	}
	return id, nil
}

// RetryResult is what one RetryRevocations pass did.
type RetryResult struct {
	Revoked int // confirmed by the provider now, and dropped from the queue
	Failed  int // tried again and failed again: due later
	Waiting int // not due yet, or taken by another process
}

// RetryRevocations asks the providers again to revoke the tokens of every
// queued revocation that is due. Each is claimed first (its next try moved
// on by a compare-and-swap), so processes sharing the store do not ask
// twice at once; a provider that confirms ends it, with a
// connection.provider_revoked event. Call it every minute or so.
func (v *Vault) RetryRevocations(ctx context.Context) (RetryResult, error) {
	var res RetryResult
	items, err := v.store.List(ctx, "", RevocationKind)
	if err != nil {
		return res, fmt.Errorf("vault: list queued revocations: %w", err)
	}
	var errs []error
	for _, it := range items {
		var q queuedRevocation
		if err := json.Unmarshal(it.Value, &q); err != nil {
			errs = append(errs, fmt.Errorf("vault: decode queued revocation %s: %w", it.Key.ID, ErrCorrupt))
			continue
		}
		now := v.now().UTC()
		if now.Before(q.Next) {
			res.Waiting++
			continue
		}
		claimed := q
		claimed.Attempts++
		claimed.Next = now.Add(backoff(claimed.Attempts))
		next, err := json.Marshal(claimed)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch err := v.store.CompareAndSwap(ctx, it.Key, it.Value, next, store.KeepTTL); {
		case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
			res.Waiting++ // another process has it
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("vault: claim queued revocation %s: %w", it.Key.ID, err))
			continue
		}
		if err := v.retryOne(ctx, it.Key, claimed, next); err != nil {
			res.Failed++
			errs = append(errs, err)
			continue
		}
		res.Revoked++
	}
	return res, errors.Join(errs...)
}

// retryOne tries one claimed revocation (stored as value) again.
func (v *Vault) retryOne(ctx context.Context, key store.Key, q queuedRevocation, value []byte) error {
	svc, err := v.service(q.Service)
	if err != nil {
		return fmt.Errorf("vault: queued revocation %s: %w", key.ID, err)
	}
	plain, err := v.keys.Open(q.KeyID, q.Sealed, revocationAD(key.ID, q.Principal, q.Service))
	if err != nil {
		return fmt.Errorf("vault: open queued revocation %s: %w", key.ID, err)
	}
	var m material
	err = json.Unmarshal(plain, &m)
	clear(plain)
	if err != nil {
		return fmt.Errorf("vault: decode queued revocation %s: %w", key.ID, ErrCorrupt)
	}
	access, refresh := secret.New(m.AccessToken), secret.New(m.RefreshToken)
	if err := svc.revokeAt(ctx, q.AccountID, access, refresh); err != nil {
		failure := scrub(hookFailure(err), access, refresh)
		v.noteFailure(ctx, store.Item{Key: key, Value: value}, failure, err)
		return fmt.Errorf("vault: %s still did not revoke the tokens of %s (%s, try %d): %w", q.Service, q.Principal, failure, q.Attempts, ErrProviderRevoke)
	}
	if err := v.record(ctx, audit.Event{Kind: audit.ProviderRevoked, Actor: q.Principal, Result: "ok",
		Detail: map[string]string{"service": q.Service, "attempts": fmt.Sprint(q.Attempts), "queued": q.Queued.Format(time.RFC3339)}}); err != nil {
		// Revoked at the provider all the same; the record stays queued, and
		// the next pass asks again ("already revoked" is success) and
		// records it then.
		return err
	}
	if err := v.store.CompareAndDelete(ctx, key, value); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("vault: drop queued revocation %s: %w", key.ID, err)
	}
	v.log.InfoContext(ctx, "provider revoked tokens on retry", "principal", q.Principal, "service", q.Service, "attempts", q.Attempts)
	return nil
}

// QueuedRevocations counts the revocations waiting to be retried, for the
// operator (a key rotation must keep the old key while any is sealed
// under it).
func (v *Vault) QueuedRevocations(ctx context.Context) (int, error) {
	items, err := v.store.List(ctx, "", RevocationKind)
	if err != nil {
		return 0, fmt.Errorf("vault: list queued revocations: %w", err)
	}
	return len(items), nil
}

// rekeyQueued reseals every queued revocation under the current key, and
// returns how many it rewrote. A record changed meanwhile (tried, or
// confirmed and dropped) is left to that change: a retry that failed
// reseals what it rewrites under the current key anyway.
func (v *Vault) rekeyQueued(ctx context.Context) (int, error) {
	items, err := v.store.List(ctx, "", RevocationKind)
	if err != nil {
		return 0, fmt.Errorf("vault: list queued revocations: %w", err)
	}
	n := 0
	var errs []error
	for _, it := range items {
		var q queuedRevocation
		if err := json.Unmarshal(it.Value, &q); err != nil {
			errs = append(errs, fmt.Errorf("vault: decode queued revocation %s: %w", it.Key.ID, ErrCorrupt))
			continue
		}
		if q.KeyID == v.keys.CurrentKeyID() {
			continue
		}
		ad := revocationAD(it.Key.ID, q.Principal, q.Service)
		plain, err := v.keys.Open(q.KeyID, q.Sealed, ad)
		if err != nil {
			errs = append(errs, fmt.Errorf("vault: open queued revocation %s: %w", it.Key.ID, err))
			continue
		}
		q.KeyID, q.Sealed, err = v.keys.Seal(v.rand, plain, ad)
		clear(plain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next, err := json.Marshal(q)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch err := v.store.CompareAndSwap(ctx, it.Key, it.Value, next, store.KeepTTL); {
		case errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound):
		case err != nil:
			errs = append(errs, fmt.Errorf("vault: reseal queued revocation %s: %w", it.Key.ID, err))
		default:
			n++
		}
	}
	return n, errors.Join(errs...)
}

// QueuedByKey counts the queued revocations by the ID of the key their
// tokens are sealed under: what a rotation's last look checks.
func (v *Vault) QueuedByKey(ctx context.Context) (map[string]int, error) {
	items, err := v.store.List(ctx, "", RevocationKind)
	if err != nil {
		return nil, fmt.Errorf("vault: list queued revocations: %w", err)
	}
	counts := make(map[string]int)
	for _, it := range items {
		var q queuedRevocation
		if err := json.Unmarshal(it.Value, &q); err != nil {
			return nil, fmt.Errorf("vault: decode queued revocation %s: %w", it.Key.ID, ErrCorrupt)
		}
		counts[q.KeyID]++
	}
	return counts, nil
}

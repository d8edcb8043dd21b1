package stepup

import (
	"context"
	"errors"
	"fmt"

	"github.com/agenthub/agenthub/internal/store"
)

// indexKind is the kind of the global records that name every principal
// who ever enrolled. Enrolments live in their principal's scope, and the
// store lists one scope at a time, so without this index finding them all
// would mean scanning the keyspace, which Redis Cluster makes expensive and
// the Store contract does not offer.
const indexKind = "stepup-principal"

// indexValue is the value of an index record: the key is the whole index,
// the value only has to be something.
var indexValue = []byte("{}")

// index records that principal has, or is about to have, an enrolment. It
// is idempotent and never expires; Reset leaves it, and ResealAll skips a
// principal whose enrolment is gone.
func (s *Service) index(ctx context.Context, principal string) error {
	k := store.Key{Kind: indexKind, ID: principal}
	if err := s.store.Put(ctx, k, indexValue, 0); err != nil {
		return fmt.Errorf("stepup: indexing enrolment: %w", err)
	}
	return nil
}

// Principals returns every principal in the enrolment index, in order: all
// who enrolled since the index exists, including some whose enrolment was
// Reset or never stored. It is what ResealAll walks.
func (s *Service) Principals(ctx context.Context) ([]string, error) {
	items, err := s.store.List(ctx, "", indexKind)
	if err != nil {
		return nil, fmt.Errorf("stepup: listing enrolled principals: %w", err)
	}
	principals := make([]string, len(items))
	for i, it := range items {
		principals[i] = it.Key.ID
	}
	return principals, nil
}

// SealedUnder returns the ID of the key principal's enrolment is sealed
// under, and false when they have none: what a rotation's last look checks.
// With a replacement waiting for its first code, a key other than the
// current one is reported if either is sealed under one, so that neither
// is forgotten.
func (s *Service) SealedUnder(ctx context.Context, principal string) (string, bool, error) {
	key, err := recordKey(principal)
	if err != nil {
		return "", false, err
	}
	it, err := s.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("stepup: reading enrolment: %w", err)
	}
	rec, err := decode(it.Value)
	if err != nil {
		return "", false, err
	}
	if rec.Next != nil && rec.KeyID == s.sealer.current() {
		return rec.Next.KeyID, true, nil
	}
	return rec.KeyID, true, nil
}

// CurrentKeyID is the ID of the key new enrolments are sealed under.
func (s *Service) CurrentKeyID() string { return s.sealer.current() }

// Reseal seals principal's TOTP secret again under the current Key, so that
// the old key it was sealed under can be dropped from OldKeys. It reports
// whether it rewrote the enrolment: false when there is none or it is
// sealed under Key already. Only the seal changes; the replay and lockout
// state a concurrent attempt writes is kept, as the write is a
// compare-and-swap on the record as read. A principal whose record is not
// indexed (enrolled before the index existed) is indexed, so that the next
// ResealAll finds them.
//
// Reseal records no audit event: rotating a key is an operator's action,
// and the caller audits it once, not once per principal.
func (s *Service) Reseal(ctx context.Context, principal string) (bool, error) {
	return s.reseal(ctx, principal, true)
}

// reseal is Reseal; index says whether to make sure principal is indexed,
// which ResealAll, walking the index, need not.
func (s *Service) reseal(ctx context.Context, principal string, index bool) (bool, error) {
	key, err := recordKey(principal)
	if err != nil {
		return false, err
	}
	var found, rewrote bool
	_, err = store.Update(ctx, s.store, key, store.KeepTTL, func(cur []byte) ([]byte, error) {
		found, rewrote = cur != nil, false
		if cur == nil {
			return nil, store.Keep
		}
		rec, err := decode(cur)
		if err != nil {
			return nil, err
		}
		if rec.KeyID == s.sealer.current() && (rec.Next == nil || rec.Next.KeyID == s.sealer.current()) {
			return nil, store.Keep
		}
		if rec.KeyID, rec.Sealed, err = s.resealSecret(principal, rec.KeyID, rec.Sealed); err != nil {
			return nil, err
		}
		if rec.Next != nil {
			next := *rec.Next
			if next.KeyID, next.Sealed, err = s.resealSecret(principal, next.KeyID, next.Sealed); err != nil {
				return nil, err
			}
			rec.Next = &next
		}
		rewrote = true
		return rec.encode()
	})
	if err != nil {
		return false, fmt.Errorf("stepup: resealing enrolment: %w", err)
	}
	if found && index {
		if err := s.index(ctx, principal); err != nil {
			return rewrote, err
		}
	}
	return rewrote, nil
}

// ResealAll reseals the enrolment of every principal in the index (see
// Reseal) and returns how many it rewrote. It goes on past a principal that
// fails, so that one damaged record does not keep the rest on the old key,
// and returns their errors joined; it stops when ctx ends. progress, when
// not nil, is called after each principal with how many are done of how
// many there are. Until it returns with no error, keep the old keys in
// OldKeys.
func (s *Service) ResealAll(ctx context.Context, progress func(done, total int)) (int, error) {
	principals, err := s.Principals(ctx)
	if err != nil {
		return 0, err
	}
	var (
		rewritten int
		errs      []error
	)
	for i, p := range principals {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("stepup: resealing stopped after %d of %d principals: %w", i, len(principals), err))
			break
		}
		ok, err := s.reseal(ctx, p, false)
		if err != nil {
			errs = append(errs, fmt.Errorf("principal %s: %w", p, err))
		}
		if ok {
			rewritten++
		}
		if progress != nil {
			progress(i+1, len(principals))
		}
	}
	return rewritten, errors.Join(errs...)
}

// resealSecret moves one sealed secret of principal under the current key (it
// leaves one there already as it is).
func (s *Service) resealSecret(principal, keyID string, sealed []byte) (string, []byte, error) {
	if keyID == s.sealer.current() {
		return keyID, sealed, nil
	}
	secret, err := s.sealer.open(principal, keyID, sealed)
	if err != nil {
		return "", nil, err
	}
	defer clear(secret)
	return s.sealer.seal(principal, secret)
}

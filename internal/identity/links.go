package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/store"
)

// Identity is a person's identity at the identity provider, as linked to
// their Slack user.
type Identity struct {
	Issuer  string    `json:"iss"`
	Subject string    `json:"sub"`
	Email   string    `json:"email,omitempty"` // as the IdP said it when linking; shown, never trusted
	Linked  time.Time `json:"linked"`
}

// Errors of linking.
var (
	// ErrTaken: the identity is linked to another Slack user.
	ErrTaken = errors.New("identity: linked to another Slack user")
	// ErrOtherLinked: the Slack user is linked to another identity.
	ErrOtherLinked = errors.New("identity: the Slack user is linked to another identity")
)

// Store kinds: one record per identity (naming its Slack user) and one per
// Slack user (naming its identity). Linking creates both, each with
// Create, so that of two links racing for one identity or one Slack user
// exactly one wins.
const (
	subjectKind = "identity-subject"
	linkKind    = "identity-link"
)

func subjectKey(iss, sub string) store.Key {
	sum := sha256.Sum256([]byte(iss + "\x00" + sub))
	return store.Key{Kind: subjectKind, ID: hex.EncodeToString(sum[:])}
}

func linkKey(p broker.Principal) store.Key { return store.Key{Kind: linkKind, ID: p.String()} }

// links keeps who is linked to whom.
type links struct{ st store.Store }

// Linked returns p's identity; ok is false when p has linked none.
func (l links) Linked(ctx context.Context, p broker.Principal) (Identity, bool, error) {
	it, err := l.st.Get(ctx, linkKey(p))
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("identity: read link: %w", err)
	}
	var id Identity
	if err := json.Unmarshal(it.Value, &id); err != nil {
		return Identity{}, false, fmt.Errorf("identity: decode link: %w", err)
	}
	return id, true, nil
}

// link links p to id. Linking the same pair again is not an error
// (already is true).
func (l links) link(ctx context.Context, p broker.Principal, id Identity) (already bool, err error) {
	sk := subjectKey(id.Issuer, id.Subject)
	created := true
	switch err := l.st.Create(ctx, sk, []byte(p.String()), 0); {
	case errors.Is(err, store.ErrExists):
		it, err := l.st.Get(ctx, sk)
		if err != nil {
			return false, fmt.Errorf("identity: read identity: %w", err)
		}
		if string(it.Value) != p.String() {
			return false, ErrTaken
		}
		created = false
	case err != nil:
		return false, fmt.Errorf("identity: claim identity: %w", err)
	}
	value, err := json.Marshal(id)
	if err != nil {
		return false, err
	}
	switch err := l.st.Create(ctx, linkKey(p), value, 0); {
	case errors.Is(err, store.ErrExists):
		cur, ok, rerr := l.Linked(ctx, p)
		if rerr == nil && ok && cur.Issuer == id.Issuer && cur.Subject == id.Subject {
			return true, nil
		}
		if created {
			// Give back the identity this attempt claimed: p keeps the
			// one it has.
			err = l.st.CompareAndDelete(ctx, sk, []byte(p.String()))
		} else {
			err = nil
		}
		return false, errors.Join(ErrOtherLinked, rerr, err)
	case err != nil:
		if created {
			err = errors.Join(err, l.st.CompareAndDelete(ctx, sk, []byte(p.String())))
		}
		return false, fmt.Errorf("identity: store link: %w", err)
	}
	return false, nil
}

// unlink undoes p's link to id: the Slack user's record first, so that a
// process stopped in between leaves the identity still claimed by its
// former Slack user (who may link it again, link() allows that) rather
// than free while that user still counts as linked.
func (l links) unlink(ctx context.Context, p broker.Principal, id Identity) error {
	if err := l.st.Delete(ctx, linkKey(p)); err != nil {
		return fmt.Errorf("identity: remove link: %w", err)
	}
	err := l.st.CompareAndDelete(ctx, subjectKey(id.Issuer, id.Subject), []byte(p.String()))
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("identity: release identity: %w", err)
	}
	return nil
}

package main

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/stack"
	"github.com/agenthub/agenthub/internal/store"
)

// stepUpKeyInfo is the HKDF info that derives the step-up key from a vault
// key. Changing it orphans every enrolment.
const stepUpKeyInfo = "agenthub step-up totp v1"

// linkKeyInfo derives the key that signs connect links. Changing it (or
// the vault key) voids the links out, which live 10 minutes.
const linkKeyInfo = "agenthub connect links v1"

// keys are the bot's keys, decoded from the configuration, with the
// step-up keys derived from the vault keys. The old keys are the ones
// AGENTHUB_VAULT_OLD_KEYS lists, in order, and the step-up keys derived
// from them: they open what was sealed before a rotation and seal nothing.
type keys struct {
	audit               []byte
	vault, stepUp       []byte
	vaultOld, stepUpOld [][]byte
	links               []byte // signs connect links
}

// loadKeys decodes and derives the keys of cfg, which config.Load has
// checked. Errors name the setting (and an old key by position), never a
// value.
func loadKeys(cfg *config.Config) (keys, error) {
	var k keys
	var err error
	if k.audit, err = config.KeyBytes(cfg.AuditKey); err != nil {
		return keys{}, fmt.Errorf("AGENTHUB_AUDIT_KEY: %w", err)
	}
	if k.vault, err = config.KeyBytes(cfg.VaultKey); err != nil {
		return keys{}, fmt.Errorf("AGENTHUB_VAULT_KEY: %w", err)
	}
	// Step-up secrets are sealed under a key of their own, derived from
	// the vault key, so neither key can open the other's records; each old
	// vault key gives the old step-up key the same way, so a rotation of
	// the one rotates the other.
	if k.stepUp, err = stepUpKey(k.vault); err != nil {
		return keys{}, err
	}
	if k.links, err = hkdf.Key(sha256.New, k.vault, nil, linkKeyInfo, secret.KeySize); err != nil {
		return keys{}, fmt.Errorf("derive the link key: %w", err)
	}
	for i, s := range cfg.VaultOldKeys {
		old, err := config.KeyBytes(s)
		if err != nil {
			return keys{}, fmt.Errorf("AGENTHUB_VAULT_OLD_KEYS: key %d: %w", i+1, err)
		}
		derived, err := stepUpKey(old)
		if err != nil {
			return keys{}, err
		}
		k.vaultOld = append(k.vaultOld, old)
		k.stepUpOld = append(k.stepUpOld, derived)
	}
	return k, nil
}

// stepUpKey derives the step-up key from a vault key.
func stepUpKey(vaultKey []byte) ([]byte, error) {
	k, err := hkdf.Key(sha256.New, vaultKey, nil, stepUpKeyInfo, secret.KeySize)
	if err != nil {
		return nil, fmt.Errorf("derive the step-up key: %w", err)
	}
	return k, nil
}

// stack returns k as the core takes them.
func (k keys) stack() stack.Keys {
	return stack.Keys{Audit: k.audit, Vault: k.vault, StepUp: k.stepUp, VaultOld: k.vaultOld, StepUpOld: k.stepUpOld}
}

// vaultKeyring is the vault's keyring of k.
func (k keys) vaultKeyring() (*secret.Keyring, error) {
	kr, err := secret.NewKeyring(k.vault, k.vaultOld)
	if err != nil {
		return nil, fmt.Errorf("vault keys: %w", err)
	}
	return kr, nil
}

// The key the bot seals under is on record in the store (scope "", kind
// vaultKeyKind, ID "current"): its ID only, which names no secret. bot
// rekey reads it, so that it never reseals everything under a key the bot
// does not hold.
const vaultKeyKind = "vault-key"

func vaultKeyRecord() store.Key { return store.Key{Kind: vaultKeyKind, ID: "current"} }

// noteSealingKey records the ID of the key this process seals under.
func noteSealingKey(ctx context.Context, st store.Store, keyring *secret.Keyring) error {
	if err := st.Put(ctx, vaultKeyRecord(), []byte(keyring.CurrentKeyID()), 0); err != nil {
		return fmt.Errorf("record the sealing key's ID: %w", err)
	}
	return nil
}

// botSealingKey returns the ID of the key the bot last started sealing
// under, or "" when none is on record.
func botSealingKey(ctx context.Context, st store.Store) (string, error) {
	it, err := st.Get(ctx, vaultKeyRecord())
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the bot's sealing key ID: %w", err)
	}
	return string(it.Value), nil
}

// sealedByKey is what checkSealingKeys asks of the vault.
type sealedByKey interface {
	SealedByKey(ctx context.Context) (map[string]int, error)
}

// checkSealingKeys tells the operator, once at start, about connections
// the keyring cannot open (sealed under a key neither AGENTHUB_VAULT_KEY
// nor listed in AGENTHUB_VAULT_OLD_KEYS: they are refused until it is
// listed again) and about those still under an old key (bot rekey moves
// them). It logs key IDs and counts only, and returns an error only when
// the store cannot be read, which the caller logs.
func checkSealingKeys(ctx context.Context, v sealedByKey, keyring *secret.Keyring, logger *slog.Logger) error {
	counts, err := v.SealedByKey(ctx)
	if err != nil {
		return fmt.Errorf("count the connections by sealing key: %w", err)
	}
	held := keyring.KeyIDs()
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		switch n := counts[id]; {
		case id == keyring.CurrentKeyID():
		case !slices.Contains(held, id):
			logger.ErrorContext(ctx, "connections are sealed under a key that is neither AGENTHUB_VAULT_KEY nor in AGENTHUB_VAULT_OLD_KEYS: "+
				"they are refused until that key is listed in AGENTHUB_VAULT_OLD_KEYS again", "key_id", id, "connections", n)
		default:
			logger.InfoContext(ctx, "connections are still sealed under an old key: run 'bot rekey', then drop it from AGENTHUB_VAULT_OLD_KEYS",
				"key_id", id, "connections", n)
		}
	}
	return nil
}

package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Errors of Open. Callers test them with errors.Is; no error of this
// package holds key bytes or plaintext.
var (
	// ErrUnknownKey means a record was sealed under a key the keyring does
	// not hold: an old key was dropped before every record was resealed
	// (list it again among the old keys, AGENTHUB_VAULT_OLD_KEYS).
	ErrUnknownKey = errors.New("unknown sealing key")
	// ErrCorrupt means a sealed record failed to open: altered, sealed
	// under a different key with the same ID, or bound to other additional
	// data (moved to another principal or service).
	ErrCorrupt = errors.New("sealed record does not open")
)

// KeySize is the length in bytes of a sealing key (AES-256).
const KeySize = 32

// Keyring holds sealing keys: the current key, which seals every new write,
// and old keys, which only open records sealed before a rotation.
// Each key is named by its ID, the first 16 hex digits of its SHA-256, which
// sealed records carry so the right key opens them. The key bytes themselves
// live only inside the AEADs and are never printed.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
	order   []string // current first, then old keys in the order given
}

// ParseKeys builds a keyring from base64 keys (standard or URL alphabet,
// padded or not), as in AGENTHUB_VAULT_KEY and AGENTHUB_VAULT_OLD_KEYS.
// Empty old entries are skipped, so a trailing comma is harmless. Errors name
// the key by position, never by its value.
func ParseKeys(current string, old []string) (*Keyring, error) {
	if strings.TrimSpace(current) == "" {
		return nil, errors.New("secret: current key is empty")
	}
	raw, err := decodeKey(current)
	if err != nil {
		return nil, fmt.Errorf("secret: current key: %w", err)
	}
	var olds [][]byte
	for i, o := range old {
		if strings.TrimSpace(o) == "" {
			continue
		}
		b, err := decodeKey(o)
		if err != nil {
			clearAll(raw, olds...)
			return nil, fmt.Errorf("secret: old key %d: %w", i+1, err)
		}
		olds = append(olds, b)
	}
	defer clearAll(raw, olds...)
	// Positions in errors are those of the list given, empty entries
	// included; decodeKey has checked every length, so NewKeyring cannot
	// fail on one.
	return NewKeyring(raw, olds)
}

// NewKeyring builds a keyring from raw keys of KeySize bytes: current
// seals, each of old only opens. It keeps no reference to the slices. An
// old key that is not KeySize bytes (an empty one included) is a wiring
// mistake and refused, by position, never by value.
func NewKeyring(current []byte, old [][]byte) (*Keyring, error) {
	kr := &Keyring{aeads: make(map[string]cipher.AEAD)}
	id, aead, err := newAEAD(current)
	if err != nil {
		return nil, fmt.Errorf("secret: current key: %w", err)
	}
	kr.current = id
	kr.aeads[id] = aead
	kr.order = append(kr.order, id)
	for i, o := range old {
		id, aead, err := newAEAD(o)
		if err != nil {
			return nil, fmt.Errorf("secret: old key %d: %w", i+1, err)
		}
		if _, dup := kr.aeads[id]; dup {
			continue // listing the current key among the old ones is harmless
		}
		kr.aeads[id] = aead
		kr.order = append(kr.order, id)
	}
	return kr, nil
}

// decodeKey decodes a base64 key and checks its length.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var (
		raw []byte
		err error
	)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		// The base64 package's error names an offset, not content, but say
		// it in our words so no future change there can echo the key.
		return nil, errors.New("not valid base64")
	}
	if len(raw) != KeySize {
		n := len(raw)
		clear(raw)
		return nil, fmt.Errorf("decodes to %d bytes, want %d", n, KeySize)
	}
	return raw, nil
}

// newAEAD returns the key's ID and its AES-256-GCM.
func newAEAD(raw []byte) (id string, aead cipher.AEAD, err error) {
	if len(raw) != KeySize {
		return "", nil, fmt.Errorf("is %d bytes, want %d", len(raw), KeySize)
	}
	sum := sha256.Sum256(raw)
	block, err := aes.NewCipher(raw)
	if err != nil {
		return "", nil, fmt.Errorf("aes: %w", err)
	}
	aead, err = cipher.NewGCM(block)
	if err != nil {
		return "", nil, fmt.Errorf("gcm: %w", err)
	}
	return hex.EncodeToString(sum[:8]), aead, nil
}

func clearAll(first []byte, rest ...[]byte) {
	clear(first)
	for _, b := range rest {
		clear(b)
	}
}

// CurrentKeyID returns the ID of the key that seals new writes.
func (kr *Keyring) CurrentKeyID() string { return kr.current }

// KeyIDs returns the IDs of every key, the current one first.
func (kr *Keyring) KeyIDs() []string { return append([]string(nil), kr.order...) }

// String describes the keyring by key IDs only.
func (kr *Keyring) String() string {
	return fmt.Sprintf("secret.Keyring{current: %s, keys: %d}", kr.current, len(kr.order))
}

// GoString is String, so %#v cannot walk into the ciphers.
func (kr *Keyring) GoString() string { return kr.String() }

// Format prints String for every verb.
func (kr *Keyring) Format(f fmt.State, verb rune) { io.WriteString(f, kr.String()) }

// Seal encrypts plaintext under the current key with a fresh random nonce,
// bound to additional (which Open must be given again), and returns the
// key ID and nonce‖ciphertext. Everything AgentHub keeps sealed at rest
// (the vault's tokens, step-up's TOTP seeds) is sealed with it, so there is
// one AEAD and one rotation story.
func (kr *Keyring) Seal(rand io.Reader, plaintext, additional []byte) (keyID string, sealed []byte, err error) {
	aead := kr.aeads[kr.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return "", nil, fmt.Errorf("secret: nonce: %w", err)
	}
	return kr.current, aead.Seal(nonce, nonce, plaintext, additional), nil
}

// Open decrypts nonce‖ciphertext sealed under keyID with the same
// additional data. A key ID the keyring does not hold gives ErrUnknownKey;
// anything that fails to open gives ErrCorrupt.
func (kr *Keyring) Open(keyID string, sealed, additional []byte) ([]byte, error) {
	aead, ok := kr.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("secret: record sealed under key %s, which is neither the current key nor an old key: %w", keyID, ErrUnknownKey)
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fmt.Errorf("secret: sealed record too short: %w", ErrCorrupt)
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], additional)
	if err != nil {
		// GCM fails the same way for a wrong key, altered bytes and a
		// record moved to where other additional data binds it.
		return nil, fmt.Errorf("secret: sealed record does not open under key %s with its additional data: %w", keyID, ErrCorrupt)
	}
	return plain, nil
}

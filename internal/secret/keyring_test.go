package secret

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeys(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb}, KeySize) // 0xfb makes '+' and '/' in std base64, '-' and '_' in URL
	sum := sha256.Sum256(raw)
	wantID := hex.EncodeToString(sum[:])[:16]
	short := base64.StdEncoding.EncodeToString(raw[:16])
	tests := []struct {
		name    string
		current string
		old     []string
		wantIDs []string
		wantErr string
	}{
		{"std", base64.StdEncoding.EncodeToString(raw), nil, []string{wantID}, ""},
		{"std unpadded", base64.RawStdEncoding.EncodeToString(raw), nil, []string{wantID}, ""},
		{"url", base64.URLEncoding.EncodeToString(raw), nil, []string{wantID}, ""},
		{"url unpadded, spaces", " " + base64.RawURLEncoding.EncodeToString(raw) + "\n", nil, []string{wantID}, ""},
		{"old keys, duplicate and empty skipped", testKey('b'), []string{testKey('a'), "", base64.StdEncoding.EncodeToString(raw), testKey('a')},
			[]string{keyID(t, testKey('b')), keyID(t, testKey('a')), wantID}, ""},
		{"empty", "", nil, nil, "current key is empty"},
		{"not base64", "!!" + base64.StdEncoding.EncodeToString(raw), nil, nil, "current key: not valid base64"},
		{"short", short, nil, nil, "current key: decodes to 16 bytes, want 32"},
		{"bad old key", testKey('a'), []string{testKey('b'), short}, nil, "old key 2: decodes to 16 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeys(tt.current, tt.old)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeys error = %v, want one containing %q", err, tt.wantErr)
				}
				for _, k := range append([]string{tt.current}, tt.old...) {
					if k != "" && strings.Contains(err.Error(), strings.TrimSpace(k)) {
						t.Fatal("error echoes key material")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantIDs, kr.KeyIDs()); diff != "" {
				t.Errorf("KeyIDs (-want +got):\n%s", diff)
			}
			if got := kr.CurrentKeyID(); got != tt.wantIDs[0] {
				t.Errorf("CurrentKeyID() = %s, want %s", got, tt.wantIDs[0])
			}
		})
	}
}

func keyID(tb testing.TB, k string) string {
	tb.Helper()
	return mustKeys(tb, k).CurrentKeyID()
}

func TestKeyringPrintsNoKey(t *testing.T) {
	kr := mustKeys(t, testKey('a'), testKey('b'))
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		got := fmt.Sprintf(format, kr)
		want := "secret.Keyring{current: " + kr.CurrentKeyID() + ", keys: 2}"
		if got != want {
			t.Errorf("Sprintf(%q) = %q, want %q", format, got, want)
		}
	}
}

func TestSealOpen(t *testing.T) {
	kr := mustKeys(t, testKey('a'), testKey('b'))
	other := mustKeys(t, testKey('c'))
	ad := []byte("principal alice, service github")
	id, sealed, err := kr.Seal(rand.Reader, []byte("plain"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if id != kr.CurrentKeyID() {
		t.Errorf("sealed under %s, want current key %s", id, kr.CurrentKeyID())
	}
	if len(sealed) != 12+len("plain")+16 {
		t.Errorf("sealed length = %d, want nonce + plaintext + tag = %d", len(sealed), 12+5+16)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name    string
		kr      *Keyring
		keyID   string
		sealed  []byte
		ad      []byte
		wantErr error
	}{
		{"opens", kr, id, sealed, ad, nil},
		{"other principal", kr, id, sealed, []byte("principal bob, service github"), ErrCorrupt},
		{"other service", kr, id, sealed, []byte("principal alice, service google"), ErrCorrupt},
		{"altered", kr, id, flipped, ad, ErrCorrupt},
		{"truncated", kr, id, sealed[:10], ad, ErrCorrupt},
		{"named key missing", other, id, sealed, ad, ErrUnknownKey},
		{"wrong key under the right ID", kr, keyID(t, testKey('b')), sealed, ad, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kr.Open(tt.keyID, tt.sealed, tt.ad)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("open error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(got) != "plain" {
				t.Errorf("open = %q, want %q", got, "plain")
			}
		})
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	kr := mustKeys(t, testKey('a'))
	_, s1, err := kr.Seal(rand.Reader, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, s2, err := kr.Seal(rand.Reader, []byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s1[:12], s2[:12]) || bytes.Equal(s1, s2) {
		t.Error("two seals of the same plaintext share a nonce")
	}
	if _, _, err := kr.Seal(bytes.NewReader(nil), []byte("x"), nil); err == nil {
		t.Error("seal with an exhausted random source succeeded")
	}
}

// testKey returns a base64 key made of one repeated byte.
func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, KeySize))
}

func mustKeys(tb testing.TB, current string, old ...string) *Keyring {
	tb.Helper()
	kr, err := ParseKeys(current, old)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// TestNewKeyring: raw keys make the keyring their base64 forms make, and a
// key of the wrong length is refused by position.
func TestNewKeyring(t *testing.T) {
	raw := func(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }
	tests := []struct {
		name    string
		current []byte
		old     [][]byte
		wantIDs []string
		wantErr string
	}{
		{"current only", raw('a'), nil, []string{keyID(t, testKey('a'))}, ""},
		{"old keys, duplicate skipped", raw('b'), [][]byte{raw('a'), raw('b'), raw('a')},
			[]string{keyID(t, testKey('b')), keyID(t, testKey('a'))}, ""},
		{"short current", raw('a')[:16], nil, nil, "current key: is 16 bytes, want 32"},
		{"empty old", raw('a'), [][]byte{raw('b'), nil}, nil, "old key 2: is 0 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := NewKeyring(tt.current, tt.old)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewKeyring error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantIDs, kr.KeyIDs()); diff != "" {
				t.Errorf("KeyIDs (-want +got):\n%s", diff)
			}
		})
	}
	// What one seals the other opens.
	a, err := NewKeyring(raw('a'), nil)
	if err != nil {
		t.Fatal(err)
	}
	id, sealed, err := a.Seal(rand.Reader, []byte("plain"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := mustKeys(t, testKey('c'), testKey('a')).Open(id, sealed, nil); err != nil || string(got) != "plain" {
		t.Errorf("open with the base64 keyring = %q, %v; want plain", got, err)
	}
}

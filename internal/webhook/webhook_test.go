package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/webhook"
)

const secret = "webhook-secret-0123456789"

type refusals struct {
	mu      sync.Mutex
	reasons []string
}

func (r *refusals) Refuse(_ context.Context, x broker.Refusal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, x.Reason)
	return nil
}

func sign(key, body string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

const revoked = `{"action":"revoked","sender":{"login":"octocat","id":1}}`

// A delivery is believed only when signed with the secret: a missing or
// wrong signature is refused and recorded; a valid one revokes once, and
// the same delivery again is answered without acting.
func TestGitHubWebhookSignatures(t *testing.T) {
	var (
		ref    refusals
		logins []string
		fail   error
	)
	h, err := webhook.GitHub(webhook.Options{Secret: []byte(secret), Store: memstore.New(memstore.Options{}), Refuser: &ref,
		Revoked: func(_ context.Context, login string) error {
			if fail != nil {
				return fail
			}
			logins = append(logins, login)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	post := func(body, sig, delivery, event string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-GitHub-Event", event)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const ev = "github_app_authorization"
	for _, tc := range []struct {
		name, body, sig string
		status          int
		reason          string
	}{
		{"missing", revoked, "", http.StatusUnauthorized, "signature_missing"},
		{"wrong key", revoked, sign("another-secret-0123456", revoked), http.StatusUnauthorized, "signature_wrong"},
		{"other body", `{"action":"revoked","sender":{"login":"hubot"}}`, sign(secret, revoked), http.StatusUnauthorized, "signature_wrong"},
		{"not hex", revoked, "sha256=zz", http.StatusUnauthorized, "signature_wrong"},
		{"sha1", revoked, "sha1=" + strings.TrimPrefix(sign(secret, revoked), "sha256="), http.StatusUnauthorized, "signature_wrong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref.reasons = nil
			if got := post(tc.body, tc.sig, "d-"+tc.name, ev); got != tc.status {
				t.Errorf("status = %d, want %d", got, tc.status)
			}
			if len(ref.reasons) != 1 || ref.reasons[0] != tc.reason {
				t.Errorf("refusals = %q, want %q", ref.reasons, tc.reason)
			}
			if len(logins) != 0 {
				t.Errorf("revoked %q on a delivery not believed", logins)
			}
		})
	}

	// A provider-side fault: not marked handled, so GitHub's redelivery
	// acts.
	fail = errors.New("store down")
	if got := post(revoked, sign(secret, revoked), "d-1", ev); got != http.StatusServiceUnavailable {
		t.Errorf("delivery while revocation fails: status %d, want 503", got)
	}
	fail = nil
	if got := post(revoked, sign(secret, revoked), "d-1", ev); got != http.StatusNoContent || len(logins) != 1 || logins[0] != "octocat" {
		t.Fatalf("valid delivery: status %d, revoked %q; want 204 and octocat", got, logins)
	}
	if got := post(revoked, sign(secret, revoked), "d-1", ev); got != http.StatusOK || len(logins) != 1 {
		t.Errorf("replayed delivery: status %d, revocations %d; want 200 and no second one", got, len(logins))
	}
	granted := `{"action":"granted","sender":{"login":"octocat"}}`
	if got := post(granted, sign(secret, granted), "d-2", ev); got != http.StatusNoContent || len(logins) != 1 {
		t.Errorf("a grant: status %d, revocations %d; want 204 and nothing revoked", got, len(logins))
	}
	if got := post(revoked, sign(secret, revoked), "d-3", "push"); got != http.StatusNoContent || len(logins) != 1 {
		t.Errorf("another event: status %d, revocations %d; want 204 and nothing revoked", got, len(logins))
	}
	if got := post(revoked, sign(secret, revoked), "", ev); got != http.StatusBadRequest {
		t.Errorf("no delivery ID: status %d, want 400", got)
	}
}

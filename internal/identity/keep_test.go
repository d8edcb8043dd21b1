package identity_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/secret"
)

// With Keep, only the sign-ins whose refresh token is kept (a link, the
// sign-in before a connection) ask for offline_access: an unlink, a
// step-up or an enrolment has the identity provider mint no refresh token
// that nobody keeps (Auth0 keeps a bounded number per person, and drops
// the oldest).
func TestOnlyKeepingSignInsAskOfflineAccess(t *testing.T) {
	h := newHarness(t)
	idp, err := identity.New(h.ctx, identity.Options{
		Issuer: h.op.Issuer(), ClientID: h.op.ClientID, ClientSecret: h.op.ClientSecret, Store: h.st, Audit: h.env.Audit,
		EmailOf: func(_ context.Context, p broker.Principal) (string, error) {
			return map[broker.Principal]string{alice: "anna@example.com"}[p], nil
		},
		Keep: func(context.Context, broker.Principal, secret.Secret) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	flows, err := connect.New(connect.Options{
		PublicURL: h.srv.URL, Key: bytes.Repeat([]byte("k"), 32), Store: h.st, Vault: h.env.Vault, Refuser: h.env.Broker, Audit: h.env.Audit,
		Providers: map[string]connect.Provider{identity.Service: idp.Provider()},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.flows = flows
	h.srv.Config.Handler = flows.Handler()
	if r := h.signIn(alice, identity.PurposeLink, anna); r.Status != http.StatusOK {
		t.Fatalf("link: %d %s", r.Status, r.Body)
	}
	before := len(h.op.AuthRequests())
	if r := h.signIn(alice, identity.PurposeUnlink, anna); r.Status != http.StatusOK {
		t.Fatalf("unlink: %d %s", r.Status, r.Body)
	}
	reqs := h.op.AuthRequests()[before:]
	if len(reqs) == 0 {
		t.Fatal("no authorization request seen")
	}
	if scope := reqs[len(reqs)-1].Get("scope"); slices.Contains(strings.Fields(scope), "offline_access") {
		t.Errorf("an unlink sign-in (which keeps nothing) asked scope %q: a refresh token minted and dropped unrevoked", scope)
	}
}

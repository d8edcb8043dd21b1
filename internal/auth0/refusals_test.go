package auth0_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/secret"
)

// A tenant that refuses the client (401 unauthorized_client or
// access_denied: a rotated secret, a grant type not enabled) is the
// tenant's set-up, never a reason to expire people's connections: only
// Auth0's own words for an account not connected ask them to reconnect.
func TestTenantRefusalsExpireNothing(t *testing.T) {
	for _, code := range []string{"unauthorized_client", "access_denied"} {
		t.Run(code, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"` + code + `","error_description":"Unauthorized"}`))
			}))
			t.Cleanup(srv.Close)
			c, err := auth0.New(auth0.Options{Domain: "acme.eu.auth0.com", BaseURL: srv.URL + "/", ClientID: "cid", ClientSecret: secret.New("csecret")})
			if err != nil {
				t.Fatal(err)
			}
			for name, call := range map[string]func() error{
				"exchange":         func() error { _, err := c.Exchange(context.Background(), secret.New("rt"), "github", ""); return err },
				"my account token": func() error { _, err := c.MyAccountToken(context.Background(), secret.New("rt")); return err },
			} {
				err := call()
				var r interface{ Reconnect() bool }
				if errors.As(err, &r) && r.Reconnect() {
					t.Errorf("%s: 401 %s asks the person to reconnect (the vault expires the connection): %v; want ErrTenant", name, code, err)
				}
			}
		})
	}
}

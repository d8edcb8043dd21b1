package auth0_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/secret"
)

// The person's browser is only ever sent to the tenant: a connect URI
// elsewhere is refused. A refusal of the My Account API is an error with
// its status, and a connected account already gone counts as deleted.
func TestMyAccountAnswers(t *testing.T) {
	connectURI := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/me/v1/connected-accounts/connect":
			json.NewEncoder(w).Encode(map[string]any{"connect_uri": connectURI, "auth_session": "as",
				"connect_params": map[string]string{"ticket": "tk"}, "expires_in": 300})
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNotFound)
		default:
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"error": "insufficient_scope"})
		}
	}))
	defer srv.Close()
	c, err := auth0.New(auth0.Options{Domain: "acme.eu.auth0.com", BaseURL: srv.URL, ClientID: "c", ClientSecret: secret.New("s")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := auth0.ConnectRequest{Connection: "github", RedirectURI: "https://agenthub.example.com/cb", State: "s", Challenge: "c"}
	for _, uri := range []string{"https://evil.example.com/connect", "javascript:alert(1)", ""} {
		connectURI = uri
		if _, err := c.StartConnect(ctx, srv.Client(), req); err == nil {
			t.Errorf("connect URI %q was taken", uri)
		}
	}
	connectURI = srv.URL + "/connect"
	tk, err := c.StartConnect(ctx, srv.Client(), req)
	if err != nil || tk.URL != srv.URL+"/connect?ticket=tk" || tk.Session != "as" {
		t.Errorf("ticket = %+v, %v", tk, err)
	}
	_, err = c.CompleteConnect(ctx, srv.Client(), "as", "code", req.RedirectURI, "verifier")
	var x *auth0.ExchangeError
	if !errors.As(err, &x) || x.Status != http.StatusForbidden || x.Code != "insufficient_scope" {
		t.Errorf("complete refused: %v", err)
	}
	if err := c.DeleteConnected(ctx, srv.Client(), "cac_1"); err != nil {
		t.Errorf("delete of an account already gone: %v", err)
	}
	if err := c.DeleteConnected(ctx, srv.Client(), "../users/1"); err == nil {
		t.Error("a path was taken as an account ID")
	}
}

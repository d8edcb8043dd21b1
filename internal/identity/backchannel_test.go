package identity_test

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/secret"
)

// A CIBA answer counts only when the identity provider signed it, for the
// client that asked, naming the person's linked identity; as a step-up,
// only with the second factor.
func TestVerifyBackchannel(t *testing.T) {
	h := newHarness(t)
	h.link(alice, anna)
	h.link(mallory, mark)
	tenant := auth0test.New(t)
	tenant.IDIssuer = h.op.Issuer()
	tenant.Sign = func(c jwt.MapClaims) (string, error) { return h.op.Keypair.SignJWT(c) }
	tenant.EnrolPush(anna.Subject)
	client, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID,
		ClientSecret: secret.New(auth0test.ClientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := h.idp.Subject(h.ctx, alice); err != nil || sub != anna.Subject {
		t.Fatalf("Subject = %q, %v", sub, err)
	}
	answer := func(amr ...string) string {
		t.Helper()
		b, err := client.StartBackchannel(h.ctx, auth0.BackchannelRequest{Subject: anna.Subject, Binding: "K7Q2 merge", Expiry: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		tenant.Approve(b.ID, amr...)
		o, tok, err := client.PollBackchannel(h.ctx, b.ID)
		if o != auth0.Approved || err != nil {
			t.Fatalf("poll: %v %v", o, err)
		}
		return tok.Extra("id_token").(string)
	}
	withFactor, without := answer("mfa"), answer("pwd")
	if err := h.idp.VerifyBackchannel(h.ctx, alice, withFactor, auth0test.ClientID, true); err != nil {
		t.Errorf("alice's step-up with her factor: %v", err)
	}
	if err := h.idp.VerifyBackchannel(h.ctx, alice, without, auth0test.ClientID, false); err != nil {
		t.Errorf("alice's approval: %v", err)
	}
	if err := h.idp.VerifyBackchannel(h.ctx, alice, without, auth0test.ClientID, true); !errors.Is(err, identity.ErrNoFactor) {
		t.Errorf("a step-up without the factor: %v, want ErrNoFactor", err)
	}
	if err := h.idp.VerifyBackchannel(h.ctx, mallory, withFactor, auth0test.ClientID, false); !errors.Is(err, identity.ErrSomeoneElse) {
		t.Errorf("alice's answer for mallory: %v, want ErrSomeoneElse", err)
	}
	stranger := alice
	stranger.User = "U404"
	if err := h.idp.VerifyBackchannel(h.ctx, stranger, withFactor, auth0test.ClientID, false); !errors.Is(err, identity.ErrNotLinked) {
		t.Errorf("someone who linked nothing: %v, want ErrNotLinked", err)
	}
	if err := h.idp.VerifyBackchannel(h.ctx, alice, withFactor, "another-client", false); err == nil {
		t.Error("an answer for another client counted")
	}
	tenant.Sign = nil // the fake's own key, not the identity provider's
	forged := answer("mfa")
	if err := h.idp.VerifyBackchannel(h.ctx, alice, forged, auth0test.ClientID, false); err == nil {
		t.Error("an answer the identity provider did not sign counted")
	}
}

package auth0_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/auth0"
	"github.com/agenthub/agenthub/internal/auth0/auth0test"
	"github.com/agenthub/agenthub/internal/secret"
)

// The binding message keeps the request's code and action within Auth0's
// bounds: 64 characters of alphanumerics, whitespace and +-_.,:#.
func TestBindingMessage(t *testing.T) {
	for _, tt := range []struct{ code, action, want string }{
		{"A1B2", "github.merge_pull_request", "A1B2 github.merge_pull_request"},
		{"A1B2", "post 'hi' <@U1> to #deploys", "A1B2 post hi U1 to #deploys"},
		{"A1B2", strings.Repeat("x", 100), "A1B2 " + strings.Repeat("x", 59)},
		{"A1B2", "ünïcode\nnewline", "A1B2 n code newline"},
	} {
		got := auth0.BindingMessage(tt.code, tt.action)
		if got != tt.want || len(got) > auth0.MaxBindingMessage {
			t.Errorf("BindingMessage(%q, %q) = %q, want %q", tt.code, tt.action, got, tt.want)
		}
	}
}

func startCIBA(t *testing.T, tenant *auth0test.Tenant, c *auth0.Client) auth0.Backchannel {
	t.Helper()
	b, err := c.StartBackchannel(context.Background(), auth0.BackchannelRequest{Subject: "auth0|alice",
		Binding: auth0.BindingMessage("K7Q2", "github.merge_pull_request"), Expiry: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CIBA: the request names the person in the iss_sub format, asks for
// openid with the binding message and an expiry within the request's own;
// polling answers pending until the person approves on their phone, then
// the ID token, once; a denial, an expiry and slow_down are told apart.
func TestBackchannel(t *testing.T) {
	tenant := auth0test.New(t)
	tenant.EnrolPush("auth0|alice")
	c := newClient(t, tenant, &bytes.Buffer{})
	ctx := context.Background()

	b := startCIBA(t, tenant, c)
	p := tenant.Pushes()
	if len(p) != 1 || p[0].User != "auth0|alice" || p[0].Binding != "K7Q2 github.merge_pull_request" || p[0].Expiry != 240 {
		t.Fatalf("pushes = %+v", p)
	}
	if left := time.Until(b.Expires); left < 3*time.Minute || b.Interval != 5*time.Second {
		t.Errorf("backchannel expires in %v, interval %v", left, b.Interval)
	}
	if o, tok, err := c.PollBackchannel(ctx, b.ID); o != auth0.Pending || tok != nil || err != nil {
		t.Errorf("before the answer: %v %v %v", o, tok, err)
	}
	tenant.Approve(b.ID, "mfa")
	o, tok, err := c.PollBackchannel(ctx, b.ID)
	if o != auth0.Approved || err != nil || tok.Extra("id_token") == nil {
		t.Fatalf("after approval: %v %v", o, err)
	}
	if o, _, err := c.PollBackchannel(ctx, b.ID); err == nil || o == auth0.Approved {
		t.Errorf("a second poll after approval: %v %v, want refused", o, err)
	}

	d := startCIBA(t, tenant, c)
	tenant.Deny(d.ID)
	if o, _, err := c.PollBackchannel(ctx, d.ID); o != auth0.Denied || err != nil {
		t.Errorf("denied: %v %v", o, err)
	}
	e := startCIBA(t, tenant, c)
	tenant.ExpireCIBA(e.ID)
	if o, _, err := c.PollBackchannel(ctx, e.ID); o != auth0.Expired || err != nil {
		t.Errorf("expired: %v %v", o, err)
	}
	tenant.CIBAInterval = time.Hour
	s := startCIBA(t, tenant, c)
	c.PollBackchannel(ctx, s.ID)
	if o, _, err := c.PollBackchannel(ctx, s.ID); o != auth0.SlowDown || err != nil {
		t.Errorf("polled too soon: %v %v", o, err)
	}
}

// Requests Auth0 would refuse are refused before they are sent, or by the
// tenant: a binding message out of bounds, no time left, someone not
// enrolled in push, a wrong client secret.
func TestBackchannelRefusals(t *testing.T) {
	tenant := auth0test.New(t)
	tenant.EnrolPush("auth0|alice")
	c := newClient(t, tenant, &bytes.Buffer{})
	ctx := context.Background()
	for _, r := range []auth0.BackchannelRequest{
		{Subject: "auth0|alice", Binding: "merge <now>", Expiry: time.Minute},
		{Subject: "auth0|alice", Binding: strings.Repeat("x", 65), Expiry: time.Minute},
		{Subject: "auth0|alice", Binding: "K7Q2 merge", Expiry: 0},
		{Subject: "", Binding: "K7Q2 merge", Expiry: time.Minute},
		{Subject: "auth0|bob", Binding: "K7Q2 merge", Expiry: time.Minute},
	} {
		if _, err := c.StartBackchannel(ctx, r); err == nil {
			t.Errorf("%+v was taken", r)
		}
	}
	if n := len(tenant.Pushes()); n != 0 {
		t.Errorf("%d pushes sent", n)
	}
	bad, err := auth0.New(auth0.Options{Domain: auth0test.Domain, BaseURL: tenant.BaseURL(), ClientID: auth0test.ClientID, ClientSecret: secret.New("wrong")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.StartBackchannel(ctx, auth0.BackchannelRequest{Subject: "auth0|alice", Binding: "K7Q2 merge", Expiry: time.Minute}); err == nil {
		t.Error("a wrong client secret was taken")
	}
}

package identity

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
)

// Service is the connect flow's service name of the identity provider: its
// callback is connect.CallbackPath + Service.
const Service = "identity"

// Purposes of a sign-in.
const (
	PurposeLink   = "link"
	PurposeUnlink = "unlink"
	PurposeReset  = "reset" // a new authenticator in place of a lost one
	stepUpPrefix  = "stepup:"
	enrolPrefix   = "enrol:"
)

// EnrolPurpose is the purpose of a sign-in that lets its person set up an
// authenticator (for request requestID, which waits for it; "" for none),
// or, with reset, replace a lost one.
func EnrolPurpose(requestID string, reset bool) string {
	if reset {
		return PurposeReset
	}
	return enrolPrefix + requestID
}

// StepUpPurpose is the purpose of a sign-in that verifies request id.
func StepUpPurpose(requestID string) string { return stepUpPrefix + requestID }

// DefaultACR is Auth0's multi-factor policy, asked for with acr_values.
const DefaultACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

// DefaultAMR is the amr value a sign-in must carry: a second factor was
// used (RFC 8176).
const DefaultAMR = "mfa"

// MaxAge is how long ago a sign-in's auth_time may be.
const MaxAge = 5 * time.Minute

// skew forgives an IdP's clock that is a little ahead.
const skew = time.Minute

// Recorder is the audit trail; *audit.Recorder is one.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Options configure an IdP. Issuer, ClientID, ClientSecret, Store and
// Audit are required.
type Options struct {
	Issuer       string // OIDC_ISSUER: https (or http on loopback), discovery under it
	ClientID     string
	ClientSecret string
	// Name is what pages call the identity provider (default: the
	// issuer's host).
	Name string
	// ACRValues is sent as acr_values (default DefaultACR; "-" sends
	// none); AMR is the value the id_token's amr must contain (default
	// DefaultAMR; "-" checks none, for an IdP that does not say).
	ACRValues, AMR string
	Store          store.Store
	Audit          Recorder
	// EmailOf, when set, returns the Slack user's email: a link is made
	// only when the IdP's verified email is the same, so that a Slack
	// session alone cannot link someone else's identity to it.
	EmailOf func(ctx context.Context, p broker.Principal) (string, error)
	// SignedIn is told that p signed in for request requestID, after the
	// sign-in was checked and recorded (stepup.passed): the Slack app
	// moves the request on (broker.SignedIn).
	SignedIn func(ctx context.Context, p broker.Principal, requestID string) error
	// Enrol lets p set up an authenticator (reset: replace theirs) after
	// a sign-in of their linked identity (by names it, for the trail) and
	// starts it; requestID is the request waiting for it, if any. The key
	// it returns is shown on the page, to the browser that signed in, and
	// nowhere else. nil: the sign-in does not open the enrolment gate.
	Enrol func(ctx context.Context, p broker.Principal, by, requestID string, reset bool) (stepup.Enrolment, error)
	// Describe says what request requestID is, for the sign-in page
	// ("github.merge_pull_request on acme/payments"); nil: only its ID.
	Describe func(ctx context.Context, requestID string) string
	// Keep, when set, is given the refresh token of a sign-in that linked
	// p, or verified p's linked identity before a connection: the sign-in
	// asks for offline_access, and the vault keeps the token as p's Auth0
	// connection (AGENTHUB_VAULT=auth0, where it is what Token Vault
	// exchanges). A sign-in without one keeps nothing.
	Keep func(ctx context.Context, p broker.Principal, refresh secret.Secret) error
	// HTTPClient talks to the IdP (default: 30 s timeout, no redirects).
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
}

// IdP is the identity provider: linking Slack users to their identity,
// and the sign-ins that verify them.
type IdP struct {
	opts     Options
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	links    links
}

// New discovers the issuer's configuration (its endpoints and keys).
func New(ctx context.Context, opts Options) (*IdP, error) {
	switch {
	case opts.Issuer == "" || opts.ClientID == "" || opts.ClientSecret == "":
		return nil, errors.New("identity: issuer, client ID and client secret are required")
	case opts.Store == nil || opts.Audit == nil:
		return nil, errors.New("identity: Store and Audit are required")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SignedIn == nil {
		opts.SignedIn = func(context.Context, broker.Principal, string) error { return nil }
	}
	opts.ACRValues = cmp.Or(opts.ACRValues, DefaultACR)
	opts.AMR = cmp.Or(opts.AMR, DefaultAMR)
	if opts.Name == "" {
		if u, err := url.Parse(opts.Issuer); err == nil {
			opts.Name = u.Host
		}
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, opts.HTTPClient), opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity: discovery at the issuer: %w", err)
	}
	verifier := provider.VerifierContext(oidc.ClientContext(context.WithoutCancel(ctx), opts.HTTPClient),
		&oidc.Config{ClientID: opts.ClientID, Now: opts.Now})
	return &IdP{opts: opts, provider: provider, verifier: verifier, links: links{opts.Store}}, nil
}

// Name is what pages and messages call the identity provider.
func (i *IdP) Name() string { return i.opts.Name }

// Linked returns p's linked identity; ok is false when there is none.
func (i *IdP) Linked(ctx context.Context, p broker.Principal) (Identity, bool, error) {
	return i.links.Linked(ctx, p)
}

// Provider is the identity provider as a connect flow: every sign-in asks
// for a fresh login (prompt=login, max_age=0) with the multi-factor policy
// (acr_values), with PKCE, state and nonce.
func (i *IdP) Provider() connect.Provider {
	opts := []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("prompt", "login"),
		oauth2.SetAuthURLParam("max_age", "0"),
	}
	if i.opts.ACRValues != "-" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", i.opts.ACRValues))
	}
	return connect.Provider{
		Name: i.opts.Name,
		Config: &oauth2.Config{ClientID: i.opts.ClientID, ClientSecret: i.opts.ClientSecret,
			Endpoint: i.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email"}},
		PurposeScopes: i.purposeScopes,
		AuthOptions:   opts,
		Nonce:         true,
		Finish:        i.finish,
		Describe:      i.describe,
	}
}

// describe is the start page of a sign-in.
func (i *IdP) describe(ctx context.Context, p broker.Principal, purpose string) connect.Done {
	who := fmt.Sprintf("Slack user %s in workspace %s", p.User, p.Team)
	switch {
	case purpose == PurposeLink:
		return connect.Done{Title: "Link your " + i.opts.Name + " identity", Lines: []string{
			fmt.Sprintf("This links %s to the identity you sign in with at %s, as asked in Slack.", who, i.opts.Name),
			"From then on AgentHub asks that identity to sign in again before the actions your policy marks as risky.",
		}}
	case purpose == PurposeUnlink:
		return connect.Done{Title: "Unlink your " + i.opts.Name + " identity", Lines: []string{
			fmt.Sprintf("Signing in as the identity linked to %s undoes the link, as asked in Slack.", who),
		}}
	case purpose == PurposeReset || strings.HasPrefix(purpose, enrolPrefix):
		what := "set up an authenticator app for AgentHub's step-up codes"
		if purpose == PurposeReset {
			what = "replace your authenticator app (the one you had stops working)"
		}
		return connect.Done{Title: "Set up your authenticator", Lines: []string{
			fmt.Sprintf("Signing in again at %s as the identity linked to %s lets you %s. The set-up then comes in your Slack DM.", i.opts.Name, who, what),
			"If you did not ask for this, close this tab.",
		}}
	case connect.SignInPurpose(purpose):
		return connect.Done{Title: "Sign in first", Lines: []string{
			fmt.Sprintf("Connecting an account for %s starts with a sign-in at %s as the identity linked to it.", who, i.opts.Name),
		}}
	case strings.HasPrefix(purpose, stepUpPrefix):
		id := strings.TrimPrefix(purpose, stepUpPrefix)
		what := "request " + id
		if i.opts.Describe != nil {
			if d := i.opts.Describe(ctx, id); d != "" {
				what = d + " (request " + id + ")"
			}
		}
		return connect.Done{Title: "Verify it's you", Lines: []string{
			fmt.Sprintf("Signing in again at %s lets %s run, as %s approved it in Slack.", i.opts.Name, what, who),
			"If you did not ask for this, close this tab: nothing runs without your sign-in.",
		}}
	}
	return connect.Done{Title: "Sign in", Lines: []string{"Sign in at " + i.opts.Name + "."}}
}

// signIn is what a checked id_token says.
type signIn struct {
	Identity
	AuthTime time.Time
	AMR      []string
	refresh  secret.Secret // offline_access's, for Options.Keep
}

// purposeScopes: with Keep, the sign-ins whose refresh token is kept (a
// link, and the sign-in before a connection) ask for offline_access, and
// only they: any other would have the IdP mint a refresh token nobody
// keeps.
func (i *IdP) purposeScopes(purpose string) []string {
	if i.opts.Keep != nil && (purpose == PurposeLink || connect.SignInPurpose(purpose)) {
		return []string{oidc.ScopeOfflineAccess}
	}
	return nil
}

// keep gives the sign-in's refresh token to Options.Keep.
func (i *IdP) keep(ctx context.Context, p broker.Principal, s signIn) error {
	if i.opts.Keep == nil || s.refresh.IsZero() {
		return nil
	}
	if err := i.opts.Keep(ctx, p, s.refresh); err != nil {
		return fmt.Errorf("identity: keep the sign-in's refresh token: %w", err)
	}
	return nil
}

// refused is a sign-in that does not count.
func refused(reason, title string, lines ...string) *connect.Refused {
	return &connect.Refused{Reason: reason, Kind: audit.IdentityRefused, Status: http.StatusForbidden,
		Page: connect.Done{Title: title, Lines: append(lines, "Nothing was changed. Ask again in Slack for a new link.")}}
}

// finish exchanges the code, checks the id_token and does what the
// sign-in was for.
func (i *IdP) finish(ctx context.Context, x connect.Exchange) (connect.Done, error) {
	s, err := i.check(ctx, x)
	if err != nil {
		if r, ok := errors.AsType[*connect.Refused](err); ok && strings.HasPrefix(x.Purpose, stepUpPrefix) {
			r.RequestID = strings.TrimPrefix(x.Purpose, stepUpPrefix)
		}
		return connect.Done{}, err
	}
	switch {
	case x.Purpose == PurposeLink:
		d, err := i.link(ctx, x.Principal, s)
		if err == nil {
			err = i.keep(ctx, x.Principal, s)
		}
		return d, err
	case x.Purpose == PurposeUnlink:
		return i.unlink(ctx, x.Principal, s)
	case strings.HasPrefix(x.Purpose, stepUpPrefix):
		return i.stepUp(ctx, x.Principal, strings.TrimPrefix(x.Purpose, stepUpPrefix), s)
	case connect.SignInPurpose(x.Purpose):
		// Before a connection (connect.Provider.SignInFirst): the linked
		// identity signed in, and the flow goes on to the provider.
		if err := i.sameIdentity(ctx, x.Principal, s); err != nil {
			return connect.Done{}, err
		}
		if _, err := i.opts.Audit.Record(ctx, audit.Event{Kind: audit.IdentityVerified, Actor: x.Principal.String(), Detail: i.detail(s)}); err != nil {
			return connect.Done{}, fmt.Errorf("identity: record the sign-in: %w", err)
		}
		return connect.Done{}, i.keep(ctx, x.Principal, s)
	case x.Purpose == PurposeReset:
		return i.enrol(ctx, x.Principal, "", true, s)
	case strings.HasPrefix(x.Purpose, enrolPrefix):
		return i.enrol(ctx, x.Principal, strings.TrimPrefix(x.Purpose, enrolPrefix), false, s)
	}
	return connect.Done{}, refused("unknown_purpose", "This sign-in was not for anything AgentHub knows")
}

// check exchanges the code (with the PKCE verifier) and checks the
// id_token: its signature, issuer, audience and expiry (go-oidc), its
// nonce, a login at most MaxAge ago, and the factor.
func (i *IdP) check(ctx context.Context, x connect.Exchange) (signIn, error) {
	hctx := oidc.ClientContext(ctx, x.Client)
	tok, err := x.Config.Exchange(context.WithValue(hctx, oauth2.HTTPClient, x.Client), x.Code, oauth2.VerifierOption(x.Verifier))
	if err != nil {
		return signIn{}, fmt.Errorf("identity: code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return signIn{}, refused("id_token_missing", i.opts.Name+" sent no proof of who signed in")
	}
	idt, err := i.verifier.Verify(hctx, raw)
	if err != nil {
		i.opts.Logger.WarnContext(ctx, "id_token refused", "error_type", fmt.Sprintf("%T", err), "error", err)
		return signIn{}, refused("id_token_invalid", i.opts.Name+"'s proof of who signed in did not check out")
	}
	if x.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(x.Nonce)) != 1 {
		return signIn{}, refused("nonce_mismatch", "This sign-in was not made for this link")
	}
	var c struct {
		AuthTime      *float64 `json:"auth_time"`
		AMR           []string `json:"amr"`
		ACR           string   `json:"acr"`
		Email         string   `json:"email"`
		EmailVerified any      `json:"email_verified"`
	}
	if err := idt.Claims(&c); err != nil {
		return signIn{}, refused("id_token_invalid", i.opts.Name+"'s proof of who signed in did not check out")
	}
	now := i.opts.Now()
	if c.AuthTime == nil || math.IsNaN(*c.AuthTime) {
		return signIn{}, refused("auth_time_missing", "This sign-in does not say when you signed in",
			i.opts.Name+" must say when the login happened (auth_time) for AgentHub to count it as fresh.")
	}
	at := time.Unix(int64(*c.AuthTime), 0)
	if now.Sub(at) > MaxAge || at.After(now.Add(skew)) {
		return signIn{}, refused("auth_time_stale", "This sign-in was not fresh",
			fmt.Sprintf("AgentHub needs a login made in the last %d minutes, and %s reused an older one.", int(MaxAge/time.Minute), i.opts.Name))
	}
	switch {
	case i.opts.AMR != "-" && !slices.Contains(c.AMR, i.opts.AMR):
		return signIn{}, refused("factor_missing", "This sign-in did not use your second factor",
			fmt.Sprintf("%s did not say that your second factor was used (amr %s).", i.opts.Name, i.opts.AMR))
	case i.opts.AMR == "-" && !slices.Contains(strings.Fields(i.opts.ACRValues), c.ACR):
		// Without amr, the only word of the factor is the acr the IdP
		// says it met: acr_values alone is a wish it may ignore.
		return signIn{}, refused("factor_missing", "This sign-in did not use your second factor",
			fmt.Sprintf("%s did not say that the login met the policy AgentHub asked for (acr).", i.opts.Name))
	}
	verified := c.EmailVerified == true || c.EmailVerified == "true"
	s := signIn{Identity: Identity{Issuer: idt.Issuer, Subject: idt.Subject, Linked: now}, AuthTime: at, AMR: c.AMR, refresh: secret.New(tok.RefreshToken)}
	if verified {
		s.Email = c.Email
	}
	return s, nil
}

// link links p to the identity that signed in.
func (i *IdP) link(ctx context.Context, p broker.Principal, s signIn) (connect.Done, error) {
	if i.opts.EmailOf != nil {
		want, err := i.opts.EmailOf(ctx, p)
		if err != nil {
			return connect.Done{}, fmt.Errorf("identity: the Slack user's email: %w", err)
		}
		if !sameEmail(want, s.Email) {
			return connect.Done{}, refused("email_mismatch", "This is not your identity",
				fmt.Sprintf("The identity you signed in with at %s does not have the email of Slack user %s.", i.opts.Name, p.User))
		}
	}
	already, err := i.links.link(ctx, p, s.Identity)
	switch {
	case errors.Is(err, ErrTaken):
		return connect.Done{}, refused("identity_taken", "This identity is linked to someone else",
			"Each identity links to one Slack user. Unlink it there first.")
	case errors.Is(err, ErrOtherLinked):
		return connect.Done{}, refused("other_identity_linked", "You have linked another identity",
			"Unlink it first with /agenthub unlink (which asks that identity to sign in).")
	case err != nil:
		return connect.Done{}, err
	}
	if !already {
		if _, err := i.opts.Audit.Record(ctx, audit.Event{Kind: audit.IdentityLinked, Actor: p.String(),
			Detail: i.detail(s)}); err != nil {
			return connect.Done{}, errors.Join(fmt.Errorf("identity: record link: %w", err), i.links.unlink(ctx, p, s.Identity))
		}
	}
	return connect.Done{Title: "Your identity is linked", Lines: []string{
		fmt.Sprintf("Slack user %s is linked to %s at %s.", p.User, cmp.Or(s.Email, s.Subject), i.opts.Name),
		"AgentHub asks this identity to sign in again before risky actions. You can close this tab.",
	}}, nil
}

// sameEmail compares two addresses as mail systems do in practice: ASCII
// letters without case. An address with anything but printable ASCII
// matches nothing (Unicode case folding would let "K" (Kelvin) stand for
// "k").
func sameEmail(a, b string) bool {
	ascii := func(s string) bool {
		return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' })
	}
	return ascii(a) && ascii(b) && strings.ToLower(a) == strings.ToLower(b)
}

// unlink undoes p's link, when the linked identity itself signed in.
func (i *IdP) unlink(ctx context.Context, p broker.Principal, s signIn) (connect.Done, error) {
	cur, ok, err := i.links.Linked(ctx, p)
	if err != nil {
		return connect.Done{}, err
	}
	if !ok {
		return connect.Done{Title: "Nothing to unlink", Lines: []string{"Slack user " + p.User + " has no linked identity. You can close this tab."}}, nil
	}
	if cur.Issuer != s.Issuer || cur.Subject != s.Subject {
		return connect.Done{}, refused("wrong_identity", "This is not the linked identity",
			"Only the identity linked to your Slack user can undo the link: sign in as that one.")
	}
	// The record first: an unlink the trail does not know of is not done.
	if _, err := i.opts.Audit.Record(ctx, audit.Event{Kind: audit.IdentityUnlinked, Actor: p.String(), Detail: i.detail(s)}); err != nil {
		return connect.Done{}, fmt.Errorf("identity: record unlink: %w", err)
	}
	if err := i.links.unlink(ctx, p, cur); err != nil {
		return connect.Done{}, err
	}
	return connect.Done{Title: "Your identity is unlinked", Lines: []string{
		"Slack user " + p.User + " is no longer linked to an identity. Link one again with /agenthub link. You can close this tab."}}, nil
}

// stepUp counts the sign-in for request id, when it is p's linked identity
// that signed in.
func (i *IdP) stepUp(ctx context.Context, p broker.Principal, id string, s signIn) (connect.Done, error) {
	if err := i.sameIdentity(ctx, p, s); err != nil {
		if r, ok := errors.AsType[*connect.Refused](err); ok {
			r.RequestID = id
		}
		return connect.Done{}, err
	}
	detail := i.detail(s)
	detail["factor"] = "oidc"
	if _, err := i.opts.Audit.Record(ctx, audit.Event{Kind: audit.StepUpPassed, Actor: p.String(), RequestID: id, Detail: detail}); err != nil {
		return connect.Done{}, fmt.Errorf("identity: record step-up: %w", err)
	}
	if err := i.opts.SignedIn(ctx, p, id); err != nil {
		// Checked and recorded, but the request did not take it: it ran,
		// expired or was denied meanwhile, or the store failed.
		return connect.Done{Title: "Signed in, but nothing ran", Lines: []string{
			"This request is not waiting for your sign-in any more (it ran, expired or was denied), or AgentHub could not go on with it just now. Slack says which.",
			"You can close this tab."}}, nil
	}
	return connect.Done{Title: "Verified", Lines: []string{
		"AgentHub goes on with the request in Slack, where you will see what came of it. You can close this tab."}}, nil
}

// enrol opens the enrolment gate for p, when it is p's linked identity
// that signed in.
func (i *IdP) enrol(ctx context.Context, p broker.Principal, requestID string, reset bool, s signIn) (connect.Done, error) {
	if i.opts.Enrol == nil {
		return connect.Done{}, refused("unknown_purpose", "This sign-in was not for anything AgentHub knows")
	}
	if err := i.sameIdentity(ctx, p, s); err != nil {
		return connect.Done{}, err
	}
	enr, err := i.opts.Enrol(ctx, p, "oidc:"+s.Subject, requestID, reset)
	if errors.Is(err, stepup.ErrAlreadyEnrolled) {
		return connect.Done{}, &connect.Refused{Reason: "already_enrolled", Kind: audit.IdentityRefused, Status: http.StatusConflict, Page: connect.Done{
			Title: "An authenticator is set up already",
			Lines: []string{"To replace a lost one, use /agenthub reset in Slack."}}}
	}
	if err != nil {
		return connect.Done{}, err
	}
	return EnrolmentPage(enr), nil
}

// EnrolmentPage shows a new authenticator's key, once, to the browser that
// passed the enrolment gate: the key never travels through Slack.
func EnrolmentPage(enr stepup.Enrolment) connect.Done {
	return connect.Done{
		Title:  "Set up your authenticator",
		Lines:  []string{"Add this key to your authenticator app (1Password, Google Authenticator, Authy, …): scan it in as a setup key, or open the otpauth link on your phone."},
		Secret: []string{enr.Secret.Reveal(), enr.URI.Reveal()},
		After: []string{
			"Then, in Slack, press Confirm in my DM and enter the code your app shows: the authenticator counts from then on.",
			fmt.Sprintf("This page is the only place the key is shown; it works if confirmed within %d minutes. Close the tab once it is in your app.", int(stepup.PendingTTL/time.Minute)),
		},
	}
}

// sameIdentity refuses a sign-in of another identity than p's linked one,
// or of anyone when p has linked none.
func (i *IdP) sameIdentity(ctx context.Context, p broker.Principal, s signIn) error {
	cur, ok, err := i.links.Linked(ctx, p)
	if err != nil {
		return err
	}
	if !ok {
		return refused("not_linked", "Link your identity first",
			"This needs your Slack user linked to your identity: /agenthub link.")
	}
	if cur.Issuer != s.Issuer || cur.Subject != s.Subject {
		return refused("wrong_identity", "This is not your identity",
			"The identity that signed in is not the one linked to the Slack user who asked. It does not count.")
	}
	return nil
}

// detail is what the trail keeps of a sign-in: who at which IdP, and
// when they logged in. No token.
func (i *IdP) detail(s signIn) map[string]string {
	d := map[string]string{"issuer": s.Issuer, "subject": s.Subject, "auth_time": s.AuthTime.UTC().Format(time.RFC3339)}
	if s.Email != "" {
		d["email"] = s.Email
	}
	if len(s.AMR) > 0 {
		d["amr"] = strings.Join(s.AMR, " ")
	}
	return d
}

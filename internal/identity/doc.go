// Package identity links people's Slack users to their identity at the
// organisation's identity provider (OpenID Connect: Auth0, Okta, Entra ID,
// Google Workspace, Keycloak, …) and lets a fresh sign-in of that identity
// verify a risky request, instead of a code from an authenticator app.
//
// # Why a sign-in
//
// Someone holding a person's Slack session can click Approve. They cannot,
// without the person's password and second factor, sign in at the IdP. So
// a request whose policy rule asks for the oidc factor (or, with an IdP set
// up, any rule naming no factor) runs only after the identity linked to its
// owner signs in again, in a browser, for that request.
//
// # The flows
//
// Every sign-in is a connect flow (internal/connect) with the IdP as its
// provider (service "identity"): a signed, single-use link made for one
// Slack user and one purpose, a start page that says what the sign-in is
// for, Continue, then the authorization-code flow with PKCE (S256), a
// single-use state bound to the browser by a cookie, and a nonce. The
// authorization request asks for a fresh login whatever session the IdP
// has (prompt=login, max_age=0) under the multi-factor policy
// (acr_values, Auth0's by default). The callback exchanges the code and
// checks the id_token: its signature against the IdP's published keys, its
// issuer, audience and expiry (go-oidc), the nonce of this flow, an
// auth_time at most MaxAge ago, and amr naming the second factor
// (Options.AMR, "mfa" by default). A sign-in that fails any of these is
// refused with a page saying why and an identity.refused event (with the
// request, for a step-up); nothing else happens.
//
// The purposes:
//
//   - link (/agenthub link): the Slack user is linked to the identity that
//     signed in. One identity links to one Slack user, and a Slack user to
//     one identity; both records are created with Create, so two links
//     racing for either cannot both win. With Options.EmailOf (the bot
//     reads the Slack profile's email), the IdP's verified email must be
//     the Slack user's, so that a stolen Slack session cannot link the
//     thief's own identity to its victim. identity.linked is recorded.
//   - unlink (/agenthub unlink): only a sign-in of the linked identity
//     undoes the link (identity.unlinked): a Slack session alone cannot
//     swap in another identity.
//   - stepup:<request>: the sign-in of the identity linked to the request's
//     owner is recorded as stepup.passed (factor oidc, with the subject and
//     auth_time) and Options.SignedIn moves the request on
//     (broker.SignedIn), which runs it if nothing else is missing; a
//     request that no longer waits for it (it ran, expired, was denied)
//     takes nothing, and the page says so. The state is single-use, so one
//     login counts for that one request; a replayed callback is refused
//     (state_spent).
//   - enrol:<request> and reset: the enrolment gate of step-up codes
//     (internal/stepup): a sign-in of the linked identity enrols its
//     person, and the page shows the new authenticator's key, which never
//     travels through Slack.
//
// Where the IdP does not say which factors a login used (OIDC_AMR=-), the
// acr it says the login met must be one of those asked for.
//
// Nothing of the tokens the IdP returns is kept, logged or shown: the
// id_token is checked and dropped, and the access token is not used.
package identity

// Package sim simulates the parts of GitHub, Google Calendar and Slack that AgentHub's agents use,
// with each provider's OAuth token and revocation endpoints, so that the terminal demo runs with no
// network and no keys and tests can see exactly what reached a provider.
//
// The real client libraries work against it unchanged except for their base URL:
//
//	go-github v62      client.BaseURL = server + "/github/"
//	calendar/v3        calendar.NewService(ctx, option.WithEndpoint(server+"/calendar/v3/"), option.WithHTTPClient(c))
//	slack-go           slack.New(token, slack.OptionAPIURL(server+"/slack/api/"))
//	x/oauth2           Endpoint{TokenURL: server+"/oauth/{service}/token"}, revocation at /oauth/{service}/revoke
//
// where server is an httptest.Server running World.Handler (see NewServer), or any base URL when
// the http.Client's transport is World.Transport, which serves requests in-process.
//
// # What is simulated
//
// GitHub REST: repositories, branches (with protection), pull requests (list, get, review, merge),
// issues and comments, branch deletion through the git refs API, and workflow dispatch with
// validated inputs. Calendar v3: events list, insert and delete on "primary", and freeBusy.
// Slack Web API: auth.test, conversations.list, chat.postMessage and conversations.archive.
// Unknown routes answer 404 in each provider's style; malformed JSON answers 400.
//
// The seeded world (unless Options.Empty): GitHub acme/website (public, branches main, feature-x,
// docs-typo; open PRs #12 and #13) and acme/payments (private, main protected, branches main,
// fix-rounding, feature-refunds; open PRs #7 "Fix rounding in refunds", mergeable, and #8, not
// mergeable), each with a deploy.yml workflow whose environment input is staging or production;
// a calendar with events today and tomorrow in Options.Location (UTC by default, so no tzdata is
// needed); Slack channels #general, #eng and #deploys.
//
// # Tokens
//
// Every API call needs an access token the world issued for that service: from IssueTokens (the
// demo's "the person is connected"), or from the token endpoint (authorization_code with
// mandatory PKCE S256 for a code from AuthorizeCode or the authorize endpoint, and
// refresh_token). Access tokens expire after Options.AccessTTL by Options.Now. Refresh tokens
// rotate: each works once, and presenting a used one revokes the whole grant, as providers'
// reuse detection does. The revocation endpoint (RFC 7009) revokes a token's whole grant. Token
// errors are RFC 6749 JSON (400 invalid_grant, 401 invalid_client) for every provider, which is
// what golang.org/x/oauth2 understands; Slack's and GitHub's own HTTP-200 error styles are not
// imitated there.
//
// The authorize endpoint (GET /oauth/{service}/authorize) stands in for a consent page: there is
// no login, so login_hint names the person, who always consents; it requires client_id,
// response_type=code, redirect_uri and code_challenge_method=S256, and redirects to redirect_uri
// with code and state. Slack's user_scope parameter is honoured.
//
// Scopes are checked per endpoint. GitHub: reads of a public repository need any valid token (the
// real API would also answer anonymously; the sim does not, so every call has a principal),
// writes need public_repo or repo, anything on a private repository needs repo and otherwise
// answers 404, and workflow dispatch needs repo. Calendar: calendar.events or calendar to write,
// any calendar read scope to read. Slack: channels:read, chat:write, channels:manage (or
// channels:write). Failures use the providers' shapes: GitHub 401 {"message":"Bad credentials"},
// Google 401/403 error objects, Slack HTTP 200 {"ok":false,"error":"invalid_auth"} (also
// not_authed, token_expired, token_revoked, missing_scope).
//
// Every principal sees the same repositories, calendar and channels: the sim models access by
// scope, not by membership. Tokens are kept only as digests.
//
// # Asserting on calls
//
// Every request, including failed ones and OAuth endpoint requests, is recorded as a Call with the
// service, method, path (no query), the principal its token resolved to, the status and the
// provider's error code; never the token. A test asserts what reached a provider, and what did
// not, with Calls or CallsFor, and inspects the resulting state with GitHub, Calendar and Slack:
//
//	w := sim.New(sim.Options{Now: clock.Now})
//	srv := sim.NewServer(w)
//	defer srv.Close()
//	... run the code under test against srv.URL ...
//	if pr, _ := w.GitHub().PullRequest("acme/payments", 7); pr.Merged {
//		t.Error("PR 7 was merged without step-up")
//	}
//	for _, c := range w.CallsFor(sim.ServiceGitHub) {
//		if c.Method == http.MethodPut { t.Errorf("unexpected write %s %s", c.Method, c.Path) }
//	}
package sim

package main

import (
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/connect/connecttest"
	"github.com/agenthub/agenthub/internal/identity/oidctest"
	"github.com/agenthub/agenthub/internal/provider/providertest"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// TestSlackBotStepUpBySignIn: with an identity provider set up (OIDC_*,
// here a real OpenID Provider on loopback), /agenthub link links alice's
// Slack user to her identity there through a sign-in, and a merge, once
// approved, runs only after that identity signs in again, freshly and
// with its second factor: "Verify it's you" answers with a sign-in link
// instead of a code. A sign-in without the factor, or of someone else,
// merges nothing.
func TestSlackBotStepUpBySignIn(t *testing.T) {
	srv := slacktest.New(t)
	op := oidctest.Start(t)
	vars := e2eEnv(t, srv, "bolt:"+filepath.Join(t.TempDir(), "bot.db"), "")
	public := freeAddr(t)
	vars["AGENTHUB_PUBLIC_URL"], vars["AGENTHUB_PUBLIC_ADDR"] = "http://"+public, public
	vars["OIDC_ISSUER"], vars["OIDC_CLIENT_ID"], vars["OIDC_CLIENT_SECRET"] = op.Issuer(), op.ClientID, op.ClientSecret
	srv.SetUser(slacktest.User{ID: alice, Email: "anna@example.com"})
	bot := startBot(t, srv, vars, hooks{})
	dm := srv.DMChannel(alice)
	anna := oidctest.Person{Subject: "idp|anna", Email: "anna@example.com", AMR: []string{"pwd", "mfa"}}
	mark := oidctest.Person{Subject: "idp|mark", Email: "mark@example.com", AMR: []string{"pwd", "mfa"}}
	signIn := func(answer string, who oidctest.Person) connecttest.Response {
		t.Helper()
		link := connectLink.FindStringSubmatch(answer)
		if link == nil {
			t.Fatalf("no sign-in link in %q", answer)
		}
		op.SignInAs(who)
		return connecttest.New(t, "http://"+public).Open(link[1])
	}

	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "link"}))
	if r := signIn(responseWith(t, srv, "Sign in to link your identity"), anna); r.Status != http.StatusOK || !strings.Contains(r.Body, "Your identity is linked") {
		t.Fatalf("linking: %d %q", r.Status, r.Body)
	}

	push(t, srv, srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> merge PR 7 in acme/payments"}))
	approval, reqID := awaitApproval(t, srv, dm)
	push(t, srv, srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: approval.TS,
		ActionID: slackapp.ActionDecidePrefix + broker.ChoiceOnce, Value: reqID}))
	var stepMsg slacktest.Message
	eventually(t, "the step-up DM", func() bool {
		var ok bool
		stepMsg, ok = messageWith(srv, dm, "sign in again")
		return ok
	})
	verify := func() string {
		t.Helper()
		n := len(srv.Ephemerals(dm))
		push(t, srv, srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: stepMsg.TS, ActionID: slackapp.ActionStepUp, Value: reqID}))
		var text string
		eventually(t, "the sign-in link, to alice alone", func() bool {
			for _, m := range srv.Ephemerals(dm)[n:] {
				if m.User == alice && strings.Contains(m.Text, "Sign in to verify") {
					text = m.Text
					return true
				}
			}
			return false
		})
		return text
	}
	merged := func() bool {
		pr, ok := bot.env.core.providers.sim.World.GitHub().PullRequest("acme/payments", 7)
		return ok && pr.Merged
	}
	noFactor := anna
	noFactor.AMR = []string{"pwd"}
	stale := anna
	stale.AuthAgo = time.Hour
	for _, who := range []oidctest.Person{noFactor, stale, mark} {
		if r := signIn(verify(), who); r.Status != http.StatusForbidden {
			t.Errorf("sign-in as %s (amr %v, %v ago): %d, want 403", who.Subject, who.AMR, who.AuthAgo, r.Status)
		}
	}
	if merged() {
		t.Fatal("merged without a fresh sign-in of alice's identity with its factor")
	}
	if r := signIn(verify(), anna); r.Status != http.StatusOK || !strings.Contains(r.Body, "Verified") {
		t.Fatalf("alice's sign-in: %d %q", r.Status, r.Body)
	}
	eventually(t, "the merge's result in the DM", func() bool { _, ok := messageWith(srv, dm, "Merged acme/payments#7"); return ok })
	if !merged() {
		t.Fatal("the result says merged, the simulated GitHub does not")
	}
	if r, err := bot.env.core.Broker.Lookup(t.Context(), reqID); err != nil || r.Status != broker.StatusSucceeded {
		t.Errorf("request after the sign-in: %s, %v", r.Status, err)
	}

	seen := seenBy(bot, srv, dm)
	for _, secret := range append([]string{oidctest.SecretCanary}, op.Issued()...) {
		if strings.Contains(seen, secret) {
			t.Fatal("the OIDC client secret or a token the OP issued is in the log or in Slack")
		}
	}
	if !regexp.MustCompile(`"issuer":"http://127\.0\.0\.1:\d+/oidc"`).MatchString(bot.stderr.String()) {
		t.Error("start-up does not log the identity provider it set up")
	}
}

// TestEnrolLinkOutOfBand: a bot on real providers gates enrolment; with
// neither an identity provider nor administrators, "bot stepup enrol-link"
// prints a link (on the record first) that the operator hands over. Opening
// it shows the key on the page and nowhere in Slack; the DM only asks for
// the first code, which confirms the authenticator. The link works once.
func TestEnrolLinkOutOfBand(t *testing.T) {
	rs := redistest.Start(t)
	srv := slacktest.New(t)
	gh := providertest.New(t, "github")
	vars := e2eEnv(t, srv, rs.URL(), rs.Prefix())
	delete(vars, "AGENTHUB_DEMO")
	public := freeAddr(t)
	vars["AGENTHUB_PUBLIC_URL"], vars["AGENTHUB_PUBLIC_ADDR"] = "http://"+public, public
	vars["GITHUB_APP_CLIENT_ID"], vars["GITHUB_APP_CLIENT_SECRET"] = gh.ClientID, gh.Secret
	vars["GITHUB_API_URL"], vars["GITHUB_WEB_URL"] = gh.URL()+"/api/v3/", gh.URL()
	bot := startBot(t, srv, vars, hooks{})
	if !strings.Contains(bot.stderr.String(), "nobody can set up an authenticator") {
		t.Error("start-up does not warn that nobody can enrol")
	}
	who := broker.Principal{Team: slacktest.TeamID, User: alice}

	var stdout, stderr strings.Builder
	if err := run(t.Context(), []string{"bot", "stepup", "enrol-link", "-valid", "1h", who.String()}, func(k string) string { return vars[k] },
		strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("bot stepup enrol-link: %v (%s)", err, stderr.String())
	}
	link := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(link, "http://"+public+"/connect?t=") {
		t.Fatalf("enrol-link printed %q", link)
	}
	issued, err := bot.env.core.Audit.Tail(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(issued, func(e audit.Event) bool {
		return e.Kind == stepup.KindLinkIssued && e.Detail["principal"] == who.String()
	}) {
		t.Error("the link is not on the record")
	}

	browser := connecttest.New(t, "http://"+public)
	page := browser.Open(link)
	key := regexp.MustCompile(`<code[^>]*>([A-Z2-7]{16,})</code>`).FindStringSubmatch(page.Body)
	if page.Status != http.StatusOK || key == nil {
		t.Fatalf("the link's page: %d, no key shown", page.Status)
	}
	var confirm slacktest.Message
	eventually(t, "the Confirm DM", func() bool {
		var ok bool
		confirm, ok = messageWith(srv, srv.DMChannel(alice), slackapp.ActionEnrolConfirm)
		return ok
	})
	for _, ch := range []string{srv.DMChannel(alice), e2eChannel} {
		for _, m := range srv.Messages(ch) {
			if strings.Contains(m.Text+string(m.Blocks), key[1]) {
				t.Fatal("the key is in Slack")
			}
		}
	}
	code, err := totp.GenerateCode(key[1], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	push(t, srv, srv.BlockAction(slacktest.Action{User: alice, Channel: confirm.Channel, MessageTS: confirm.TS, ActionID: slackapp.ActionEnrolConfirm}))
	push(t, srv, srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: slackapp.CallbackEnrol,
		Values: map[string]map[string]string{slackapp.EnrolBlockID: {slackapp.EnrolActionID: code}}}))
	eventually(t, "the authenticator confirmed", func() bool {
		ok, err := bot.env.core.StepUp.Enrolled(t.Context(), who.String())
		return err == nil && ok
	})
	if again := connecttest.New(t, "http://"+public).Do(http.MethodPost, "http://"+public+"/connect", url.Values{"t": {mustQuery(t, link).Get("t")}}); again.Status == http.StatusOK {
		t.Error("the link worked twice")
	}
}

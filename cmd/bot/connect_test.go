package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/provider/providertest"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// freeAddr is a loopback address nothing listens on just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

var connectLink = regexp.MustCompile(`<(http://127\.0\.0\.1:\d+/connect\?t=[^|>]+)\|`)

// TestSlackBotConnectsThroughOAuth: with a public URL, a step waiting for
// its connection offers Connect; the click answers with a link for the
// clicker alone; the browser goes through the simulated provider's consent
// (authorization code with PKCE) and back; the bot stores the connection,
// goes on with the request in its thread and says so in the DM. The
// operator's endpoints are not on the public listener.
func TestSlackBotConnectsThroughOAuth(t *testing.T) {
	srv := slacktest.New(t)
	vars := e2eEnv(t, srv, "bolt:"+filepath.Join(t.TempDir(), "bot.db"), "")
	public := freeAddr(t)
	vars["AGENTHUB_PUBLIC_URL"], vars["AGENTHUB_PUBLIC_ADDR"] = "http://"+public, public
	startBot(t, srv, vars, hooks{})
	dm := srv.DMChannel(alice)

	// The demo connects alice on first contact; she revokes GitHub, and
	// then asks for something that needs it.
	push(t, srv, srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> list open pull requests in acme/website"}))
	eventually(t, "the first read", func() bool { _, ok := messageWith(srv, e2eChannel, "open pull requests in acme/website"); return ok })
	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "revoke github"}))
	eventually(t, "the revoke", func() bool {
		for _, r := range srv.Responses() {
			if strings.Contains(r.Text, "Revoked github") {
				return true
			}
		}
		return false
	})
	ask := srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> list open pull requests in acme/website, please"})
	push(t, srv, ask)
	var prompt slacktest.Message
	eventually(t, "the Connect DM", func() bool {
		var ok bool
		prompt, ok = messageWith(srv, dm, slackapp.ActionConnect)
		return ok
	})

	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range srv.Responses() {
				t.Logf("response %s: %q", r.URL, r.Text)
			}
			for _, m := range srv.Ephemerals(dm) {
				t.Logf("ephemeral: %q", m.Text)
			}
			for _, ch := range []string{dm, e2eChannel} {
				for _, m := range srv.Messages(ch) {
					t.Logf("%s %s (thread %s): %q", ch, m.TS, m.ThreadTS, m.Text)
				}
			}
		}
	})
	click := srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: prompt.TS, ActionID: slackapp.ActionConnect, Value: "github"})
	push(t, srv, click)
	var link string
	eventually(t, "the connect link", func() bool {
		texts := []string{}
		for _, r := range srv.Responses() {
			if r.URL == click.ResponseURL() {
				texts = append(texts, r.Text)
			}
		}
		for _, m := range srv.Ephemerals(dm) {
			if m.User == alice {
				texts = append(texts, m.Text)
			}
		}
		for _, text := range texts {
			if m := connectLink.FindStringSubmatch(text); m != nil {
				link = m[1]
				return true
			}
		}
		return false
	})

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar}
	if page := get(t, link); !strings.Contains(page, "Connect GitHub to AgentHub") {
		t.Fatalf("start page = %q", page)
	}
	resp, err := browser.PostForm("http://"+public+"/connect", url.Values{"t": {mustQuery(t, link).Get("t")}})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "GitHub is connected") {
		t.Fatalf("after consent: %d %q", resp.StatusCode, body)
	}

	eventually(t, "the request going on in its thread, on the new connection", func() bool {
		for _, m := range threadReplies(srv, e2eChannel, ask.MustEventTS(t)) {
			if strings.Contains(m.Text, "open pull requests in acme/website") {
				return true
			}
		}
		return false
	})
	eventually(t, "the DM saying so", func() bool {
		_, ok := messageWith(srv, dm, "Connected github. I went on with the 1 request(s)")
		return ok
	})
	for _, path := range []string{"/metrics", "/healthz"} {
		r, err := http.Get("http://" + public + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", path, r.StatusCode)
		}
	}
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}

func readAll(t *testing.T, r *http.Response) string {
	t.Helper()
	defer r.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, r.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// awaitApproval waits for the approval DM in dm, and returns it with the
// ID of the request it is for.
func awaitApproval(t *testing.T, srv *slacktest.Server, dm string) (slacktest.Message, string) {
	t.Helper()
	var approval slacktest.Message
	eventually(t, "the approval DM", func() bool {
		var ok bool
		approval, ok = messageWith(srv, dm, slackapp.ActionDecidePrefix+broker.ChoiceOnce)
		return ok
	})
	return approval, buttonValue(t, approval.Blocks, slackapp.ActionDecidePrefix+broker.ChoiceOnce)
}

// seenBy is everything the bot wrote where people or operators read it:
// its log, the messages in dm, the test channel and the audit channel, and
// the responses to commands and clicks.
func seenBy(bot *runningBot, srv *slacktest.Server, dm string) string {
	var seen strings.Builder
	seen.WriteString(bot.stderr.String())
	for _, ch := range []string{dm, e2eChannel, e2eAudit} {
		for _, m := range srv.Messages(ch) {
			seen.WriteString(m.Text + string(m.Blocks))
		}
	}
	for _, r := range srv.Responses() {
		seen.WriteString(r.Text)
	}
	return seen.String()
}

// responseWith waits for a response (to a slash command or a click) that
// holds s, and returns its text.
func responseWith(t *testing.T, srv *slacktest.Server, s string) string {
	t.Helper()
	var text string
	eventually(t, "a response with "+s, func() bool {
		for _, r := range srv.Responses() {
			if strings.Contains(r.Text, s) {
				text = r.Text
				return true
			}
		}
		return false
	})
	return text
}

// startRealGitHubBot runs the bot without AGENTHUB_DEMO, on a fake
// GitHub's GitHub App, with a public listener and a webhook secret.
func startRealGitHubBot(t *testing.T) (*slacktest.Server, *providertest.Fake, *runningBot, string) {
	t.Helper()
	srv := slacktest.New(t)
	gh := providertest.New(t, "github")
	vars := e2eEnv(t, srv, "bolt:"+filepath.Join(t.TempDir(), "bot.db"), "")
	delete(vars, "AGENTHUB_DEMO")
	public := freeAddr(t)
	vars["AGENTHUB_PUBLIC_URL"], vars["AGENTHUB_PUBLIC_ADDR"] = "http://"+public, public
	vars["GITHUB_APP_CLIENT_ID"], vars["GITHUB_APP_CLIENT_SECRET"] = gh.ClientID, gh.Secret
	vars["GITHUB_API_URL"], vars["GITHUB_WEB_URL"] = gh.URL()+"/api/v3/", gh.URL()
	vars["GITHUB_WEBHOOK_SECRET"] = e2eWebhookSecret
	return srv, gh, startBot(t, srv, vars, hooks{}), public
}

const e2eWebhookSecret = "webhook-secret-CANARY-0123456789"

// connectGitHub is alice asking for a link and going through consent at
// the fake GitHub, as octocat.
func connectGitHub(t *testing.T, srv *slacktest.Server, gh *providertest.Fake, public string) {
	t.Helper()
	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "connect github"}))
	link := connectLink.FindStringSubmatch(responseWith(t, srv, "Connect github"))
	if link == nil {
		t.Fatal("no connect link in the answer")
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar}
	resp, err := browser.PostForm("http://"+public+"/connect", url.Values{"t": {mustQuery(t, link[1]).Get("t")}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "the GitHub account octocat") {
		t.Fatalf("after consent at GitHub: %d %q", resp.StatusCode, body)
	}
	eventually(t, "the DM naming the account", func() bool {
		_, ok := messageWith(srv, srv.DMChannel(alice), "Connected github as octocat.")
		return ok
	})
}

// TestSlackBotOnRealGitHub: without AGENTHUB_DEMO, the bot serves the real
// providers whose OAuth clients are set — here a GitHub App, against an
// httptest fake of GitHub's OAuth and REST endpoints. Start-up names the
// services that are off and what they lack; /agenthub connect says so of
// them; GitHub connects through consent with PKCE, as the account GitHub
// names; /agenthub revoke deletes the app's grant at GitHub. No token the
// fake issued is in a log line or a Slack message.
func TestSlackBotOnRealGitHub(t *testing.T) {
	srv, gh, bot, public := startRealGitHubBot(t)
	dm := srv.DMChannel(alice)

	for _, want := range []string{`"service":"google","missing":["GOOGLE_CLIENT_ID","GOOGLE_CLIENT_SECRET"]`, `"service":"slack","missing":["SLACK_CLIENT_ID","SLACK_CLIENT_SECRET"]`} {
		if !strings.Contains(bot.stderr.String(), want) {
			t.Errorf("start-up log does not say %s", want)
		}
	}
	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "connect google"}))
	responseWith(t, srv, "google is not set up here")

	connectGitHub(t, srv, gh, public)
	if got := gh.AuthParams().Get("code_challenge_method"); got != "S256" {
		t.Errorf("consent request's code_challenge_method = %q, want S256", got)
	}

	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "revoke github"}))
	responseWith(t, srv, "Revoked github")
	if got := gh.Revocations(); len(got) != 1 || got[0] != "DELETE grant: access" || gh.GrantsAlive() != 0 {
		t.Errorf("at GitHub after revoke: revocations %q, grants alive %d; want the grant deleted", got, gh.GrantsAlive())
	}

	if regexp.MustCompile(`CANARY-github-(access|refresh|code)|client-secret-CANARY|webhook-secret-CANARY`).MatchString(seenBy(bot, srv, dm)) {
		t.Error("a token or a secret is in the log or in Slack")
	}
}

// TestSlackBotFollowsRevocationAtGitHub: when the person revokes the app
// at GitHub, GitHub's signed github_app_authorization delivery revokes the
// connection here too and tells them; an unsigned one is refused and on
// the record.
func TestSlackBotFollowsRevocationAtGitHub(t *testing.T) {
	srv, gh, bot, public := startRealGitHubBot(t)
	connectGitHub(t, srv, gh, public)
	body := `{"action":"revoked","sender":{"login":"OctoCat"}}`
	deliver := func(sig string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+public+"/webhooks/github", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "github_app_authorization")
		req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := deliver(""); got != http.StatusUnauthorized {
		t.Fatalf("unsigned delivery: %d, want 401", got)
	}
	mac := hmac.New(sha256.New, []byte(e2eWebhookSecret))
	mac.Write([]byte(body))
	if got := deliver("sha256=" + hex.EncodeToString(mac.Sum(nil))); got != http.StatusNoContent {
		t.Fatalf("signed delivery: %d, want 204", got)
	}
	eventually(t, "the DM saying so", func() bool {
		_, ok := messageWith(srv, srv.DMChannel(alice), "You took back AgentHub's access at GitHub, so I revoked github here too.")
		return ok
	})
	c, err := bot.env.core.Vault.Connection(t.Context(), broker.Principal{Team: slacktest.TeamID, User: alice}.String(), "github")
	if err != nil || c.Status != "revoked" {
		t.Errorf("github connection = %s, %v; want revoked", c.Status, err)
	}
	if strings.Contains(bot.stderr.String(), e2eWebhookSecret) {
		t.Error("the webhook secret is in the log")
	}
}

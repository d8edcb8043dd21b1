package main

import (
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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

package slackapp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// TestAHungProgressStreamLeavesTheAnswer: progress is best effort. A
// stream whose chat.appendStream never answers costs the work one bounded
// wait, then progress stops for that message, and the answer is
// delivered. Scaled down: a 250 ms client timeout, a 2 s budget for the
// work (2 min in production), six reads.
func TestAHungProgressStreamLeavesTheAnswer(t *testing.T) {
	repos := []string{"acme/website", "acme/website", "acme/website", "acme/website", "acme/website", "acme/website"}
	f := newFlow(t, flowOptions{demo: true, planner: readingPlanner{repos: repos}})
	target, _ := url.Parse(f.srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "chat.appendStream") {
			select { // Slack does not answer this one method
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	f.app.opts.API = slack.New(flowBotToken, slack.OptionAPIURL(slow.URL+"/api/"),
		slack.OptionHTTPClient(&http.Client{Timeout: 250 * time.Millisecond}))

	env := f.srv.AppMention(slacktest.Msg{User: alice, Channel: "C1", Text: "<@" + slacktest.BotUserID + "> what is open on the website?"})
	w := workOf(t, env)
	ts := w.event.InnerEvent.Data.(*slackevents.AppMentionEvent).TimeStamp
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	began := time.Now()
	_ = f.app.handleWork(ctx, w)
	if r := f.replies("C1", ts); len(r) == 0 || r[len(r)-1] != "Here is what is open." {
		t.Errorf("after %v, thread replies = %q: the hung progress stream cost the person the answer", time.Since(began).Round(time.Millisecond), r)
	}
}

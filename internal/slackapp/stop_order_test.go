package slackapp

import (
	"context"
	"testing"
	"time"

	"github.com/slack-go/slack/slackevents"

	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// TestStopOvertakesTheMessageItStops: the transport runs one person's
// events in order, but agent_session_stopped, which carries the same user
// as the message being worked on, has a queue of its own: it is handled
// while the plan it stops is still being made or run.
func TestStopOvertakesTheMessageItStops(t *testing.T) {
	srv := slacktest.New(t)
	sa := socketNew(t, srv, memstore.New(memstore.Options{}), socketConfig{opts: func(o *Options) { o.Workers = 16 }})
	planning := make(chan struct{}, 1)
	stopped := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	sa.handle = func(ctx context.Context, w work) error {
		switch w.event.InnerEvent.Data.(type) {
		case *slackevents.AppMentionEvent:
			planning <- struct{}{} // the broker is planning and running this message
			select {
			case <-release:
			case <-ctx.Done():
			}
		case *slackevents.AgentSessionStoppedEvent:
			stopped <- struct{}{}
		}
		return nil
	}
	sa.start(t)
	socketPush(t, srv, srv.AppMention(slacktest.Msg{User: "U1STOP", Channel: "C1", ThreadTS: "1700000000.000100",
		Text: "<@" + slacktest.BotUserID + "> list PRs and merge 7"}))
	select {
	case <-planning:
	case <-time.After(10 * time.Second):
		t.Fatal("the mention was not handled")
	}
	socketPush(t, srv, srv.AgentSessionStopped("U1STOP", "C1", "1700000000.000100"))
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		t.Fatal("the Stop was not handled while the message it stops was still being worked on: it is queued behind it (same order key, the user)")
	}
}

package slacktest_test

import (
	"errors"
	"testing"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// The fake holds streamed messages to what Slack requires of them: a
// recipient in a channel, well-formed chunks, and nothing
// appended once stopped.
func TestStreamsAreCheckedLikeSlacks(t *testing.T) {
	srv := slacktest.New(t)
	api := newAPI(srv, botToken, appToken)
	ctx := testContext(t)
	code := func(err error) string {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) {
			return se.Err
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	task := slack.NewTaskUpdateChunk("t1", "Reading")
	task.Status = slack.TaskCardStatusInProgress
	if _, _, err := api.StartStreamContext(ctx, "C1", slack.MsgOptionTS("1.1"), slack.MsgOptionChunks(task)); code(err) != "missing_recipient_user_id" {
		t.Errorf("no recipient in a channel: %v", err)
	}
	bad := slack.NewTaskUpdateChunk("t1", "Reading")
	bad.Status = "somewhere"
	if _, _, err := api.StartStreamContext(ctx, "C1", slack.MsgOptionTS("1.1"), slack.MsgOptionRecipientUserID("U1"),
		slack.MsgOptionRecipientTeamID(slacktest.TeamID), slack.MsgOptionChunks(bad)); code(err) != "invalid_chunks" {
		t.Errorf("a bad status: %v", err)
	}
	ch, ts, err := api.StartStreamContext(ctx, "C1", slack.MsgOptionTS("1.1"), slack.MsgOptionRecipientUserID("U1"),
		slack.MsgOptionRecipientTeamID(slacktest.TeamID), slack.MsgOptionChunks(task))
	if err != nil {
		t.Fatal(err)
	}
	task.Status = slack.TaskCardStatusComplete
	if _, _, err := api.AppendStreamContext(ctx, ch, ts, slack.MsgOptionChunks(task)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.StopStreamContext(ctx, ch, ts, slack.MsgOptionMarkdownText("Done.")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.AppendStreamContext(ctx, ch, ts, slack.MsgOptionChunks(task)); code(err) != "message_not_in_streaming_state" {
		t.Errorf("append after stop: %v", err)
	}
	s := srv.Streams()
	if len(s) != 1 || len(s[0].Chunks) != 3 || s[0].Chunks[1].Status != "complete" || s[0].Chunks[2].Text != "Done." || !s[0].Stopped {
		t.Errorf("streams = %+v", s)
	}
	srv.NoStreams()
	if _, _, err := api.StartStreamContext(ctx, ch, slack.MsgOptionTS("1.1")); code(err) != "unknown_method" {
		t.Errorf("without streams: %v", err)
	}
}

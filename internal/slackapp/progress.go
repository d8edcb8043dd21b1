package slackapp

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/broker"
)

// Progress: while the bot works on a message, each read the planner runs
// shows in the thread as it starts and ends. Where the workspace streams
// messages (chat.startStream, appendStream, stopStream), they are task
// updates of one streamed message; where it does not, one plain threaded
// message, updated in place. A workspace that answers the first stream
// with an error that means it has none is not asked again. Progress is
// best effort: a failure to show it changes nothing of the work. Each
// call is bounded by progressTimeout, and after one fails progress stops
// for that message, so a Slack that does not answer costs the work at
// most one such wait.

// progressTimeout bounds one call that shows progress.
const progressTimeout = 3 * time.Second

// progress shows the progress of one message's work in thread t.
type progress struct {
	a          *App
	t          thread
	team, user string
	// ch, ts are the message showing it, once there is one; streaming
	// says whether it is a stream.
	ch, ts    string
	streaming bool
	failed    bool // nothing could be shown: stay quiet
	steps     []broker.Progress
}

func (a *App) newProgress(t thread, team, user string) *progress {
	return &progress{a: a, t: t, team: team, user: user}
}

// update shows p's change.
func (p *progress) update(ctx context.Context, s broker.Progress) {
	if p.failed || p.t.Channel == "" || p.t.TS == "" {
		return
	}
	if i := slices.IndexFunc(p.steps, func(x broker.Progress) bool { return x.ID == s.ID }); i >= 0 {
		p.steps[i] = s
	} else {
		p.steps = append(p.steps, s)
	}
	ctx, cancel := context.WithTimeout(ctx, progressTimeout)
	defer cancel()
	if p.ts == "" && !p.a.noStreams.Load() && p.start(ctx, s) {
		return
	}
	if p.streaming {
		_, _, err := p.a.opts.API.AppendStreamContext(ctx, p.ch, p.ts, slack.MsgOptionChunks(taskChunk(s)))
		p.a.noteAuth(err)
		if err != nil {
			p.failed = true
			p.a.log.DebugContext(ctx, "progress not streamed", "err", err)
		}
		return
	}
	text := p.text()
	var err error
	if p.ts == "" {
		p.ch, p.ts, err = p.a.post(ctx, p.t.Channel, p.t.TS, text, nil)
	} else {
		_, _, _, err = p.a.opts.API.UpdateMessageContext(ctx, p.ch, p.ts, slack.MsgOptionText(text, false))
		p.a.noteAuth(err)
	}
	if err != nil {
		p.failed = true
		p.a.log.DebugContext(ctx, "progress not shown", "err", err)
	}
}

// start begins the streamed message with s, reporting whether it did.
func (p *progress) start(ctx context.Context, s broker.Progress) bool {
	ch, ts, err := p.a.opts.API.StartStreamContext(ctx, p.t.Channel,
		slack.MsgOptionTS(p.t.TS), slack.MsgOptionRecipientUserID(p.user), slack.MsgOptionRecipientTeamID(p.team),
		slack.MsgOptionTaskDisplayMode(slack.TaskDisplayModeTimeline), slack.MsgOptionChunks(taskChunk(s)))
	if err == nil {
		p.ch, p.ts, p.streaming = ch, ts, true
		return true
	}
	p.a.noteAuth(err)
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "unknown_method", "not_allowed_token_type", "feature_not_enabled", "missing_scope", "method_deprecated":
			if !p.a.noStreams.Swap(true) {
				p.a.log.InfoContext(ctx, "this workspace has no streamed messages: progress goes in plain thread messages", "error_code", se.Err)
			}
			return false
		}
	}
	p.a.log.DebugContext(ctx, "progress stream not started", "err", err)
	if ctx.Err() != nil {
		p.failed = true // Slack did not answer in time: stay quiet
		return true
	}
	return false
}

// end closes the streamed message, once the work is done.
func (p *progress) end(ctx context.Context) {
	if !p.streaming {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, progressTimeout)
	defer cancel()
	_, _, err := p.a.opts.API.StopStreamContext(ctx, p.ch, p.ts)
	p.a.noteAuth(err)
	if err != nil {
		p.a.log.DebugContext(ctx, "progress stream not stopped", "err", err)
	}
}

// text is the plain message: one line per step, with its state.
func (p *progress) text() string {
	var b strings.Builder
	for _, s := range p.steps {
		mark := "…"
		switch s.Status {
		case broker.ProgressDone:
			mark = "✓"
		case broker.ProgressFailed:
			mark = "✗"
		}
		b.WriteString(mark + " " + escape(s.Title) + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func taskChunk(s broker.Progress) slack.TaskUpdateChunk {
	c := slack.NewTaskUpdateChunk(s.ID, clip(s.Title, 200))
	switch s.Status {
	case broker.ProgressDone:
		c.Status = slack.TaskCardStatusComplete
	case broker.ProgressFailed:
		c.Status = slack.TaskCardStatusError
	default:
		c.Status = slack.TaskCardStatusInProgress
	}
	return c
}

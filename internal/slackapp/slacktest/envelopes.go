package slacktest

import (
	"encoding/json"
	"fmt"
)

// Msg describes a user's message for AppMention and DirectMessage.
type Msg struct {
	User     string
	Channel  string
	Text     string
	ThreadTS string // empty for a top-level message
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Only maps of strings, numbers and nested maps reach here.
		panic(fmt.Sprintf("slacktest: marshal payload: %v", err))
	}
	return b
}

// eventsAPI wraps an inner event in the event_callback Slack sends.
func (s *Server) eventsAPI(event map[string]any) Envelope {
	s.mu.Lock()
	id := s.nextIDLocked()
	now := s.now()
	ts := fmt.Sprintf("%d.%06d", now.Unix(), id%1000000)
	s.mu.Unlock()
	if _, ok := event["event_ts"]; !ok {
		event["event_ts"] = ts
	}
	if _, ok := event["ts"]; !ok && event["type"] != "app_home_opened" {
		event["ts"] = ts
	}
	payload := map[string]any{
		"team_id":    TeamID,
		"api_app_id": AppID,
		"event":      event,
		"type":       "event_callback",
		"event_id":   fmt.Sprintf("Ev%09d", id),
		"event_time": now.Unix(),
		"authorizations": []any{map[string]any{
			"enterprise_id": nil, "team_id": TeamID, "user_id": BotUserID,
			"is_bot": true, "is_enterprise_install": false,
		}},
		"is_ext_shared_channel": false,
		"event_context":         fmt.Sprintf("4-%s-%s", event["type"], TeamID),
	}
	return Envelope{Type: "events_api", Payload: mustJSON(payload)}
}

func messageEvent(typ string, m Msg) map[string]any {
	e := map[string]any{
		"type":    typ,
		"user":    m.User,
		"text":    m.Text,
		"team":    TeamID,
		"channel": m.Channel,
	}
	if m.ThreadTS != "" {
		e["thread_ts"] = m.ThreadTS
	}
	return e
}

// AppMention is an events_api envelope for an app_mention event.
func (s *Server) AppMention(m Msg) Envelope {
	e := messageEvent("app_mention", m)
	e["client_msg_id"] = fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", s.nextID())
	return s.eventsAPI(e)
}

// DirectMessage is an events_api envelope for a message.im event: a user
// writing to the bot in its DM channel (m.Channel, a D… ID).
func (s *Server) DirectMessage(m Msg) Envelope {
	e := messageEvent("message", m)
	e["channel_type"] = "im"
	e["client_msg_id"] = fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", s.nextID())
	return s.eventsAPI(e)
}

// AppHomeOpened is an events_api envelope for a user opening the Home tab.
func (s *Server) AppHomeOpened(user string) Envelope {
	return s.eventsAPI(map[string]any{
		"type":    "app_home_opened",
		"user":    user,
		"channel": s.dmChannel(user),
		"tab":     "home",
	})
}

// TokensRevoked is an events_api envelope saying that the user tokens of
// users (their oauth tokens for this app) were revoked at Slack.
func (s *Server) TokensRevoked(users ...string) Envelope {
	return s.eventsAPI(map[string]any{
		"type":   "tokens_revoked",
		"tokens": map[string]any{"oauth": users, "bot": []string{}},
	})
}

// AgentSessionStopped is an events_api envelope saying that user pressed
// Stop on the agent session of the thread thread_ts in channel.
func (s *Server) AgentSessionStopped(user, channel, threadTS string) Envelope {
	return s.eventsAPI(map[string]any{"type": "agent_session_stopped", "user": user, "channel": channel, "thread_ts": threadTS,
		"event_ts": s.ts()})
}

// AppUninstalled is an events_api envelope saying that the app was
// uninstalled from the workspace.
func (s *Server) AppUninstalled() Envelope {
	return s.eventsAPI(map[string]any{"type": "app_uninstalled"})
}

// triggerID issues a trigger_id good for one views.open. It is valid from
// the moment the envelope is built, so a test may hand the envelope to the
// app's handlers directly as well as through Push.
func (s *Server) triggerID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextIDLocked()
	tid := fmt.Sprintf("%d.%d.fake%08x", 1000000+id, 2000000+id, id)
	s.triggers[tid] = false
	return tid
}

// Action describes a click on a Block Kit button for BlockAction. A click
// with neither Channel nor MessageTS is one in the App Home tab.
type Action struct {
	User      string
	Channel   string
	MessageTS string // the message holding the button
	BlockID   string
	ActionID  string
	Value     string
}

// BlockAction is an interactive envelope for a block_actions click. Its
// trigger_id is good for one views.open. A click on a message has a
// response_url, its own, which records what is posted to it (Responses);
// a click in App Home has its view as container and, as from Slack, no
// response_url and no channel.
func (s *Server) BlockAction(a Action) Envelope {
	ts := s.ts()
	payload := map[string]any{
		"type":       "block_actions",
		"user":       map[string]any{"id": a.User, "username": a.User, "team_id": TeamID},
		"api_app_id": AppID,
		"team":       map[string]any{"id": TeamID, "domain": TeamName},
		"trigger_id": s.triggerID(),
		"actions": []any{map[string]any{
			"type": "button", "action_id": a.ActionID, "block_id": a.BlockID,
			"value": a.Value, "action_ts": ts,
		}},
	}
	if a.Channel == "" && a.MessageTS == "" {
		viewID := fmt.Sprintf("VHOME%s", a.User)
		payload["container"] = map[string]any{"type": "view", "view_id": viewID}
		payload["view"] = map[string]any{"id": viewID, "team_id": TeamID, "type": "home", "app_id": AppID, "bot_id": BotID}
		return Envelope{Type: "interactive", Payload: mustJSON(payload)}
	}
	payload["container"] = map[string]any{
		"type": "message", "message_ts": a.MessageTS, "channel_id": a.Channel, "is_ephemeral": false,
	}
	payload["channel"] = map[string]any{"id": a.Channel}
	payload["message"] = map[string]any{
		"type": "message", "ts": a.MessageTS, "user": BotUserID, "bot_id": BotID,
	}
	payload["response_url"] = s.responseURL("actions")
	return Envelope{Type: "interactive", Payload: mustJSON(payload)}
}

// Submission describes a modal submitted by a user for ViewSubmission.
// Values maps block_id → action_id → the plain-text value typed.
type Submission struct {
	User            string
	ViewID          string
	CallbackID      string
	PrivateMetadata string
	Values          map[string]map[string]string
}

// ViewSubmission is an interactive envelope for a view_submission; it
// accepts a response payload (response_action) in the ack.
func (s *Server) ViewSubmission(sub Submission) Envelope {
	values := map[string]any{}
	for block, actions := range sub.Values {
		m := map[string]any{}
		for action, v := range actions {
			m[action] = map[string]any{"type": "plain_text_input", "value": v}
		}
		values[block] = m
	}
	payload := map[string]any{
		"type":       "view_submission",
		"team":       map[string]any{"id": TeamID, "domain": TeamName},
		"user":       map[string]any{"id": sub.User, "username": sub.User, "team_id": TeamID},
		"api_app_id": AppID,
		"trigger_id": s.triggerID(),
		"view": map[string]any{
			"id": sub.ViewID, "team_id": TeamID, "type": "modal",
			"callback_id": sub.CallbackID, "private_metadata": sub.PrivateMetadata,
			"state": map[string]any{"values": values}, "app_id": AppID, "bot_id": BotID,
		},
	}
	return Envelope{Type: "interactive", Payload: mustJSON(payload), AcceptsResponsePayload: true}
}

// Command describes a slash command for SlashCommand.
type Command struct {
	User    string
	Channel string
	Command string // e.g. "/agenthub"
	Text    string
}

// SlashCommand is a slash_commands envelope; it accepts a response payload,
// which is how the app answers ephemerally within the ack. Its response_url,
// its own, records later answers (Responses).
func (s *Server) SlashCommand(c Command) Envelope {
	payload := map[string]any{
		"team_id":      TeamID,
		"team_domain":  TeamName,
		"channel_id":   c.Channel,
		"channel_name": "directmessage",
		"user_id":      c.User,
		"user_name":    c.User,
		"command":      c.Command,
		"text":         c.Text,
		"api_app_id":   AppID,
		"response_url": s.responseURL("commands"),
		"trigger_id":   s.triggerID(),
	}
	return Envelope{Type: "slash_commands", Payload: mustJSON(payload), AcceptsResponsePayload: true}
}

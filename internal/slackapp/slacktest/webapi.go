package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Call is one recorded Web API request. It never holds the token.
type Call struct {
	Method string
	// Fields are the form fields, or the top-level fields of a JSON body
	// (strings unquoted, anything else as its JSON text).
	Fields map[string]string
	// Error is the Slack error code answered, "" on success.
	Error string
	// Status is the HTTP status answered (429 when rate limited).
	Status int
	At     time.Time
}

// Message is a message the bot posted, as it now stands.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string
	// User is the bot for channel messages, the addressee for ephemerals.
	User   string
	Text   string
	Blocks json.RawMessage
	// Updates counts the chat.update calls applied to it.
	Updates int
}

// View is a view published to a Home tab or opened as a modal.
type View struct {
	ID        string
	User      string // views.publish only
	TriggerID string // views.open only
	Hash      string
	JSON      json.RawMessage
}

type postLimit struct {
	perWindow int
	window    time.Duration
}

type window struct {
	start time.Time
	count int
}

// LimitPostMessage rate-limits chat.postMessage per channel: at most n posts
// in each window (aligned on the server clock) after which Slack's 429 with a
// Retry-After header comes back until the window ends. n <= 0 lifts the limit.
func (s *Server) LimitPostMessage(n int, per time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = postLimit{perWindow: n, window: per}
	s.windows = map[string]*window{}
}

// Calls returns the recorded calls of method, or of every method when
// method is "", in arrival order.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			c.Fields = maps.Clone(c.Fields)
			out = append(out, c)
		}
	}
	return out
}

// Messages returns the bot's messages in channel, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages[channel])
}

// Ephemerals returns the ephemeral messages posted in channel, oldest first.
func (s *Server) Ephemerals(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ephemera[channel])
}

// Published returns the Home tab views published for user, oldest first.
func (s *Server) Published(user string) []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, v := range s.views {
		if v.User == user {
			out = append(out, v)
		}
	}
	return out
}

// Opened returns the modals opened with views.open, oldest first.
func (s *Server) Opened() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, v := range s.views {
		if v.TriggerID != "" {
			out = append(out, v)
		}
	}
	return out
}

// DMChannel returns the D… channel conversations.open gives for user.
func (s *Server) DMChannel(user string) string { return s.dmChannel(user) }

func (s *Server) dmChannel(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dmChannelLocked(user)
}

func (s *Server) dmChannelLocked(user string) string {
	if d, ok := s.dms[user]; ok {
		return d
	}
	d := fmt.Sprintf("D0%08X", s.nextIDLocked())
	s.dms[user] = d
	return d
}

func (s *Server) ts() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tsLocked()
}

// readFields parses a form or JSON body and pulls the token out of it.
func readFields(r *http.Request) (fields map[string]string, token string, err error) {
	fields = map[string]string{}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, "", err
		}
		var m map[string]json.RawMessage
		if len(body) > 0 {
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, "", err
			}
		}
		for k, v := range m {
			var str string
			if json.Unmarshal(v, &str) == nil {
				fields[k] = str
			} else {
				fields[k] = string(v)
			}
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return nil, "", err
		}
		for k, v := range r.Form {
			fields[k] = strings.Join(v, ",")
		}
	}
	token = fields["token"]
	delete(fields, "token")
	if b := bearer(r); b != "" {
		token = b
	}
	return fields, token, nil
}

// reply is what a Web API method answers: a Slack error code or a body.
type reply struct {
	status     int
	retryAfter int
	code       string
	body       map[string]any
}

func (s *Server) webAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	fields, token, err := readFields(r)
	if err != nil {
		s.record(Call{Method: method, Error: "invalid_form_data", Status: http.StatusOK})
		slackError(w, "invalid_form_data")
		return
	}
	var rep reply
	s.mu.Lock()
	revoked := s.revoked
	s.mu.Unlock()
	if code := authError(token, "xoxb-"); code != "" {
		rep = reply{code: code}
	} else if revoked {
		rep = reply{code: "token_revoked"}
	} else {
		s.mu.Lock()
		rep = s.dispatchLocked(method, fields)
		s.mu.Unlock()
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	s.record(Call{Method: method, Fields: fields, Error: rep.code, Status: rep.status})
	switch {
	case rep.status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(rep.retryAfter))
		writeJSON(w, rep.status, map[string]any{"ok": false, "error": "ratelimited"})
	case rep.code != "":
		slackError(w, rep.code)
	default:
		rep.body["ok"] = true
		writeJSON(w, rep.status, rep.body)
	}
}

// RevokeTokens makes every later Web API call answer token_revoked, as
// Slack does once a workspace admin has revoked the app's bot token.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
}

func (s *Server) dispatchLocked(method string, f map[string]string) reply {
	switch method {
	case "auth.test":
		return reply{body: map[string]any{
			"url": "https://" + TeamName + ".slack.com/", "team": TeamName, "user": "agenthub",
			"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID, "is_enterprise_install": false,
		}}
	case "conversations.open":
		return s.conversationsOpenLocked(f)
	case "chat.postMessage":
		return s.postMessageLocked(f)
	case "chat.update":
		return s.updateLocked(f)
	case "chat.postEphemeral":
		return s.postEphemeralLocked(f)
	case "views.publish":
		return s.publishLocked(f)
	case "views.open":
		return s.openViewLocked(f)
	case "users.info":
		return s.userInfoLocked(f)
	case "chat.startStream":
		return s.startStreamLocked(f)
	case "chat.appendStream":
		return s.moreStreamLocked(f, false)
	case "chat.stopStream":
		return s.moreStreamLocked(f, true)
	case "agents.sessions.setStatus":
		if s.noAgents {
			return reply{code: "unknown_method"}
		}
		switch f["status"] {
		case "active", "processing", "suspended", "closed":
		default:
			return reply{code: "invalid_arguments"}
		}
		s.sessions = append(s.sessions, SessionStatus{Channel: f["channel_id"], ThreadTS: f["thread_ts"], Status: f["status"], Initiator: f["initiator_user_id"]})
		return reply{body: map[string]any{"status": f["status"], "agent_status": f["status"]}}
	}
	return reply{code: "unknown_method"}
}

// User is what users.info says of someone. A user the test never set is a
// full member of the fake's workspace.
type User struct {
	ID string
	// TeamID is the user's home workspace; "" is the fake's own.
	TeamID string
	// Restricted and UltraRestricted make a multi- or single-channel
	// guest; Stranger someone from another organisation (Slack Connect).
	Restricted, UltraRestricted, Stranger bool
	// Email is the profile's email (users:read.email); "" is none.
	Email string
}

// SetUser makes users.info answer u for u.ID.
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == nil {
		s.users = make(map[string]User)
	}
	s.users[u.ID] = u
}

func (s *Server) userInfoLocked(f map[string]string) reply {
	id := f["user"]
	if id == "" || !(strings.HasPrefix(id, "U") || strings.HasPrefix(id, "W")) {
		return reply{code: "user_not_found"}
	}
	u, ok := s.users[id]
	if !ok {
		u = User{ID: id}
	}
	if u.TeamID == "" {
		u.TeamID = TeamID
	}
	return reply{body: map[string]any{"user": map[string]any{
		"id": u.ID, "team_id": u.TeamID, "name": strings.ToLower(u.ID), "deleted": false,
		"is_restricted": u.Restricted || u.UltraRestricted, "is_ultra_restricted": u.UltraRestricted,
		"is_stranger": u.Stranger, "is_bot": false, "profile": map[string]any{"email": u.Email},
	}}}
}

func (s *Server) conversationsOpenLocked(f map[string]string) reply {
	if ch := f["channel"]; ch != "" {
		return reply{body: map[string]any{"no_op": true, "already_open": true, "channel": map[string]any{"id": ch}}}
	}
	users := f["users"]
	if users == "" {
		return reply{code: "users_list_not_supplied"}
	}
	if strings.Contains(users, ",") {
		return reply{code: "not_implemented_in_fake"}
	}
	_, already := s.dms[users]
	return reply{body: map[string]any{
		"no_op": already, "already_open": already,
		"channel": map[string]any{"id": s.dmChannelLocked(users)},
	}}
}

// channelLocked resolves a channel argument; a user ID posts to their DM,
// as it does on Slack.
func (s *Server) channelLocked(ch string) string {
	if strings.HasPrefix(ch, "U") || strings.HasPrefix(ch, "W") {
		return s.dmChannelLocked(ch)
	}
	return ch
}

func blocksOf(f map[string]string) json.RawMessage {
	if b := f["blocks"]; b != "" && json.Valid([]byte(b)) {
		return json.RawMessage(b)
	}
	return nil
}

func messageBody(m Message) map[string]any {
	msg := map[string]any{"type": "message", "text": m.Text, "user": BotUserID, "bot_id": BotID, "ts": m.TS, "team": TeamID}
	if m.Blocks != nil {
		msg["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		msg["thread_ts"] = m.ThreadTS
	}
	return msg
}

func (s *Server) postMessageLocked(f map[string]string) reply {
	if f["channel"] == "" {
		return reply{code: "channel_not_found"}
	}
	ch := s.channelLocked(f["channel"])
	if f["text"] == "" && blocksOf(f) == nil {
		return reply{code: "no_text"}
	}
	if s.limit.perWindow > 0 {
		now := s.now()
		win := s.windows[ch]
		if win == nil || !now.Before(win.start.Add(s.limit.window)) {
			win = &window{start: now.Truncate(s.limit.window)}
			s.windows[ch] = win
		}
		if win.count >= s.limit.perWindow {
			wait := win.start.Add(s.limit.window).Sub(now)
			secs := max(1, int((wait+time.Second-1)/time.Second))
			return reply{status: http.StatusTooManyRequests, retryAfter: secs, code: "ratelimited"}
		}
		win.count++
	}
	m := Message{
		Channel: ch, TS: s.tsLocked(), ThreadTS: f["thread_ts"], User: BotUserID,
		Text: f["text"], Blocks: blocksOf(f),
	}
	s.messages[ch] = append(s.messages[ch], m)
	return reply{body: map[string]any{"channel": ch, "ts": m.TS, "message": messageBody(m)}}
}

func (s *Server) updateLocked(f map[string]string) reply {
	ch := s.channelLocked(f["channel"])
	msgs := s.messages[ch]
	i := slices.IndexFunc(msgs, func(m Message) bool { return m.TS == f["ts"] })
	if i < 0 {
		return reply{code: "message_not_found"}
	}
	if f["text"] == "" && blocksOf(f) == nil {
		return reply{code: "no_text"}
	}
	m := &msgs[i]
	m.Text = f["text"]
	if _, ok := f["blocks"]; ok {
		m.Blocks = blocksOf(f)
	}
	m.Updates++
	return reply{body: map[string]any{"channel": ch, "ts": m.TS, "text": m.Text, "message": messageBody(*m)}}
}

func (s *Server) postEphemeralLocked(f map[string]string) reply {
	if f["channel"] == "" {
		return reply{code: "channel_not_found"}
	}
	if f["user"] == "" {
		return reply{code: "user_not_in_channel"}
	}
	if f["text"] == "" && blocksOf(f) == nil {
		return reply{code: "no_text"}
	}
	ch := s.channelLocked(f["channel"])
	m := Message{Channel: ch, TS: s.tsLocked(), ThreadTS: f["thread_ts"], User: f["user"], Text: f["text"], Blocks: blocksOf(f)}
	s.ephemera[ch] = append(s.ephemera[ch], m)
	return reply{body: map[string]any{"message_ts": m.TS}}
}

// viewLocked stamps a view the way Slack echoes it back.
func (s *Server) viewLocked(raw string, v *View) (map[string]any, string) {
	var view map[string]any
	if raw == "" || json.Unmarshal([]byte(raw), &view) != nil {
		return nil, "invalid_arguments"
	}
	v.ID = fmt.Sprintf("V0%08X", s.nextIDLocked())
	v.Hash = fmt.Sprintf("%d.fakehash%d", s.now().Unix(), s.seq)
	v.JSON = json.RawMessage(raw)
	view["id"], view["team_id"], view["app_id"], view["bot_id"], view["hash"] = v.ID, TeamID, AppID, BotID, v.Hash
	return view, ""
}

func (s *Server) publishLocked(f map[string]string) reply {
	if f["user_id"] == "" {
		return reply{code: "invalid_arguments"}
	}
	v := View{User: f["user_id"]}
	view, code := s.viewLocked(f["view"], &v)
	if code != "" {
		return reply{code: code}
	}
	s.views = append(s.views, v)
	return reply{body: map[string]any{"view": view}}
}

func (s *Server) openViewLocked(f map[string]string) reply {
	tid := f["trigger_id"]
	if tid == "" {
		return reply{code: "invalid_arguments"}
	}
	used, issued := s.triggers[tid]
	switch {
	case !issued:
		return reply{code: "expired_trigger_id"}
	case used:
		return reply{code: "exchanged_trigger_id"}
	}
	v := View{TriggerID: tid}
	view, code := s.viewLocked(f["view"], &v)
	if code != "" {
		return reply{code: code}
	}
	s.triggers[tid] = true
	s.views = append(s.views, v)
	return reply{body: map[string]any{"view": view}}
}

// SessionStatus is one agents.sessions.setStatus call.
type SessionStatus struct {
	Channel, ThreadTS, Status, Initiator string
}

// Sessions are the agent session statuses the app set, in order.
func (s *Server) Sessions() []SessionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SessionStatus(nil), s.sessions...)
}

// NoAgents makes the workspace one without Slack's agent features:
// agents.* methods answer unknown_method.
func (s *Server) NoAgents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noAgents = true
}

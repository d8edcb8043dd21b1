package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Slack user-token scopes the simulated Web API checks.
const (
	ScopeChannelsRead   = "channels:read"
	ScopeChatWrite      = "chat:write"
	ScopeChannelsManage = "channels:manage"
	ScopeChannelsWrite  = "channels:write" // the older scope that also allows archiving
)

const (
	slackTeamID   = "T0ACME0001"
	slackTeamName = "Acme"
	slackTeamURL  = "https://acme.slack.com/"
)

// Channel is a simulated public Slack channel.
type Channel struct {
	ID       string
	Name     string
	Topic    string
	Purpose  string
	Members  int
	Archived bool
	Created  time.Time
}

// Message is a message posted through the simulated chat.postMessage.
type Message struct {
	Channel string // channel ID
	TS      string
	User    string // the poster's Slack user ID
	Text    string
	Blocks  json.RawMessage // the blocks parameter as sent, if any
	Time    time.Time
}

type slackState struct {
	channels []*Channel // creation order
	messages map[string][]Message
}

func (s *slackState) init() { s.messages = make(map[string][]Message) }

func (w *World) seedSlack() {
	created := w.now().AddDate(-1, 0, 0)
	w.slk.channels = []*Channel{
		{ID: "C0GENERAL1", Name: "general", Topic: "Company-wide announcements", Purpose: "Everyone", Members: 42, Created: created},
		{ID: "C0ENG00001", Name: "eng", Topic: "Engineering", Purpose: "Talk about code", Members: 17, Created: created},
		{ID: "C0DEPLOYS1", Name: "deploys", Topic: "Deploy log", Purpose: "Where deploys are announced", Members: 12, Created: created},
	}
}

// slackUserID returns the simulated Slack user ID of principal, making one up on first sight;
// w.mu must be held.
func (w *World) slackUserID(principal string) string {
	if id, ok := w.auth.slackUsers[principal]; ok {
		return id
	}
	id := fmt.Sprintf("U0SIM%05d", len(w.auth.slackUsers)+1)
	w.auth.slackUsers[principal] = id
	return id
}

// channel finds a channel by ID, by "#name" or by bare name, as chat.postMessage accepts.
func (s *slackState) channel(ref string) *Channel {
	name := strings.TrimPrefix(ref, "#")
	for _, c := range s.channels {
		if c.ID == ref || c.Name == name {
			return c
		}
	}
	return nil
}

// SlackView reads the simulated Slack for assertions. Its results are copies.
type SlackView struct{ w *World }

// Slack returns a read-only view of the simulated Slack workspace.
func (w *World) Slack() SlackView { return SlackView{w} }

// Channel returns a channel by ID, "#name" or name.
func (v SlackView) Channel(ref string) (Channel, bool) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	if c := v.w.slk.channel(ref); c != nil {
		return *c, true
	}
	return Channel{}, false
}

// Channels returns every channel, archived ones included, in creation order.
func (v SlackView) Channels() []Channel {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	out := make([]Channel, 0, len(v.w.slk.channels))
	for _, c := range v.w.slk.channels {
		out = append(out, *c)
	}
	return out
}

// Messages returns the messages posted to a channel (by ID, "#name" or name), oldest first.
func (v SlackView) Messages(ref string) []Message {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	c := v.w.slk.channel(ref)
	if c == nil {
		return nil
	}
	return slices.Clone(v.w.slk.messages[c.ID])
}

// UserID returns the Slack user ID the sim gave principal, if it has one.
func (v SlackView) UserID(principal string) (string, bool) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	id, ok := v.w.auth.slackUsers[principal]
	return id, ok
}

func (w *World) routeSlack(mux *http.ServeMux) {
	mux.Handle("/slack/api/{method}", w.recorded(ServiceSlack, w.slackAPI))
	mux.Handle("/slack/", w.recorded(ServiceSlack, func(rw http.ResponseWriter, r *http.Request, n *note) {
		n.err = "unknown_method"
		writeJSON(rw, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method"})
	}))
}

// slackMethod is one Web API method: the scopes that allow it (any of) and its body.
type slackMethod struct {
	scopes []string
	run    func(w *World, p slackParams, g *grant, n *note) map[string]any
}

var slackMethods = map[string]slackMethod{
	"auth.test":             {run: (*World).slackAuthTest},
	"conversations.list":    {scopes: []string{ScopeChannelsRead}, run: (*World).slackConversationsList},
	"chat.postMessage":      {scopes: []string{ScopeChatWrite}, run: (*World).slackPostMessage},
	"conversations.archive": {scopes: []string{ScopeChannelsManage, ScopeChannelsWrite}, run: (*World).slackArchive},
}

// slackParams are a method's arguments from the query, a form body or a JSON body.
type slackParams map[string]string

func (p slackParams) get(k string) string { return p[k] }

func readSlackParams(r *http.Request) (slackParams, error) {
	p := slackParams{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body map[string]any
		if err := decodeJSON(r, &body); err != nil {
			return nil, err
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				p[k] = v
			default:
				b, _ := json.Marshal(v)
				p[k] = string(b)
			}
		}
	} else if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("parse form: %w", err)
	}
	for k, v := range r.Form {
		if _, ok := p[k]; !ok && len(v) > 0 {
			p[k] = v[0]
		}
	}
	return p, nil
}

// slackAPI serves every method. Like Slack, it answers HTTP 200 with ok=false for API errors. The
// token comes from the Authorization header or, as slack-go also sends it, the token parameter.
func (w *World) slackAPI(rw http.ResponseWriter, r *http.Request, n *note) {
	fail := func(code string, extra ...string) {
		n.err = code
		body := map[string]any{"ok": false, "error": code}
		for i := 0; i+1 < len(extra); i += 2 {
			body[extra[i]] = extra[i+1]
		}
		writeJSON(rw, http.StatusOK, body)
	}
	name := r.PathValue("method")
	m, ok := slackMethods[name]
	if !ok {
		fail("unknown_method", "req_method", name)
		return
	}
	p, err := readSlackParams(r)
	if err != nil {
		fail("invalid_json")
		return
	}
	token := bearer(r)
	if token == "" {
		token = p.get("token")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	g, why := w.authenticate(ServiceSlack, token)
	switch why {
	case "":
	case authMissing:
		fail("not_authed")
		return
	case authExpired:
		fail("token_expired")
		return
	case authRevoked:
		fail("token_revoked")
		return
	default:
		fail("invalid_auth")
		return
	}
	n.principal = g.Principal
	rw.Header().Set("X-OAuth-Scopes", strings.Join(g.Scopes, ","))
	if m.scopes != nil {
		rw.Header().Set("X-Accepted-OAuth-Scopes", strings.Join(m.scopes, ","))
		if !hasScope(g.Scopes, m.scopes...) {
			fail("missing_scope", "needed", strings.Join(m.scopes, ","), "provided", strings.Join(g.Scopes, ","))
			return
		}
	}
	body := m.run(w, p, g, n)
	if e, ok := body["error"].(string); ok {
		n.err = e
	} else {
		body["ok"] = true
	}
	writeJSON(rw, http.StatusOK, body)
}

func slackErr(code string) map[string]any { return map[string]any{"ok": false, "error": code} }

func (w *World) slackAuthTest(p slackParams, g *grant, n *note) map[string]any {
	return map[string]any{
		"url":     slackTeamURL,
		"team":    slackTeamName,
		"user":    g.Principal,
		"team_id": slackTeamID,
		"user_id": w.slackUserID(g.Principal),
	}
}

func channelJSON(c *Channel) map[string]any {
	return map[string]any{
		"id":          c.ID,
		"name":        c.Name,
		"is_channel":  true,
		"is_private":  false,
		"is_archived": c.Archived,
		"is_member":   true,
		"created":     c.Created.Unix(),
		"creator":     "U0SIMADMIN",
		"num_members": c.Members,
		"topic":       map[string]any{"value": c.Topic},
		"purpose":     map[string]any{"value": c.Purpose},
	}
}

func (w *World) slackConversationsList(p slackParams, g *grant, n *note) map[string]any {
	if t := p.get("types"); t != "" {
		for _, typ := range strings.Split(t, ",") {
			switch strings.TrimSpace(typ) {
			case "public_channel", "private_channel", "mpim", "im":
			default:
				return slackErr("invalid_types")
			}
		}
		if !strings.Contains(t, "public_channel") {
			// Only public channels exist here.
			return map[string]any{"channels": []any{}, "response_metadata": map[string]any{"next_cursor": ""}}
		}
	}
	excludeArchived := p.get("exclude_archived") == "true" || p.get("exclude_archived") == "1"
	list := []map[string]any{}
	for _, c := range w.slk.channels {
		if excludeArchived && c.Archived {
			continue
		}
		list = append(list, channelJSON(c))
	}
	return map[string]any{"channels": list, "response_metadata": map[string]any{"next_cursor": ""}}
}

func (w *World) slackPostMessage(p slackParams, g *grant, n *note) map[string]any {
	c := w.slk.channel(p.get("channel"))
	switch {
	case p.get("channel") == "" || c == nil:
		return slackErr("channel_not_found")
	case c.Archived:
		return slackErr("is_archived")
	case p.get("text") == "" && p.get("blocks") == "" && p.get("attachments") == "":
		return slackErr("no_text")
	case p.get("blocks") != "" && !json.Valid([]byte(p.get("blocks"))):
		return slackErr("invalid_blocks")
	}
	now := w.now()
	// A ts is seconds.micro; the world counter keeps it unique and ordered under a frozen clock.
	ts := strconv.FormatInt(now.Unix(), 10) + "." + fmt.Sprintf("%06d", w.nextID()%1000000)
	m := Message{Channel: c.ID, TS: ts, User: w.slackUserID(g.Principal), Text: p.get("text"), Time: now}
	if b := p.get("blocks"); b != "" {
		m.Blocks = json.RawMessage(b)
	}
	w.slk.messages[c.ID] = append(w.slk.messages[c.ID], m)
	return map[string]any{
		"channel": c.ID,
		"ts":      ts,
		"message": map[string]any{"type": "message", "user": m.User, "text": m.Text, "ts": ts, "team": slackTeamID},
	}
}

func (w *World) slackArchive(p slackParams, g *grant, n *note) map[string]any {
	c := w.slk.channel(p.get("channel"))
	switch {
	case c == nil || c.ID != p.get("channel"):
		// conversations.archive takes an ID only.
		return slackErr("channel_not_found")
	case c.Archived:
		return slackErr("already_archived")
	case c.Name == "general":
		return slackErr("cant_archive_general")
	}
	c.Archived = true
	return map[string]any{}
}

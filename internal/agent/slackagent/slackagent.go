// Package slackagent is the Slack agent, acting with the person's user token: listing channels,
// posting messages and archiving channels, on github.com/slack-go/slack with the client of a
// vault lease.
//
// slack-go puts its token in a "token" form field. The agent gives it an empty token, because the
// lease's transport sends the real one in the Authorization header; a transport here removes the
// empty field (and any empty bearer header) so a provider never sees a blank credential beside
// the real one.
package slackagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/slack-go/slack"
)

// Agent and Service name the Slack agent and the vault service it needs.
const (
	Agent   = "slack"
	Service = "slack"
)

// Slack user-token scopes the actions declare.
const (
	ScopeChannelsRead   = "channels:read"
	ScopeChatWrite      = "chat:write"
	ScopeChannelsManage = "channels:manage"
)

// Register adds the Slack actions to r.
func Register(r *agent.Registry, e agent.Endpoints) error { return r.Register(Actions(e)...) }

const channelProp = `{"type":"string","pattern":"^(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{2,})$","description":"A channel as #name or ID."}`

// Actions returns the Slack actions, calling the API at e.Slack.
func Actions(e agent.Endpoints) []agent.Action {
	s := slk{api: e.Slack}
	return []agent.Action{
		{
			Name: Agent + ".list_channels", Agent: Agent, Service: Service,
			Description: "List the workspace's public channels.",
			Schema:      agent.ObjectSchema(agent.Props{}),
			Scopes:      []string{ScopeChannelsRead}, Risk: policy.Low,
			// Public channels are visible to every member of the workspace,
			// and to nobody outside it: not private, but for the workspace's
			// audience only (the broker does not show the list in a channel
			// shared with guests or another company).
			ResourceFromArgs: func(agent.Args) policy.Resource {
				return policy.Resource{Kind: "workspace", Name: "slack", Attrs: map[string]any{"private": false, "audience": "workspace"}}
			},
			Execute: s.listChannels,
		},
		{
			Name: Agent + ".post_message", Agent: Agent, Service: Service,
			Description: "Post a message to a channel as the person.",
			Schema: agent.ObjectSchema(agent.Props{"channel": channelProp,
				"text": `{"type":"string","minLength":1,"maxLength":40000,"description":"The message (Slack mrkdwn)."}`},
				"channel", "text"),
			Scopes: []string{ScopeChatWrite, ScopeChannelsRead}, Risk: policy.Medium, Write: true,
			Resource: s.channelResource, Execute: s.postMessage,
		},
		{
			Name: Agent + ".archive_channel", Agent: Agent, Service: Service,
			Description: "Archive a channel.",
			Schema:      agent.ObjectSchema(agent.Props{"channel": channelProp}, "channel"),
			Scopes:      []string{ScopeChannelsManage, ScopeChannelsRead}, Risk: policy.High, Write: true,
			Resource: s.channelResource, Execute: s.archive,
		},
	}
}

// slk builds a slack-go client per call from the lease's client, which must not outlive it.
type slk struct{ api string }

func (s slk) client(c *http.Client) *slack.Client {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc := &http.Client{Transport: noBlankToken{next: next}, CheckRedirect: c.CheckRedirect, Jar: c.Jar, Timeout: c.Timeout}
	return slack.New("", slack.OptionHTTPClient(hc), slack.OptionAPIURL(s.api))
}

// noBlankToken removes the empty credentials slack-go adds when it has no token of its own.
type noBlankToken struct{ next http.RoundTripper }

func (t noBlankToken) RoundTrip(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	if a := out.Header.Get("Authorization"); strings.TrimSpace(strings.TrimPrefix(a, "Bearer")) == "" && a != "" {
		out.Header.Del("Authorization")
	}
	if q := out.URL.Query(); q.Has("token") && q.Get("token") == "" {
		q.Del("token")
		u := *out.URL
		u.RawQuery = q.Encode()
		out.URL = &u
	}
	if r.Body != nil && strings.HasPrefix(out.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("slack request body: %w", err)
		}
		if form, err := url.ParseQuery(string(body)); err == nil && form.Has("token") && form.Get("token") == "" {
			form.Del("token")
			body = []byte(form.Encode())
		}
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return t.next.RoundTrip(out)
}

// fail turns a slack-go error into an *agent.ProviderError with Slack's error code.
func fail(op string, err error) error {
	pe := &agent.ProviderError{Service: Service, Op: op, Kind: agent.Failed, Message: "request failed", Err: err}
	var se slack.SlackErrorResponse
	var sc slack.StatusCodeError
	var rl *slack.RateLimitedError
	switch {
	case errors.As(err, &se):
		pe.Message = se.Err
		pe.Kind = slackKind(se.Err)
	case errors.As(err, &sc):
		pe.Status, pe.Kind, pe.Message = sc.Code, agent.KindForStatus(sc.Code), sc.Status
	case errors.As(err, &rl):
		pe.Kind, pe.Message = agent.Forbidden, "rate limited"
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		pe.Message = err.Error()
	}
	return pe
}

func slackKind(code string) agent.ErrorKind {
	switch code {
	case "channel_not_found":
		return agent.NotFound
	case "not_authed", "invalid_auth", "token_expired", "token_revoked", "account_inactive":
		return agent.Unauthorized
	case "missing_scope", "not_allowed_token_type", "restricted_action":
		return agent.Forbidden
	case "already_archived", "is_archived", "cant_archive_general":
		return agent.Conflict
	case "no_text", "invalid_blocks", "msg_too_long", "invalid_arguments":
		return agent.Invalid
	}
	return agent.Failed
}

// Channel is the JSON-able summary of a channel in results.
type Channel struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Private  bool   `json:"private"`
	Archived bool   `json:"archived,omitempty"`
	Members  int    `json:"members"`
	Topic    string `json:"topic,omitempty"`
}

func summarize(c slack.Channel) Channel {
	return Channel{ID: c.ID, Name: c.Name, Private: c.IsPrivate, Archived: c.IsArchived, Members: c.NumMembers, Topic: c.Topic.Value}
}

// channels lists every public channel, following the cursor.
func (s slk) channels(ctx context.Context, cl *slack.Client, excludeArchived bool) ([]slack.Channel, error) {
	var all []slack.Channel
	cursor := ""
	for range 50 { // 50 pages of 200 is more than any workspace the bot serves
		page, next, err := cl.GetConversationsContext(ctx, &slack.GetConversationsParameters{
			Cursor: cursor, ExcludeArchived: excludeArchived, Limit: 200, Types: []string{"public_channel"},
		})
		if err != nil {
			return nil, fail("list channels", err)
		}
		all = append(all, page...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
	return all, nil
}

var channelID = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)

// find resolves "#name" or an ID to the channel.
func (s slk) find(ctx context.Context, cl *slack.Client, ref string) (slack.Channel, error) {
	list, err := s.channels(ctx, cl, false)
	if err != nil {
		return slack.Channel{}, err
	}
	for _, c := range list {
		if (channelID.MatchString(ref) && c.ID == ref) || "#"+c.Name == ref {
			return c, nil
		}
	}
	return slack.Channel{}, &agent.ProviderError{Service: Service, Op: "find channel " + ref, Kind: agent.NotFound, Message: "channel_not_found"}
}

func (s slk) channelResource(ctx context.Context, c *http.Client, args agent.Args) (policy.Resource, error) {
	ch, err := s.find(ctx, s.client(c), args.String("channel"))
	if err != nil {
		return policy.Resource{}, err
	}
	return policy.Resource{Kind: "channel", Name: "#" + ch.Name, Attrs: map[string]any{
		"id": ch.ID, "private": ch.IsPrivate, "audience": "workspace", "members": int64(ch.NumMembers), "archived": ch.IsArchived,
	}}, nil
}

func (s slk) listChannels(ctx context.Context, c *http.Client, _ agent.Args, _ policy.Resource) (agent.Result, error) {
	list, err := s.channels(ctx, s.client(c), true)
	if err != nil {
		return agent.Result{}, err
	}
	out := make([]Channel, 0, len(list))
	names := make([]string, 0, len(list))
	for _, ch := range list {
		out = append(out, summarize(ch))
		names = append(names, "#"+ch.Name)
	}
	return agent.Result{Summary: fmt.Sprintf("%d channels: %s", len(out), strings.Join(names, ", ")), Data: out}, nil
}

func (s slk) postMessage(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	cl := s.client(c)
	ref := args.String("channel")
	ch, err := s.find(ctx, cl, ref)
	if err != nil {
		return agent.Result{}, err
	}
	id, ts, err := cl.PostMessageContext(ctx, ch.ID, slack.MsgOptionText(args.String("text"), false))
	if err != nil {
		return agent.Result{}, fail("post to #"+ch.Name, err)
	}
	return agent.Result{
		Summary: "Posted to #" + ch.Name,
		Data:    map[string]any{"channel": id, "ts": ts},
	}, nil
}

func (s slk) archive(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	cl := s.client(c)
	ch, err := s.find(ctx, cl, args.String("channel"))
	if err != nil {
		return agent.Result{}, err
	}
	if err := cl.ArchiveConversationContext(ctx, ch.ID); err != nil {
		return agent.Result{}, fail("archive #"+ch.Name, err)
	}
	return agent.Result{Summary: "Archived #" + ch.Name, Data: map[string]any{"channel": ch.ID}}, nil
}

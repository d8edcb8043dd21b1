package slackapp_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/command"
	"github.com/agenthub/agenthub/internal/slackapp"
)

// manifest is the part of Slack's app manifest (schema version 1) that
// AgentHub writes. Decoding is strict, so a misspelt key in manifest.yaml
// fails the test instead of silently meaning "off".
type manifest struct {
	Metadata struct {
		MajorVersion int `yaml:"major_version"`
		MinorVersion int `yaml:"minor_version"`
	} `yaml:"_metadata"`
	DisplayInformation struct {
		Name            string `yaml:"name"`
		Description     string `yaml:"description"`
		LongDescription string `yaml:"long_description"`
		BackgroundColor string `yaml:"background_color"`
	} `yaml:"display_information"`
	Features struct {
		AgentView struct {
			AgentDescription string `yaml:"agent_description"`
			SuggestedPrompts []struct {
				Title   string `yaml:"title"`
				Message string `yaml:"message"`
			} `yaml:"suggested_prompts"`
		} `yaml:"agent_view"`
		AppHome struct {
			HomeTabEnabled             bool `yaml:"home_tab_enabled"`
			MessagesTabEnabled         bool `yaml:"messages_tab_enabled"`
			MessagesTabReadOnlyEnabled bool `yaml:"messages_tab_read_only_enabled"`
		} `yaml:"app_home"`
		BotUser struct {
			DisplayName  string `yaml:"display_name"`
			AlwaysOnline bool   `yaml:"always_online"`
		} `yaml:"bot_user"`
		SlashCommands []struct {
			Command      string `yaml:"command"`
			Description  string `yaml:"description"`
			UsageHint    string `yaml:"usage_hint"`
			URL          string `yaml:"url"`
			ShouldEscape bool   `yaml:"should_escape"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuthConfig struct {
		RedirectURLs []string `yaml:"redirect_urls"`
		Scopes       struct {
			Bot  []string `yaml:"bot"`
			User []string `yaml:"user"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		EventSubscriptions struct {
			RequestURL string   `yaml:"request_url"`
			BotEvents  []string `yaml:"bot_events"`
			UserEvents []string `yaml:"user_events"`
		} `yaml:"event_subscriptions"`
		Interactivity struct {
			IsEnabled             bool   `yaml:"is_enabled"`
			RequestURL            string `yaml:"request_url"`
			MessageMenuOptionsURL string `yaml:"message_menu_options_url"`
		} `yaml:"interactivity"`
		OrgDeployEnabled     bool `yaml:"org_deploy_enabled"`
		SocketModeEnabled    bool `yaml:"socket_mode_enabled"`
		TokenRotationEnabled bool `yaml:"token_rotation_enabled"`
	} `yaml:"settings"`
}

func readManifest(t testing.TB) manifest {
	t.Helper()
	b, err := os.ReadFile("../../manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest.yaml: %v", err)
	}
	return m
}

// sorted returns a sorted copy, so that lists compare as sets (duplicates
// are checked apart).
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func duplicates(s []string) []string {
	var dups []string
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			dups = append(dups, v)
		}
		seen[v] = true
	}
	return dups
}

// slackUsage is the usage hint the slash command's forms make, as Slack
// offers them (all but the terminal demo's).
func slackUsage() string {
	var parts []string
	for _, f := range command.Forms() {
		if !f.Demo {
			parts = append(parts, strings.TrimPrefix(f.Usage(), command.Name+" "))
		}
	}
	return strings.Join(parts, " | ")
}

// TestManifest holds manifest.yaml to scopes.go: the app asks a workspace
// for what the code needs, and for nothing more.
func TestManifest(t *testing.T) {
	m := readManifest(t)
	cmd := func() (command, usage string, escape bool, url string, n int) {
		if n = len(m.Features.SlashCommands); n > 0 {
			c := m.Features.SlashCommands[0]
			return c.Command, c.UsageHint, c.ShouldEscape, c.URL, n
		}
		return "", "", false, "", 0
	}
	command, usage, escape, cmdURL, ncmd := cmd()
	tests := []struct {
		name      string
		got, want any
	}{
		{"schema major version", m.Metadata.MajorVersion, 1},
		{"display name", m.DisplayInformation.Name, "AgentHub"},
		{"bot user display name", m.Features.BotUser.DisplayName, "AgentHub"},
		{"bot user always online", m.Features.BotUser.AlwaysOnline, true},
		{"home tab enabled", m.Features.AppHome.HomeTabEnabled, true},
		{"messages tab enabled (DMs to the bot)", m.Features.AppHome.MessagesTabEnabled, true},
		{"messages tab not read-only", m.Features.AppHome.MessagesTabReadOnlyEnabled, false},
		{"one slash command", ncmd, 1},
		{"slash command", command, slackapp.Command},
		{"slash command usage lists the commands", strings.Fields(usage), strings.Fields(slackUsage())},
		{"an agent view that says what AgentHub is", len(m.Features.AgentView.AgentDescription) > 40, true},
		{"suggested prompts, each with a title and a message", len(m.Features.AgentView.SuggestedPrompts) >= 3 &&
			!slices.ContainsFunc(m.Features.AgentView.SuggestedPrompts, func(p struct {
				Title   string `yaml:"title"`
				Message string `yaml:"message"`
			}) bool {
				return p.Title == "" || p.Message == ""
			}), true},
		{"slash command text not escaped", escape, false},
		{"bot scopes are BotScopes", sorted(m.OAuthConfig.Scopes.Bot), sorted(slackapp.BotScopes)},
		{"duplicate bot scopes", duplicates(m.OAuthConfig.Scopes.Bot), []string(nil)},
		// The user scopes are those the Slack agent's actions declare, asked
		// for by the connect flow (internal/provider); the bot's own token
		// never acts as a person.
		{"user scopes are the Slack agent's", sorted(m.OAuthConfig.Scopes.User),
			sorted([]string{slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite, slackagent.ScopeChannelsManage})},
		{"one redirect URL, the connect flow's Slack callback", len(m.OAuthConfig.RedirectURLs) == 1 &&
			strings.HasSuffix(m.OAuthConfig.RedirectURLs[0], "/oauth/callback/slack"), true},
		{"bot events are BotEvents", sorted(m.Settings.EventSubscriptions.BotEvents), sorted(slackapp.BotEvents)},
		{"duplicate bot events", duplicates(m.Settings.EventSubscriptions.BotEvents), []string(nil)},
		{"no user events", m.Settings.EventSubscriptions.UserEvents, []string(nil)},
		{"interactivity enabled", m.Settings.Interactivity.IsEnabled, true},
		{"socket mode enabled", m.Settings.SocketModeEnabled, true},
		{"token rotation off", m.Settings.TokenRotationEnabled, false},
		// Socket Mode: Slack reaches the app over its websocket, so a
		// request URL would be a second, unauthenticated way in.
		{"no event request URL", m.Settings.EventSubscriptions.RequestURL, ""},
		{"no interactivity request URL", m.Settings.Interactivity.RequestURL, ""},
		{"no options load URL", m.Settings.Interactivity.MessageMenuOptionsURL, ""},
		{"no slash command URL", cmdURL, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.got); diff != "" {
				t.Errorf("manifest.yaml (-want +got):\n%s", diff)
			}
		})
	}
}

// TestScopesAreNeeded checks scopes.go against itself: every scope a
// method or an event needs is granted, and every granted scope is needed
// by one of them or by the slash command.
func TestScopesAreNeeded(t *testing.T) {
	granted := map[string]bool{}
	for _, s := range slackapp.BotScopes {
		granted[s] = true
	}
	needed := map[string]string{"commands": "the slash command " + slackapp.Command}
	for method, scope := range slackapp.MethodScopes {
		if scope == "" {
			continue
		}
		needed[scope] = method
		if !granted[scope] {
			t.Errorf("MethodScopes: %s needs %s, which is not in BotScopes", method, scope)
		}
	}
	for scope, method := range slackapp.FieldScopes {
		if _, ok := slackapp.MethodScopes[method]; !ok {
			t.Errorf("FieldScopes: %s is for %s, which the app does not call", scope, method)
		}
		needed[scope] = method
		if !granted[scope] {
			t.Errorf("FieldScopes: %s needs %s, which is not in BotScopes", method, scope)
		}
	}
	for event, scope := range slackapp.EventScopes {
		if scope == "" {
			continue
		}
		needed[scope] = event
		if !granted[scope] {
			t.Errorf("EventScopes: %s needs %s, which is not in BotScopes", event, scope)
		}
	}
	for _, s := range slackapp.BotScopes {
		if _, ok := needed[s]; !ok {
			t.Errorf("BotScopes: %s is needed by no method, event or command: drop it (here and in manifest.yaml)", s)
		}
	}
	events := map[string]bool{}
	for _, e := range slackapp.BotEvents {
		events[e] = true
		if _, ok := slackapp.EventScopes[e]; !ok {
			t.Errorf("BotEvents: %s has no EventScopes entry (\"\" if it needs no scope)", e)
		}
	}
	for e := range slackapp.EventScopes {
		if !events[e] {
			t.Errorf("EventScopes: %s is not in BotEvents", e)
		}
	}
}

// webAPIMethods maps each slack-go method the app may call to the Web API
// method it calls. A slack-go call missing here fails
// TestWebAPICallsHaveScopes, so a new Web API call cannot arrive without
// its scope in MethodScopes (and so in BotScopes and manifest.yaml).
var webAPIMethods = map[string]string{
	"AuthTest":                       "auth.test",
	"AuthTestContext":                "auth.test",
	"StartSocketMode":                "apps.connections.open",
	"StartSocketModeContext":         "apps.connections.open",
	"PostMessage":                    "chat.postMessage",
	"PostMessageContext":             "chat.postMessage",
	"PostMessageWithResponse":        "chat.postMessage",
	"PostMessageWithResponseContext": "chat.postMessage",
	"UpdateMessage":                  "chat.update",
	"UpdateMessageContext":           "chat.update",
	"PostEphemeral":                  "chat.postEphemeral",
	"PostEphemeralContext":           "chat.postEphemeral",
	"OpenConversation":               "conversations.open",
	"OpenConversationContext":        "conversations.open",
	"GetUserInfo":                    "users.info",
	"GetUserInfoContext":             "users.info",
	"SetAgentSessionStatusContext":   "agents.sessions.setStatus",
	"StartStreamContext":             "chat.startStream",
	"AppendStreamContext":            "chat.appendStream",
	"StopStreamContext":              "chat.stopStream",
	"PublishView":                    "views.publish",
	"PublishViewContext":             "views.publish",
	"OpenView":                       "views.open",
	"OpenViewContext":                "views.open",
}

// notWebAPI are *slack.Client methods that call nothing.
var notWebAPI = map[string]bool{"Debug": true, "Debugf": true, "Debugln": true}

const (
	slackPkg = "github.com/slack-go/slack"
	selfPkg  = "github.com/agenthub/agenthub/internal/slackapp"
)

// TestWebAPICallsHaveScopes finds every slack-go Web API call in the
// package's own (non-test) files and checks MethodScopes declares it.
func TestWebAPICallsHaveScopes(t *testing.T) {
	l := listPackage(t)
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range l.goFiles {
		f, err := parser.ParseFile(fset, filepath.Join(l.dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	calls := slackCalls(t, fset, files, l.exports)
	for _, c := range calls {
		if notWebAPI[c.name] {
			continue
		}
		method, ok := webAPIMethods[c.name]
		if !ok {
			t.Errorf("%s: calls (*slack.Client).%s, which manifest_test.go does not know: add it to webAPIMethods with the Web API method it calls, and that method with its bot scope to MethodScopes in scopes.go (and the scope to BotScopes and manifest.yaml)", c.pos, c.name)
			continue
		}
		if _, ok := slackapp.MethodScopes[method]; !ok {
			t.Errorf("%s: calls %s (%s), which is not in MethodScopes: add it with its bot scope to scopes.go (and the scope to BotScopes and manifest.yaml)", c.pos, method, c.name)
		}
	}
	t.Logf("%d slack-go call(s) in %d file(s)", len(calls), len(files))
}

// TestSlackCalls checks the finder itself on a small package, so that
// TestWebAPICallsHaveScopes cannot pass by finding nothing.
func TestSlackCalls(t *testing.T) {
	const src = `package fixture

import (
	"context"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

type poster interface {
	PostEphemeralContext(ctx context.Context, channel, user string, opts ...slack.MsgOption) (string, error)
}

type broker interface{ Handle(ctx context.Context) error }

type app struct {
	api *slack.Client
	sm  *socketmode.Client
	p   poster
	b   broker
}

func (a *app) run(ctx context.Context) {
	a.api.PostMessageContext(ctx, "C1")
	_ = a.api.Debug()
	a.sm.UpdateMessageContext(ctx, "C1", "1.2")
	a.p.PostEphemeralContext(ctx, "C1", "U1")
	a.b.Handle(ctx)
	a.sm.Ack(socketmode.Request{})
	f := a.api.DeleteMessageContext
	f(ctx, "C1", "1.2")
	_ = (*slack.Client).OpenView
}
`
	l := listPackage(t)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "fixture.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range slackCalls(t, fset, []*ast.File{f}, l.exports) {
		got = append(got, c.name)
	}
	want := []string{"PostMessageContext", "Debug", "UpdateMessageContext", "PostEphemeralContext", "DeleteMessageContext", "OpenView"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slackCalls (-want +got):\n%s", diff)
	}
}

type listed struct {
	dir     string
	goFiles []string          // the package's non-test files
	exports map[string]string // import path → compiled export data
}

// listPackage asks the go command for the package's files and the export
// data of everything it imports, so that the calls can be type-checked
// without any module beyond the standard library.
func listPackage(t testing.TB) listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-export", "-deps", "-json=ImportPath,Dir,GoFiles,Export", ".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	l := listed{exports: map[string]string{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath, Dir, Export string
			GoFiles                 []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.ImportPath == selfPkg {
			l.dir, l.goFiles = p.Dir, p.GoFiles
			continue
		}
		if p.Export != "" {
			l.exports[p.ImportPath] = p.Export
		}
	}
	if len(l.goFiles) == 0 {
		t.Fatalf("go list did not list %s's files", selfPkg)
	}
	return l
}

type slackCall struct {
	pos  string // file:line
	name string // the slack-go method
}

// slackCalls type-checks files and returns, in source order, every
// reference to a method of slack.Client: called directly, through a type
// that embeds it (socketmode.Client), as a method value or expression, or
// through an interface whose method *slack.Client has too (an interface
// the package declares to stand for the client).
func slackCalls(t testing.TB, fset *token.FileSet, files []*ast.File, exports map[string]string) []slackCall {
	t.Helper()
	var errs []string
	conf := types.Config{
		Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
			file, ok := exports[path]
			if !ok {
				return nil, fmt.Errorf("no export data for %s", path)
			}
			return os.Open(file)
		}),
		Error: func(err error) { errs = append(errs, err.Error()) },
	}
	info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
	pkg, _ := conf.Check(files[0].Name.Name, fset, files, info)
	if len(errs) > 0 {
		t.Fatalf("type-checking the package:\n%s", strings.Join(errs, "\n"))
	}
	var client *types.Named
	for _, imp := range pkg.Imports() {
		if imp.Path() == slackPkg {
			client, _ = imp.Scope().Lookup("Client").Type().(*types.Named)
		}
	}
	if client == nil {
		// A package that does not import slack-go cannot call it.
		return nil
	}
	clientMethods := types.NewMethodSet(types.NewPointer(client))

	var calls []slackCall
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			x, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			sel, ok := info.Selections[x]
			if !ok || sel.Kind() == types.FieldVal {
				return true
			}
			fn := sel.Obj().(*types.Func)
			onClient := false
			if recv := fn.Signature().Recv(); recv != nil {
				rt := recv.Type()
				if p, ok := rt.(*types.Pointer); ok {
					rt = p.Elem()
				}
				if named, ok := rt.(*types.Named); ok && named.Obj() == client.Obj() {
					onClient = true
				}
				if types.IsInterface(rt) && clientMethods.Lookup(client.Obj().Pkg(), fn.Name()) != nil {
					onClient = true
				}
			}
			if onClient {
				p := fset.Position(x.Sel.Pos())
				calls = append(calls, slackCall{pos: fmt.Sprintf("%s:%d", filepath.Base(p.Filename), p.Line), name: fn.Name()})
			}
			return true
		})
	}
	return calls
}

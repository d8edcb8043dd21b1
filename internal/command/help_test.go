package command

import (
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// accepted is, for every verb, a text the parser must accept as it.
var accepted = map[Verb]string{
	Help:      "help",
	Connect:   "connect github",
	Grants:    "grants",
	Revoke:    "revoke github",
	RevokeAll: "revoke all",
	Pending:   "pending",
	Audit:     "audit 5",
	Whoami:    "whoami",
	Code:      "code",
	Link:      "link",
	Unlink:    "unlink",
	Reset:     "reset",
	Forget:    "forget",
}

// TestHelpListsWhatTheParserAccepts: every verb the parser accepts has a
// line in the help, and every line of the help is accepted as its verb.
func TestHelpListsWhatTheParserAccepts(t *testing.T) {
	var helped []Verb
	for _, f := range Forms() {
		helped = append(helped, f.Verb)
		for _, sample := range samples(f) {
			t.Run(sample, func(t *testing.T) {
				text, ok := Cut(sample)
				if !ok {
					t.Fatalf("the usage %q does not start with %s", f.Usage(), Name)
				}
				got, err := Parse(text)
				if err != nil {
					t.Fatalf("Parse(%q), from the help's %q: %v", text, f.Usage(), err)
				}
				if got.Verb != f.Verb {
					t.Errorf("Parse(%q).Verb = %q, want %q", text, got.Verb, f.Verb)
				}
			})
		}
	}
	var parsed []Verb
	for verb, text := range accepted {
		c, err := Parse(text)
		if err != nil || c.Verb != verb {
			t.Errorf("Parse(%q) = %+v, %v; want verb %q", text, c, err, verb)
		}
		parsed = append(parsed, c.Verb)
	}
	less := func(a, b Verb) bool { return a < b }
	if diff := cmp.Diff(parsed, helped, cmpopts.SortSlices(less)); diff != "" {
		t.Errorf("verbs parsed (-) and verbs in the help (+) differ:\n%s", diff)
	}
}

// samples makes texts from a form's usage: "<service>" a service, "[n]"
// nothing and a number.
func samples(f Form) []string {
	u := f.Usage()
	switch {
	case strings.Contains(u, "<service>"):
		return []string{strings.Replace(u, "<service>", "github", 1)}
	case strings.Contains(u, "[n]"):
		return []string{strings.TrimSpace(strings.Replace(u, "[n]", "", 1)), strings.Replace(u, "[n]", strconv.Itoa(MaxCount), 1)}
	}
	return []string{u}
}

// terminal is a style like the console's; mrkdwn one like the Slack app's.
var (
	terminal = Style{Heading: strings.ToUpper, Typed: strconv.Quote, Example: strconv.Quote, Indent: "  ", Align: true, Demo: true}
	mrkdwn   = Style{
		Heading: func(s string) string { return "*" + s + "*" },
		Usage:   func(s string) string { return "`" + strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(s) + "`" },
		Typed:   func(s string) string { return "`" + s + "`" },
		Example: func(s string) string { return "_" + s + "_" },
		Reach:   "mention me or DM me",
	}
)

func TestHelp(t *testing.T) {
	tests := []struct {
		name  string
		style Style
		want  string
	}{
		{"aligned, with the demo's forms", terminal, `COMMANDS:
  /agenthub help               this text
  /agenthub connect <service>  connect github, google or slack
  /agenthub grants             what agents may do without asking, until when
  /agenthub revoke <service>   revoke a service: tokens, grants, pending requests
  /agenthub revoke all         the panic button: revoke everything
  /agenthub pending            requests waiting for you
  /agenthub audit [n]          your last n audit events (default 10)
  /agenthub whoami             who you are and what you have connected
  /agenthub code               show the demo authenticator's next code
Anything else is a message to the bot, such as "list open pull requests in acme/website".`},
		{"mrkdwn", mrkdwn, "*Commands:*\n" +
			"`/agenthub help`  this text\n" +
			"`/agenthub connect &lt;service&gt;`  connect github, google or slack\n" +
			"`/agenthub grants`  what agents may do without asking, until when\n" +
			"`/agenthub revoke &lt;service&gt;`  revoke a service: tokens, grants, pending requests\n" +
			"`/agenthub revoke all`  the panic button: revoke everything\n" +
			"`/agenthub pending`  requests waiting for you\n" +
			"`/agenthub audit [n]`  your last n audit events (default 10)\n" +
			"`/agenthub whoami`  who you are and what you have connected\n" +
			"Anything else is a message to the bot (mention me or DM me), such as _list open pull requests in acme/website_."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.style.Help()); diff != "" {
				t.Errorf("Help (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		style Style
		want  string
	}{
		{"unknown: the help", "frobnicate", terminal, `I don't know "/agenthub frobnicate".` + "\n" + terminal.Help()},
		{"unknown in mrkdwn", "frobnicate", mrkdwn, "I don't know `/agenthub frobnicate`.\n" + mrkdwn.Help()},
		{"wrong arguments: the verb's forms", "revoke", terminal, `I don't know "/agenthub revoke". Try:
  /agenthub revoke <service>  revoke a service: tokens, grants, pending requests
  /agenthub revoke all        the panic button: revoke everything`},
		{"wrong arguments in mrkdwn", "connect", mrkdwn, "I don't know `/agenthub connect`. Try:\n`/agenthub connect &lt;service&gt;`  connect github, google or slack"},
		{"a demo verb outside the demo is unknown", "code now", mrkdwn, "I don't know `/agenthub code now`.\n" + mrkdwn.Help()},
		{"a bad count", "audit lots", terminal, "audit takes a number of events from 1 to 1000, such as /agenthub audit 50."},
		{"a bad count in mrkdwn", "audit 0", mrkdwn, "audit takes a number of events from 1 to 1000, such as `/agenthub audit 50`."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, refused(t, tt.text).Text(tt.style)); diff != "" {
				t.Errorf("Text (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHelpWithoutTheDemo(t *testing.T) {
	for _, f := range Forms() {
		if got := strings.Contains(Style{}.Help(), f.Usage()+"  "); got == (f.Demo || f.SignIn || f.Memory) {
			t.Errorf("help without the demo lists %q: %v, want %v", f.Usage(), got, !f.Demo && !f.SignIn && !f.Memory)
		}
	}
}

// TestHelpWithSignIn: link and unlink are offered only where people sign
// in at an identity provider.
func TestHelpWithSignIn(t *testing.T) {
	for _, f := range Forms() {
		if got := strings.Contains(Style{SignIn: true}.Help(), f.Usage()+"  "); got == (f.Demo || f.Memory) {
			t.Errorf("help with sign-in lists %q: %v, want %v", f.Usage(), got, !f.Demo && !f.Memory)
		}
	}
}

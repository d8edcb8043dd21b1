package command

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Command
	}{
		{"nothing is help", "", Command{Verb: Help}},
		{"blanks are help", " \t ", Command{Verb: Help}},
		{"help", "help", Command{Verb: Help}},
		{"help in capitals, spaced", "  HELP ", Command{Verb: Help}},
		{"connect", "connect google", Command{Verb: Connect, Service: "google"}},
		{"connect lower-cases the service", "Connect GitHub", Command{Verb: Connect, Service: "github"}},
		{"grants", "grants", Command{Verb: Grants}},
		{"revoke a service", "revoke slack", Command{Verb: Revoke, Service: "slack"}},
		{"revoke lower-cases the service", "revoke GitHub", Command{Verb: Revoke, Service: "github"}},
		{"revoke all", "revoke all", Command{Verb: RevokeAll}},
		{"revoke all in any case", "REVOKE All", Command{Verb: RevokeAll}},
		{"revoke all, spaced", "revoke \t all ", Command{Verb: RevokeAll}},
		{"pending", "pending", Command{Verb: Pending}},
		{"audit without n", "audit", Command{Verb: Audit, Count: DefaultCount}},
		{"audit 1", "audit 1", Command{Verb: Audit, Count: 1}},
		{"audit at the bound", "audit 1000", Command{Verb: Audit, Count: MaxCount}},
		{"audit with a leading zero", "audit 007", Command{Verb: Audit, Count: 7}},
		{"whoami", "whoami", Command{Verb: Whoami}},
		{"whoami in any case", "WhoAmI", Command{Verb: Whoami}},
		{"code", "code", Command{Verb: Code}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.text)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.text, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Error
	}{
		{"an unknown verb", "frobnicate", Error{Problem: UnknownVerb, Typed: "/agenthub frobnicate"}},
		{"an unknown verb with words", "frobnicate the  <!channel>", Error{Problem: UnknownVerb, Typed: "/agenthub frobnicate the <!channel>"}},
		{"a message is no command", "list open pull requests", Error{Problem: UnknownVerb, Typed: "/agenthub list open pull requests"}},
		{"the command's name again", "/agenthub help", Error{Problem: UnknownVerb, Typed: "/agenthub /agenthub help"}},
		{"all alone", "all", Error{Problem: UnknownVerb, Typed: "/agenthub all"}},
		{"help with words", "help me", Error{Problem: WrongArgs, Typed: "/agenthub help me", Verb: Help}},
		{"connect without a service", "connect", Error{Problem: WrongArgs, Typed: "/agenthub connect", Verb: Connect}},
		{"connect two services", "connect github google", Error{Problem: WrongArgs, Typed: "/agenthub connect github google", Verb: Connect}},
		{"grants with words", "grants github", Error{Problem: WrongArgs, Typed: "/agenthub grants github", Verb: Grants}},
		{"revoke without a service", "Revoke", Error{Problem: WrongArgs, Typed: "/agenthub Revoke", Verb: Revoke}},
		{"revoke two services", "revoke github slack", Error{Problem: WrongArgs, Typed: "/agenthub revoke github slack", Verb: Revoke}},
		{"revoke all and more", "revoke all now", Error{Problem: WrongArgs, Typed: "/agenthub revoke all now", Verb: Revoke}},
		{"pending with words", "pending github", Error{Problem: WrongArgs, Typed: "/agenthub pending github", Verb: Pending}},
		{"audit with two counts", "audit 5 6", Error{Problem: WrongArgs, Typed: "/agenthub audit 5 6", Verb: Audit}},
		{"whoami with words", "whoami really", Error{Problem: WrongArgs, Typed: "/agenthub whoami really", Verb: Whoami}},
		{"code with words", "code now", Error{Problem: WrongArgs, Typed: "/agenthub code now", Verb: Code}},
		{"audit 0", "audit 0", Error{Problem: BadCount, Typed: "/agenthub audit 0", Verb: Audit}},
		{"audit past the bound", "audit 1001", Error{Problem: BadCount, Typed: "/agenthub audit 1001", Verb: Audit}},
		{"audit negative", "audit -5", Error{Problem: BadCount, Typed: "/agenthub audit -5", Verb: Audit}},
		{"audit in words", "audit lots", Error{Problem: BadCount, Typed: "/agenthub audit lots", Verb: Audit}},
		{"audit in exponent form", "audit 1e3", Error{Problem: BadCount, Typed: "/agenthub audit 1e3", Verb: Audit}},
		{"audit past int64", "audit 99999999999999999999", Error{Problem: BadCount, Typed: "/agenthub audit 99999999999999999999", Verb: Audit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := refused(t, tt.text)
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("Parse(%q) error (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

// refused returns the error Parse refuses text with.
func refused(tb testing.TB, text string) *Error {
	tb.Helper()
	c, err := Parse(text)
	var e *Error
	if !errors.As(err, &e) {
		tb.Fatalf("Parse(%q) = %+v, %v; want an *Error", text, c, err)
	}
	return e
}

func TestTypedIsClipped(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"short stays whole", "frobnicate", "/agenthub frobnicate"},
		{"long is cut to 100 characters", strings.Repeat("ab ", 60), "/agenthub " + strings.TrimSpace(strings.Repeat("ab ", 30)) + "…"},
		{"characters, not bytes", strings.Repeat("é", 200), "/agenthub " + strings.Repeat("é", 89) + "…"},
		{"new lines become spaces", "frob\nnicate\r\nnow", "/agenthub frob nicate now"},
		{"control characters are replaced", "frob\x1b[31mred\x00", "/agenthub frob?[31mred?"},
		{"a reordering character is replaced", "frob\u202enoisrev", "/agenthub frob?noisrev"},
		{"invalid UTF-8 is replaced", "frob\xff", "/agenthub frob\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := refused(t, tt.text)
			if got := e.Typed; got != tt.want {
				t.Errorf("Typed = %q, want %q", got, tt.want)
			}
			if got := utf8.RuneCountInString(e.Typed); got > maxTyped {
				t.Errorf("Typed has %d characters, want at most %d", got, maxTyped)
			}
			if got := e.Error(); !strings.Contains(got, e.Typed[:10]) {
				t.Errorf("Error() = %q, want it to quote what was typed", got)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	var got *Error
	if err := Unknown(" code "); !errors.As(err, &got) {
		t.Fatalf("Unknown = %v, want an *Error", err)
	}
	if diff := cmp.Diff(Error{Problem: UnknownVerb, Typed: "/agenthub code"}, *got); diff != "" {
		t.Errorf("Unknown(code) (-want +got):\n%s", diff)
	}
}

func TestStringReadsBack(t *testing.T) {
	for _, text := range []string{"help", "connect github", "grants", "revoke slack", "revoke all", "pending", "audit", "audit 3", "whoami", "code"} {
		t.Run(text, func(t *testing.T) {
			want, err := Parse(text)
			if err != nil {
				t.Fatal(err)
			}
			line, ok := Cut(want.String())
			if !ok {
				t.Fatalf("Cut(%q) is no command", want.String())
			}
			got, err := Parse(line)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", line, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", want.String(), diff)
			}
		})
	}
}

func TestCut(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		want   string
		wantOK bool
	}{
		{"the name alone", "/agenthub", "", true},
		{"a command", "/agenthub revoke all", "revoke all", true},
		{"any case, spaced", "  /AgentHub \t grants  ", "grants", true},
		{"a tab after the name", "/agenthub\tpending", "pending", true},
		{"a message", "list open pull requests", "", false},
		{"the name inside a word", "/agenthubs help", "", false},
		{"the name later on", "please /agenthub help", "", false},
		{"a shorter line", "/agent", "", false},
		{"an empty line", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Cut(tt.line)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Cut(%q) = %q, %v; want %q, %v", tt.line, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

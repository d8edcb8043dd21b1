package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// tuesday10 is 10:00 on a Tuesday in Berlin (summer time, UTC+2).
var tuesday10 = time.Date(2025, 7, 8, 8, 0, 0, 0, time.UTC)

// step builds an input for the demo person acting through the named action
// on a resource; the agent is the action name's prefix.
func step(action string, risk Risk, write bool, kind, resource string, attrs map[string]any) Input {
	agent, _, _ := strings.Cut(action, ".")
	return Input{
		Principal: Principal{ID: "T1:U1", Team: "T1", User: "U1", Groups: []string{"eng"}},
		Action:    Action{Agent: agent, Name: action, Risk: risk, Scopes: []string{"repo"}, Write: write},
		Resource:  Resource{Kind: kind, Name: resource, Attrs: attrs},
		Now:       tuesday10,
	}
}

func withArgs(in Input, args map[string]any) Input {
	in.Args = args
	return in
}

func tainted(in Input) Input {
	in.Tainted = true
	return in
}

func at(in Input, t time.Time) Input {
	in.Now = t
	return in
}

func owner(in Input, user string) Input {
	in.Principal.User = user
	in.Principal.ID = "T1:" + user
	return in
}

// mustParse parses a policy a test relies on being valid.
func mustParse(t testing.TB, src string) *Engine {
	t.Helper()
	e, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return e
}

// firstError returns the first *Error in err.
func firstError(t testing.TB, err error) *Error {
	t.Helper()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) holds no *Error", err, err)
	}
	return pe
}

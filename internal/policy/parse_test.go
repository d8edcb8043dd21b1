package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseErrors checks that each kind of mistake stops the load with the
// file, the line and the rule it is in.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantLine int
		wantRule string // name, or "#n" for a rule without one; "" outside rules
		wantMsg  string
	}{
		{"yaml syntax", `version: 1
rules:
  - name: a
    effect: allow: x
`, 4, "", "yaml: mapping values are not allowed"},
		{"yaml unknown anchor", "version: 1\nrules: *x\n", 0, "", "yaml: unknown anchor"},
		{"not a mapping", "- 1\n- 2\n", 1, "", "a policy is a mapping"},
		{"empty file", "", 0, "", "empty policy"},
		{"unknown top-level field", "version: 1\nrule:\n  - name: a\n    effect: allow\n", 2, "", `unknown field "rule"`},
		{"missing version", "rules:\n  - name: a\n    effect: allow\n", 1, "", "missing version"},
		{"unsupported version", "version: 2\nrules:\n  - name: a\n    effect: allow\n", 1, "", "unsupported version"},
		{"missing rules", "version: 1\n", 1, "", "missing rules"},
		{"empty rules", "version: 1\nrules: []\n", 2, "", "at least one rule"},
		{"unknown rule field", `version: 1
rules:
  - name: reads
    effect: allow
  - name: deploys
    efect: deny
`, 6, "deploys", `unknown field "efect"`},
		{"field given twice", `version: 1
rules:
  - name: a
    effect: allow
    effect: deny
`, 5, "a", `field "effect" given twice`},
		{"missing name", `version: 1
rules:
  - name: a
    effect: allow
  - effect: deny
    action: github.merge_pull_request
`, 5, "#2", "missing name"},
		{"bad name", "version: 1\nrules:\n  - name: two words\n    effect: allow\n", 3, "two words", "name: use letters"},
		{"unknown results", "version: 1\nrules:\n  - name: a\n    effect: allow\n    results: everyone\n", 5, "a", "results: want private"},
		{"results of a denial", "version: 1\nrules:\n  - name: a\n    effect: deny\n    results: channel\n", 5, "a", "results: a denied step has none"},
		{"unknown factor", "version: 1\nrules:\n  - name: a\n    effect: stepup\n    factor: sms\n", 5, "a", "factor: want totp"},
		{"factor of a denial", "version: 1\nrules:\n  - name: a\n    effect: deny\n    factor: oidc\n", 5, "a", "factor: a denied step asks for none"},
		{"unknown approval", "version: 1\nrules:\n  - name: a\n    effect: approve\n    approval: email\n", 5, "a", "approval: want slack"},
		{"approval of an allowed step", "version: 1\nrules:\n  - name: a\n    effect: allow\n    approval: ciba\n", 5, "a", "approval: only a step that needs approval"},
		{"duplicate name", `version: 1
rules:
  - name: writes
    effect: approve
  - name: reads
    effect: allow
  - name: writes
    effect: deny
`, 7, "writes", "duplicate rule name (first used on line 3)"},
		{"duplicate of a broken rule", `version: 1
rules:
  - name: writes
    effect: permit
  - name: writes
    effect: deny
`, 4, "writes", "unknown effect"},
		{"missing effect", "version: 1\nrules:\n  - name: a\n    action: x\n", 3, "a", "missing effect"},
		{"bad effect", "version: 1\nrules:\n  - name: a\n    effect: permit\n", 4, "a", `unknown effect "permit"`},
		{"bad risk", "version: 1\nrules:\n  - name: a\n    effect: allow\n    risk: severe\n", 5, "a", `unknown risk "severe"`},
		{"bad glob", `version: 1
rules:
  - name: repos
    resource:
      - acme/*
      - acme/[a-z]*
    effect: allow
`, 6, "repos", "resource: bad glob"},
		{"empty pattern", "version: 1\nrules:\n  - name: a\n    agent: \"\"\n    effect: allow\n", 4, "a", "agent: bad glob: empty pattern"},
		{"pattern not a string", "version: 1\nrules:\n  - name: a\n    action: {x: y}\n    effect: allow\n", 4, "a", "action: want a string or a list of strings"},
		{"undeclared variable", `version: 1
rules:
  - name: deploys-need-two
    when: foo == 1
    effect: deny
`, 4, "deploys-need-two", "condition: undeclared reference to 'foo'"},
		{"undeclared variable on the third line of a block", `version: 1
rules:
  - name: deploys-need-two
    when: |
      action.write &&
      resource.kind == "repo" &&
      foo
    effect: deny
`, 7, "deploys-need-two", "condition: undeclared reference to 'foo'"},
		{"undeclared variable in a folded block", `version: 1
rules:
  - name: folded
    when: >-
      action.write &&
      foo
    effect: deny
`, 6, "folded", "condition: undeclared reference to 'foo'"},
		{"unknown field of an object", "version: 1\nrules:\n  - name: a\n    when: resource.knd == \"repo\"\n    effect: deny\n", 4, "a", "condition: undefined field 'knd'"},
		{"cel syntax", "version: 1\nrules:\n  - name: a\n    when: action.write &&\n    effect: deny\n", 4, "a", "condition: Syntax error"},
		{"condition not bool", "version: 1\nrules:\n  - name: a\n    when: resource.name\n    effect: deny\n", 4, "a", "condition: must be a bool expression, not string"},
		{"condition is an int", "version: 1\nrules:\n  - name: a\n    when: action.risk_level + 1\n    effect: deny\n", 4, "a", "not int"},
		{"empty condition", "version: 1\nrules:\n  - name: a\n    when: \"\"\n    effect: deny\n", 4, "a", "when: must not be empty"},
		{"unknown time zone", "version: 1\nrules:\n  - name: a\n    when: now.getHours(\"Europe/Berln\") < 9\n    effect: deny\n", 4, "a", `condition: unknown time zone "Europe/Berln"`},
		{"unknown group", `version: 1
groups:
  release-managers: [U1]
rules:
  - name: prod
    effect: second_approver
    approvers: ["@release-manager"]
`, 7, "prod", `approvers: unknown group "@release-manager"`},
		{"second approver without approvers", "version: 1\nrules:\n  - name: prod\n    effect: second_approver\n", 3, "prod", "needs approvers"},
		{"approvers on another effect", "version: 1\nrules:\n  - name: a\n    effect: approve\n    approvers: [U1]\n", 5, "a", "only used with effect second_approver"},
		{"bad group member", "version: 1\ngroups:\n  rm: [U1, \"@rm\"]\nrules:\n  - name: a\n    effect: allow\n", 3, "", `bad member "@rm"`},
		{"standing on a high-risk rule", `version: 1
rules:
  - name: merges
    action: github.merge_pull_request
    effect: approve
    risk: high
    lifetimes: [once, standing]
`, 7, "merges", "lifetimes: standing not allowed on a high-risk or step-up rule"},
		{"one hour on a step-up rule", `version: 1
rules:
  - name: merges
    effect: stepup
    lifetimes:
      - once
      - 1h
`, 7, "merges", "lifetimes: 1h not allowed"},
		{"lifetimes without once", "version: 1\nrules:\n  - name: a\n    effect: approve\n    lifetimes: [1h]\n", 5, "a", "lifetimes: must include once"},
		{"unknown lifetime", "version: 1\nrules:\n  - name: a\n    effect: approve\n    lifetimes: [once, forever]\n", 5, "a", `unknown lifetime "forever"`},
		{"lifetime twice", "version: 1\nrules:\n  - name: a\n    effect: approve\n    lifetimes: [once, once]\n", 5, "a", "once given twice"},
		{"lifetimes on allow", "version: 1\nrules:\n  - name: a\n    effect: allow\n    lifetimes: [once]\n", 5, "a", "only used with effects that ask a person"},
		{"default not last", `version: 1
rules:
  - name: default
    effect: deny
  - name: b
    effect: allow
`, 3, "default", "must be the last rule"},
		{"default with a condition", "version: 1\nrules:\n  - name: default\n    when: action.write\n    effect: deny\n", 3, "default", "catch-all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse("policy.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse() = %v, nil; want an error", e)
			}
			if e != nil {
				t.Errorf("Parse() returned an engine with its error")
			}
			pe := firstError(t, err)
			got := pe.Error()
			if pe.File != "policy.yaml" || !strings.HasPrefix(got, "policy.yaml") {
				t.Errorf("error %q does not name the file", got)
			}
			if pe.Line != tt.wantLine {
				t.Errorf("error %q: line %d, want %d", got, pe.Line, tt.wantLine)
			}
			switch {
			case strings.HasPrefix(tt.wantRule, "#"):
				if want := "rule " + tt.wantRule + ":"; !strings.Contains(got, want) {
					t.Errorf("error %q does not contain %q", got, want)
				}
			case tt.wantRule != "":
				if pe.Rule != tt.wantRule || !strings.Contains(got, `rule "`+tt.wantRule+`": `) {
					t.Errorf("error %q: rule %q, want %q", got, pe.Rule, tt.wantRule)
				}
			default:
				if pe.Rule != "" || pe.Index != 0 {
					t.Errorf("error %q names a rule, want none", got)
				}
			}
			if !strings.Contains(got, tt.wantMsg) {
				t.Errorf("error %q does not contain %q", got, tt.wantMsg)
			}
		})
	}
}

func TestParseErrorFormat(t *testing.T) {
	_, err := Parse("policy.yaml", []byte(`version: 1
rules:
  - name: reads
    effect: allow
  - name: deploys-need-two
    when: >-
      has(args.environment) &&
      foo == "production"
    effect: deny
`))
	if err == nil {
		t.Fatal("Parse() succeeded, want an error")
	}
	want := `policy.yaml:8: rule "deploys-need-two": condition: undeclared reference to 'foo'`
	if got := err.Error(); got != want {
		t.Errorf("Parse() error = %q, want %q", got, want)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse("policy.yaml", []byte(`version: 1
rules:
  - name: a
    effect: permit
  - name: b
    when: nope
    effect: allow
  - name: a
    effect: allow
`))
	var lines []int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *Error
		if errors.As(e, &pe) {
			lines = append(lines, pe.Line)
		}
	}
	// The third problem is a duplicate of a rule that itself failed.
	if diff := cmp.Diff([]int{4, 6, 8}, lines); diff != "" {
		t.Errorf("error lines mismatch (-want +got):\n%s", diff)
	}
}

func TestParseCapsErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\nrules:\n")
	for range 50 {
		b.WriteString("  - effect: allow\n")
	}
	_, err := Parse("policy.yaml", []byte(b.String()))
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	if len(errs) != maxErrors+1 {
		t.Errorf("got %d errors, want %d and a note", len(errs), maxErrors+1)
	}
	if got := errs[len(errs)-1].Error(); !strings.Contains(got, "too many errors") {
		t.Errorf("last error = %q, want too many errors", got)
	}
}

func TestParseAccepts(t *testing.T) {
	e := mustParse(t, `version: 1
groups:
  rm: [U1]
rules:
  - name: single-pattern-strings
    agent: github
    action: "github.*"
    resource: acme/*
    effect: allow
  - name: anchors-and-lists
    action: &names [a.b, c.d]
    effect: approve
    lifetimes: [standing, once]
  - name: reused
    action: *names
    effect: second_approver
    approvers: "@rm"
  - name: default
    action: "*"
    effect: deny
`)
	if diff := cmp.Diff([]string{"single-pattern-strings", "anchors-and-lists", "reused", "default"}, e.RuleNames()); diff != "" {
		t.Errorf("RuleNames() mismatch (-want +got):\n%s", diff)
	}
	if got, want := e.Evaluate(step("c.d", Low, true, "x", "y", nil)).Lifetimes, []Lifetime{Once, Standing}; !cmp.Equal(got, want) {
		t.Errorf("lifetimes = %v, want %v (canonical order)", got, want)
	}
	if len(e.Digest()) != 64 {
		t.Errorf("Digest() = %q, want a hex SHA-256", e.Digest())
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("version: 1\nrules:\n  - name: a\n    effect: allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := Load(good)
	if err != nil {
		t.Fatalf("Load(good) = %v", err)
	}
	if e.Name() != good {
		t.Errorf("Name() = %q, want %q", e.Name(), good)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nrules:\n  - name: a\n    effect: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":4: ") {
		t.Errorf("Load(bad) = %v, want an error starting %q", err, bad+":4: ")
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the file", err)
	}
}

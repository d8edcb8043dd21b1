package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"
)

// Error is one problem in a policy file, located by file, line and rule so
// whoever edits the file can go straight to it. Parse joins several with
// errors.Join; errors.As finds the first.
type Error struct {
	File  string
	Line  int    // 1-based; 0 when the problem has no single line
	Rule  string // the rule's name, when it has one
	Index int    // the rule's 1-based position, when it has no name yet
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	switch {
	case e.Rule != "":
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	case e.Index > 0:
		fmt.Fprintf(&b, "rule #%d: ", e.Index)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxErrors bounds the report for a badly broken file; the first few
// problems are what someone fixes first anyway.
const maxErrors = 20

// Load reads and parses the policy file at path. Errors name the path.
func Load(path string) (*Engine, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	return Parse(path, data)
}

// Parse compiles a policy. name is used in error messages (normally the
// file's path). Every rule's patterns and condition are compiled here, once;
// an error stops the whole policy, so a half-understood policy never runs.
func Parse(name string, data []byte) (*Engine, error) {
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	p := &parser{file: name, env: env, lines: strings.Split(string(data), "\n")}
	e := p.parse(data)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	sum := sha256.Sum256(data)
	e.name = name
	e.digest = hex.EncodeToString(sum[:])
	return e, nil
}

type parser struct {
	file  string
	env   *cel.Env
	lines []string
	errs  []error
}

// where identifies the rule an error belongs to.
type where struct {
	rule  string
	index int
}

func (p *parser) errorf(line int, w where, format string, args ...any) {
	if len(p.errs) == maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Msg: "too many errors"})
	}
	if len(p.errs) > maxErrors {
		return
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Rule: w.rule, Index: w.index, Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) parse(data []byte) *Engine {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 0, err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = "yaml: " + m[2]
		}
		p.errorf(line, where{}, "%s", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		p.errorf(0, where{}, "empty policy (want version: 1 and a list of rules)")
		return nil
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, where{}, "a policy is a mapping with version, groups and rules")
		return nil
	}
	top := p.fields(root, where{}, "policy", "version", "groups", "rules")
	if v, ok := top["version"]; !ok {
		p.errorf(root.Line, where{}, "missing version (want version: 1)")
	} else if v.Kind != yaml.ScalarNode || v.Value != "1" {
		p.errorf(v.Line, where{}, "version: unsupported version %q (want 1)", v.Value)
	}
	groups := p.groups(top["groups"])
	rn, ok := top["rules"]
	if !ok {
		p.errorf(root.Line, where{}, "missing rules")
		return nil
	}
	if rn.Kind != yaml.SequenceNode || len(rn.Content) == 0 {
		p.errorf(rn.Line, where{}, "rules: want a list of at least one rule")
		return nil
	}
	e := &Engine{}
	seen := map[string]int{}
	for i, n := range rn.Content {
		r, ok := p.rule(deref(n), i+1, groups)
		if r.name != "" {
			if prev, dup := seen[r.name]; dup {
				p.errorf(r.line, where{rule: r.name}, "duplicate rule name (first used on line %d)", prev)
				ok = false
			} else {
				seen[r.name] = r.line
			}
			if r.name == fallbackRule && i != len(rn.Content)-1 {
				p.errorf(r.line, where{rule: r.name}, "the rule named default must be the last rule")
				ok = false
			}
		}
		if ok {
			e.rules = append(e.rules, r)
		}
	}
	return e
}

// deref follows YAML aliases, so anchors can name a list of actions once
// and reuse it.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// fields reads a mapping's keys, reporting unknown and repeated ones.
func (p *parser) fields(n *yaml.Node, w where, what string, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode:
			p.errorf(k.Line, w, "%s: keys must be plain names", what)
		case !slices.Contains(known, k.Value):
			p.errorf(k.Line, w, "unknown field %q in %s (known: %s)", k.Value, what, strings.Join(known, ", "))
		case out[k.Value] != nil:
			p.errorf(k.Line, w, "field %q given twice", k.Value)
		default:
			out[k.Value] = v
		}
	}
	return out
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// groups reads `groups: {name: [U1, U2]}` into user lists.
func (p *parser) groups(n *yaml.Node) map[string][]string {
	groups := map[string][]string{}
	if n == nil {
		return groups
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, where{}, "groups: want a mapping of group name to a list of Slack user IDs")
		return groups
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || !namePattern.MatchString(k.Value) {
			p.errorf(k.Line, where{}, "groups: bad group name %q (letters, digits, '.', '_' and '-')", k.Value)
			continue
		}
		if _, dup := groups[k.Value]; dup {
			p.errorf(k.Line, where{}, "groups: group %q given twice", k.Value)
			continue
		}
		users, ok := p.stringList(v, where{}, "groups: "+k.Value, true)
		if !ok {
			continue
		}
		members := []string{}
		for j, u := range users {
			if !validUser(u) {
				p.errorf(lineOf(v, j), where{}, "groups: %s: bad member %q (want a Slack user ID such as U012ABC)", k.Value, u)
				continue
			}
			if !slices.Contains(members, u) {
				members = append(members, u)
			}
		}
		groups[k.Value] = members
	}
	return groups
}

func validUser(u string) bool {
	return u != "" && !strings.HasPrefix(u, "@") && !strings.ContainsAny(u, " \t\r\n")
}

// lineOf returns the line of the i-th item of a list node, or of the node.
func lineOf(n *yaml.Node, i int) int {
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i].Line
	}
	return n.Line
}

// stringList reads a scalar or a list of scalars. A lone scalar is accepted
// for convenience (`action: github.comment`).
func (p *parser) stringList(n *yaml.Node, w where, what string, allowEmpty bool) ([]string, bool) {
	var out []string
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			break
		}
		out = append(out, n.Value)
	case yaml.SequenceNode:
		for _, c := range n.Content {
			c = deref(c)
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				p.errorf(c.Line, w, "%s: want a string or a list of strings", what)
				return nil, false
			}
			out = append(out, c.Value)
		}
	default:
		p.errorf(n.Line, w, "%s: want a string or a list of strings", what)
		return nil, false
	}
	if len(out) == 0 && !allowEmpty {
		p.errorf(n.Line, w, "%s: must not be empty", what)
		return nil, false
	}
	return out, true
}

// scalar reads a single non-empty string.
func (p *parser) scalar(n *yaml.Node, w where, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, w, "%s: want a string", what)
		return "", false
	}
	if n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		p.errorf(n.Line, w, "%s: must not be empty", what)
		return "", false
	}
	return n.Value, true
}

var ruleFields = []string{"name", "agent", "action", "resource", "when", "effect", "risk", "reason", "approvers", "lifetimes", "results", "factor", "approval"}

// rule compiles one rule. It reports every problem it finds and returns
// ok=false if there was any; the rule's name and line are set either way.
func (p *parser) rule(n *yaml.Node, index int, groups map[string][]string) (rule, bool) {
	w := where{index: index}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, w, "a rule is a mapping with at least name and effect")
		return rule{}, false
	}
	// Find the name first so every other error can carry it.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], deref(n.Content[i+1]); k.Value == "name" && v.Kind == yaml.ScalarNode && v.Value != "" {
			w.rule = v.Value
		}
	}
	before := len(p.errs)
	f := p.fields(n, w, "rule", ruleFields...)
	r := rule{line: n.Line}

	if v, ok := f["name"]; !ok {
		p.errorf(n.Line, w, "missing name")
	} else if s, ok := p.scalar(v, w, "name"); ok {
		if !namePattern.MatchString(s) {
			p.errorf(v.Line, w, "name: use letters, digits, '.', '_' and '-'")
		}
		r.name = s
	}

	for _, pf := range []struct {
		key string
		dst *globs
	}{{"agent", &r.agent}, {"action", &r.action}, {"resource", &r.resource}} {
		v, ok := f[pf.key]
		if !ok {
			continue
		}
		pats, ok := p.stringList(v, w, pf.key, false)
		if !ok {
			continue
		}
		for j, pat := range pats {
			if _, err := compileGlob(pat); err != nil {
				p.errorf(lineOf(v, j), w, "%s: bad glob: %v", pf.key, err)
			}
		}
		*pf.dst, _ = compileGlobs(pats)
	}

	if v, ok := f["effect"]; !ok {
		p.errorf(n.Line, w, "missing effect (allow, approve, stepup, second_approver or deny)")
	} else if s, ok := p.scalar(v, w, "effect"); ok {
		eff, err := ParseEffect(s)
		if err != nil {
			p.errorf(v.Line, w, "effect: %v", err)
		}
		r.effect = eff
	}

	if v, ok := f["risk"]; ok {
		if s, ok := p.scalar(v, w, "risk"); ok {
			risk, err := ParseRisk(s)
			if err != nil {
				p.errorf(v.Line, w, "risk: %v", err)
			}
			r.risk = risk
		}
	}

	if v, ok := f["reason"]; ok {
		if s, ok := p.scalar(v, w, "reason"); ok {
			r.reason = strings.TrimSpace(s)
		}
	}

	p.approvers(f["approvers"], w, &r, groups)
	p.lifetimes(f["lifetimes"], w, &r)

	if v, ok := f["results"]; ok {
		if s, ok := p.scalar(v, w, "results"); ok {
			switch s {
			case "channel":
				r.resultsInChannel = true
			case "private":
			default:
				p.errorf(v.Line, w, "results: want private (the default: what is not public goes to the person alone) or channel")
			}
			if r.effect == Deny {
				p.errorf(v.Line, w, "results: a denied step has none")
			}
		}
	}

	if v, ok := f["factor"]; ok {
		if s, ok := p.scalar(v, w, "factor"); ok {
			if !slices.Contains(Factors, s) {
				p.errorf(v.Line, w, "factor: want totp (a code from the person's authenticator app), oidc (a fresh sign-in at the identity provider) or ciba (an approval on the person's phone)")
			}
			if r.effect == Deny {
				p.errorf(v.Line, w, "factor: a denied step asks for none")
			}
			r.factor = s
		}
	}

	if v, ok := f["approval"]; ok {
		if s, ok := p.scalar(v, w, "approval"); ok {
			switch {
			case s != "slack" && s != ApprovalCIBA:
				p.errorf(v.Line, w, "approval: want slack (the default: the buttons in Slack) or ciba (on the person's phone)")
			case r.effect == Deny || r.effect == Allow:
				p.errorf(v.Line, w, "approval: only a step that needs approval (approve, step_up, second_approver) is approved somewhere")
			case s == ApprovalCIBA:
				r.approval = ApprovalCIBA
			}
		}
	}

	if v, ok := f["when"]; ok {
		if src, ok := p.scalar(v, w, "when"); ok {
			r.when = src
			r.prg = p.condition(v, w, src)
		}
	}

	if r.name == fallbackRule && (len(r.agent)+len(r.action)+len(r.resource) > 0 || r.when != "") {
		p.errorf(n.Line, w, "the rule named default is the catch-all: it takes no patterns and no condition")
	}
	if len(p.errs) > before {
		// The name and line still serve the duplicate check.
		return rule{name: r.name, line: r.line}, false
	}
	r.build()
	return r, true
}

func (p *parser) approvers(v *yaml.Node, w where, r *rule, groups map[string][]string) {
	if v == nil {
		if r.effect == SecondApprover {
			p.errorf(r.line, w, "effect second_approver needs approvers (Slack user IDs or @group)")
		}
		return
	}
	if r.effect != SecondApprover {
		p.errorf(v.Line, w, "approvers: only used with effect second_approver")
		return
	}
	names, ok := p.stringList(v, w, "approvers", false)
	if !ok {
		return
	}
	r.approvers = []string{}
	for j, a := range names {
		var users []string
		if g, isGroup := strings.CutPrefix(a, "@"); isGroup {
			members, known := groups[g]
			if !known {
				p.errorf(lineOf(v, j), w, "approvers: unknown group %q (declare it under groups)", a)
				continue
			}
			users = members
		} else if validUser(a) {
			users = []string{a}
		} else {
			p.errorf(lineOf(v, j), w, "approvers: bad approver %q (want a Slack user ID or @group)", a)
			continue
		}
		for _, u := range users {
			if !slices.Contains(r.approvers, u) {
				r.approvers = append(r.approvers, u)
			}
		}
	}
}

func (p *parser) lifetimes(v *yaml.Node, w where, r *rule) {
	if v == nil {
		return
	}
	if r.effect == Allow || r.effect == Deny {
		p.errorf(v.Line, w, "lifetimes: only used with effects that ask a person")
		return
	}
	names, ok := p.stringList(v, w, "lifetimes", false)
	if !ok {
		return
	}
	// High risk is never standing and never reused: its approval is bound
	// to one request. Say so at load time rather than quietly dropping the
	// choice later.
	singleUse := r.risk >= High || r.effect == StepUp || r.effect == SecondApprover
	var set [Standing + 1]bool
	for j, s := range names {
		l, err := ParseLifetime(s)
		if err != nil {
			p.errorf(lineOf(v, j), w, "lifetimes: %v", err)
			continue
		}
		if set[l] {
			p.errorf(lineOf(v, j), w, "lifetimes: %s given twice", l)
			continue
		}
		if l != Once && singleUse {
			p.errorf(lineOf(v, j), w, "lifetimes: %s not allowed on a high-risk or step-up rule (only once)", l)
			continue
		}
		set[l] = true
	}
	if !set[Once] {
		p.errorf(v.Line, w, "lifetimes: must include once")
		return
	}
	// Canonical order, once first, whatever order the file used.
	r.lifetimes = []Lifetime{}
	for l := Once; l <= Standing; l++ {
		if set[l] {
			r.lifetimes = append(r.lifetimes, l)
		}
	}
}

// condition compiles a `when` expression, reporting errors at their line
// in the file.
func (p *parser) condition(n *yaml.Node, w where, src string) cel.Program {
	checked, iss := p.env.Compile(src)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			msg := strings.TrimSuffix(e.Message, " (in container '')")
			p.errorf(p.exprLine(n, src, e.Location), w, "condition: %s", msg)
		}
		return nil
	}
	if out := checked.OutputType(); !out.IsExactType(types.BoolType) && !out.IsExactType(types.DynType) {
		p.errorf(n.Line, w, "condition: must be a bool expression, not %s", out)
		return nil
	}
	// Check constant time zones now: a misspelt zone would otherwise make
	// the rule fail closed on every call.
	nat := checked.NativeRep()
	bad := false
	ast.PreOrderVisit(nat.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		call := e.AsCall()
		if !call.IsMemberFunction() || !zoneFunctionNames[call.FunctionName()] || len(call.Args()) != 1 {
			return
		}
		arg := call.Args()[0]
		if arg.Kind() != ast.LiteralKind {
			return
		}
		tz, ok := arg.AsLiteral().(types.String)
		if !ok {
			return
		}
		if _, err := zone(string(tz)); err != nil {
			p.errorf(p.exprLine(n, src, nat.SourceInfo().GetStartLocation(arg.ID())), w, "condition: unknown time zone %q", string(tz))
			bad = true
		}
	}))
	if bad {
		return nil
	}
	prg, err := p.env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		p.errorf(n.Line, w, "condition: %v", err)
		return nil
	}
	return prg
}

// exprLine maps a position inside a condition to a line of the file.
func (p *parser) exprLine(n *yaml.Node, src string, loc common.Location) int {
	if loc == nil || loc.Line() < 1 {
		return n.Line
	}
	switch {
	case n.Style&yaml.LiteralStyle != 0:
		// `when: |` keeps the lines; the text starts below the indicator.
		return n.Line + loc.Line()
	case n.Style&yaml.FoldedStyle != 0:
		// `when: >` joined the lines with single spaces: walk the source
		// lines to find which one holds the offset.
		off := loc.Column()
		for i, l := range strings.Split(src, "\n") {
			if i == loc.Line()-1 {
				break
			}
			off += len(l) + 1
		}
		line := n.Line + 1
		for ; line <= len(p.lines); line++ {
			seg := len(strings.TrimSpace(p.lines[line-1])) + 1
			if off < seg {
				break
			}
			off -= seg
		}
		return min(line, len(p.lines))
	default:
		return n.Line + loc.Line() - 1
	}
}

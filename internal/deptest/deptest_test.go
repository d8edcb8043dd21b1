package deptest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/agenthub/agenthub"

type pkg struct {
	ImportPath   string
	Standard     bool
	Deps         []string // transitive, of the package without its tests
	Imports      []string // direct, of the package without its tests
	TestImports  []string // direct, of its in-package tests
	XTestImports []string // direct, of its external (_test package) tests
}

// listPackages returns every package of the module with its direct and
// transitive dependencies.
func listPackages(tb testing.TB) map[string]pkg {
	tb.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps,Standard,Imports,TestImports,XTestImports", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			tb.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		tb.Fatal("go list found no packages")
	}
	return pkgs
}

func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}

func under(p, dir string) bool {
	full := module + "/" + dir
	return p == full || strings.HasPrefix(p, full+"/")
}

// rule is one boundary. check returns its violations in pkgs, one line
// each; bite is a package that breaks the rule, so that TestRulesBite can
// show the rule is not satisfied by everything.
type rule struct {
	name  string
	check func(pkgs map[string]pkg) []string
	bite  pkg
}

// banDeps is the rule that no package under from (outside except) depends,
// directly or not, on anything banned says.
func banDeps(from string, except []string, banned func(string) bool) func(map[string]pkg) []string {
	return func(pkgs map[string]pkg) []string {
		var out []string
		for path, p := range pkgs {
			if !under(path, from) || strings.HasSuffix(path, "_test") || slices.ContainsFunc(except, func(e string) bool { return under(path, e) }) {
				continue
			}
			for _, d := range p.Deps {
				if banned(d) {
					out = append(out, path+" depends on "+d)
				}
			}
		}
		return out
	}
}

// onlyImportedBy is the rule that only the packages under allowed import
// target directly, in their code or their tests. A package that needs the
// target only for a type or a constant belongs on the other side of a leaf
// package; one that needs its operations is on the list.
func onlyImportedBy(target string, allowed ...string) func(map[string]pkg) []string {
	return func(pkgs map[string]pkg) []string {
		var out []string
		for path, p := range pkgs {
			if under(path, target) || slices.ContainsFunc(allowed, func(a string) bool { return under(path, a) }) {
				continue
			}
			for kind, imports := range map[string][]string{"": p.Imports, " (tests)": p.TestImports, " (external tests)": p.XTestImports} {
				if slices.ContainsFunc(imports, func(i string) bool { return under(i, target) }) {
					out = append(out, path+kind+" imports "+module+"/"+target)
				}
			}
		}
		return out
	}
}

// rules pin the boundaries of DESIGN.md ("Parts and where they live") and
// STYLE.md rule 13. A rule over packages that do not exist yet holds
// trivially and starts biting when they arrive.
var rules = []rule{
	{
		name:  "agents never hold credentials",
		check: banDeps("internal/agent", nil, func(d string) bool { return under(d, "internal/vault") }),
		bite:  pkg{ImportPath: module + "/internal/agent/githubagent", Deps: []string{module + "/internal/vault"}},
	},
	{
		// The agents' tests reach the simulated providers through
		// agenttest; the wiring (simenv) knows where they are served.
		name:  "agents know nothing of the simulation",
		check: banDeps("internal/agent", []string{"internal/agent/agenttest"}, func(d string) bool { return under(d, "internal/sim") }),
		bite:  pkg{ImportPath: module + "/internal/agent", Deps: []string{module + "/internal/sim"}},
	},
	{
		name:  "the planner never holds credentials",
		check: banDeps("internal/planner", nil, func(d string) bool { return under(d, "internal/vault") }),
		bite:  pkg{ImportPath: module + "/internal/planner", Deps: []string{module + "/internal/vault"}},
	},
	{
		name: "policy is pure: stdlib and its expression engine",
		check: banDeps("internal/policy", nil, func(d string) bool {
			return !isStd(d) && !under(d, "internal/policy") && !strings.HasPrefix(d, "cel.dev/") &&
				!strings.HasPrefix(d, "github.com/google/cel-go") && !strings.HasPrefix(d, "google.golang.org/") &&
				!strings.HasPrefix(d, "github.com/antlr4-go/") && !strings.HasPrefix(d, "golang.org/x/") &&
				!strings.HasPrefix(d, "github.com/stoewer/") && !strings.HasPrefix(d, "gopkg.in/yaml") && !strings.HasPrefix(d, "go.yaml.in/")
		}),
		bite: pkg{ImportPath: module + "/internal/policy", Deps: []string{module + "/internal/store"}},
	},
	{
		name: "the store knows nothing of its users",
		check: banDeps("internal/store", nil, func(d string) bool {
			return under(d, "internal/vault") || under(d, "internal/audit") || under(d, "internal/broker")
		}),
		bite: pkg{ImportPath: module + "/internal/store/boltstore", Deps: []string{module + "/internal/audit"}},
	},
	{
		name: "the audit trail does not reach into the vault",
		check: banDeps("internal/audit", nil, func(d string) bool {
			return under(d, "internal/vault") || under(d, "internal/broker")
		}),
		bite: pkg{ImportPath: module + "/internal/audit", Deps: []string{module + "/internal/vault"}},
	},
	{
		name: "the vault does not know the broker or adapters",
		check: banDeps("internal/vault", nil, func(d string) bool {
			return under(d, "internal/broker") || under(d, "internal/slackapp") || under(d, "internal/console") || under(d, "internal/web")
		}),
		bite: pkg{ImportPath: module + "/internal/vault", Deps: []string{module + "/internal/web"}},
	},
	{
		// The vault performs operations with secrets. Packages that only
		// carry a secret (config), seal one (stepup) or show what a
		// connection is (console, through its own view type) use
		// internal/secret and internal/loopback instead; the broker leases
		// and revokes; stack assembles the core; simenv and cmd/bot wire;
		// provider's tests run the real providers' services through it.
		name:  "only the packages that use the vault's operations import it",
		check: onlyImportedBy("internal/vault", "cmd/bot", "internal/simenv", "internal/broker", "internal/stack", "internal/provider"),
		bite:  pkg{ImportPath: module + "/internal/config", Imports: []string{"strings", module + "/internal/vault"}},
	},
	{
		name: "the secret and loopback packages are leaves: the standard library only",
		check: func(pkgs map[string]pkg) []string {
			var out []string
			for _, leaf := range []string{"internal/secret", "internal/loopback"} {
				out = append(out, banDeps(leaf, nil, func(d string) bool { return !isStd(d) })(pkgs)...)
			}
			return out
		},
		bite: pkg{ImportPath: module + "/internal/secret", Deps: []string{"crypto/aes", module + "/internal/store"}},
	},
	{
		name: "adapters never import each other (slackapp)",
		check: banDeps("internal/slackapp", nil, func(d string) bool {
			return under(d, "internal/console") || under(d, "internal/web")
		}),
		bite: pkg{ImportPath: module + "/internal/slackapp", Deps: []string{module + "/internal/console"}},
	},
	{
		name: "adapters never import each other (console)",
		check: banDeps("internal/console", nil, func(d string) bool {
			return under(d, "internal/slackapp") || under(d, "internal/web")
		}),
		bite: pkg{ImportPath: module + "/internal/console", Deps: []string{module + "/internal/slackapp"}},
	},
	{
		name: "adapters never import each other (web)",
		check: banDeps("internal/web", nil, func(d string) bool {
			return under(d, "internal/slackapp") || under(d, "internal/console")
		}),
		bite: pkg{ImportPath: module + "/internal/web", Deps: []string{module + "/internal/console"}},
	},
	{
		name:  "only cmd/bot wires: nothing internal imports a command",
		check: banDeps("internal", nil, func(d string) bool { return under(d, "cmd") }),
		bite:  pkg{ImportPath: module + "/internal/broker", Deps: []string{module + "/cmd/bot"}},
	},
	{
		// The core is assembled in one place, the same for real providers
		// and simulated ones: the composition root and the simulated
		// stack of the tests build it, nothing else does.
		name:  "only cmd/bot and the simulated stack assemble the core",
		check: onlyImportedBy("internal/stack", "cmd/bot", "internal/simenv"),
		bite:  pkg{ImportPath: module + "/internal/slackapp", Imports: []string{module + "/internal/stack"}},
	},
	{
		// A stack does not know which providers it talks to, nor who
		// talks to it.
		name: "the core's assembly knows no providers and no adapter",
		check: banDeps("internal/stack", nil, func(d string) bool {
			return under(d, "internal/sim") || under(d, "internal/simenv") || under(d, "internal/slackapp") ||
				under(d, "internal/console") || under(d, "internal/web") || under(d, "internal/config")
		}),
		bite: pkg{ImportPath: module + "/internal/stack", Deps: []string{module + "/internal/sim"}},
	},
	{
		name:  "the simulated stack is for the demo and tests: no internal package builds on it",
		check: banDeps("internal", nil, func(d string) bool { return under(d, "internal/simenv") }),
		bite:  pkg{ImportPath: module + "/internal/agent/agenttest", Deps: []string{module + "/internal/simenv"}},
	},
}

func TestBoundaries(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			v := r.check(pkgs)
			sort.Strings(v)
			for _, line := range v {
				t.Error(line)
			}
		})
	}
}

// TestRulesBite checks each rule against a package that breaks it, added
// to the real graph, so that no rule (a typo in a path, a field go list
// does not fill) can pass by finding nothing.
func TestRulesBite(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			if r.bite.ImportPath == "" {
				t.Fatal("the rule has no violating package to check it with")
			}
			broken := make(map[string]pkg, len(pkgs)+1)
			for k, v := range pkgs {
				broken[k] = v
			}
			broken[r.bite.ImportPath] = r.bite
			if v := r.check(broken); len(v) == 0 {
				t.Errorf("the rule finds nothing wrong with %s, which breaks it", r.bite.ImportPath)
			}
		})
	}
}

// TestRuleBites checks the checker itself on known edges of the real graph,
// so a typo in the module path, or a go list field left empty, cannot make
// every rule pass vacuously.
func TestRuleBites(t *testing.T) {
	pkgs := listPackages(t)
	has := func(list []string, want string) bool { return slices.Contains(list, module+"/"+want) }
	edges := []struct {
		name, from, to string
		field          func(pkg) []string
	}{
		{"transitive deps", "internal/store/boltstore", "internal/store", func(p pkg) []string { return p.Deps }},
		{"direct imports: the wiring uses the vault", "internal/simenv", "internal/vault", func(p pkg) []string { return p.Imports }},
		{"direct imports: the broker uses the vault", "internal/broker", "internal/vault", func(p pkg) []string { return p.Imports }},
		{"test imports", "internal/broker", "internal/agent/agenttest", func(p pkg) []string { return p.TestImports }},
		{"the exempt agent test helper reaches the simulation", "internal/agent/agenttest", "internal/sim", func(p pkg) []string { return p.Deps }},
		{"the vault seals with the leaf", "internal/vault", "internal/secret", func(p pkg) []string { return p.Imports }},
	}
	for _, e := range edges {
		t.Run(e.name, func(t *testing.T) {
			p, ok := pkgs[module+"/"+e.from]
			if !ok {
				t.Fatalf("%s not listed", e.from)
			}
			if !has(e.field(p), e.to) {
				t.Fatalf("%s does not list %s: %v", e.from, e.to, e.field(p))
			}
		})
	}
	// The leaves have dependencies to check: the standard library's.
	for _, leaf := range []string{"internal/secret", "internal/loopback"} {
		if p := pkgs[module+"/"+leaf]; len(p.Deps) == 0 {
			t.Errorf("%s lists no dependencies: the leaf rule checks nothing", leaf)
		}
	}
}

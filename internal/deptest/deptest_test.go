package deptest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/agenthub/agenthub"

type pkg struct {
	ImportPath string
	Standard   bool
	Deps       []string
}

// listPackages returns every package of the module with its transitive
// dependencies.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps,Standard", module+"/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
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

// TestBoundaries pins the rules of DESIGN.md ("Parts and where they live")
// and STYLE.md rule 13. A rule over packages that do not exist yet holds
// trivially and starts biting when they arrive.
func TestBoundaries(t *testing.T) {
	pkgs := listPackages(t)
	rules := []struct {
		name   string
		from   string            // packages under this directory…
		banned func(string) bool // …must not depend on these
	}{
		{"agents never hold credentials", "internal/agent", func(d string) bool { return under(d, "internal/vault") }},
		{"the planner never holds credentials", "internal/planner", func(d string) bool { return under(d, "internal/vault") }},
		{"policy is pure: stdlib and its expression engine", "internal/policy", func(d string) bool {
			return !isStd(d) && !under(d, "internal/policy") && !strings.HasPrefix(d, "cel.dev/") &&
				!strings.HasPrefix(d, "github.com/google/cel-go") && !strings.HasPrefix(d, "google.golang.org/") &&
				!strings.HasPrefix(d, "github.com/antlr4-go/") && !strings.HasPrefix(d, "golang.org/x/") &&
				!strings.HasPrefix(d, "github.com/stoewer/") && !strings.HasPrefix(d, "gopkg.in/yaml") && !strings.HasPrefix(d, "go.yaml.in/")
		}},
		{"the store knows nothing of its users", "internal/store", func(d string) bool {
			return under(d, "internal/vault") || under(d, "internal/audit") || under(d, "internal/broker")
		}},
		{"the audit trail does not reach into the vault", "internal/audit", func(d string) bool {
			return under(d, "internal/vault") || under(d, "internal/broker")
		}},
		{"the vault does not know the broker or adapters", "internal/vault", func(d string) bool {
			return under(d, "internal/broker") || under(d, "internal/slackapp") || under(d, "internal/console") || under(d, "internal/web")
		}},
		{"adapters never import each other (slackapp)", "internal/slackapp", func(d string) bool {
			return under(d, "internal/console") || under(d, "internal/web")
		}},
		{"adapters never import each other (console)", "internal/console", func(d string) bool {
			return under(d, "internal/slackapp") || under(d, "internal/web")
		}},
		{"adapters never import each other (web)", "internal/web", func(d string) bool {
			return under(d, "internal/slackapp") || under(d, "internal/console")
		}},
		{"only cmd/bot wires: nothing internal imports a command", "internal", func(d string) bool { return under(d, "cmd") }},
		{"the simulated stack is for the demo and tests: no internal package builds on it", "internal", func(d string) bool {
			return under(d, "internal/simenv")
		}},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for path, p := range pkgs {
				if !under(path, r.from) || strings.HasSuffix(path, "_test") {
					continue
				}
				for _, d := range p.Deps {
					if r.banned(d) {
						t.Errorf("%s depends on %s", path, d)
					}
				}
			}
		})
	}
}

// TestRuleBites checks the checker itself on a known edge, so a typo in the
// module path cannot make every rule pass vacuously.
func TestRuleBites(t *testing.T) {
	pkgs := listPackages(t)
	p, ok := pkgs[module+"/internal/store/boltstore"]
	if !ok {
		t.Fatal("internal/store/boltstore not listed")
	}
	found := false
	for _, d := range p.Deps {
		found = found || d == module+"/internal/store"
	}
	if !found {
		t.Fatalf("boltstore's deps do not include internal/store: %v", p.Deps)
	}
}

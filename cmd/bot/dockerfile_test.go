package main

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// No Docker engine runs the tests, so the image is checked where it is
// described: the Dockerfile and .dockerignore at the repository's root.

// dockerInstruction is one Dockerfile instruction, continuation lines joined.
type dockerInstruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, RUN, …
	args string
}

// dockerStage is one FROM and what follows it.
type dockerStage struct {
	from string // the image, without "AS name"
	name string
	ins  []dockerInstruction
}

func parseDockerfile(t testing.TB, text string) []dockerStage {
	t.Helper()
	var (
		stages []dockerStage
		cur    strings.Builder
		start  int
	)
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := dockerInstruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := dockerStage{}
			for _, w := range f {
				if !strings.HasPrefix(w, "--") {
					st.from = w
					break
				}
			}
			if i := slices.IndexFunc(f, func(w string) bool { return strings.EqualFold(w, "AS") }); i >= 0 && i+1 < len(f) {
				st.name = f[i+1]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	for i, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(l)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

func readDockerfile(t testing.TB) []dockerStage {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(b))
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no FROM")
	}
	return stages
}

// find returns the args of st's instructions named cmd.
func (st dockerStage) find(cmd string) []string {
	var out []string
	for _, in := range st.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// dockerVars parses ENV and ARG instructions' NAME=value pairs (and the old
// "ENV NAME value" form).
func dockerVars(args string) map[string]string {
	vars := map[string]string{}
	f := strings.Fields(args)
	if len(f) >= 2 && !strings.Contains(f[0], "=") {
		vars[f[0]] = strings.Join(f[1:], " ")
		return vars
	}
	for _, kv := range f {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = strings.Trim(v, `"'`)
	}
	return vars
}

var goBuildRE = regexp.MustCompile(`\bgo build\b`)

type dockerCheck struct {
	name string
	ok   bool
	why  string
}

// dockerfileChecks are the image's properties, each with what to fix.
func dockerfileChecks(stages []dockerStage) []dockerCheck {
	final := stages[len(stages)-1]
	var builder dockerStage
	for _, st := range stages[:len(stages)-1] {
		for _, r := range st.find("RUN") {
			if goBuildRE.MatchString(r) {
				builder = st
			}
		}
	}
	var build string
	for _, r := range builder.find("RUN") {
		if goBuildRE.MatchString(r) {
			build = r
		}
	}
	finalEnv := map[string]string{}
	for _, e := range final.find("ENV") {
		for k, v := range dockerVars(e) {
			finalEnv[k] = v
		}
	}
	last := func(s []string) string {
		if len(s) == 0 {
			return ""
		}
		return s[len(s)-1]
	}

	return []dockerCheck{
		{"multi-stage", len(stages) >= 2, "the toolchain must not ship: build in one stage, copy the binary into another"},
		{"go build runs in an earlier stage", build != "", "no RUN go build before the final stage"},
		{"builder is a pinned Go 1.26 image", strings.HasPrefix(builder.from, "golang:1.26"), "builder FROM " + builder.from + ", want golang:1.26…"},
		{"modules downloaded in their own layer before the build", moduleLayerFirst(builder), "want COPY go.mod go.sum, RUN go mod download, then the sources"},
		{"CGO off", strings.Contains(build, "CGO_ENABLED=0"), "the distroless static image has no libc: build with CGO_ENABLED=0"},
		{"-trimpath", strings.Contains(build, "-trimpath"), "paths of the build machine must not land in the binary"},
		{"-ldflags strips and sets the version", strings.Contains(build, "-s -w") && strings.Contains(build, "-X main.version="), "want -ldflags \"-s -w -X main.version=$VERSION\""},
		{"VERSION is a build argument", slices.ContainsFunc(builder.find("ARG"), func(a string) bool { return strings.HasPrefix(a, "VERSION") }), "want ARG VERSION in the builder"},
		{"final image has CA certificates", hasCACerts(final), "final FROM " + final.from + ": want gcr.io/distroless/static… or base…, or scratch with ca-certificates.crt copied in"},
		{"final image runs as non-root", nonRoot(last(final.find("USER"))), "final stage USER " + last(final.find("USER")) + ": want a non-root user such as nonroot:nonroot or 65532"},
		{"entrypoint is the binary, exec form", last(final.find("ENTRYPOINT")) == `["/agenthub"]`, "ENTRYPOINT " + last(final.find("ENTRYPOINT"))},
		{"binary copied from the builder", slices.ContainsFunc(final.find("COPY"), func(c string) bool { return strings.Contains(c, "--from=") && strings.HasSuffix(c, " /agenthub") }), "no COPY --from=… /agenthub in the final stage"},
		{"HTTP listener on :8080", finalEnv["AGENTHUB_HTTP_ADDR"] == ":8080", "ENV AGENTHUB_HTTP_ADDR=" + finalEnv["AGENTHUB_HTTP_ADDR"]},
		{"port 8080 exposed", slices.Contains(final.find("EXPOSE"), "8080"), "want EXPOSE 8080"},
		{"embedded store on the volume", finalEnv["AGENTHUB_STORE"] == "bolt:/data/agenthub.db", "ENV AGENTHUB_STORE=" + finalEnv["AGENTHUB_STORE"]},
		{"/data is a volume", slices.Contains(final.find("VOLUME"), "/data"), "want VOLUME /data"},
		{"/data is writable by the runtime user", slices.ContainsFunc(final.find("COPY"), func(c string) bool {
			return (strings.Contains(c, "--chown=65532") || strings.Contains(c, "--chown=nonroot")) && strings.HasSuffix(c, " /data")
		}), "want COPY --from=… --chown=nonroot:nonroot (or 65532) …/data /data: distroless cannot mkdir at run time"},
	}
}

func TestDockerfile(t *testing.T) {
	// -ldflags "-X main.version=…" sets this variable; renaming it would
	// silently leave every image at "dev".
	_ = version
	for _, c := range dockerfileChecks(readDockerfile(t)) {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("Dockerfile: %s", c.why)
			}
		})
	}
}

// TestDockerfileChecksFail shows the checks catch a naive Dockerfile.
func TestDockerfileChecksFail(t *testing.T) {
	const naive = `FROM golang:1.26
WORKDIR /src
COPY . .
RUN go build -o /agenthub ./cmd/bot
USER root
ENTRYPOINT /agenthub
`
	var got []string
	for _, c := range dockerfileChecks(parseDockerfile(t, naive)) {
		if !c.ok {
			got = append(got, c.name)
		}
	}
	want := []string{
		"multi-stage",
		"go build runs in an earlier stage",
		"builder is a pinned Go 1.26 image",
		"modules downloaded in their own layer before the build",
		"CGO off",
		"-trimpath",
		"-ldflags strips and sets the version",
		"VERSION is a build argument",
		"final image has CA certificates",
		"final image runs as non-root",
		"entrypoint is the binary, exec form",
		"binary copied from the builder",
		"HTTP listener on :8080",
		"port 8080 exposed",
		"embedded store on the volume",
		"/data is a volume",
		"/data is writable by the runtime user",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed checks of a naive Dockerfile (-want +got):\n%s", diff)
	}
}

// secretNameRE matches variables that would hold a secret.
var secretNameRE = regexp.MustCompile(`(?i)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL)`)

// TestDockerfileHoldsNoSecrets: ENV and ARG values are stored in the
// image's history for anyone who can pull it, so secrets come only at run
// time.
func TestDockerfileHoldsNoSecrets(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range secretProblems(t, string(b)) {
		t.Errorf("%s: secrets must come at run time (-e, --env-file, *_FILE), never from the image", p)
	}
	// And the check itself bites.
	bad := "FROM scratch\nARG GITHUB_TOKEN\nENV AGENTHUB_VAULT_KEY=abc \\\n  LOG=1\nLABEL x=xoxb-test-1\n"
	got := secretProblems(t, bad)
	want := []string{"Dockerfile:2: ARG GITHUB_TOKEN", "Dockerfile:3: ENV AGENTHUB_VAULT_KEY", `Dockerfile contains "xoxb-"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secretProblems of a leaky Dockerfile (-want +got):\n%s", diff)
	}
}

func secretProblems(t testing.TB, text string) []string {
	t.Helper()
	var out []string
	for _, st := range parseDockerfile(t, text) {
		for _, in := range st.ins {
			if in.cmd != "ENV" && in.cmd != "ARG" {
				continue
			}
			vars := dockerVars(in.args)
			names := make([]string, 0, len(vars))
			for k := range vars {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names {
				if secretNameRE.MatchString(k) {
					out = append(out, fmt.Sprintf("Dockerfile:%d: %s %s", in.line, in.cmd, k))
				}
			}
		}
	}
	for _, tok := range []string{"xoxb-", "xapp-", "xoxp-", "ghp_", "BEGIN PRIVATE KEY"} {
		if strings.Contains(text, tok) {
			out = append(out, fmt.Sprintf("Dockerfile contains %q", tok))
		}
	}
	return out
}

func moduleLayerFirst(st dockerStage) bool {
	modCopy, download, srcCopy := -1, -1, -1
	for i, in := range st.ins {
		switch {
		case in.cmd == "COPY" && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum") && modCopy < 0:
			modCopy = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download") && download < 0:
			download = i
		case in.cmd == "COPY" && (strings.Contains(in.args, "internal") || strings.HasPrefix(in.args, ". ")) && srcCopy < 0:
			srcCopy = i
		}
	}
	return modCopy >= 0 && modCopy < download && download < srcCopy
}

func hasCACerts(st dockerStage) bool {
	switch {
	case strings.HasPrefix(st.from, "gcr.io/distroless/static"), strings.HasPrefix(st.from, "gcr.io/distroless/base"):
		return true
	case st.from == "scratch":
		return slices.ContainsFunc(st.find("COPY"), func(c string) bool { return strings.Contains(c, "ca-certificates.crt") })
	}
	return false
}

func nonRoot(user string) bool {
	name, _, _ := strings.Cut(user, ":")
	return name != "" && name != "root" && name != "0"
}

// TestDockerignore: the build context keeps what the build needs and drops
// the repository's history and any local store or audit export.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			t.Fatalf(".dockerignore: %q: exceptions are not understood by this test; extend it", l)
		}
		patterns = append(patterns, path.Clean(strings.TrimPrefix(l, "/")))
	}
	tests := []struct {
		path    string
		ignored bool
	}{
		{"go.mod", false},
		{"go.sum", false},
		{"cmd/bot/main.go", false},
		{"internal/config/config.go", false},
		{"internal/policy/default.yaml", false}, // embedded in the binary
		{".git/config", true},
		{"agenthub.db", true},
		{"data/agenthub.db", true},
		{"audit.jsonl", true},
		{".env", true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := dockerIgnored(patterns, tt.path); got != tt.ignored {
				t.Errorf(".dockerignore: ignored(%s) = %v, want %v", tt.path, got, tt.ignored)
			}
		})
	}
}

// dockerIgnored reports whether p (slash-separated, relative to the
// context) is excluded: a pattern matches the path or one of its parent
// directories, from the context's root; a leading **/ matches at any depth.
func dockerIgnored(patterns []string, p string) bool {
	parts := strings.Split(p, "/")
	for _, pat := range patterns {
		anywhere := false
		if rest, ok := strings.CutPrefix(pat, "**/"); ok {
			pat, anywhere = rest, true
		}
		for from := range parts {
			if from > 0 && !anywhere {
				break
			}
			for to := from + 1; to <= len(parts); to++ {
				if ok, _ := path.Match(pat, strings.Join(parts[from:to], "/")); ok {
					return true
				}
			}
		}
	}
	return false
}

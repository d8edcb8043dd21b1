package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// result is what one run() call did.
type result struct {
	code           int
	stdout, stderr string
}

func invoke(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(context.Background(), append([]string{"bot"}, args...), getenv, strings.NewReader(stdin), &stdout, &stderr)
	code := exitCode(err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestMain(m *testing.M) {
	// As main does: keep go-redis's dial retries out of the test output.
	redisstore.RouteClientLogs(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

func TestVersion(t *testing.T) {
	r := invoke(t, nil, "", "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "agenthub ") {
		t.Fatalf("bot version = %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"audit without subcommand", []string{"audit"}, "missing subcommand"},
		{"unknown audit subcommand", []string{"audit", "burn"}, `unknown subcommand "burn"`},
		{"bad flag", []string{"audit", "export", "-nope"}, "flag provided but not defined"},
		{"stray argument", []string{"audit", "verify", "extra"}, `unexpected argument "extra"`},
		{"both sources", []string{"audit", "verify", "-store", "bolt:x.db", "-file", "x.jsonl"}, "not both"},
		{"sim on a public address", []string{"sim", "-addr", "0.0.0.0:8090"}, "loopback only"},
		{"sim on no address", []string{"sim", "-addr", "nowhere"}, "-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, nil, "", tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

// TestNoSlackConfig: plain `bot` without settings names every missing one,
// points at the demo and exits 2.
func TestNoSlackConfig(t *testing.T) {
	r := invoke(t, map[string]string{"AGENTHUB_VAULT_KEY": "CANARY-not-a-key"}, "")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	for _, name := range []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "AGENTHUB_VAULT_KEY", "AGENTHUB_AUDIT_KEY", "bot demo"} {
		if !strings.Contains(r.stderr, name) {
			t.Errorf("stderr does not mention %s:\n%s", name, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, "CANARY") {
		t.Error("output echoes a secret's value")
	}
}

// TestBotWithoutDemoSaysWhy: without AGENTHUB_DEMO=1 the bot serves real
// accounts, which people connect through the public listener, through a
// service whose OAuth client is set: without either it says what is
// missing, by name, and exits 2, echoing no secret.
func TestBotWithoutDemoSaysWhy(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32))
	base := map[string]string{
		"SLACK_APP_TOKEN": "xapp-test-CANARY", "SLACK_BOT_TOKEN": "xoxb-test-CANARY",
		"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key,
	}
	for _, tc := range []struct {
		name  string
		set   map[string]string
		wants []string
	}{
		{"no public listener", nil, []string{"AGENTHUB_PUBLIC_URL", "AGENTHUB_DEMO=1"}},
		{"no service", map[string]string{"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": "127.0.0.1:0"},
			[]string{"GITHUB_APP_CLIENT_ID, GITHUB_APP_CLIENT_SECRET", "GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET", "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tc.set)
			r := invoke(t, env, "")
			if r.code != 2 {
				t.Fatalf("exit %d, stderr %q; want 2", r.code, r.stderr)
			}
			for _, want := range tc.wants {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q does not name %q", r.stderr, want)
				}
			}
			if strings.Contains(r.stderr+r.stdout, "CANARY") || strings.Contains(r.stderr+r.stdout, key) {
				t.Error("output echoes a secret's value")
			}
		})
	}
}

// seed records n audit events in s.
func seed(t *testing.T, s store.Store, n int) {
	t.Helper()
	rec, err := audit.NewRecorder(s, bytes.Repeat([]byte("k"), 32), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		_, err := rec.Record(context.Background(), audit.Event{
			Kind:   audit.ProviderCalled,
			Actor:  "T1:U1",
			Agent:  "github",
			Action: "github.get_pull_request",
			Args:   map[string]any{"repo": "acme/payments", "number": i},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkAuditCommands exports the trail through the command line, verifies
// the store and the export, then tampers with the export and expects the
// first bad sequence number.
func checkAuditCommands(t *testing.T, env map[string]string, storeURL string) {
	t.Helper()
	r := invoke(t, env, "", "audit", "verify", "-store", storeURL)
	if r.code != 0 || !strings.Contains(r.stdout, "OK: 20 events (seq 1 to 20), head ") {
		t.Fatalf("verify store: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	head := strings.TrimSpace(r.stdout[strings.LastIndex(r.stdout, "head ")+5:])

	r = invoke(t, env, "", "audit", "export", "-store", storeURL)
	if r.code != 0 {
		t.Fatalf("export: exit %d, %q", r.code, r.stderr)
	}
	lines := strings.SplitAfter(r.stdout, "\n")
	if got, want := len(lines), 21; got != want || lines[20] != "" {
		t.Fatalf("export has %d lines, want 20 and a final newline", got-1)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(file, []byte(r.stdout), 0o600)

	r = invoke(t, nil, "", "audit", "verify", "-file", file)
	if r.code != 0 || !strings.Contains(r.stdout, "head "+head) {
		t.Fatalf("verify export: exit %d, %q; want head %s", r.code, r.stdout, head)
	}
	r = invoke(t, nil, strings.Join(lines, ""), "audit", "verify", "-file", "-")
	if r.code != 0 {
		t.Fatalf("verify export from stdin: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	part := invoke(t, env, "", "audit", "export", "-store", storeURL, "-since", "15")
	if part.code != 0 || strings.Count(part.stdout, "\n") != 6 {
		t.Fatalf("export -since 15: exit %d, %d lines", part.code, strings.Count(part.stdout, "\n"))
	}
	// A partial export verifies only as what it is: cutting the first events
	// off a full export must not pass.
	r = invoke(t, nil, part.stdout, "audit", "verify", "-file", "-")
	if r.code != 1 || !strings.Contains(r.stdout, "starts at seq 15, not 1") {
		t.Fatalf("verify of an export missing seq 1-14: exit %d, %q; want 1", r.code, r.stdout)
	}
	r = invoke(t, nil, part.stdout, "audit", "verify", "-file", "-", "-since", "15")
	if r.code != 0 || !strings.Contains(r.stdout, "OK: 6 events (seq 15 to 20)") {
		t.Fatalf("verify -since 15: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	tampered := map[string]func([]string) []string{
		"altered": func(l []string) []string {
			l[6] = strings.Replace(l[6], `"actor":"T1:U1"`, `"actor":"T1:U9"`, 1)
			return l
		},
		"removed":   func(l []string) []string { return append(l[:6:6], l[7:]...) },
		"reordered": func(l []string) []string { l[6], l[7] = l[7], l[6]; return l },
		"inserted":  func(l []string) []string { return append(l[:7:7], append([]string{l[3]}, l[7:]...)...) },
	}
	for name, tamper := range tampered {
		t.Run(name, func(t *testing.T) {
			bad := tamper(append([]string(nil), lines...))
			if strings.Join(bad, "") == strings.Join(lines, "") {
				t.Fatal("the tampering changed nothing")
			}
			f := filepath.Join(t.TempDir(), "bad.jsonl")
			os.WriteFile(f, []byte(strings.Join(bad, "")), 0o600)
			r := invoke(t, nil, "", "audit", "verify", "-file", f)
			if r.code != 1 || !strings.Contains(r.stdout, "broken at seq ") {
				t.Fatalf("exit %d, %q; want 1 and the first bad seq", r.code, r.stdout)
			}
			want := map[string]string{"altered": "seq 7:", "removed": "seq 7:", "reordered": "seq 7:", "inserted": "seq 4 appears again after seq 7"}[name]
			if !strings.Contains(r.stdout, want) {
				t.Fatalf("verify said %q, want it to name %s", r.stdout, want)
			}
		})
	}
}

func TestAuditCommandsBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agenthub.db")
	s, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, s, 20)
	s.Close()
	checkAuditCommands(t, nil, "bolt:"+path)

	// The default store comes from AGENTHUB_STORE.
	r := invoke(t, map[string]string{"AGENTHUB_STORE": "bolt:" + path}, "", "audit", "verify")
	if r.code != 0 || !strings.Contains(r.stdout, "OK: 20 events") {
		t.Fatalf("verify with AGENTHUB_STORE: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestAuditCommandsRedis(t *testing.T) {
	srv := redistest.Start(t)
	seed(t, srv.Open(), 20)
	checkAuditCommands(t, map[string]string{"AGENTHUB_REDIS_PREFIX": srv.Prefix()}, srv.URL())
}

// TestAuditVerifyStoreTampered alters an event inside Redis itself, below
// the store contract, as someone with write access to the database would.
func TestAuditVerifyStoreTampered(t *testing.T) {
	srv := redistest.Start(t)
	seed(t, srv.Open(), 5)
	ctx := context.Background()
	c := srv.NewClient()
	logKey := srv.Prefix() + ":{l:" + audit.DefaultLog + "}"
	v, err := c.LIndex(ctx, logKey, 2).Result()
	if err != nil {
		t.Fatalf("read entry 3 at %s: %v", logKey, err)
	}
	forged := strings.Replace(v, `"actor":"T1:U1"`, `"actor":"T1:U2"`, 1)
	if forged == v {
		t.Fatal("entry 3 has no actor to alter")
	}
	if err := c.LSet(ctx, logKey, 2, forged).Err(); err != nil {
		t.Fatal(err)
	}
	r := invoke(t, map[string]string{"AGENTHUB_REDIS_PREFIX": srv.Prefix()}, "", "audit", "verify", "-store", srv.URL())
	if r.code != 1 || !strings.Contains(r.stdout, "broken at seq 3") {
		t.Fatalf("exit %d, %q %q; want 1 naming seq 3", r.code, r.stdout, r.stderr)
	}
}

func TestAuditStoreErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	r := invoke(t, nil, "", "audit", "verify", "-store", "bolt:"+missing)
	if r.code != 1 || !strings.Contains(r.stderr, "nope.db") {
		t.Fatalf("verify of a missing file: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("verify created %s", missing)
	}
	const pw = "CANARY-redis-password"
	r = invoke(t, nil, "", "audit", "export", "-store", "redis://user:"+pw+"@127.0.0.1:1/0")
	if r.code != 1 || strings.Contains(r.stderr+r.stdout, pw) || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Fatalf("unreachable redis: exit %d, stderr %q; want 1, the address, no password", r.code, r.stderr)
	}
	r = invoke(t, nil, "", "audit", "export", "-store", "postgres://u:"+pw+"@h/db")
	if r.code != 1 || strings.Contains(r.stderr, pw) {
		t.Fatalf("unsupported store: exit %d, stderr %q", r.code, r.stderr)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// Store record kinds the rekey tests look at below the vault and step-up
// APIs, as an operator inspecting the database would.
const (
	connectionKind  = "connection"       // vault.ConnectionKind
	enrolmentKind   = "stepup"           // the step-up enrolment, ID "totp"
	stepUpIndexKind = "stepup-principal" // the step-up principal index
)

// rekeyStore is a store the rekey command is run against: its URL and
// environment for the command, and a way for the test to look inside
// between runs (the embedded store's file is one process's at a time).
type rekeyStore struct {
	url  string
	env  map[string]string // AGENTHUB_REDIS_PREFIX for Redis
	with func(tb testing.TB, fn func(store.Store))
}

func boltRekeyStore(tb testing.TB) rekeyStore {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "agenthub.db")
	return rekeyStore{url: "bolt:" + path, with: func(tb testing.TB, fn func(store.Store)) {
		tb.Helper()
		st, err := boltstore.Open(path, boltstore.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		defer st.Close()
		fn(st)
	}}
}

func redisRekeyStore(tb testing.TB) rekeyStore {
	tb.Helper()
	rs := redistest.Start(tb)
	st := rs.Open()
	return rekeyStore{url: rs.URL(), env: map[string]string{"AGENTHUB_REDIS_PREFIX": rs.Prefix()},
		with: func(_ testing.TB, fn func(store.Store)) { fn(st) }}
}

// sealed is what a bot under one vault key left in a store: people
// connected to every simulated service and enrolled in step-up.
type sealed struct {
	providers *simenv.Providers
	auditKey  string
	people    []broker.Principal
	rand      *recordingRand // every token the simulated providers issued
	totp      []string       // the people's TOTP secrets
}

// stackOn starts the simulated stack on st with the keys a bot whose
// AGENTHUB_VAULT_KEY is vaultKey (and AGENTHUB_VAULT_OLD_KEYS old) uses:
// the same derivation as run().
func (s *sealed) stackOn(tb testing.TB, st store.Store, vaultKey string, old ...string) *simenv.Env {
	tb.Helper()
	env := map[string]string{"AGENTHUB_VAULT_KEY": vaultKey, "AGENTHUB_AUDIT_KEY": s.auditKey, "AGENTHUB_VAULT_OLD_KEYS": strings.Join(old, ",")}
	cfg := mustConfig(tb, env)
	k, err := loadKeys(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := simenv.Start(context.Background(), simenv.Options{Store: st, Providers: s.providers,
		AuditKey: k.audit, VaultKey: k.vault, StepUpKey: k.stepUp, VaultOldKeys: k.vaultOld, StepUpOldKeys: k.stepUpOld})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// seal connects n people to every service and enrols them in step-up,
// under vaultKey. The last one enrolled before the step-up index existed:
// only the vault's principal index names them.
func seal(tb testing.TB, rs rekeyStore, vaultKey string, n int) *sealed {
	tb.Helper()
	s := &sealed{auditKey: newKey(tb), rand: &recordingRand{}}
	s.providers = simenv.StartProviders(nil, s.rand)
	tb.Cleanup(s.providers.Server.Close)
	ctx := context.Background()
	rs.with(tb, func(st store.Store) {
		e := s.stackOn(tb, st, vaultKey)
		for i := range n {
			p := broker.Principal{Team: "T0REKEY", User: fmt.Sprintf("U%03d", i)}
			s.people = append(s.people, p)
			if err := e.ConnectAll(ctx, p); err != nil {
				tb.Fatal(err)
			}
			enr, err := e.StepUp.Enroll(ctx, p.String(), p.User)
			if err != nil {
				tb.Fatal(err)
			}
			code, err := totp.GenerateCode(enr.Secret.Reveal(), time.Now())
			if err != nil {
				tb.Fatal(err)
			}
			if err := e.StepUp.Confirm(ctx, p.String(), code); err != nil {
				tb.Fatal(err)
			}
			s.totp = append(s.totp, enr.Secret.Reveal())
		}
		last := s.people[n-1].String()
		if err := st.Delete(ctx, store.Key{Kind: stepUpIndexKind, ID: last}); err != nil {
			tb.Fatal(err)
		}
	})
	return s
}

// usable checks that everyone's connections and enrolment open under
// vaultKey alone.
func (s *sealed) usable(tb testing.TB, rs rekeyStore, vaultKey string) {
	tb.Helper()
	ctx := context.Background()
	rs.with(tb, func(st store.Store) {
		e := s.stackOn(tb, st, vaultKey)
		for _, p := range s.people {
			for _, service := range simenv.Services {
				if err := callProvider(ctx, e.Vault, e.URL, p.String(), service); err != nil {
					tb.Errorf("%s connection of %s under the new key alone: %v", service, p, err)
				}
			}
			if _, err := e.StepUp.DemoCode(ctx, p.String()); err != nil {
				tb.Errorf("step-up enrolment of %s under the new key alone: %v", p, err)
			}
		}
	})
}

// snapshot returns the stored connection and enrolment records, by
// principal and kind/ID, with the key ID each names.
func snapshot(tb testing.TB, rs rekeyStore, people []broker.Principal) map[string]storedRecord {
	tb.Helper()
	out := map[string]storedRecord{}
	rs.with(tb, func(st store.Store) {
		for _, p := range people {
			for _, kind := range []string{connectionKind, enrolmentKind} {
				items, err := st.List(context.Background(), p.String(), kind)
				if err != nil {
					tb.Fatal(err)
				}
				for _, it := range items {
					var r struct {
						KeyID string `json:"key_id"`
					}
					if err := json.Unmarshal(it.Value, &r); err != nil {
						tb.Fatal(err)
					}
					out[p.String()+"/"+kind+"/"+it.Key.ID] = storedRecord{kind: kind, keyID: r.KeyID, value: string(it.Value)}
				}
			}
		}
	})
	return out
}

type storedRecord struct {
	kind, keyID, value string
}

// keyIDs are the IDs of the keys a vault key gives: its own, which seals
// connections, and that of the step-up key derived from it, which seals
// enrolments.
type keyIDs struct{ vault, stepUp string }

// of returns the ID a record of kind should name.
func (ids keyIDs) of(kind string) string {
	if kind == enrolmentKind {
		return ids.stepUp
	}
	return ids.vault
}

func keyIDsOf(tb testing.TB, key string) keyIDs {
	tb.Helper()
	k, err := loadKeys(mustConfig(tb, map[string]string{"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key}))
	if err != nil {
		tb.Fatal(err)
	}
	var ids keyIDs
	for _, x := range []struct {
		raw []byte
		id  *string
	}{{k.vault, &ids.vault}, {k.stepUp, &ids.stepUp}} {
		kr, err := secret.NewKeyring(x.raw, nil)
		if err != nil {
			tb.Fatal(err)
		}
		*x.id = kr.CurrentKeyID()
	}
	return ids
}

// rekeyEvents returns the rekey runs' audit events, oldest first.
func rekeyEvents(tb testing.TB, rs rekeyStore, auditKey string) []audit.Event {
	tb.Helper()
	var out []audit.Event
	rs.with(tb, func(st store.Store) {
		raw, err := base64.StdEncoding.DecodeString(auditKey)
		if err != nil {
			tb.Fatal(err)
		}
		rec, err := audit.NewRecorder(st, raw, audit.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		events, err := rec.Tail(context.Background(), 10_000)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range events {
			if e.Kind == audit.VaultRekeyStarted || e.Kind == audit.VaultRekeyed {
				out = append(out, e)
			}
		}
		if _, err := audit.VerifyStore(context.Background(), st, audit.DefaultLog); err != nil {
			tb.Errorf("the audit chain does not verify after the rekey runs: %v", err)
		}
	})
	return out
}

// cancelOn is stdout that cancels the run once a line containing marker
// has been written: an operator's Ctrl-C at that moment.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
	}
	return n, err
}

func (w *cancelOn) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// rekeyEnv is the environment of "bot rekey" after a rotation from oldKey
// to newKey.
func rekeyEnv(rs rekeyStore, s *sealed, newKey, oldKey string) map[string]string {
	env := map[string]string{
		"AGENTHUB_STORE":          rs.url,
		"AGENTHUB_VAULT_KEY":      newKey,
		"AGENTHUB_VAULT_OLD_KEYS": oldKey,
		"AGENTHUB_AUDIT_KEY":      s.auditKey,
	}
	for k, v := range rs.env {
		env[k] = v
	}
	return env
}

// checkRekeyResumes rotates a store sealed under one key to another with
// "bot rekey": a run interrupted after the first person, then a second
// run that finishes the job without rewriting what the first did; then
// everything opens under the new key alone, and both runs are on the
// audit record.
func checkRekeyResumes(t *testing.T, rs rekeyStore) {
	t.Helper()
	oldKey, newKey := newKey(t), newKey(t)
	s := seal(t, rs, oldKey, 4)
	env := rekeyEnv(rs, s, newKey, oldKey)
	oldIDs, newIDs := keyIDsOf(t, oldKey), keyIDsOf(t, newKey)
	newID := newIDs.vault
	before := snapshot(t, rs, s.people)
	if got, want := len(before), 4*(len(simenv.Services)+1); got != want {
		t.Fatalf("%d sealed records before the rekey, want %d", got, want)
	}

	// Interrupted once the first person's connections are done.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOn{marker: "connections: 1 of 4 principals\n", cancel: cancel}
	var stderr bytes.Buffer
	code := exitCode(run(ctx, []string{"bot", "rekey"}, func(k string) string { return env[k] }, strings.NewReader(""), out, &stderr), &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "interrupted: run it again to finish") {
		t.Fatalf("interrupted rekey: exit %d, stderr %q; want 1 and a word on running it again", code, stderr.String())
	}
	if !strings.Contains(out.String(), "connections: 3 resealed") || strings.Contains(out.String(), "enrolments:") {
		t.Errorf("interrupted rekey's stdout:\n%s\nwant the first person's 3 connections resealed and no enrolment touched", out.String())
	}
	middle := snapshot(t, rs, s.people)
	var done []string
	for k, r := range middle {
		switch r.keyID {
		case newIDs.of(r.kind):
			done = append(done, k)
		case oldIDs.of(r.kind):
		default:
			t.Errorf("%s is sealed under key %s, neither the old nor the new one", k, r.keyID)
		}
	}
	if len(done) != len(simenv.Services) {
		t.Errorf("records under the new key after the interruption: %v, want the first person's %d connections", done, len(simenv.Services))
	}

	// The second run finishes, and does not rewrite what is done.
	r := invoke(t, env, "", "rekey")
	if r.code != 0 {
		t.Fatalf("second rekey: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"rekey: resealing under the current key " + newID + "; 1 old key listed\n",
		"connections: 4 of 4 principals\n",
		"connections: 9 resealed\n",
		"enrolments: 3 of 3 principals\n", // the step-up index lacks the last person
		"enrolments: 1 more principal from the vault's index\n",
		"enrolments: 4 resealed\n",
		"rekey: 9 connections and 4 step-up enrolments resealed\n",
		"rekey: done: nothing needs an old key any more",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("second rekey's stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	after := snapshot(t, rs, s.people)
	for k, rec := range after {
		if want := newIDs.of(rec.kind); rec.keyID != want {
			t.Errorf("%s is sealed under %s after the second run, want the new key %s", k, rec.keyID, want)
		}
	}
	for _, k := range done {
		if after[k].value != middle[k].value {
			t.Errorf("%s was rewritten by the second run though the first had resealed it", k)
		}
	}
	s.usable(t, rs, newKey)

	// A third run has nothing left to reseal.
	r = invoke(t, env, "", "rekey")
	if r.code != 0 || !strings.Contains(r.stdout, "rekey: 0 connections and 0 step-up enrolments resealed") {
		t.Errorf("third rekey: exit %d, stdout %q; want nothing resealed", r.code, r.stdout)
	}

	type summary struct {
		Kind   audit.Kind
		Result string
		Detail map[string]string
	}
	var got []summary
	for _, e := range rekeyEvents(t, rs, s.auditKey) {
		got = append(got, summary{e.Kind, e.Result, e.Detail})
		if e.Actor != rekeyActor {
			t.Errorf("%s event's actor = %q, want %q", e.Kind, e.Actor, rekeyActor)
		}
	}
	started := summary{audit.VaultRekeyStarted, "started", map[string]string{"key": newID, "old_keys": "1"}}
	ended := func(result string, conns, enrols int) summary {
		return summary{audit.VaultRekeyed, result, map[string]string{"key": newID,
			"connections_resealed": fmt.Sprint(conns), "connections_failed": "0",
			"enrolments_resealed": fmt.Sprint(enrols), "enrolments_failed": "0"}}
	}
	want := []summary{started, ended("interrupted", 3, 0), started, ended("ok", 9, 4), started, ended("ok", 0, 0)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rekey audit events (-want +got):\n%s", diff)
	}
}

func TestRekeyBolt(t *testing.T) { checkRekeyResumes(t, boltRekeyStore(t)) }

func TestRekeyRedis(t *testing.T) { checkRekeyResumes(t, redisRekeyStore(t)) }

// TestRekeyNamesWhatFailedAndShowsNoSecret: records that no listed key
// opens are named by principal and service, everything else is resealed,
// the exit status is 1; and no key, token or TOTP secret appears in
// anything the command printed or logged, at debug level.
func TestRekeyNamesWhatFailedAndShowsNoSecret(t *testing.T) {
	rs := boltRekeyStore(t)
	oldKey, newKey, lostKey := newKey(t), newKey(t), newKey(t)
	s := seal(t, rs, oldKey, 3)
	// Person 1 reconnected google, and person 2 enrolled again, under a key
	// since lost.
	ctx := context.Background()
	rs.with(t, func(st store.Store) {
		e := s.stackOn(t, st, lostKey)
		if err := e.Connect(ctx, s.people[1], "google"); err != nil {
			t.Fatal(err)
		}
		if err := e.StepUp.Reset(ctx, s.people[2].String()); err != nil {
			t.Fatal(err)
		}
		enr, err := e.StepUp.Enroll(ctx, s.people[2].String(), "")
		if err != nil {
			t.Fatal(err)
		}
		s.totp = append(s.totp, enr.Secret.Reveal())
	})
	env := rekeyEnv(rs, s, newKey, oldKey)
	env["AGENTHUB_LOG_LEVEL"] = "debug"
	r := invoke(t, env, "", "rekey")
	if r.code != 1 {
		t.Fatalf("rekey with unopenable records: exit %d, want 1; stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"rekey: 1 connection and 1 step-up enrolment could not be resealed; keep AGENTHUB_VAULT_OLD_KEYS until they are:",
		"google connection of " + s.people[1].String() + ": ",
		"principal " + s.people[2].String() + ": ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "connections: 8 resealed") || !strings.Contains(r.stdout, "enrolments: 2 resealed") {
		t.Errorf("stdout:\n%s\nwant the 8 other connections and 2 other enrolments resealed", r.stdout)
	}
	events := rekeyEvents(t, rs, s.auditKey)
	if len(events) != 2 || events[1].Result != "failed" || events[1].Detail["connections_failed"] != "1" || events[1].Detail["enrolments_failed"] != "1" {
		t.Errorf("audit events = %+v, want a start and a failed end counting 1 and 1", events)
	}

	var secrets []string
	for _, k := range []string{oldKey, newKey, lostKey, s.auditKey} {
		secrets = append(secrets, keyForms(t, k)...)
	}
	for _, c := range s.rand.values() {
		if len(c) >= 8 {
			secrets = append(secrets, hex.EncodeToString(c), base64.StdEncoding.EncodeToString(c), base64.RawURLEncoding.EncodeToString(c), string(c))
		}
	}
	secrets = append(secrets, s.totp...)
	if len(s.totp) != 4 || len(s.rand.values()) < 3*3*2 {
		t.Fatalf("%d TOTP secrets and %d random draws known: the check proves little", len(s.totp), len(s.rand.values()))
	}
	for name, text := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
		for i, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("%s holds secret #%d", name, i) // which, never what
			}
		}
		if loc := tokenShape.FindStringIndex(text); loc != nil {
			t.Errorf("%s holds a provider token at byte %d", name, loc[0])
		}
	}
}

func TestRekeyRefuses(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string
	}{
		{"no old keys: nothing to do", map[string]string{"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key, "AGENTHUB_STORE": "bolt:" + path},
			nil, 2, "AGENTHUB_VAULT_OLD_KEYS lists no old key, so there is nothing to do"},
		{"only the current key listed as old", map[string]string{"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key, "AGENTHUB_VAULT_OLD_KEYS": key, "AGENTHUB_STORE": "bolt:" + path},
			nil, 2, "nothing to do"},
		{"no keys at all", nil, nil, 2, "AGENTHUB_VAULT_KEY"},
		{"a bad old key", map[string]string{"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key, "AGENTHUB_VAULT_OLD_KEYS": "CANARY-not-a-key"},
			nil, 2, "AGENTHUB_VAULT_OLD_KEYS"},
		{"no store file", map[string]string{"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key, "AGENTHUB_VAULT_OLD_KEYS": newKey(t)},
			[]string{"-store", "bolt:" + path}, 1, "nope.db"},
		{"a stray argument", map[string]string{"AGENTHUB_VAULT_KEY": key, "AGENTHUB_AUDIT_KEY": key, "AGENTHUB_VAULT_OLD_KEYS": newKey(t)},
			[]string{"now"}, 2, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, tt.env, "", append([]string{"rekey"}, tt.args...)...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.wantCode, tt.want)
			}
			if strings.Contains(r.stdout+r.stderr, key) || strings.Contains(r.stdout+r.stderr, "CANARY") {
				t.Error("the output shows a key")
			}
		})
	}
	if r := invoke(t, nil, "", "rekey", "-h"); r.code != 0 || !strings.Contains(r.stderr, "bot rekey [-store URL]") {
		t.Errorf("rekey -h: exit %d, stderr %q; want 0 and the usage", r.code, r.stderr)
	}
	if r := invoke(t, nil, "", "help"); !regexp.MustCompile(`(?m)^  bot rekey `).MatchString(r.stdout) {
		t.Errorf("bot help does not list rekey:\n%s", r.stdout)
	}
}

// mustConfig loads the configuration "bot rekey" loads from env.
func mustConfig(tb testing.TB, env map[string]string) *config.Config {
	tb.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] }, os.ReadFile, config.NeedVault|config.NeedAudit)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// TestRekeyNeverSealsUnderAKeyTheBotLacks: the bot records which key it
// seals under; a rekey run with another key (a typo, the wrong secret
// file) refuses before it reseals anything, naming both key IDs.
func TestRekeyNeverSealsUnderAKeyTheBotLacks(t *testing.T) {
	rs := boltRekeyStore(t)
	botKey, wrongKey := newKey(t), newKey(t)
	s := seal(t, rs, botKey, 2)
	rs.with(t, func(st store.Store) {
		keyring, err := secret.ParseKeys(botKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := noteSealingKey(context.Background(), st, keyring); err != nil {
			t.Fatal(err)
		}
	})
	before := snapshot(t, rs, s.people)
	env := rekeyEnv(rs, s, wrongKey, botKey)
	var stdout, stderr bytes.Buffer
	code := exitCode(run(context.Background(), []string{"bot", "rekey"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr), &stderr)
	if code != 2 || !strings.Contains(stderr.String(), keyIDsOf(t, botKey).vault) || !strings.Contains(stderr.String(), keyIDsOf(t, wrongKey).vault) {
		t.Fatalf("rekey under a key the bot lacks: exit %d, stderr %q; want 2 naming both key IDs", code, stderr.String())
	}
	if diff := cmp.Diff(before, snapshot(t, rs, s.people), cmp.AllowUnexported(storedRecord{})); diff != "" {
		t.Errorf("records changed (-before +after):\n%s", diff)
	}
}

// onLine is stdout that calls fn once, when a line containing marker has
// been written.
type onLine struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	fn     func()
	done   bool
}

func (w *onLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.marker) {
		w.done = true
		w.fn()
	}
	return n, err
}

// TestRekeyLooksAgainBeforeItSaysDone: a replica still running with the old
// key that connects someone while rekey runs leaves a record rekey did not
// see; its last look finds it, and it does not say the old key can go.
func TestRekeyLooksAgainBeforeItSaysDone(t *testing.T) {
	rs := redisRekeyStore(t)
	oldKey, newKey := newKey(t), newKey(t)
	s := seal(t, rs, oldKey, 2)
	env := rekeyEnv(rs, s, newKey, oldKey)
	out := &onLine{marker: "connections: 6 resealed", fn: func() {
		rs.with(t, func(st store.Store) {
			old := s.stackOn(t, st, oldKey)
			if err := old.Connect(context.Background(), broker.Principal{Team: "T0REKEY", User: "ULATE"}, simenv.Services[0]); err != nil {
				t.Error(err)
			}
		})
	}}
	var stderr bytes.Buffer
	code := exitCode(run(context.Background(), []string{"bot", "rekey"}, func(k string) string { return env[k] }, strings.NewReader(""), out, &stderr), &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "still sealed under another key (1 connection under key "+keyIDsOf(t, oldKey).vault) {
		t.Fatalf("exit %d, stderr %q; want 1 and the connection left under the old key", code, stderr.String())
	}
	if strings.Contains(out.buf.String(), "remove AGENTHUB_VAULT_OLD_KEYS") {
		t.Error("rekey said the old key can go")
	}
}

// TestRekeyLooksAgainAtEnrolments: a replica still running with the old key
// that enrols someone in step-up after rekey resealed the enrolments leaves
// an enrolment only the old key opens; the last look finds that too.
func TestRekeyLooksAgainAtEnrolments(t *testing.T) {
	rs := redisRekeyStore(t)
	oldKey, newKey := newKey(t), newKey(t)
	s := seal(t, rs, oldKey, 2)
	env := rekeyEnv(rs, s, newKey, oldKey)
	late := s.people[0] // connected, so the vault's index names them
	out := &onLine{marker: "enrolments: 2 resealed", fn: func() {
		rs.with(t, func(st store.Store) {
			old := s.stackOn(t, st, oldKey)
			if err := old.StepUp.Reset(context.Background(), late.String()); err != nil {
				t.Error(err)
			}
			if _, err := old.StepUp.Enroll(context.Background(), late.String(), late.User); err != nil {
				t.Error(err)
			}
		})
	}}
	var stderr bytes.Buffer
	code := exitCode(run(context.Background(), []string{"bot", "rekey"}, func(k string) string { return env[k] }, strings.NewReader(""), out, &stderr), &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "1 step-up enrolment under key "+keyIDsOf(t, oldKey).stepUp) {
		t.Fatalf("exit %d, stderr %q; want 1 and the enrolment left under the old key", code, stderr.String())
	}
	if strings.Contains(out.buf.String(), "remove AGENTHUB_VAULT_OLD_KEYS") {
		t.Error("rekey said the old key can go")
	}
}

package stepup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// flakyRecorder passes events to a real recorder, failing every call while
// down is set.
type flakyRecorder struct {
	rec  *audit.Recorder
	down bool
}

func (f *flakyRecorder) Record(ctx context.Context, e audit.Event) (audit.Event, error) {
	if f.down {
		return audit.Event{}, errAuditDown
	}
	return f.rec.Record(ctx, e)
}

// TestSecretNeverLeaks drives every operation, right and wrong, with a
// real audit trail and JSON logs, and checks that neither the secret, nor
// its URI, nor any code typed, nor a sealing key appears in a log line, an
// audit event, an error text (lockouts and key rotation included), a
// printed Enrolment or the store in the clear. Randomness
// and the clock are fixed, so the hashes and nonces in the output are the
// same every run and a chance match of a code cannot come and go.
func TestSecretNeverLeaks(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	st := memstore.New(memstore.Options{Now: c.Now})
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec, err := audit.NewRecorder(st, []byte("audit-key-audit-key-audit-key-32"), audit.Options{Logger: logger, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	recorder := &flakyRecorder{rec: rec}
	svc, err := New(Options{Store: st, Key: testKey, Audit: recorder, Logger: logger, Now: c.Now, Rand: seededRand(), Demo: true})
	if err != nil {
		t.Fatal(err)
	}

	var (
		codes []string
		texts []string // error texts and printed forms
	)
	note := func(err error) {
		if err != nil {
			texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
		}
	}
	verifyWith := func(svc *Service, code string) {
		codes = append(codes, code)
		note(svc.Verify(ctx, alice, "req", code))
	}
	verify := func(code string) { verifyWith(svc, code) }

	enr, err := svc.Enroll(ctx, alice, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	secret, uri := enr.Secret.Reveal(), enr.URI.Reveal()
	if len(secret) < 32 || !strings.Contains(uri, secret) {
		t.Fatal("the enrolment does not hold a 160-bit secret in its URI")
	}
	js, err := json.Marshal(enr)
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, string(js), fmt.Sprintf("%v %+v %#v %s %q", enr, enr, enr, enr, enr))
	_, err = svc.Enroll(ctx, "", "")
	note(err)

	wrong := wrongCode(t, secret, c.Now())
	codes = append(codes, wrong, codeAt(t, secret, c.Now()))
	note(svc.Confirm(ctx, alice, wrong))
	note(svc.Confirm(ctx, alice, codeAt(t, secret, c.Now())))

	verify(codeAt(t, secret, c.Now()))             // replay
	verify(codeAt(t, secret, c.Now().Add(Period))) // passes
	_, err = svc.DemoCode(ctx, alice)              // the current and next steps are used
	note(err)
	recorder.down = true
	c.Advance(time.Minute)
	demo, err := svc.DemoCode(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	codes = append(codes, demo)
	verify(codeAt(t, secret, c.Now())) // passes, audit fails
	verify(wrongCode(t, secret, c.Now()))
	recorder.down = false
	for range MaxFailures {
		verify(wrongCode(t, secret, c.Now()))
	}
	c.Advance(time.Minute)
	verify(codeAt(t, secret, c.Now())) // locked
	verify(codeAt(t, secret, c.Now()) + "1")
	_, err = svc.DemoCode(ctx, alice)
	note(err)
	codes = append(codes, wrong)

	// The second lockout, a rung up, engaged and then refused.
	c.Advance(LockoutDuration)
	for range MaxFailures {
		verify(wrongCode(t, secret, c.Now()))
	}
	verify(codeAt(t, secret, c.Now()))

	// A key rotation: the secret opens under the old key, moves to the new
	// one, and does not open where neither is held.
	rotated, err := New(Options{Store: st, Key: newKey, OldKeys: [][]byte{testKey}, Audit: recorder, Logger: logger,
		Now: c.Now, Rand: rand.NewChaCha8([32]byte{4, 5, 6})})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	verifyWith(rotated, codeAt(t, secret, c.Now()))
	_, err = rotated.Reseal(ctx, alice)
	note(err)
	_, err = rotated.ResealAll(ctx, nil)
	note(err)
	stranger, err := New(Options{Store: st, Key: strangerKey, Audit: recorder, Logger: logger, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	verifyWith(stranger, codeAt(t, secret, c.Now().Add(Period)))
	_, err = stranger.Reseal(ctx, alice)
	note(err)
	_, err = stranger.ResealAll(ctx, nil)
	note(err)
	_, err = New(Options{Store: st, Key: newKey, OldKeys: [][]byte{testKey[:31]}, Audit: recorder})
	note(err)

	if len(texts) < 5 {
		t.Fatalf("only %d error texts collected; the scenario did not run", len(texts))
	}
	for _, want := range []string{"locked until", "neither Key nor one of OldKeys", "old key 1"} {
		if !strings.Contains(strings.Join(texts, "\n"), want) {
			t.Fatalf("no error text says %q; the scenario did not run", want)
		}
	}
	// The chain holds events, so the audit sink really ran.
	if head, err := st.Head(ctx, audit.DefaultLog); err != nil || head.Seq < 10 {
		t.Fatalf("audit log head = %d, %v; want at least 10 events", head.Seq, err)
	}
	places := map[string]string{
		"logs":   logs.String(),
		"errors": strings.Join(texts, "\n"),
		"store":  string(st.Dump()),
	}
	canaries := map[string]string{"secret": secret, "uri": uri, "lowercase secret": strings.ToLower(secret)}
	for name, key := range map[string][]byte{"key": testKey, "new key": newKey, "stranger key": strangerKey} {
		canaries[name] = string(key)
		canaries[name+" in base64"] = base64.StdEncoding.EncodeToString(key)
		canaries[name+" in hex"] = hex.EncodeToString(key)
	}
	for i, code := range codes {
		if len(code) < Digits {
			t.Fatalf("code %d is empty or short; the scenario is wrong", i)
		}
		canaries[fmt.Sprintf("code %d", i)] = code
	}
	for where, text := range places {
		if text == "" {
			t.Errorf("nothing captured in %s", where)
		}
		for name, canary := range canaries {
			if strings.Contains(text, canary) {
				t.Errorf("the %s appears in the %s", name, where) // never print it
			}
		}
	}
}

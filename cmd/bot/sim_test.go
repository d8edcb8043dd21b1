package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/sim"
)

// TestSimServesUntilCanceled: `bot sim` says where it listens, serves the
// simulated providers there (their OAuth endpoints among them) and stops
// cleanly when its context ends.
func TestSimServesUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr logtest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"bot", "sim", "-addr", "127.0.0.1:0"}, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	deadline := time.Now().Add(10 * time.Second)
	for addr.FindString(stdout.String()) == "" {
		select {
		case err := <-done:
			t.Fatalf("bot sim ended early: %v (stderr %q)", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bot sim printed no address: %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := addr.FindString(stdout.String())
	// The consent page refuses a request without a client: an answer from
	// the simulated provider, not from some other server.
	resp, err := http.Get(base + sim.AuthorizePath(sim.ServiceGitHub))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("authorize without a client = %d, want 400", resp.StatusCode)
	}
	// A name rebound to 127.0.0.1 reaches the port but not the providers.
	req, err := http.NewRequest(http.MethodGet, base+sim.AuthorizePath(sim.ServiceGitHub), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "rebound.example.com:" + base[strings.LastIndexByte(base, ':')+1:]
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("request for another host name = %d, want 421", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bot sim after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bot sim did not stop")
	}
}

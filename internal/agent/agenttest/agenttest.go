// Package agenttest connects agent tests to internal/sim: an *http.Client whose transport
// presents a sim-issued token, as a vault lease's client would, without the vault.
package agenttest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
)

// Principal is the person the test tokens are issued to.
const Principal = "T1:U1"

// Base is the URL the in-process sim transport serves, whatever its host.
const Base = "http://sim.invalid"

// Endpoints are the agents' endpoints for the in-process sim.
func Endpoints() agent.Endpoints { return EndpointsAt(Base) }

// EndpointsAt returns the agents' endpoints for simulated providers served
// at base (an httptest.Server URL, or any URL when the client's transport
// is sim.World.Transport), as simenv.Endpoints does for the wiring.
func EndpointsAt(base string) agent.Endpoints {
	base = strings.TrimSuffix(base, "/")
	return agent.Endpoints{
		GitHub:   base + sim.GitHubPrefix,
		Calendar: base + sim.CalendarPrefix,
		Slack:    base + sim.SlackPrefix,
	}
}

// Client returns a client that calls w in-process with a fresh access token for service with
// scopes, issued to Principal.
func Client(tb testing.TB, w *sim.World, service string, scopes ...string) *http.Client {
	tb.Helper()
	c, _ := ClientToken(tb, w, service, scopes...)
	return c
}

// ClientToken is Client that also returns the access token, so a test can check that it
// appears in no error or result. Never print it.
func ClientToken(tb testing.TB, w *sim.World, service string, scopes ...string) (*http.Client, string) {
	tb.Helper()
	access, _, err := w.IssueTokens(service, Principal, scopes)
	if err != nil {
		tb.Fatalf("issue tokens: %v", err)
	}
	return &http.Client{Transport: bearer{token: access, next: w.Transport()}}, access
}

// bearer injects the token, as the vault's lease transport does.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Setup returns a world built with opts, a registry holding what register
// adds for the in-process sim, and a client for service with scopes.
func Setup(tb testing.TB, opts sim.Options, register func(*agent.Registry, agent.Endpoints) error, service string, scopes ...string) (*sim.World, *agent.Registry, *http.Client) {
	tb.Helper()
	w := sim.New(opts)
	r := agent.NewRegistry()
	if err := register(r, Endpoints()); err != nil {
		tb.Fatalf("register: %v", err)
	}
	return w, r, Client(tb, w, service, scopes...)
}

// Run validates raw against the named action in r and executes it with c and no resource. The
// broker gives Execute the resource the person approved: actions that act on what it says (a
// merge names the approved head commit) are tested with RunOn.
func Run(tb testing.TB, r *agent.Registry, c *http.Client, name string, raw map[string]any) (agent.Result, error) {
	tb.Helper()
	a, args := validated(tb, r, name, raw)
	return a.Execute(tb.Context(), c, args, policy.Resource{})
}

// RunOn is Run with the resource given, as the broker gives the one the person approved.
func RunOn(tb testing.TB, r *agent.Registry, c *http.Client, name string, raw map[string]any, res policy.Resource) (agent.Result, error) {
	tb.Helper()
	a, args := validated(tb, r, name, raw)
	return a.Execute(tb.Context(), c, args, res)
}

// Resource validates raw against the named action in r and finds its resource with c.
func Resource(tb testing.TB, r *agent.Registry, c *http.Client, name string, raw map[string]any) (policy.Resource, error) {
	tb.Helper()
	a, args := validated(tb, r, name, raw)
	return a.FindResource(tb.Context(), c, args)
}

func validated(tb testing.TB, r *agent.Registry, name string, raw map[string]any) (*agent.Action, agent.Args) {
	tb.Helper()
	a, ok := r.Lookup(name)
	if !ok {
		tb.Fatalf("action %s not registered", name)
	}
	args, err := r.Validate(name, raw)
	if err != nil {
		tb.Fatalf("validate %s: %v", name, err)
	}
	return a, args
}

// CheckValidate checks, as the named subtest, that raw validates against
// action in r to want, or, when errMsg is set, fails with exactly errMsg.
func CheckValidate(t *testing.T, r *agent.Registry, name, action string, raw map[string]any, want agent.Args, errMsg string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		got, err := r.Validate(action, raw)
		if errMsg != "" {
			if err == nil || err.Error() != errMsg {
				t.Fatalf("error = %v, want %q", err, errMsg)
			}
			return
		}
		if err != nil {
			t.Fatalf("validate: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
	})
}

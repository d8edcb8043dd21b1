package broker

import (
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
)

// A read's progress names its resource only where its results could be
// shown: a private repository is not named in a thread others may read,
// nor one a rule shows to the channel (it may be a shared one).
func TestProgressTitleNamesOnlyPublicResources(t *testing.T) {
	act := &agent.Action{Name: "github.list_pull_requests", Service: "github"}
	res := func(private bool) policy.Resource {
		return policy.Resource{Name: "acme/payments", Attrs: map[string]any{"private": private}}
	}
	if got := progressTitle(act, res(true), StoredDecision{}); strings.Contains(got, "payments") {
		t.Errorf("private: title = %q", got)
	}
	if got := progressTitle(act, res(true), StoredDecision{ResultsInChannel: true}); strings.Contains(got, "payments") {
		t.Errorf("private, shown by a rule: title = %q", got)
	}
	if got := progressTitle(act, res(false), StoredDecision{}); got != "Reading acme/payments (github.list_pull_requests)" {
		t.Errorf("public: title = %q", got)
	}
}

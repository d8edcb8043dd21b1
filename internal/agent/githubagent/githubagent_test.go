package githubagent_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/agenttest"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/google/go-cmp/cmp"
)

func setup(t *testing.T, scopes ...string) (*sim.World, *agent.Registry, *http.Client) {
	t.Helper()
	if scopes == nil {
		scopes = []string{sim.ScopeRepo}
	}
	return agenttest.Setup(t, sim.Options{}, githubagent.Register, sim.ServiceGitHub, scopes...)
}

type call struct{ Method, Path string }

// calls returns the GitHub calls the world recorded, without times and principals.
func calls(w *sim.World) []call {
	var out []call
	for _, c := range w.CallsFor(sim.ServiceGitHub) {
		out = append(out, call{c.Method, c.Path})
	}
	return out
}

func TestReads(t *testing.T) {
	w, r, c := setup(t)
	res, err := agenttest.Run(t, r, c, "github.list_pull_requests", map[string]any{"repo": "acme/payments"})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	prs, ok := res.Data.([]githubagent.PullRequest)
	if !ok {
		t.Fatalf("list data is %T, want []githubagent.PullRequest", res.Data)
	}
	var nums []int
	for _, p := range prs {
		nums = append(nums, p.Number)
	}
	if diff := cmp.Diff([]int{8, 7}, nums); diff != "" {
		t.Errorf("listed PRs (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.Summary, "#7 Fix rounding in refunds") {
		t.Errorf("summary %q does not name PR 7", res.Summary)
	}

	res, err = agenttest.Run(t, r, c, "github.get_pull_request", map[string]any{"repo": "acme/payments", "number": 8})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got, want := res.Summary, "acme/payments#8 Add partial refunds by carol (feature-refunds → main, open, not mergeable)"; got != want {
		t.Errorf("get summary = %q, want %q", got, want)
	}
	want := []call{{"GET", "/github/repos/acme/payments/pulls"}, {"GET", "/github/repos/acme/payments/pulls/8"}}
	if diff := cmp.Diff(want, calls(w)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestWrites(t *testing.T) {
	tests := []struct {
		name    string
		action  string
		args    map[string]any
		summary string
		call    call
		check   func(t *testing.T, w *sim.World)
	}{
		{
			name: "comment", action: "github.comment",
			args:    map[string]any{"repo": "acme/website", "number": 12, "body": "  Looks good!  "},
			summary: "Commented on acme/website#12",
			call:    call{"POST", "/github/repos/acme/website/issues/12/comments"},
			check: func(t *testing.T, w *sim.World) {
				pr, _ := w.GitHub().PullRequest("acme/website", 12)
				if len(pr.Comments) != 1 || pr.Comments[0].Body != "Looks good!" {
					t.Errorf("comments = %+v, want one with the trimmed body", pr.Comments)
				}
			},
		},
		{
			name: "review approve", action: "github.review",
			args:    map[string]any{"repo": "acme/payments", "number": 7, "event": "APPROVE"},
			summary: "Approved acme/payments#7",
			call:    call{"POST", "/github/repos/acme/payments/pulls/7/reviews"},
			check: func(t *testing.T, w *sim.World) {
				pr, _ := w.GitHub().PullRequest("acme/payments", 7)
				if len(pr.Reviews) != 1 || pr.Reviews[0].State != "APPROVED" {
					t.Errorf("reviews = %+v, want one APPROVED", pr.Reviews)
				}
			},
		},
		{
			name: "review request changes", action: "github.review",
			args:    map[string]any{"repo": "acme/payments", "number": 7, "event": "REQUEST_CHANGES", "body": "Please add a test."},
			summary: "Requested changes on acme/payments#7",
			call:    call{"POST", "/github/repos/acme/payments/pulls/7/reviews"},
			check: func(t *testing.T, w *sim.World) {
				pr, _ := w.GitHub().PullRequest("acme/payments", 7)
				if len(pr.Reviews) != 1 || pr.Reviews[0].State != "CHANGES_REQUESTED" || pr.Reviews[0].Body != "Please add a test." {
					t.Errorf("reviews = %+v, want one CHANGES_REQUESTED", pr.Reviews)
				}
			},
		},
		{
			name: "create issue", action: "github.create_issue",
			args:    map[string]any{"repo": "acme/website", "title": "Broken link", "body": "On the home page."},
			summary: "Opened acme/website#14 Broken link",
			call:    call{"POST", "/github/repos/acme/website/issues"},
			check: func(t *testing.T, w *sim.World) {
				is := w.GitHub().Issues("acme/website")
				if len(is) != 1 || is[0].Title != "Broken link" || is[0].Body != "On the home page." {
					t.Errorf("issues = %+v, want the new one", is)
				}
			},
		},
		{
			name: "merge", action: "github.merge_pull_request",
			args:    map[string]any{"repo": "acme/payments", "number": 7, "method": "squash"},
			summary: "Merged acme/payments#7 (squash)",
			call:    call{"PUT", "/github/repos/acme/payments/pulls/7/merge"},
			check: func(t *testing.T, w *sim.World) {
				pr, _ := w.GitHub().PullRequest("acme/payments", 7)
				if !pr.Merged || pr.MergeMethod != "squash" || pr.MergedBy != agenttest.Principal {
					t.Errorf("PR 7 merged=%v method=%q by=%q, want merged by squash by %s", pr.Merged, pr.MergeMethod, pr.MergedBy, agenttest.Principal)
				}
			},
		},
		{
			name: "delete branch", action: "github.delete_branch",
			args:    map[string]any{"repo": "acme/website", "branch": "docs-typo"},
			summary: "Deleted branch docs-typo in acme/website",
			call:    call{"DELETE", "/github/repos/acme/website/git/refs/heads/docs-typo"},
			check: func(t *testing.T, w *sim.World) {
				if _, ok := w.GitHub().Branch("acme/website", "docs-typo"); ok {
					t.Error("branch docs-typo still exists")
				}
			},
		},
		{
			name: "dispatch deploy", action: "github.dispatch_workflow",
			args:    map[string]any{"repo": "acme/payments", "environment": "staging"},
			summary: "Started deploy.yml on main in acme/payments for staging",
			call:    call{"POST", "/github/repos/acme/payments/actions/workflows/deploy.yml/dispatches"},
			check: func(t *testing.T, w *sim.World) {
				d := w.GitHub().Dispatches("acme/payments")
				if len(d) != 1 || d[0].Ref != "main" || d[0].Inputs["environment"] != "staging" {
					t.Errorf("dispatches = %+v, want one to staging on main", d)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, r, c := setup(t)
			res, err := agenttest.RunOn(t, r, c, tt.action, tt.args, approvedHead(t, w, tt.args))
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if res.Summary != tt.summary {
				t.Errorf("summary = %q, want %q", res.Summary, tt.summary)
			}
			if diff := cmp.Diff([]call{tt.call}, calls(w)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			tt.check(t, w)
		})
	}
}

// approvedHead is the resource a merge of args's pull request is approved
// on, as the broker hands it to Execute: the head commit it has now.
func approvedHead(t *testing.T, w *sim.World, args map[string]any) policy.Resource {
	t.Helper()
	number, ok := args["number"].(int)
	if !ok {
		return policy.Resource{}
	}
	pr, _ := w.GitHub().PullRequest(args["repo"].(string), number)
	return policy.Resource{Attrs: map[string]any{"head_sha": pr.HeadSHA}}
}

// TestMergeNamesTheApprovedHead: a merge sends the head commit the person
// approved, so a push after the approval makes GitHub refuse the merge
// instead of merging code nobody saw; and without a known head it merges
// nothing at all.
func TestMergeNamesTheApprovedHead(t *testing.T) {
	args := map[string]any{"repo": "acme/payments", "number": 7}
	t.Run("pushed after the approval", func(t *testing.T) {
		w, r, c := setup(t)
		approved := approvedHead(t, w, args)
		if _, ok := w.Push("acme/payments", "fix-rounding"); !ok {
			t.Fatal("push failed")
		}
		_, err := agenttest.RunOn(t, r, c, "github.merge_pull_request", args, approved)
		if pe, ok := errors.AsType[*agent.ProviderError](err); !ok || pe.Status != http.StatusConflict {
			t.Fatalf("merge after a push = %v, want GitHub's 409", err)
		}
		if pr, _ := w.GitHub().PullRequest("acme/payments", 7); pr.Merged {
			t.Error("the pull request was merged with a head nobody approved")
		}
	})
	t.Run("no approved head", func(t *testing.T) {
		w, r, c := setup(t)
		if _, err := agenttest.Run(t, r, c, "github.merge_pull_request", args); err == nil {
			t.Fatal("a merge with no approved head ran")
		}
		if got := calls(w); len(got) != 0 {
			t.Errorf("calls = %v, want none", got)
		}
	})
}

// headOf in a wanted resource stands for the pull request's head commit in
// the simulated world.
const headOf = "(head of the pull request)"

func TestResource(t *testing.T) {
	tests := []struct {
		name   string
		action string
		args   map[string]any
		want   policy.Resource
	}{
		{"private repo", "github.list_pull_requests", map[string]any{"repo": "acme/payments"},
			policy.Resource{Kind: "repo", Name: "acme/payments", Attrs: map[string]any{"private": true}}},
		{"public repo", "github.comment", map[string]any{"repo": "acme/website", "number": 12, "body": "hi"},
			policy.Resource{Kind: "repo", Name: "acme/website", Attrs: map[string]any{"private": false}}},
		{"merge into protected main", "github.merge_pull_request", map[string]any{"repo": "acme/payments", "number": 7},
			policy.Resource{Kind: "branch", Name: "acme/payments:main", Attrs: map[string]any{"private": true, "protected": true, "pull_request": int64(7), "head_sha": headOf}}},
		{"merge into public main", "github.merge_pull_request", map[string]any{"repo": "acme/website", "number": 12},
			policy.Resource{Kind: "branch", Name: "acme/website:main", Attrs: map[string]any{"private": false, "protected": false, "pull_request": int64(12), "head_sha": headOf}}},
		{"delete unprotected branch", "github.delete_branch", map[string]any{"repo": "acme/payments", "branch": "fix-rounding"},
			policy.Resource{Kind: "branch", Name: "acme/payments:fix-rounding", Attrs: map[string]any{"private": true, "protected": false}}},
		{"delete protected branch", "github.delete_branch", map[string]any{"repo": "acme/payments", "branch": "main"},
			policy.Resource{Kind: "branch", Name: "acme/payments:main", Attrs: map[string]any{"private": true, "protected": true}}},
		{"production deploy", "github.dispatch_workflow", map[string]any{"repo": "acme/payments", "environment": "production"},
			policy.Resource{Kind: "repo", Name: "acme/payments", Attrs: map[string]any{"private": true, "environment": "production", "workflow": "deploy.yml", "ref": "main"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, r, c := setup(t)
			got, err := agenttest.Resource(t, r, c, tt.action, tt.args)
			if err != nil {
				t.Fatalf("resource: %v", err)
			}
			if tt.want.Attrs["head_sha"] == headOf {
				pr, _ := w.GitHub().PullRequest(tt.args["repo"].(string), tt.args["number"].(int))
				tt.want.Attrs["head_sha"] = pr.HeadSHA
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("resource (-want +got):\n%s", diff)
			}
			for _, call := range w.CallsFor(sim.ServiceGitHub) {
				if call.Method != http.MethodGet {
					t.Errorf("finding the resource made a %s %s", call.Method, call.Path)
				}
			}
		})
	}
}

func TestProviderErrors(t *testing.T) {
	t.Run("merge twice", func(t *testing.T) {
		w, r, c := setup(t)
		args := map[string]any{"repo": "acme/payments", "number": 7}
		head := approvedHead(t, w, args)
		if _, err := agenttest.RunOn(t, r, c, "github.merge_pull_request", args, head); err != nil {
			t.Fatalf("first merge: %v", err)
		}
		_, err := agenttest.RunOn(t, r, c, "github.merge_pull_request", args, head)
		checkErr(t, err, agent.Conflict, "github: merge acme/payments#7: Pull Request is not mergeable (HTTP 405)")
	})
	t.Run("private repo without repo scope", func(t *testing.T) {
		w, r, _ := setup(t)
		c, token := agenttest.ClientToken(t, w, sim.ServiceGitHub, sim.ScopePublicRepo)
		_, err := agenttest.Resource(t, r, c, "github.list_pull_requests", map[string]any{"repo": "acme/payments"})
		checkErr(t, err, agent.NotFound, "github: get repository acme/payments: Not Found (the repository or item does not exist, or the connection lacks the repo scope) (HTTP 404)")
		if strings.Contains(err.Error(), token) {
			t.Error("the error text contains the access token")
		}
	})
	t.Run("delete protected branch", func(t *testing.T) {
		_, r, c := setup(t)
		_, err := agenttest.Run(t, r, c, "github.delete_branch", map[string]any{"repo": "acme/payments", "branch": "main"})
		checkErr(t, err, agent.Invalid, "github: delete branch acme/payments:main: Cannot delete this protected branch (HTTP 422)")
	})
	t.Run("revoked token", func(t *testing.T) {
		w := sim.New(sim.Options{})
		r := agent.NewRegistry()
		if err := githubagent.Register(r, agenttest.Endpoints()); err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: w.Transport()} // no token at all
		_, err := agenttest.Run(t, r, c, "github.get_pull_request", map[string]any{"repo": "acme/website", "number": 12})
		checkErr(t, err, agent.Unauthorized, "github: get pull request acme/website#12: Requires authentication (HTTP 401)")
	})
}

func checkErr(t *testing.T, err error, kind agent.ErrorKind, msg string) {
	t.Helper()
	var pe *agent.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v, want *agent.ProviderError", err)
	}
	if pe.Kind != kind {
		t.Errorf("kind = %v, want %v", pe.Kind, kind)
	}
	if got := err.Error(); got != msg {
		t.Errorf("error = %q, want %q", got, msg)
	}
}

func TestSchemas(t *testing.T) {
	_, r, _ := setup(t)
	tests := []struct {
		name   string
		action string
		raw    map[string]any
		want   agent.Args
		errMsg string
	}{
		{"merge default method", "github.merge_pull_request", map[string]any{"repo": " acme/payments ", "number": 7.0},
			agent.Args{"repo": "acme/payments", "number": int64(7), "method": "merge"}, ""},
		{"merge bad method", "github.merge_pull_request", map[string]any{"repo": "acme/payments", "number": 7, "method": "octopus"},
			nil, "invalid arguments for github.merge_pull_request: method: must be one of merge, squash, rebase"},
		{"repo without owner", "github.list_pull_requests", map[string]any{"repo": "payments"},
			nil, "invalid arguments for github.list_pull_requests: repo: must match the pattern ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"},
		{"dispatch defaults", "github.dispatch_workflow", map[string]any{"repo": "acme/payments", "environment": "production"},
			agent.Args{"repo": "acme/payments", "environment": "production", "workflow": "deploy.yml", "ref": "main"}, ""},
		{"review needs event", "github.review", map[string]any{"repo": "acme/payments", "number": 7},
			nil, "invalid arguments for github.review: event: is required"},
		{"negative number", "github.get_pull_request", map[string]any{"repo": "acme/payments", "number": -1},
			nil, "invalid arguments for github.get_pull_request: number: must be at least 1"},
	}
	for _, tt := range tests {
		agenttest.CheckValidate(t, r, tt.name, tt.action, tt.raw, tt.want, tt.errMsg)
	}
}

package sim_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-github/v62/github"

	"github.com/agenthub/agenthub/internal/sim"
)

func TestGitHubReads(t *testing.T) {
	e := newEnv(t)
	gh := e.github(t, e.connect(t, sim.ServiceGitHub, "alice", sim.ScopeRepo))
	ctx := context.Background()

	t.Run("repositories", func(t *testing.T) {
		for _, tc := range []struct {
			repo       string
			private    bool
			visibility string
		}{
			{"website", false, "public"},
			{"payments", true, "private"},
		} {
			r, _, err := gh.Repositories.Get(ctx, "acme", tc.repo)
			if err != nil {
				t.Fatalf("Get(%s): %v", tc.repo, err)
			}
			if got, want := r.GetPrivate(), tc.private; got != want {
				t.Errorf("%s private = %v, want %v", tc.repo, got, want)
			}
			if got, want := r.GetVisibility(), tc.visibility; got != want {
				t.Errorf("%s visibility = %q, want %q", tc.repo, got, want)
			}
			if got, want := r.GetDefaultBranch(), "main"; got != want {
				t.Errorf("%s default branch = %q, want %q", tc.repo, got, want)
			}
			if got, want := r.GetFullName(), "acme/"+tc.repo; got != want {
				t.Errorf("full name = %q, want %q", got, want)
			}
		}
	})

	t.Run("branches", func(t *testing.T) {
		for _, tc := range []struct {
			repo, branch string
			protected    bool
		}{
			{"payments", "main", true},
			{"payments", "fix-rounding", false},
			{"website", "main", false},
			{"website", "feature-x", false},
		} {
			b, _, err := gh.Repositories.GetBranch(ctx, "acme", tc.repo, tc.branch, 0)
			if err != nil {
				t.Fatalf("GetBranch(%s, %s): %v", tc.repo, tc.branch, err)
			}
			if got, want := b.GetProtected(), tc.protected; got != want {
				t.Errorf("%s/%s protected = %v, want %v", tc.repo, tc.branch, got, want)
			}
			if len(b.GetCommit().GetSHA()) != 40 {
				t.Errorf("%s/%s sha = %q, want 40 hex digits", tc.repo, tc.branch, b.GetCommit().GetSHA())
			}
		}
		_, resp, err := gh.Repositories.GetBranch(ctx, "acme", "payments", "nope", 0)
		if got, want := ghStatus(t, resp, err), http.StatusNotFound; got != want {
			t.Errorf("missing branch status = %d, want %d", got, want)
		}
	})

	t.Run("open pull requests", func(t *testing.T) {
		for _, tc := range []struct {
			repo string
			want []int
		}{
			{"payments", []int{8, 7}},
			{"website", []int{13, 12}},
		} {
			prs, _, err := gh.PullRequests.List(ctx, "acme", tc.repo, &github.PullRequestListOptions{State: "open"})
			if err != nil {
				t.Fatalf("List(%s): %v", tc.repo, err)
			}
			var got []int
			for _, p := range prs {
				got = append(got, p.GetNumber())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s open PR numbers (-want +got):\n%s", tc.repo, diff)
			}
		}
	})

	t.Run("pull request 7", func(t *testing.T) {
		pr, _, err := gh.PullRequests.Get(ctx, "acme", "payments", 7)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		got := []any{pr.GetTitle(), pr.GetState(), pr.GetHead().GetRef(), pr.GetBase().GetRef(),
			pr.GetMergeable(), pr.GetMerged(), pr.GetUser().GetLogin(), pr.GetBase().GetRepo().GetPrivate()}
		want := []any{"Fix rounding in refunds", "open", "fix-rounding", "main", true, false, "bob", true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("PR 7 (-want +got):\n%s", diff)
		}
		_, resp, err := gh.PullRequests.Get(ctx, "acme", "payments", 99)
		if got, want := ghStatus(t, resp, err), http.StatusNotFound; got != want {
			t.Errorf("missing PR status = %d, want %d", got, want)
		}
	})

	t.Run("workflows", func(t *testing.T) {
		wfs, _, err := gh.Actions.ListWorkflows(ctx, "acme", "payments", nil)
		if err != nil {
			t.Fatalf("ListWorkflows: %v", err)
		}
		if got, want := wfs.GetTotalCount(), 1; got != want {
			t.Fatalf("total = %d, want %d", got, want)
		}
		if got, want := wfs.Workflows[0].GetPath(), ".github/workflows/deploy.yml"; got != want {
			t.Errorf("path = %q, want %q", got, want)
		}
	})

	t.Run("user", func(t *testing.T) {
		u, _, err := gh.Users.Get(ctx, "")
		if err != nil {
			t.Fatalf("Users.Get: %v", err)
		}
		if got, want := u.GetLogin(), "alice"; got != want {
			t.Errorf("login = %q, want %q", got, want)
		}
	})
}

func TestGitHubPullRequestWrites(t *testing.T) {
	e := newEnv(t)
	gh := e.github(t, e.connect(t, sim.ServiceGitHub, "alice", sim.ScopeRepo))
	ctx := context.Background()

	t.Run("comment", func(t *testing.T) {
		c, resp, err := gh.Issues.CreateComment(ctx, "acme", "payments", 7, &github.IssueComment{Body: github.String("LGTM")})
		if got, want := ghStatus(t, resp, err), http.StatusCreated; got != want {
			t.Fatalf("status = %d, want %d (%v)", got, want, err)
		}
		if got, want := c.GetUser().GetLogin(), "alice"; got != want {
			t.Errorf("comment author = %q, want %q", got, want)
		}
		pr, _ := e.w.GitHub().PullRequest("acme/payments", 7)
		if len(pr.Comments) != 1 || pr.Comments[0].Body != "LGTM" || pr.Comments[0].Author != "alice" {
			t.Errorf("recorded comments = %+v, want one LGTM by alice", pr.Comments)
		}
		_, resp, err = gh.Issues.CreateComment(ctx, "acme", "payments", 7, &github.IssueComment{})
		if got, want := ghStatus(t, resp, err), http.StatusUnprocessableEntity; got != want {
			t.Errorf("empty comment status = %d, want %d", got, want)
		}
	})

	t.Run("reviews", func(t *testing.T) {
		for _, tc := range []struct {
			name, event, body string
			wantStatus        int
			wantState         string
		}{
			{"approve", "APPROVE", "", http.StatusOK, "APPROVED"},
			{"request changes", "REQUEST_CHANGES", "please add a test", http.StatusOK, "CHANGES_REQUESTED"},
			{"comment", "COMMENT", "nit: naming", http.StatusOK, "COMMENTED"},
			{"request changes without body", "REQUEST_CHANGES", "", http.StatusUnprocessableEntity, ""},
			{"unknown event", "SHIP_IT", "", http.StatusUnprocessableEntity, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := &github.PullRequestReviewRequest{Event: github.String(tc.event)}
				if tc.body != "" {
					req.Body = github.String(tc.body)
				}
				rev, resp, err := gh.PullRequests.CreateReview(ctx, "acme", "website", 12, req)
				if got := ghStatus(t, resp, err); got != tc.wantStatus {
					t.Fatalf("status = %d, want %d", got, tc.wantStatus)
				}
				if tc.wantState == "" {
					return
				}
				if got := rev.GetState(); got != tc.wantState {
					t.Errorf("state = %q, want %q", got, tc.wantState)
				}
				pr, _ := e.w.GitHub().PullRequest("acme/website", 12)
				last := pr.Reviews[len(pr.Reviews)-1]
				if last.State != tc.wantState || last.Author != "alice" || last.Body != tc.body {
					t.Errorf("recorded review = %+v, want %s by alice", last, tc.wantState)
				}
			})
		}
	})

	t.Run("create issue", func(t *testing.T) {
		iss, resp, err := gh.Issues.Create(ctx, "acme", "payments", &github.IssueRequest{
			Title: github.String("Refund totals off by a cent"), Body: github.String("See PR 7"),
			Labels: &[]string{"bug"},
		})
		if got, want := ghStatus(t, resp, err), http.StatusCreated; got != want {
			t.Fatalf("status = %d, want %d (%v)", got, want, err)
		}
		if got, want := iss.GetNumber(), 9; got != want {
			t.Errorf("number = %d, want %d (after PRs 7 and 8)", got, want)
		}
		issues := e.w.GitHub().Issues("acme/payments")
		if len(issues) != 1 || issues[0].Title != "Refund totals off by a cent" || issues[0].Author != "alice" ||
			!cmp.Equal(issues[0].Labels, []string{"bug"}) {
			t.Errorf("recorded issues = %+v", issues)
		}
		_, resp, err = gh.Issues.Create(ctx, "acme", "payments", &github.IssueRequest{})
		if got, want := ghStatus(t, resp, err), http.StatusUnprocessableEntity; got != want {
			t.Errorf("untitled issue status = %d, want %d", got, want)
		}
	})

	t.Run("merge", func(t *testing.T) {
		before, _ := e.w.GitHub().Branch("acme/payments", "main")
		pr, _ := e.w.GitHub().PullRequest("acme/payments", 7)

		_, resp, err := gh.PullRequests.Merge(ctx, "acme", "payments", 7, "", &github.PullRequestOptions{SHA: strings.Repeat("0", 40)})
		if got, want := ghStatus(t, resp, err), http.StatusConflict; got != want {
			t.Errorf("stale sha status = %d, want %d", got, want)
		}

		res, _, err := gh.PullRequests.Merge(ctx, "acme", "payments", 7, "", &github.PullRequestOptions{SHA: pr.HeadSHA, MergeMethod: "squash"})
		if err != nil {
			t.Fatalf("Merge: %v", err)
		}
		if !res.GetMerged() {
			t.Errorf("merge result merged = false")
		}
		after, _ := e.w.GitHub().Branch("acme/payments", "main")
		if after.SHA == before.SHA || after.SHA != res.GetSHA() {
			t.Errorf("main sha = %s, want the merge commit %s (was %s)", after.SHA, res.GetSHA(), before.SHA)
		}
		pr, _ = e.w.GitHub().PullRequest("acme/payments", 7)
		if !pr.Merged || pr.State != "closed" || pr.MergedBy != "alice" || pr.MergeMethod != "squash" || !pr.MergedAt.Equal(start) {
			t.Errorf("recorded PR 7 = %+v, want merged by alice with squash", pr)
		}
		got, _, err := gh.PullRequests.Get(ctx, "acme", "payments", 7)
		if err != nil || !got.GetMerged() || got.GetState() != "closed" {
			t.Errorf("PR 7 after merge: merged=%v state=%q err=%v", got.GetMerged(), got.GetState(), err)
		}

		for _, tc := range []struct {
			name string
			n    int
		}{{"already merged", 7}, {"not mergeable", 8}} {
			_, resp, err := gh.PullRequests.Merge(ctx, "acme", "payments", tc.n, "", nil)
			if got, want := ghStatus(t, resp, err), http.StatusMethodNotAllowed; got != want {
				t.Errorf("%s: status = %d, want %d", tc.name, got, want)
			}
		}
		open, _, err := gh.PullRequests.List(ctx, "acme", "payments", &github.PullRequestListOptions{State: "open"})
		if err != nil || len(open) != 1 || open[0].GetNumber() != 8 {
			t.Errorf("open PRs after merge = %d (err %v), want only #8", len(open), err)
		}
	})
}

func TestGitHubDeleteBranch(t *testing.T) {
	e := newEnv(t)
	gh := e.github(t, e.connect(t, sim.ServiceGitHub, "alice", sim.ScopeRepo))
	ctx := context.Background()
	for _, tc := range []struct {
		name, repo, ref string
		want            int
	}{
		{"feature branch", "website", "heads/feature-x", http.StatusNoContent},
		{"already gone", "website", "heads/feature-x", http.StatusUnprocessableEntity},
		{"missing", "website", "refs/heads/nope", http.StatusUnprocessableEntity},
		{"protected", "payments", "heads/main", http.StatusUnprocessableEntity},
		{"default branch", "website", "heads/main", http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := gh.Git.DeleteRef(ctx, "acme", tc.repo, tc.ref)
			if got := ghStatus(t, resp, err); got != tc.want {
				t.Errorf("status = %d, want %d", got, tc.want)
			}
		})
	}
	if _, ok := e.w.GitHub().Branch("acme/website", "feature-x"); ok {
		t.Error("feature-x still exists")
	}
	if _, ok := e.w.GitHub().Branch("acme/payments", "main"); !ok {
		t.Error("protected main was deleted")
	}
	if pr, _ := e.w.GitHub().PullRequest("acme/website", 12); pr.State != "closed" {
		t.Errorf("PR 12 from the deleted branch state = %q, want closed", pr.State)
	}
}

func TestGitHubDispatch(t *testing.T) {
	e := newEnv(t)
	gh := e.github(t, e.connect(t, sim.ServiceGitHub, "alice", sim.ScopeRepo))
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		ref    string
		inputs map[string]any
		want   int
	}{
		{"production", "main", map[string]any{"environment": "production"}, http.StatusNoContent},
		{"staging from a branch", "fix-rounding", map[string]any{"environment": "staging"}, http.StatusNoContent},
		{"unknown environment", "main", map[string]any{"environment": "moon"}, http.StatusUnprocessableEntity},
		{"missing input", "main", nil, http.StatusUnprocessableEntity},
		{"unexpected input", "main", map[string]any{"environment": "staging", "force": "yes"}, http.StatusUnprocessableEntity},
		{"unknown ref", "nope", map[string]any{"environment": "staging"}, http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, "acme", "payments", "deploy.yml",
				github.CreateWorkflowDispatchEventRequest{Ref: tc.ref, Inputs: tc.inputs})
			if got := ghStatus(t, resp, err); got != tc.want {
				t.Errorf("status = %d, want %d", got, tc.want)
			}
		})
	}
	wfs, _, err := gh.Actions.ListWorkflows(ctx, "acme", "payments", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := gh.Actions.CreateWorkflowDispatchEventByID(ctx, "acme", "payments", wfs.Workflows[0].GetID(),
		github.CreateWorkflowDispatchEventRequest{Ref: "main", Inputs: map[string]any{"environment": "staging"}})
	if got, want := ghStatus(t, resp, err), http.StatusNoContent; got != want {
		t.Errorf("dispatch by ID status = %d, want %d", got, want)
	}
	got := e.w.GitHub().Dispatches("acme/payments")
	want := []sim.Dispatch{
		{Repo: "acme/payments", Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"environment": "production"}, Actor: "alice", Time: start},
		{Repo: "acme/payments", Workflow: "deploy.yml", Ref: "fix-rounding", Inputs: map[string]string{"environment": "staging"}, Actor: "alice", Time: start},
		{Repo: "acme/payments", Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"environment": "staging"}, Actor: "alice", Time: start},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dispatches (-want +got):\n%s", diff)
	}
}

func TestGitHubAuth(t *testing.T) {
	ctx := context.Background()
	type op func(gh *github.Client) (*github.Response, error)
	readPrivate := func(gh *github.Client) (*github.Response, error) {
		_, r, err := gh.Repositories.Get(ctx, "acme", "payments")
		return r, err
	}
	readPublic := func(gh *github.Client) (*github.Response, error) {
		_, r, err := gh.PullRequests.List(ctx, "acme", "website", nil)
		return r, err
	}
	commentPublic := func(gh *github.Client) (*github.Response, error) {
		_, r, err := gh.Issues.CreateComment(ctx, "acme", "website", 12, &github.IssueComment{Body: github.String("hi")})
		return r, err
	}
	mergePrivate := func(gh *github.Client) (*github.Response, error) {
		_, r, err := gh.PullRequests.Merge(ctx, "acme", "payments", 7, "", nil)
		return r, err
	}
	dispatchPublic := func(gh *github.Client) (*github.Response, error) {
		return gh.Actions.CreateWorkflowDispatchEventByFileName(ctx, "acme", "website", "deploy.yml",
			github.CreateWorkflowDispatchEventRequest{Ref: "main", Inputs: map[string]any{"environment": "staging"}})
	}

	for _, tc := range []struct {
		name      string
		token     func(tb testing.TB, e *env) string
		op        op
		want      int
		wantError string
	}{
		{"no token", func(tb testing.TB, e *env) string { return "" }, readPublic, http.StatusUnauthorized, "Requires authentication"},
		{"unknown token", func(tb testing.TB, e *env) string { return "ghu_not-a-real-token" }, readPublic, http.StatusUnauthorized, "Bad credentials"},
		{"google token", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendar)
		}, readPublic, http.StatusUnauthorized, "Bad credentials"},
		{"expired", func(tb testing.TB, e *env) string {
			tok := e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopeRepo)
			e.clock.Advance(sim.DefaultAccessTTL)
			return tok
		}, readPublic, http.StatusUnauthorized, "Bad credentials"},
		{"almost expired", func(tb testing.TB, e *env) string {
			tok := e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopeRepo)
			e.clock.Advance(sim.DefaultAccessTTL - time.Second)
			return tok
		}, readPublic, http.StatusOK, ""},
		{"revoked at provider", func(tb testing.TB, e *env) string {
			tok := e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopeRepo)
			e.w.RevokeGrants(sim.ServiceGitHub, "alice")
			return tok
		}, readPublic, http.StatusUnauthorized, "Bad credentials"},
		{"private read with public_repo", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopePublicRepo)
		}, readPrivate, http.StatusNotFound, "Not Found"},
		{"private merge with public_repo", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopePublicRepo)
		}, mergePrivate, http.StatusNotFound, "Not Found"},
		{"public read without scopes", func(tb testing.TB, e *env) string { return e.connect(tb, sim.ServiceGitHub, "alice") }, readPublic, http.StatusOK, ""},
		{"public write without scopes", func(tb testing.TB, e *env) string { return e.connect(tb, sim.ServiceGitHub, "alice", "read:user") }, commentPublic, http.StatusNotFound, "Not Found"},
		{"public write with public_repo", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopePublicRepo)
		}, commentPublic, http.StatusCreated, ""},
		{"dispatch needs repo", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopePublicRepo)
		}, dispatchPublic, http.StatusNotFound, "Not Found"},
		{"private read with repo", func(tb testing.TB, e *env) string { return e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopeRepo) }, readPrivate, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			resp, err := tc.op(e.github(t, tc.token(t, e)))
			if got := ghStatus(t, resp, err); got != tc.want {
				t.Fatalf("status = %d, want %d", got, tc.want)
			}
			if tc.wantError != "" {
				var er *github.ErrorResponse
				if !errors.As(err, &er) || er.Message != tc.wantError {
					t.Errorf("error = %v, want message %q", err, tc.wantError)
				}
			}
			if got, want := lastCall(t, e.w).Error, tc.wantError; got != want {
				t.Errorf("recorded error = %q, want %q", got, want)
			}
		})
	}
	t.Run("no change reaches the repo", func(t *testing.T) {
		e := newEnv(t)
		gh := e.github(t, e.connect(t, sim.ServiceGitHub, "alice", sim.ScopePublicRepo))
		if _, err := mergePrivate(gh); err == nil {
			t.Fatal("merge with public_repo succeeded")
		}
		if pr, _ := e.w.GitHub().PullRequest("acme/payments", 7); pr.Merged {
			t.Error("PR 7 merged without the repo scope")
		}
	})
}

func TestGitHubErrors(t *testing.T) {
	e := newEnv(t)
	tok := e.connect(t, sim.ServiceGitHub, "alice", sim.ScopeRepo)
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		wantBody                 string
	}{
		{"unknown route", "GET", "/github/nope", "", http.StatusNotFound, `"message":"Not Found"`},
		{"unknown repo", "GET", "/github/repos/acme/nope", "", http.StatusNotFound, `"message":"Not Found"`},
		{"bad json", "POST", "/github/repos/acme/website/issues", "{", http.StatusBadRequest, `"message":"Problems parsing JSON"`},
		{"bad number", "GET", "/github/repos/acme/website/pulls/x", "", http.StatusNotFound, `"message":"Not Found"`},
		{"bad state", "GET", "/github/repos/acme/website/pulls?state=merged", "", http.StatusUnprocessableEntity, `"message":"Validation Failed"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawCall(t, e, tc.method, tc.path, tc.body, tok)
			if status != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tc.want, tc.wantBody)
			}
		})
	}
}

func rawCall(tb testing.TB, e *env, method, path, body, token string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	if _, err := io.Copy(&sb, resp.Body); err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, sb.String()
}

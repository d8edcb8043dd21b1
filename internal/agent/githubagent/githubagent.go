// Package githubagent is the GitHub agent: pull requests, reviews, issues, branch deletion and
// workflow dispatch, on github.com/google/go-github/v62 with the client of a vault lease.
//
// Scopes: every action declares the classic OAuth scope "repo". The public_repo scope would do
// for writes to public repositories, but an action's scopes are declared before its resource is
// known, GitHub answers 404 for a private repository without repo, and workflow dispatch needs
// repo whatever the repository; asking for one honest scope up front beats a connection that
// fails on the first private repository.
package githubagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/google/go-github/v62/github"
)

// Agent and Service name the GitHub agent and the vault service it needs.
const (
	Agent   = "github"
	Service = "github"
)

// Scope is the one OAuth scope every GitHub action declares (see the package documentation).
const Scope = "repo"

// Register adds the GitHub actions to r.
func Register(r *agent.Registry, e agent.Endpoints) error { return r.Register(Actions(e)...) }

// Actions returns the GitHub actions, calling the API at e.GitHub.
func Actions(e agent.Endpoints) []agent.Action {
	g := gh{base: e.GitHub}
	act := func(name, desc, schema string, risk policy.Risk, write bool,
		res agent.Func[policy.Resource], exec agent.Exec) agent.Action {
		return agent.Action{
			Name: Agent + "." + name, Agent: Agent, Service: Service, Description: desc,
			Schema: schema, Scopes: []string{Scope}, Risk: risk, Write: write, Resource: res, Execute: exec,
		}
	}
	return []agent.Action{
		act("list_pull_requests", "List the pull requests of a repository.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "state": `{"type":"string","enum":["open","closed","all"],"default":"open","description":"Which pull requests to list."}`}, "repo"),
			policy.Low, false, g.repoResource, g.listPullRequests),
		act("get_pull_request", "Show one pull request: title, author, branches, whether it can be merged.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "number": numberProp}, "repo", "number"),
			policy.Low, false, g.repoResource, g.getPullRequest),
		act("comment", "Comment on a pull request or issue.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "number": numberProp, "body": bodyProp}, "repo", "number", "body"),
			policy.Medium, true, g.repoResource, g.comment),
		act("review", "Review a pull request: approve it, request changes, or comment.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "number": numberProp,
				"event": `{"type":"string","enum":["APPROVE","REQUEST_CHANGES","COMMENT"],"description":"The review's verdict."}`,
				"body":  `{"type":"string","maxLength":65536,"default":"","description":"The review's text; required for REQUEST_CHANGES and COMMENT."}`},
				"repo", "number", "event"),
			policy.Medium, true, g.repoResource, g.review),
		act("create_issue", "Open an issue in a repository.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "title": `{"type":"string","minLength":1,"maxLength":256,"description":"The issue's title."}`,
				"body": `{"type":"string","maxLength":65536,"default":"","description":"The issue's text (Markdown)."}`},
				"repo", "title"),
			policy.Medium, true, g.repoResource, g.createIssue),
		act("merge_pull_request", "Merge a pull request into its base branch.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "number": numberProp,
				"method": `{"type":"string","enum":["merge","squash","rebase"],"default":"merge","description":"How to merge."}`},
				"repo", "number"),
			policy.High, true, g.mergeResource, g.merge),
		act("delete_branch", "Delete a branch of a repository.",
			agent.ObjectSchema(agent.Props{"repo": repoProp, "branch": branchProp}, "repo", "branch"),
			policy.High, true, g.branchResource, g.deleteBranch),
		act("dispatch_workflow", "Start a GitHub Actions workflow, such as a deploy, with its environment input.",
			agent.ObjectSchema(agent.Props{"repo": repoProp,
				"workflow":    `{"type":"string","pattern":"^[A-Za-z0-9_.-]+\\.ya?ml$","default":"deploy.yml","description":"The workflow file name."}`,
				"ref":         `{"type":"string","minLength":1,"maxLength":255,"default":"main","description":"The branch or tag to run it on."}`,
				"environment": `{"type":"string","minLength":1,"maxLength":64,"description":"The workflow's environment input, e.g. staging or production."}`},
				"repo", "environment"),
			policy.High, true, g.dispatchResource, g.dispatch),
	}
}

// Schema fragments shared by the actions.
const (
	repoProp   = `{"type":"string","pattern":"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$","description":"The repository as owner/name."}`
	numberProp = `{"type":"integer","minimum":1,"description":"The pull request or issue number."}`
	bodyProp   = `{"type":"string","minLength":1,"maxLength":65536,"description":"The text (Markdown)."}`
	branchProp = `{"type":"string","minLength":1,"maxLength":255,"pattern":"^[^\\s~^:?*\\[\\\\]+$","description":"The branch name."}`
)

// gh builds a go-github client per call from the lease's client: the client is the
// credential, so it must not outlive the call.
type gh struct{ base string }

func (g gh) client(c *http.Client) (*github.Client, error) {
	cl := github.NewClient(c)
	u, err := url.Parse(g.base)
	if err != nil {
		return nil, fmt.Errorf("github endpoint: %w", err)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	cl.BaseURL = u
	return cl, nil
}

func split(repo string) (owner, name string) {
	owner, name, _ = strings.Cut(repo, "/")
	return owner, name
}

// fail turns a go-github error into an *agent.ProviderError with the provider's own message.
func fail(op string, err error) error {
	pe := &agent.ProviderError{Service: Service, Op: op, Kind: agent.Failed, Message: "request failed", Err: err}
	var er *github.ErrorResponse
	var rl *github.RateLimitError
	var ar *github.AbuseRateLimitError
	switch {
	case errors.As(err, &er) && er.Response != nil:
		pe.Status = er.Response.StatusCode
		pe.Kind = agent.KindForStatus(pe.Status)
		pe.Message = er.Message
		if pe.Message == "" {
			pe.Message = http.StatusText(pe.Status)
		}
		if pe.Status == http.StatusNotFound {
			pe.Message += " (the repository or item does not exist, or the connection lacks the repo scope)"
		}
	case errors.As(err, &rl):
		pe.Kind, pe.Message = agent.Forbidden, "rate limit exceeded"
	case errors.As(err, &ar):
		pe.Kind, pe.Message = agent.Forbidden, "secondary rate limit exceeded"
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		pe.Message = err.Error()
	}
	return pe
}

// Resources.

func (g gh) repoInfo(ctx context.Context, c *http.Client, repo string) (*github.Repository, error) {
	cl, err := g.client(c)
	if err != nil {
		return nil, err
	}
	owner, name := split(repo)
	r, _, err := cl.Repositories.Get(ctx, owner, name)
	if err != nil {
		return nil, fail("get repository "+repo, err)
	}
	return r, nil
}

func (g gh) repoResource(ctx context.Context, c *http.Client, args agent.Args) (policy.Resource, error) {
	repo := args.String("repo")
	r, err := g.repoInfo(ctx, c, repo)
	if err != nil {
		return policy.Resource{}, err
	}
	return policy.Resource{Kind: "repo", Name: repo, Attrs: map[string]any{"private": r.GetPrivate()}}, nil
}

// branch returns a branch resource: the repository's visibility and the branch's protection.
func (g gh) branch(ctx context.Context, c *http.Client, repo, branch string, private bool) (policy.Resource, error) {
	cl, err := g.client(c)
	if err != nil {
		return policy.Resource{}, err
	}
	owner, name := split(repo)
	b, _, err := cl.Repositories.GetBranch(ctx, owner, name, branch, 0)
	if err != nil {
		return policy.Resource{}, fail("get branch "+repo+":"+branch, err)
	}
	return policy.Resource{Kind: "branch", Name: repo + ":" + branch,
		Attrs: map[string]any{"private": private, "protected": b.GetProtected()}}, nil
}

func (g gh) branchResource(ctx context.Context, c *http.Client, args agent.Args) (policy.Resource, error) {
	repo := args.String("repo")
	r, err := g.repoInfo(ctx, c, repo)
	if err != nil {
		return policy.Resource{}, err
	}
	return g.branch(ctx, c, repo, args.String("branch"), r.GetPrivate())
}

// mergeResource: a merge writes to the pull request's base branch, so that branch is the
// resource, and its protection is what the policy looks at.
func (g gh) mergeResource(ctx context.Context, c *http.Client, args agent.Args) (policy.Resource, error) {
	repo, number := args.String("repo"), args.Int("number")
	cl, err := g.client(c)
	if err != nil {
		return policy.Resource{}, err
	}
	owner, name := split(repo)
	pr, _, err := cl.PullRequests.Get(ctx, owner, name, int(number))
	if err != nil {
		return policy.Resource{}, fail(fmt.Sprintf("get pull request %s#%d", repo, number), err)
	}
	res, err := g.branch(ctx, c, repo, pr.GetBase().GetRef(), pr.GetBase().GetRepo().GetPrivate())
	if err != nil {
		return policy.Resource{}, err
	}
	res.Attrs["pull_request"] = number
	// The commit being merged: an approval covers this code, and the broker
	// refuses to run it if the head moved after the approval.
	res.Attrs["head_sha"] = pr.GetHead().GetSHA()
	return res, nil
}

func (g gh) dispatchResource(ctx context.Context, c *http.Client, args agent.Args) (policy.Resource, error) {
	res, err := g.repoResource(ctx, c, args)
	if err != nil {
		return policy.Resource{}, err
	}
	res.Attrs["environment"] = args.String("environment")
	res.Attrs["workflow"] = args.String("workflow")
	res.Attrs["ref"] = args.String("ref")
	return res, nil
}

// Results.

// PullRequest is the JSON-able summary of a pull request in results.
type PullRequest struct {
	Repo      string    `json:"repo"`
	Number    int       `json:"number"`
	Title     string    `json:"title"`
	State     string    `json:"state"`
	Author    string    `json:"author"`
	Head      string    `json:"head"`
	Base      string    `json:"base"`
	URL       string    `json:"url"`
	Merged    bool      `json:"merged"`
	Mergeable *bool     `json:"mergeable,omitempty"`
	Created   time.Time `json:"created"`
}

func summarize(repo string, p *github.PullRequest) PullRequest {
	return PullRequest{
		Repo: repo, Number: p.GetNumber(), Title: p.GetTitle(), State: p.GetState(),
		Author: p.GetUser().GetLogin(), Head: p.GetHead().GetRef(), Base: p.GetBase().GetRef(),
		URL: p.GetHTMLURL(), Merged: p.GetMerged(), Mergeable: p.Mergeable, Created: p.GetCreatedAt().Time,
	}
}

// Actions.

func (g gh) listPullRequests(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, state := args.String("repo"), args.String("state")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	prs, _, err := cl.PullRequests.List(ctx, owner, name, &github.PullRequestListOptions{
		State: state, ListOptions: github.ListOptions{PerPage: 50},
	})
	if err != nil {
		return agent.Result{}, fail("list pull requests in "+repo, err)
	}
	out := make([]PullRequest, 0, len(prs))
	parts := make([]string, 0, len(prs))
	for _, p := range prs {
		out = append(out, summarize(repo, p))
		parts = append(parts, fmt.Sprintf("#%d %s", p.GetNumber(), p.GetTitle()))
	}
	summary := fmt.Sprintf("%d %s pull requests in %s", len(out), state, repo)
	if len(parts) > 0 {
		summary += ": " + strings.Join(parts, "; ")
	}
	return agent.Result{Summary: summary, Data: out}, nil
}

func (g gh) getPullRequest(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, number := args.String("repo"), args.Int("number")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	p, _, err := cl.PullRequests.Get(ctx, owner, name, int(number))
	if err != nil {
		return agent.Result{}, fail(fmt.Sprintf("get pull request %s#%d", repo, number), err)
	}
	s := summarize(repo, p)
	status := s.State
	switch {
	case s.Merged:
		status = "merged"
	case s.Mergeable != nil && !*s.Mergeable:
		status += ", not mergeable"
	}
	return agent.Result{
		Summary: fmt.Sprintf("%s#%d %s by %s (%s → %s, %s)", repo, s.Number, s.Title, s.Author, s.Head, s.Base, status),
		Data:    s,
	}, nil
}

func (g gh) comment(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, number, body := args.String("repo"), args.Int("number"), args.String("body")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	cm, _, err := cl.Issues.CreateComment(ctx, owner, name, int(number), &github.IssueComment{Body: &body})
	if err != nil {
		return agent.Result{}, fail(fmt.Sprintf("comment on %s#%d", repo, number), err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("Commented on %s#%d", repo, number),
		Data:    map[string]any{"id": cm.GetID(), "url": cm.GetHTMLURL()},
	}, nil
}

var reviewWords = map[string]string{"APPROVE": "Approved", "REQUEST_CHANGES": "Requested changes on", "COMMENT": "Reviewed"}

func (g gh) review(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, number, event, body := args.String("repo"), args.Int("number"), args.String("event"), args.String("body")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	req := &github.PullRequestReviewRequest{Event: &event}
	if body != "" {
		req.Body = &body
	}
	rv, _, err := cl.PullRequests.CreateReview(ctx, owner, name, int(number), req)
	if err != nil {
		return agent.Result{}, fail(fmt.Sprintf("review %s#%d", repo, number), err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("%s %s#%d", reviewWords[event], repo, number),
		Data:    map[string]any{"id": rv.GetID(), "state": rv.GetState()},
	}, nil
}

func (g gh) createIssue(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, title, body := args.String("repo"), args.String("title"), args.String("body")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	req := &github.IssueRequest{Title: &title}
	if body != "" {
		req.Body = &body
	}
	is, _, err := cl.Issues.Create(ctx, owner, name, req)
	if err != nil {
		return agent.Result{}, fail("create issue in "+repo, err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("Opened %s#%d %s", repo, is.GetNumber(), is.GetTitle()),
		Data:    map[string]any{"number": is.GetNumber(), "url": is.GetHTMLURL()},
	}, nil
}

func (g gh) merge(ctx context.Context, c *http.Client, args agent.Args, res policy.Resource) (agent.Result, error) {
	repo, number, method := args.String("repo"), args.Int("number"), args.String("method")
	// The head commit the approval covered (mergeResource found it):
	// GitHub merges only if the pull request's head is still that commit,
	// so a push between the approval and the merge fails the merge
	// instead of merging code nobody approved.
	sha, _ := res.Attrs["head_sha"].(string)
	if sha == "" {
		return agent.Result{}, &agent.ProviderError{Service: Service, Op: fmt.Sprintf("merge %s#%d", repo, number), Kind: agent.Failed,
			Message: "the approved head commit is not known, so nothing was merged"}
	}
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	merged, _, err := cl.PullRequests.Merge(ctx, owner, name, int(number), "", &github.PullRequestOptions{MergeMethod: method, SHA: sha})
	if err != nil {
		return agent.Result{}, fail(fmt.Sprintf("merge %s#%d", repo, number), err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("Merged %s#%d (%s)", repo, number, method),
		Data:    map[string]any{"sha": merged.GetSHA(), "merged": merged.GetMerged()},
	}, nil
}

func (g gh) deleteBranch(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, branch := args.String("repo"), args.String("branch")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	if _, err := cl.Git.DeleteRef(ctx, owner, name, "heads/"+branch); err != nil {
		return agent.Result{}, fail("delete branch "+repo+":"+branch, err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("Deleted branch %s in %s", branch, repo),
		Data:    map[string]any{"repo": repo, "branch": branch},
	}, nil
}

func (g gh) dispatch(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	repo, workflow, ref, env := args.String("repo"), args.String("workflow"), args.String("ref"), args.String("environment")
	cl, err := g.client(c)
	if err != nil {
		return agent.Result{}, err
	}
	owner, name := split(repo)
	_, err = cl.Actions.CreateWorkflowDispatchEventByFileName(ctx, owner, name, workflow,
		github.CreateWorkflowDispatchEventRequest{Ref: ref, Inputs: map[string]any{"environment": env}})
	if err != nil {
		return agent.Result{}, fail(fmt.Sprintf("dispatch %s in %s", workflow, repo), err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("Started %s on %s in %s for %s", workflow, ref, repo, env),
		Data:    map[string]any{"repo": repo, "workflow": workflow, "ref": ref, "environment": env},
	}, nil
}

package sim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// GitHub OAuth scopes the simulated REST API checks.
const (
	ScopeRepo       = "repo"        // full control of private and public repositories
	ScopePublicRepo = "public_repo" // write access to public repositories
)

const (
	githubDocs = "https://docs.github.com/rest"
	githubWeb  = "https://github.com"
)

// Repo is a simulated repository.
type Repo struct {
	FullName      string
	Private       bool
	DefaultBranch string
}

// Branch is a branch head in a simulated repository.
type Branch struct {
	Name      string
	SHA       string
	Protected bool
}

// Comment is an issue or pull request conversation comment.
type Comment struct {
	ID     int64
	Author string
	Body   string
	Time   time.Time
}

// Review is a submitted pull request review.
type Review struct {
	ID     int64
	Author string
	State  string // APPROVED, CHANGES_REQUESTED, COMMENTED or PENDING
	Body   string
	Time   time.Time
}

// Issue is a simulated issue (not a pull request; the two share one numbering, as on GitHub).
type Issue struct {
	Repo      string
	Number    int
	Title     string
	Body      string
	Author    string
	State     string
	Labels    []string
	Assignees []string
	Comments  []Comment
	Created   time.Time
}

// PullRequest is a simulated pull request and what happened to it.
type PullRequest struct {
	Repo           string
	Number         int
	Title          string
	Body           string
	Author         string
	State          string // open or closed
	Head, Base     string
	HeadSHA        string
	Mergeable      bool
	Merged         bool
	MergedBy       string
	MergedAt       time.Time
	MergeMethod    string
	MergeCommitSHA string
	Comments       []Comment
	Reviews        []Review
	Created        time.Time
	Additions      int
	Deletions      int
	ChangedFiles   int
}

// Workflow is a GitHub Actions workflow that can be dispatched.
type Workflow struct {
	ID     int64
	Name   string
	Path   string // e.g. .github/workflows/deploy.yml
	Inputs []WorkflowInput
}

// WorkflowInput is one declared workflow_dispatch input.
type WorkflowInput struct {
	Name     string
	Required bool
	Options  []string // allowed values of a choice input; nil for free text
}

// Dispatch is one accepted workflow_dispatch event.
type Dispatch struct {
	Repo     string
	Workflow string // the workflow's file name
	Ref      string
	Inputs   map[string]string
	Actor    string
	Time     time.Time
}

type ghRepo struct {
	Repo
	created    time.Time
	branches   map[string]*Branch
	issues     map[int]*Issue
	pulls      map[int]*PullRequest
	nextNumber int
	workflows  []*Workflow
	dispatches []Dispatch
}

type githubState struct {
	repos map[string]*ghRepo
}

func (s *githubState) init() { s.repos = make(map[string]*ghRepo) }

// fakeSHA makes a stable, commit-looking digest from a description of the commit.
func fakeSHA(parts ...any) string {
	sum := sha1.Sum([]byte(fmt.Sprint(parts...)))
	return hex.EncodeToString(sum[:])
}

func (w *World) seedGitHub() {
	now := w.now()
	day := 24 * time.Hour
	addRepo := func(full string, private bool, protected []string, branches ...string) *ghRepo {
		r := &ghRepo{
			Repo:     Repo{FullName: full, Private: private, DefaultBranch: "main"},
			created:  now.Add(-400 * day),
			branches: make(map[string]*Branch),
			issues:   make(map[int]*Issue),
			pulls:    make(map[int]*PullRequest),
		}
		for _, b := range branches {
			r.branches[b] = &Branch{Name: b, SHA: fakeSHA(full, b, 0), Protected: slices.Contains(protected, b)}
		}
		r.workflows = []*Workflow{{
			ID:   w.nextID() + 160000,
			Name: "Deploy",
			Path: ".github/workflows/deploy.yml",
			Inputs: []WorkflowInput{
				{Name: "environment", Required: true, Options: []string{"staging", "production"}},
			},
		}}
		w.gh.repos[full] = r
		return r
	}
	addPR := func(r *ghRepo, n int, title, body, author, head string, mergeable bool, age time.Duration, adds, dels, files int) {
		r.pulls[n] = &PullRequest{
			Repo: r.FullName, Number: n, Title: title, Body: body, Author: author, State: "open",
			Head: head, Base: "main", HeadSHA: r.branches[head].SHA, Mergeable: mergeable,
			Created: now.Add(-age), Additions: adds, Deletions: dels, ChangedFiles: files,
		}
		r.nextNumber = max(r.nextNumber, n+1)
	}

	web := addRepo("acme/website", false, nil, "main", "feature-x", "docs-typo")
	addPR(web, 12, "Add feature X to the landing page", "Adds the feature X section and its screenshots.",
		"bob", "feature-x", true, 3*day, 120, 8, 5)
	addPR(web, 13, "Fix typo in the docs", "teh → the", "carol", "docs-typo", true, 5*time.Hour, 1, 1, 1)

	pay := addRepo("acme/payments", true, []string{"main"}, "main", "fix-rounding", "feature-refunds")
	addPR(pay, 7, "Fix rounding in refunds", "Refunds rounded half-down; this rounds half-even like charges.",
		"bob", "fix-rounding", true, 2*day, 14, 6, 2)
	addPR(pay, 8, "Add partial refunds", "Work in progress; conflicts with main.",
		"carol", "feature-refunds", false, 6*day, 310, 40, 9)
}

// GitHubView reads the simulated GitHub for assertions. Its results are copies.
type GitHubView struct{ w *World }

// GitHub returns a read-only view of the simulated GitHub.
func (w *World) GitHub() GitHubView { return GitHubView{w} }

// Repo returns a repository by owner/name.
func (v GitHubView) Repo(full string) (Repo, bool) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	r, ok := v.w.gh.repos[full]
	if !ok {
		return Repo{}, false
	}
	return r.Repo, true
}

// Branches returns a repository's branches by name.
func (v GitHubView) Branches(full string) []Branch {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	r, ok := v.w.gh.repos[full]
	if !ok {
		return nil
	}
	out := make([]Branch, 0, len(r.branches))
	for _, b := range r.branches {
		out = append(out, *b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Branch returns one branch.
func (v GitHubView) Branch(full, name string) (Branch, bool) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	r, ok := v.w.gh.repos[full]
	if !ok {
		return Branch{}, false
	}
	b, ok := r.branches[name]
	if !ok {
		return Branch{}, false
	}
	return *b, true
}

// Push simulates someone pushing a commit to a branch, outside AgentHub:
// the branch and every open pull request whose head it is get a new head
// commit, which it returns.
func (w *World) Push(full, branch string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.gh.repos[full]
	if !ok {
		return "", false
	}
	b, ok := r.branches[branch]
	if !ok {
		return "", false
	}
	b.SHA = fakeSHA(full, branch, b.SHA)
	for _, p := range r.pulls {
		if p.State == "open" && p.Head == branch {
			p.HeadSHA = b.SHA
		}
	}
	return b.SHA, true
}

// PullRequest returns one pull request with its comments and reviews.
func (v GitHubView) PullRequest(full string, number int) (PullRequest, bool) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	r, ok := v.w.gh.repos[full]
	if !ok {
		return PullRequest{}, false
	}
	p, ok := r.pulls[number]
	if !ok {
		return PullRequest{}, false
	}
	return copyPull(p), true
}

// Issues returns a repository's issues (not pull requests) by number.
func (v GitHubView) Issues(full string) []Issue {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	r, ok := v.w.gh.repos[full]
	if !ok {
		return nil
	}
	var out []Issue
	for _, n := range sortedKeys(r.issues) {
		i := *r.issues[n]
		i.Labels, i.Assignees, i.Comments = slices.Clone(i.Labels), slices.Clone(i.Assignees), slices.Clone(i.Comments)
		out = append(out, i)
	}
	return out
}

// Dispatches returns the workflow dispatches a repository accepted, oldest first.
func (v GitHubView) Dispatches(full string) []Dispatch {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	r, ok := v.w.gh.repos[full]
	if !ok {
		return nil
	}
	out := make([]Dispatch, 0, len(r.dispatches))
	for _, d := range r.dispatches {
		d.Inputs = cloneMap(d.Inputs)
		out = append(out, d)
	}
	return out
}

func copyPull(p *PullRequest) PullRequest {
	c := *p
	c.Comments, c.Reviews = slices.Clone(p.Comments), slices.Clone(p.Reviews)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ghError is GitHub's error body.
type ghError struct {
	Message string         `json:"message"`
	Errors  []ghFieldError `json:"errors,omitempty"`
	Docs    string         `json:"documentation_url"`
	Status  string         `json:"status"`
}

type ghFieldError struct {
	Resource string `json:"resource"`
	Field    string `json:"field"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

func ghFail(rw http.ResponseWriter, n *note, status int, msg string, errs ...ghFieldError) {
	n.err = msg
	writeJSON(rw, status, ghError{Message: msg, Errors: errs, Docs: githubDocs, Status: strconv.Itoa(status)})
}

func ghNotFound(rw http.ResponseWriter, n *note) { ghFail(rw, n, http.StatusNotFound, "Not Found") }

// ghAccess says what a route needs from the token.
type ghAccess int

const (
	ghRead     ghAccess = iota // public: any token; private: repo
	ghWrite                    // public: public_repo or repo; private: repo
	ghWorkflow                 // repo, as GitHub documents for workflow dispatch with OAuth tokens
)

// ghRequest is one authenticated GitHub request being served; w.mu is held while it lives.
type ghRequest struct {
	g    *grant
	repo *ghRepo
}

// githubRoute wraps a repository handler: it authenticates, finds the repository and checks the
// token's scopes, answering as GitHub does (401 Bad credentials; 404 for a private repository the
// token cannot see, so its existence does not leak). The handler runs with w.mu held.
func (w *World) githubRoute(access ghAccess, h func(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest)) noteHandler {
	return func(rw http.ResponseWriter, r *http.Request, n *note) {
		w.mu.Lock()
		defer w.mu.Unlock()
		g, ok := w.githubAuth(rw, r, n)
		if !ok {
			return
		}
		repo := w.gh.repos[r.PathValue("owner")+"/"+r.PathValue("repo")]
		if repo == nil {
			ghNotFound(rw, n)
			return
		}
		var need []string
		switch {
		case access == ghWorkflow || repo.Private:
			need = []string{ScopeRepo}
		case access == ghWrite:
			need = []string{ScopeRepo, ScopePublicRepo}
		}
		if need != nil {
			rw.Header().Set("X-Accepted-OAuth-Scopes", strings.Join(need, ", "))
		}
		if need != nil && !hasScope(g.Scopes, need...) {
			ghNotFound(rw, n)
			return
		}
		h(rw, r, n, ghRequest{g: g, repo: repo})
	}
}

// githubAuth checks the bearer token; w.mu must be held.
func (w *World) githubAuth(rw http.ResponseWriter, r *http.Request, n *note) (*grant, bool) {
	g, why := w.authenticate(ServiceGitHub, bearer(r))
	switch why {
	case "":
	case authMissing:
		ghFail(rw, n, http.StatusUnauthorized, "Requires authentication")
		return nil, false
	default:
		ghFail(rw, n, http.StatusUnauthorized, "Bad credentials")
		return nil, false
	}
	n.principal = g.Principal
	rw.Header().Set("X-OAuth-Scopes", strings.Join(g.Scopes, ", "))
	return g, true
}

func (w *World) routeGitHub(mux *http.ServeMux) {
	const repo = "/github/repos/{owner}/{repo}"
	handle := func(pattern string, h noteHandler) { mux.Handle(pattern, w.recorded(ServiceGitHub, h)) }
	handle("GET /github/user", w.ghUser)
	handle("GET "+repo, w.githubRoute(ghRead, w.ghGetRepo))
	handle("GET "+repo+"/branches/{branch...}", w.githubRoute(ghRead, w.ghGetBranch))
	handle("GET "+repo+"/pulls", w.githubRoute(ghRead, w.ghListPulls))
	handle("GET "+repo+"/pulls/{number}", w.githubRoute(ghRead, w.ghGetPull))
	handle("POST "+repo+"/pulls/{number}/reviews", w.githubRoute(ghWrite, w.ghCreateReview))
	handle("PUT "+repo+"/pulls/{number}/merge", w.githubRoute(ghWrite, w.ghMerge))
	handle("POST "+repo+"/issues", w.githubRoute(ghWrite, w.ghCreateIssue))
	handle("POST "+repo+"/issues/{number}/comments", w.githubRoute(ghWrite, w.ghCreateComment))
	handle("DELETE "+repo+"/git/refs/heads/{branch...}", w.githubRoute(ghWrite, w.ghDeleteBranch))
	handle("GET "+repo+"/actions/workflows", w.githubRoute(ghRead, w.ghListWorkflows))
	handle("POST "+repo+"/actions/workflows/{workflow}/dispatches", w.githubRoute(ghWorkflow, w.ghDispatch))
	handle("/github/", func(rw http.ResponseWriter, r *http.Request, n *note) { ghNotFound(rw, n) })
}

// JSON shapes, named as go-github decodes them.

type ghUserJSON struct {
	Login   string `json:"login"`
	ID      int64  `json:"id"`
	Type    string `json:"type"`
	HTMLURL string `json:"html_url"`
}

type ghRepoJSON struct {
	ID            int64      `json:"id"`
	Name          string     `json:"name"`
	FullName      string     `json:"full_name"`
	Owner         ghUserJSON `json:"owner"`
	Private       bool       `json:"private"`
	Visibility    string     `json:"visibility"`
	DefaultBranch string     `json:"default_branch"`
	HTMLURL       string     `json:"html_url"`
	CreatedAt     time.Time  `json:"created_at"`
}

type ghBranchRefJSON struct {
	Label string     `json:"label"`
	Ref   string     `json:"ref"`
	SHA   string     `json:"sha"`
	User  ghUserJSON `json:"user"`
	Repo  ghRepoJSON `json:"repo"`
}

type ghPullJSON struct {
	ID             int64           `json:"id"`
	Number         int             `json:"number"`
	State          string          `json:"state"`
	Title          string          `json:"title"`
	Body           string          `json:"body"`
	User           ghUserJSON      `json:"user"`
	HTMLURL        string          `json:"html_url"`
	Head           ghBranchRefJSON `json:"head"`
	Base           ghBranchRefJSON `json:"base"`
	Draft          bool            `json:"draft"`
	Merged         bool            `json:"merged"`
	Mergeable      *bool           `json:"mergeable"`
	MergeableState string          `json:"mergeable_state"`
	MergedAt       *time.Time      `json:"merged_at"`
	MergedBy       *ghUserJSON     `json:"merged_by"`
	MergeCommitSHA *string         `json:"merge_commit_sha"`
	Comments       int             `json:"comments"`
	Additions      int             `json:"additions"`
	Deletions      int             `json:"deletions"`
	ChangedFiles   int             `json:"changed_files"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	ClosedAt       *time.Time      `json:"closed_at"`
}

func ghUser(login string) ghUserJSON {
	h := fnv.New32a()
	h.Write([]byte(login))
	return ghUserJSON{Login: login, ID: int64(h.Sum32()), Type: "User", HTMLURL: githubWeb + "/" + login}
}

func repoJSON(r *ghRepo) ghRepoJSON {
	owner, name, _ := strings.Cut(r.FullName, "/")
	vis := "public"
	if r.Private {
		vis = "private"
	}
	return ghRepoJSON{
		ID: int64(len(r.FullName)) * 7919, Name: name, FullName: r.FullName, Owner: ghUser(owner),
		Private: r.Private, Visibility: vis, DefaultBranch: r.DefaultBranch,
		HTMLURL: githubWeb + "/" + r.FullName, CreatedAt: r.created,
	}
}

func pullJSON(r *ghRepo, p *PullRequest) ghPullJSON {
	owner, _, _ := strings.Cut(r.FullName, "/")
	ref := func(branch, sha string) ghBranchRefJSON {
		return ghBranchRefJSON{Label: owner + ":" + branch, Ref: branch, SHA: sha, User: ghUser(owner), Repo: repoJSON(r)}
	}
	baseSHA := ""
	if b := r.branches[p.Base]; b != nil {
		baseSHA = b.SHA
	}
	out := ghPullJSON{
		ID: int64(p.Number) + 1000*int64(len(r.FullName)), Number: p.Number, State: p.State,
		Title: p.Title, Body: p.Body, User: ghUser(p.Author),
		HTMLURL: fmt.Sprintf("%s/%s/pull/%d", githubWeb, r.FullName, p.Number),
		Head:    ref(p.Head, p.HeadSHA), Base: ref(p.Base, baseSHA),
		Merged: p.Merged, Comments: len(p.Comments), Additions: p.Additions, Deletions: p.Deletions,
		ChangedFiles: p.ChangedFiles, CreatedAt: p.Created, UpdatedAt: p.Created,
	}
	switch {
	case p.Merged:
		out.MergeableState = "unknown"
		at, by, sha := p.MergedAt, ghUser(p.MergedBy), p.MergeCommitSHA
		out.MergedAt, out.MergedBy, out.MergeCommitSHA, out.ClosedAt, out.UpdatedAt = &at, &by, &sha, &at, at
	case p.State == "closed":
		out.MergeableState = "unknown"
	default:
		m := p.Mergeable
		out.Mergeable = &m
		out.MergeableState = "clean"
		if !m {
			out.MergeableState = "dirty"
		}
	}
	return out
}

func (w *World) ghUser(rw http.ResponseWriter, r *http.Request, n *note) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g, ok := w.githubAuth(rw, r, n)
	if !ok {
		return
	}
	writeJSON(rw, http.StatusOK, ghUser(g.Principal))
}

func (w *World) ghGetRepo(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	writeJSON(rw, http.StatusOK, repoJSON(q.repo))
}

func (w *World) ghGetBranch(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	b := q.repo.branches[r.PathValue("branch")]
	if b == nil {
		ghFail(rw, n, http.StatusNotFound, "Branch not found")
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{
		"name":      b.Name,
		"commit":    map[string]any{"sha": b.SHA},
		"protected": b.Protected,
	})
}

func (w *World) ghListPulls(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "open"
	}
	if state != "open" && state != "closed" && state != "all" {
		ghFail(rw, n, http.StatusUnprocessableEntity, "Validation Failed",
			ghFieldError{Resource: "PullRequest", Field: "state", Code: "invalid"})
		return
	}
	out := []ghPullJSON{}
	nums := sortedKeys(q.repo.pulls)
	slices.Reverse(nums) // GitHub lists newest first
	for _, num := range nums {
		p := q.repo.pulls[num]
		if state == "all" || p.State == state {
			out = append(out, pullJSON(q.repo, p))
		}
	}
	writeJSON(rw, http.StatusOK, out)
}

// ghNumber parses the {number} path value, answering 404 when it is not a number.
func ghNumber(rw http.ResponseWriter, r *http.Request, n *note) (int, bool) {
	num, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || num <= 0 {
		ghNotFound(rw, n)
		return 0, false
	}
	return num, true
}

// pull finds the numbered pull request, answering 404 when there is none.
func (w *World) pull(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) *PullRequest {
	num, ok := ghNumber(rw, r, n)
	if !ok {
		return nil
	}
	p := q.repo.pulls[num]
	if p == nil {
		ghNotFound(rw, n)
	}
	return p
}

func (w *World) ghGetPull(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	if p := w.pull(rw, r, n, q); p != nil {
		writeJSON(rw, http.StatusOK, pullJSON(q.repo, p))
	}
}

func (w *World) ghCreateReview(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	p := w.pull(rw, r, n, q)
	if p == nil {
		return
	}
	var in struct {
		Body     string `json:"body"`
		Event    string `json:"event"`
		CommitID string `json:"commit_id"`
	}
	if err := decodeJSON(r, &in); err != nil {
		ghFail(rw, n, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	states := map[string]string{"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED", "": "PENDING"}
	state, ok := states[in.Event]
	switch {
	case !ok:
		ghFail(rw, n, http.StatusUnprocessableEntity, "Validation Failed",
			ghFieldError{Resource: "PullRequestReview", Field: "event", Code: "invalid"})
		return
	case (state == "CHANGES_REQUESTED" || state == "COMMENTED") && in.Body == "":
		ghFail(rw, n, http.StatusUnprocessableEntity, "Unprocessable Entity",
			ghFieldError{Resource: "PullRequestReview", Field: "body", Code: "missing_field",
				Message: "Body is required when the review event is " + in.Event})
		return
	case state == "APPROVED" && q.g.Principal == p.Author:
		ghFail(rw, n, http.StatusUnprocessableEntity, "Unprocessable Entity",
			ghFieldError{Resource: "PullRequestReview", Code: "custom", Message: "Can not approve your own pull request"})
		return
	case p.State != "open":
		ghFail(rw, n, http.StatusUnprocessableEntity, "Unprocessable Entity",
			ghFieldError{Resource: "PullRequestReview", Code: "custom", Message: "Pull request is closed"})
		return
	}
	now := w.now()
	rev := Review{ID: w.nextID(), Author: q.g.Principal, State: state, Body: in.Body, Time: now}
	p.Reviews = append(p.Reviews, rev)
	out := map[string]any{
		"id":        rev.ID,
		"user":      ghUser(rev.Author),
		"body":      rev.Body,
		"state":     rev.State,
		"commit_id": p.HeadSHA,
		"html_url":  fmt.Sprintf("%s/%s/pull/%d#pullrequestreview-%d", githubWeb, q.repo.FullName, p.Number, rev.ID),
	}
	if state != "PENDING" {
		out["submitted_at"] = now
	}
	writeJSON(rw, http.StatusOK, out)
}

func (w *World) ghMerge(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	p := w.pull(rw, r, n, q)
	if p == nil {
		return
	}
	var in struct {
		CommitTitle   string `json:"commit_title"`
		CommitMessage string `json:"commit_message"`
		SHA           string `json:"sha"`
		MergeMethod   string `json:"merge_method"`
	}
	if err := decodeJSON(r, &in); err != nil {
		ghFail(rw, n, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if in.MergeMethod == "" {
		in.MergeMethod = "merge"
	}
	base := q.repo.branches[p.Base]
	switch {
	case in.MergeMethod != "merge" && in.MergeMethod != "squash" && in.MergeMethod != "rebase":
		ghFail(rw, n, http.StatusUnprocessableEntity, "Validation Failed",
			ghFieldError{Resource: "PullRequest", Field: "merge_method", Code: "invalid"})
		return
	case p.Merged || p.State != "open" || !p.Mergeable || base == nil:
		ghFail(rw, n, http.StatusMethodNotAllowed, "Pull Request is not mergeable")
		return
	case in.SHA != "" && in.SHA != p.HeadSHA:
		ghFail(rw, n, http.StatusConflict, "Head branch was modified. Review and try the merge again.")
		return
	}
	now := w.now()
	sha := fakeSHA(q.repo.FullName, "merge", p.Number, w.nextID())
	base.SHA = sha
	p.Merged, p.State, p.MergedBy, p.MergedAt, p.MergeMethod, p.MergeCommitSHA =
		true, "closed", q.g.Principal, now, in.MergeMethod, sha
	writeJSON(rw, http.StatusOK, map[string]any{"sha": sha, "merged": true, "message": "Pull Request successfully merged"})
}

type ghIssueIn struct {
	Title     *string  `json:"title"`
	Body      string   `json:"body"`
	Labels    []string `json:"labels"`
	Assignees []string `json:"assignees"`
}

func (w *World) ghCreateIssue(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	var in ghIssueIn
	if err := decodeJSON(r, &in); err != nil {
		ghFail(rw, n, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if in.Title == nil || strings.TrimSpace(*in.Title) == "" {
		ghFail(rw, n, http.StatusUnprocessableEntity, "Validation Failed",
			ghFieldError{Resource: "Issue", Field: "title", Code: "missing_field"})
		return
	}
	num := max(q.repo.nextNumber, 1)
	q.repo.nextNumber = num + 1
	iss := &Issue{
		Repo: q.repo.FullName, Number: num, Title: *in.Title, Body: in.Body, Author: q.g.Principal,
		State: "open", Labels: in.Labels, Assignees: in.Assignees, Created: w.now(),
	}
	q.repo.issues[num] = iss
	labels := make([]map[string]string, 0, len(iss.Labels))
	for _, l := range iss.Labels {
		labels = append(labels, map[string]string{"name": l})
	}
	assignees := make([]ghUserJSON, 0, len(iss.Assignees))
	for _, a := range iss.Assignees {
		assignees = append(assignees, ghUser(a))
	}
	writeJSON(rw, http.StatusCreated, map[string]any{
		"id":         int64(num) + 5000*int64(len(q.repo.FullName)),
		"number":     num,
		"title":      iss.Title,
		"body":       iss.Body,
		"state":      iss.State,
		"user":       ghUser(iss.Author),
		"labels":     labels,
		"assignees":  assignees,
		"html_url":   fmt.Sprintf("%s/%s/issues/%d", githubWeb, q.repo.FullName, num),
		"created_at": iss.Created,
	})
}

func (w *World) ghCreateComment(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	num, ok := ghNumber(rw, r, n)
	if !ok {
		return
	}
	var comments *[]Comment
	kind := "issues"
	if p := q.repo.pulls[num]; p != nil {
		comments, kind = &p.Comments, "pull"
	} else if i := q.repo.issues[num]; i != nil {
		comments = &i.Comments
	} else {
		ghNotFound(rw, n)
		return
	}
	var in struct {
		Body *string `json:"body"`
	}
	if err := decodeJSON(r, &in); err != nil {
		ghFail(rw, n, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	if in.Body == nil || *in.Body == "" {
		ghFail(rw, n, http.StatusUnprocessableEntity, "Validation Failed",
			ghFieldError{Resource: "IssueComment", Field: "body", Code: "missing_field"})
		return
	}
	c := Comment{ID: w.nextID(), Author: q.g.Principal, Body: *in.Body, Time: w.now()}
	*comments = append(*comments, c)
	writeJSON(rw, http.StatusCreated, map[string]any{
		"id":         c.ID,
		"body":       c.Body,
		"user":       ghUser(c.Author),
		"html_url":   fmt.Sprintf("%s/%s/%s/%d#issuecomment-%d", githubWeb, q.repo.FullName, kind, num, c.ID),
		"created_at": c.Time,
		"updated_at": c.Time,
	})
}

func (w *World) ghDeleteBranch(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	name := r.PathValue("branch")
	b := q.repo.branches[name]
	switch {
	case b == nil:
		ghFail(rw, n, http.StatusUnprocessableEntity, "Reference does not exist")
		return
	case b.Protected:
		ghFail(rw, n, http.StatusUnprocessableEntity, "Cannot delete this protected branch")
		return
	case name == q.repo.DefaultBranch:
		ghFail(rw, n, http.StatusUnprocessableEntity, "Cannot delete the default branch")
		return
	}
	delete(q.repo.branches, name)
	// GitHub closes the open pull requests whose head branch disappears.
	for _, p := range q.repo.pulls {
		if p.Head == name && p.State == "open" {
			p.State = "closed"
		}
	}
	rw.WriteHeader(http.StatusNoContent)
}

func workflowJSON(r *ghRepo, wf *Workflow) map[string]any {
	return map[string]any{
		"id":         wf.ID,
		"node_id":    fmt.Sprintf("W_%d", wf.ID),
		"name":       wf.Name,
		"path":       wf.Path,
		"state":      "active",
		"created_at": r.created,
		"updated_at": r.created,
		"html_url":   fmt.Sprintf("%s/%s/blob/%s/%s", githubWeb, r.FullName, r.DefaultBranch, wf.Path),
		"badge_url":  fmt.Sprintf("%s/%s/workflows/%s/badge.svg", githubWeb, r.FullName, wf.Name),
	}
}

func (w *World) ghListWorkflows(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	list := make([]map[string]any, 0, len(q.repo.workflows))
	for _, wf := range q.repo.workflows {
		list = append(list, workflowJSON(q.repo, wf))
	}
	writeJSON(rw, http.StatusOK, map[string]any{"total_count": len(list), "workflows": list})
}

func (w *World) ghDispatch(rw http.ResponseWriter, r *http.Request, n *note, q ghRequest) {
	id := r.PathValue("workflow")
	var wf *Workflow
	for _, c := range q.repo.workflows {
		if strconv.FormatInt(c.ID, 10) == id || c.Path == ".github/workflows/"+id {
			wf = c
		}
	}
	if wf == nil {
		ghNotFound(rw, n)
		return
	}
	var in struct {
		Ref    string         `json:"ref"`
		Inputs map[string]any `json:"inputs"`
	}
	if err := decodeJSON(r, &in); err != nil {
		ghFail(rw, n, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	ref := strings.TrimPrefix(in.Ref, "refs/heads/")
	if in.Ref == "" {
		ghFail(rw, n, http.StatusUnprocessableEntity, "Invalid request.\n\n\"ref\" wasn't supplied.")
		return
	}
	if q.repo.branches[ref] == nil {
		ghFail(rw, n, http.StatusUnprocessableEntity, "No ref found for: "+in.Ref)
		return
	}
	inputs := make(map[string]string, len(in.Inputs))
	var unexpected []string
	for k, v := range in.Inputs {
		s, ok := v.(string)
		if !ok {
			ghFail(rw, n, http.StatusUnprocessableEntity, fmt.Sprintf("Invalid value for input '%s'", k))
			return
		}
		if !slices.ContainsFunc(wf.Inputs, func(i WorkflowInput) bool { return i.Name == k }) {
			unexpected = append(unexpected, k)
		}
		inputs[k] = s
	}
	if len(unexpected) > 0 {
		slices.Sort(unexpected)
		ghFail(rw, n, http.StatusUnprocessableEntity, fmt.Sprintf("Unexpected inputs provided: %q", unexpected))
		return
	}
	for _, decl := range wf.Inputs {
		v, ok := inputs[decl.Name]
		if decl.Required && !ok {
			ghFail(rw, n, http.StatusUnprocessableEntity, fmt.Sprintf("Required input '%s' not provided", decl.Name))
			return
		}
		if ok && decl.Options != nil && !slices.Contains(decl.Options, v) {
			ghFail(rw, n, http.StatusUnprocessableEntity,
				fmt.Sprintf("Provided value '%s' for input '%s' not in the list of allowed values", v, decl.Name))
			return
		}
	}
	q.repo.dispatches = append(q.repo.dispatches, Dispatch{
		Repo: q.repo.FullName, Workflow: strings.TrimPrefix(wf.Path, ".github/workflows/"), Ref: ref,
		Inputs: inputs, Actor: q.g.Principal, Time: w.now(),
	})
	rw.WriteHeader(http.StatusNoContent)
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/agenthub/agenthub/internal/policy"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Args are an action's canonical arguments: JSON-like values in which every integral number is
// an int64, other numbers are float64, and strings are trimmed. Registry.Validate makes them.
type Args map[string]any

// Result is what an executed action returns.
type Result struct {
	// Summary is one line for Slack and the console, e.g. "Merged acme/payments#7 (squash)".
	Summary string
	// Data is the JSON-able detail, e.g. the list of pull requests.
	Data any
}

// Func is an action's code that inspects: it finds what a step touches with the lease's client,
// which carries the person's credential in its transport.
type Func[T any] func(ctx context.Context, c *http.Client, args Args) (T, error)

// Exec is an action's code that acts, with the lease's client. It gets the step's resource as the
// policy decided on it, and the person approved it, so that what it changes is what was approved:
// a merge names the head commit the approval covered, and a push after the approval makes it fail
// rather than merge code nobody saw.
type Exec func(ctx context.Context, c *http.Client, args Args, res policy.Resource) (Result, error)

// Action is one thing an agent can do.
type Action struct {
	Name        string // "github.merge_pull_request"
	Agent       string // "github"
	Service     string // the vault service whose lease it needs: "github", "google" or "slack"
	Description string // for people and for LLM tool definitions
	// Schema is the JSON Schema (draft 2020-12) of the parameters: an object schema whose
	// properties list every parameter. Unknown properties are always refused.
	Schema string
	Scopes []string    // provider scopes it needs
	Risk   policy.Risk // base risk
	Write  bool        // whether it changes anything
	// Resource finds what the step touches with a cheap read (is the repository private, is the
	// branch protected). Nil means the resource follows from the arguments alone, via
	// ResourceFromArgs.
	Resource Func[policy.Resource]
	// ResourceFromArgs names the resource without a provider call; used when Resource is nil.
	ResourceFromArgs func(args Args) policy.Resource
	// Check, when set, enforces rules across fields that a schema would word badly (one of
	// two ways to give a time range, an end after the start). Validate calls it on the
	// canonical arguments; its error message names the fields and is shown to the person.
	Check func(args Args) error
	// Execute performs the action.
	Execute Exec
}

// Policy returns the action as the policy engine sees it.
func (a *Action) Policy() policy.Action {
	return policy.Action{Agent: a.Agent, Name: a.Name, Risk: a.Risk, Scopes: slices.Clone(a.Scopes), Write: a.Write}
}

// FindResource returns the resource the step touches: by Resource when the action has one, else
// from the arguments.
func (a *Action) FindResource(ctx context.Context, c *http.Client, args Args) (policy.Resource, error) {
	if a.Resource != nil {
		return a.Resource(ctx, c, args)
	}
	if a.ResourceFromArgs != nil {
		return a.ResourceFromArgs(args), nil
	}
	return policy.Resource{Kind: a.Agent, Name: a.Name}, nil
}

// compiled is a registered action with its compiled schema.
type compiled struct {
	Action
	schema *jsonschema.Schema
	props  map[string]*jsonschema.Schema
}

// Registry holds the actions of every agent. It is safe for concurrent use; actions are
// registered at start-up and looked up on every step.
type Registry struct {
	mu      sync.RWMutex
	actions map[string]*compiled
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{actions: make(map[string]*compiled)} }

// Register adds actions, compiling each schema once. It refuses a duplicate name, a name not
// prefixed by its agent, a missing Execute, or a schema that is not an object schema with
// properties.
func (r *Registry) Register(actions ...Action) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range actions {
		if err := r.register(a); err != nil {
			return fmt.Errorf("register %s: %w", a.Name, err)
		}
	}
	return nil
}

func (r *Registry) register(a Action) error {
	switch {
	case a.Agent == "" || !strings.HasPrefix(a.Name, a.Agent+".") || len(a.Name) == len(a.Agent)+1:
		return errors.New("name must be agent.action")
	case a.Execute == nil:
		return errors.New("no Execute")
	case r.actions[a.Name] != nil:
		return errors.New("already registered")
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(a.Schema))
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	url := "agenthub:/actions/" + a.Name + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if s.Types == nil || s.Types.String() != "[object]" || s.Properties == nil {
		return errors.New("schema must be an object schema with properties")
	}
	r.actions[a.Name] = &compiled{Action: a, schema: s, props: s.Properties}
	return nil
}

// Lookup returns the action with that name.
func (r *Registry) Lookup(name string) (*Action, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.actions[name]
	if !ok {
		return nil, false
	}
	a := c.Action
	return &a, true
}

// Actions returns every action, sorted by name.
func (r *Registry) Actions() []Action {
	return r.filter(func(*Action) bool { return true })
}

// ForAgent returns the actions of one agent, sorted by name.
func (r *Registry) ForAgent(agent string) []Action {
	return r.filter(func(a *Action) bool { return a.Agent == agent })
}

func (r *Registry) filter(keep func(*Action) bool) []Action {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Action
	for _, c := range r.actions {
		if keep(&c.Action) {
			out = append(out, c.Action)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// String returns a string argument, or "" when it is absent or not a string. Validate has already
// checked types, so actions use these accessors without repeating the checks.
func (a Args) String(key string) string {
	s, _ := a[key].(string)
	return s
}

// Int returns an integer argument, or 0 when it is absent or not an integer.
func (a Args) Int(key string) int64 {
	i, _ := a[key].(int64)
	return i
}

// Strings returns a list-of-strings argument, skipping anything that is not a string.
func (a Args) Strings(key string) []string {
	list, _ := a[key].([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

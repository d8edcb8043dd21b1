package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"testing"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/google/go-cmp/cmp"
)

func noop(context.Context, *http.Client, agent.Args, policy.Resource) (agent.Result, error) {
	return agent.Result{}, nil
}

func testRegistry(t *testing.T) *agent.Registry {
	t.Helper()
	r := agent.NewRegistry()
	err := r.Register(
		agent.Action{Name: "demo.thing", Agent: "demo", Risk: policy.Medium, Execute: noop,
			Schema: agent.ObjectSchema(agent.Props{
				"name":  `{"type":"string","minLength":1}`,
				"count": `{"type":"integer","minimum":1,"default":3}`,
				"ratio": `{"type":"number"}`,
				"tags":  `{"type":"array","items":{"type":"string"},"default":[]}`,
				"mode":  `{"type":"string","enum":["a","b"],"default":"a"}`,
			}, "name")},
		agent.Action{Name: "other.list", Agent: "other", Execute: noop, Schema: agent.ObjectSchema(agent.Props{})},
	)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return r
}

func TestValidate(t *testing.T) {
	r := testRegistry(t)
	defaults := func(a agent.Args) agent.Args {
		for k, v := range map[string]any{"count": int64(3), "tags": []any{}, "mode": "a"} {
			if _, ok := a[k]; !ok {
				a[k] = v
			}
		}
		return a
	}
	tests := []struct {
		name   string
		raw    map[string]any
		want   agent.Args
		errMsg string
	}{
		{"defaults applied", map[string]any{"name": "x"}, defaults(agent.Args{"name": "x"}), ""},
		{"strings trimmed", map[string]any{"name": "  x \n", "tags": []string{" a ", "b"}},
			defaults(agent.Args{"name": "x", "tags": []any{"a", "b"}}), ""},
		{"int from float64 7.0", map[string]any{"name": "x", "count": 7.0}, defaults(agent.Args{"name": "x", "count": int64(7)}), ""},
		{"int from json.Number", map[string]any{"name": "x", "count": json.Number("7")}, defaults(agent.Args{"name": "x", "count": int64(7)}), ""},
		{"int from json.Number 7.0", map[string]any{"name": "x", "count": json.Number("7.0")}, defaults(agent.Args{"name": "x", "count": int64(7)}), ""},
		{"int from int", map[string]any{"name": "x", "count": 7}, defaults(agent.Args{"name": "x", "count": int64(7)}), ""},
		{"integral number canonical too", map[string]any{"name": "x", "ratio": 2.0}, defaults(agent.Args{"name": "x", "ratio": int64(2)}), ""},
		{"fraction stays float", map[string]any{"name": "x", "ratio": json.Number("0.5")}, defaults(agent.Args{"name": "x", "ratio": 0.5}), ""},
		{"missing field", map[string]any{}, nil, "invalid arguments for demo.thing: name: is required"},
		{"empty after trim", map[string]any{"name": "   "}, nil, "invalid arguments for demo.thing: name: must not be empty"},
		{"wrong type", map[string]any{"name": 5}, nil, "invalid arguments for demo.thing: name: must be a string, not a number"},
		{"fraction for integer", map[string]any{"name": "x", "count": 7.5}, nil, "invalid arguments for demo.thing: count: must be an integer, not a number"},
		{"below minimum", map[string]any{"name": "x", "count": 0}, nil, "invalid arguments for demo.thing: count: must be at least 1"},
		{"extra field", map[string]any{"name": "x", "force": true}, nil, "invalid arguments for demo.thing: force: unknown field"},
		{"not in enum", map[string]any{"name": "x", "mode": "c"}, nil, "invalid arguments for demo.thing: mode: must be one of a, b"},
		{"bad item", map[string]any{"name": "x", "tags": []any{"a", 1}}, nil, "invalid arguments for demo.thing: tags.1: must be a string, not a number"},
		{"several problems sorted", map[string]any{"count": "3", "zz": 1}, nil, "invalid arguments for demo.thing: count: must be an integer, not a string; name: is required; zz: unknown field"},
		{"unsupported type", map[string]any{"name": struct{}{}}, nil, "invalid arguments for demo.thing: name: has an unsupported type struct {}"},
		{"not finite", map[string]any{"name": "x", "ratio": math.Inf(1)}, nil, "invalid arguments for demo.thing: ratio: is not a finite number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Validate("demo.thing", tt.raw)
			if tt.errMsg != "" {
				var ve *agent.ValidationError
				if !errors.As(err, &ve) || err.Error() != tt.errMsg {
					t.Fatalf("error = %v, want ValidationError %q", err, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateSameRequestSameArgs(t *testing.T) {
	r := testRegistry(t)
	a, err1 := r.Validate("demo.thing", map[string]any{"name": "x", "count": 7.0})
	b, err2 := r.Validate("demo.thing", map[string]any{"name": " x", "count": json.Number("7"), "mode": "a"})
	if err1 != nil || err2 != nil {
		t.Fatalf("validate: %v, %v", err1, err2)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("canonical forms differ: %s vs %s", ja, jb)
	}
}

func TestValidateUnknownAction(t *testing.T) {
	r := testRegistry(t)
	if _, err := r.Validate("demo.nope", nil); !errors.Is(err, agent.ErrUnknownAction) {
		t.Errorf("error = %v, want ErrUnknownAction", err)
	}
	if got, err := r.Validate("other.list", nil); err != nil || len(got) != 0 {
		t.Errorf("Validate(other.list, nil) = %v, %v; want empty args", got, err)
	}
}

func TestRegister(t *testing.T) {
	good := agent.Action{Name: "x.y", Agent: "x", Execute: noop, Schema: agent.ObjectSchema(agent.Props{})}
	tests := []struct {
		name string
		edit func(a *agent.Action)
	}{
		{"name without agent prefix", func(a *agent.Action) { a.Name = "y" }},
		{"no execute", func(a *agent.Action) { a.Execute = nil }},
		{"schema not JSON", func(a *agent.Action) { a.Schema = "{" }},
		{"schema not an object", func(a *agent.Action) { a.Schema = `{"type":"string"}` }},
		{"schema invalid", func(a *agent.Action) { a.Schema = `{"type":"object","properties":{"a":{"type":"nope"}}}` }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good
			tt.edit(&a)
			if err := agent.NewRegistry().Register(a); err == nil {
				t.Error("Register succeeded, want an error")
			}
		})
	}
	r := agent.NewRegistry()
	if err := r.Register(good); err != nil {
		t.Fatalf("register: %v", err)
	}
	if err := r.Register(good); err == nil {
		t.Error("registering a duplicate succeeded")
	}
}

func TestLookup(t *testing.T) {
	r := testRegistry(t)
	a, ok := r.Lookup("demo.thing")
	if !ok || a.Agent != "demo" || a.Risk != policy.Medium {
		t.Fatalf("Lookup(demo.thing) = %+v, %v", a, ok)
	}
	if _, ok := r.Lookup("demo.nope"); ok {
		t.Error("Lookup(demo.nope) found something")
	}
	var names []string
	for _, a := range r.Actions() {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{"demo.thing", "other.list"}, names); diff != "" {
		t.Errorf("Actions (-want +got):\n%s", diff)
	}
	if got := r.ForAgent("other"); len(got) != 1 || got[0].Name != "other.list" {
		t.Errorf("ForAgent(other) = %v", got)
	}
	if got, want := a.Policy(), (policy.Action{Agent: "demo", Name: "demo.thing", Risk: policy.Medium}); !cmp.Equal(got, want) {
		t.Errorf("Policy() = %+v, want %+v", got, want)
	}
}

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// ErrUnknownAction is wrapped by Validate's error for a name no agent registered.
var ErrUnknownAction = errors.New("unknown action")

// Problem is one thing wrong with a step's arguments.
type Problem struct {
	Field   string // "number", "attendees.1"; "" for the arguments as a whole
	Message string // "must be an integer, not a string"
}

// ValidationError says why a step's arguments were refused. Its message is meant for the person
// (and the LLM planner): it names each field and what is wrong with it, and repeats no value.
type ValidationError struct {
	Action   string
	Problems []Problem // sorted by field
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid arguments for %s: ", e.Action)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// Validate checks raw arguments against the action's schema and returns their canonical form:
// strings trimmed, integral numbers (float64 7.0, json.Number "7", int) as int64, other numbers
// as float64, missing properties that have a default filled in, and unknown properties refused.
// Equal requests therefore give deeply equal Args, so their hashes match.
func (r *Registry) Validate(name string, raw map[string]any) (Args, error) {
	r.mu.RLock()
	c, ok := r.actions[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("validate %q: %w", name, ErrUnknownAction)
	}
	verr := &ValidationError{Action: name}
	args := make(Args, len(raw))
	for k, v := range raw {
		if _, known := c.props[k]; !known {
			verr.Problems = append(verr.Problems, Problem{Field: k, Message: "unknown field"})
			continue
		}
		cv, err := canonical(v)
		if err != nil {
			verr.Problems = append(verr.Problems, Problem{Field: k, Message: err.Error()})
			continue
		}
		args[k] = cv
	}
	for k, s := range c.props {
		if _, present := args[k]; present || s.Default == nil {
			continue
		}
		if _, refused := raw[k]; refused {
			continue
		}
		cv, err := canonical(*s.Default)
		if err != nil {
			// A default the schema compiler accepted is JSON, so this is unreachable.
			return nil, fmt.Errorf("validate %s: default of %s: %w", name, k, err)
		}
		args[k] = cv
	}
	// Validate what is left even when fields were refused above, so the person hears about
	// every problem at once.
	if err := c.schema.Validate(map[string]any(args)); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return nil, fmt.Errorf("validate %s: %w", name, err)
		}
		reported := make(map[string]bool, len(verr.Problems))
		for _, p := range verr.Problems {
			reported[p.Field] = true
		}
		for _, p := range problems(ve, nil) {
			top, _, _ := strings.Cut(p.Field, ".")
			if !reported[top] {
				verr.Problems = append(verr.Problems, p)
			}
		}
	}
	if len(verr.Problems) == 0 && c.Check != nil {
		if err := c.Check(args); err != nil {
			verr.Problems = append(verr.Problems, Problem{Message: err.Error()})
		}
	}
	if len(verr.Problems) > 0 {
		sort.SliceStable(verr.Problems, func(i, j int) bool { return verr.Problems[i].Field < verr.Problems[j].Field })
		return nil, verr
	}
	return args, nil
}

// maxExact is the largest integer a float64 holds exactly; beyond it "integral" means nothing.
const maxExact = 1 << 53

// canonical converts one JSON-like value to its canonical form.
func canonical(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool:
		return v, nil
	case string:
		return strings.TrimSpace(v), nil
	case json.Number:
		if i, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil {
			return nil, errors.New("is not a valid number")
		}
		return canonicalFloat(f)
	case float64:
		return canonicalFloat(v)
	case float32:
		return canonicalFloat(float64(v))
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int64:
		return v, nil
	case uint:
		return canonicalUint(uint64(v))
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		return canonicalUint(v)
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = strings.TrimSpace(s)
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			ce, err := canonical(e)
			if err != nil {
				return nil, fmt.Errorf("item %d %w", i, err)
			}
			out[i] = ce
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			ce, err := canonical(e)
			if err != nil {
				return nil, fmt.Errorf("field %s %w", k, err)
			}
			out[k] = ce
		}
		return out, nil
	default:
		return nil, fmt.Errorf("has an unsupported type %T", v)
	}
}

func canonicalFloat(f float64) (any, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return nil, errors.New("is not a finite number")
	case f == math.Trunc(f) && math.Abs(f) <= maxExact:
		return int64(f), nil
	}
	return f, nil
}

func canonicalUint(u uint64) (any, error) {
	if u > math.MaxInt64 {
		return nil, errors.New("is too large")
	}
	return int64(u), nil
}

var printer = message.NewPrinter(language.English)

// problems flattens a schema validation error into one problem per failing leaf.
func problems(e *jsonschema.ValidationError, out []Problem) []Problem {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			out = problems(c, out)
		}
		return out
	}
	field := strings.Join(e.InstanceLocation, ".")
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			out = append(out, Problem{Field: join(field, m), Message: "is required"})
		}
		return out
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			out = append(out, Problem{Field: join(field, p), Message: "unknown field"})
		}
		return out
	case *kind.Type:
		return append(out, Problem{Field: field, Message: fmt.Sprintf("must be %s, not %s", article(k.Want), withArticle(k.Got))})
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return append(out, Problem{Field: field, Message: "must be one of " + strings.Join(want, ", ")})
	case *kind.MinLength:
		if k.Want == 1 {
			return append(out, Problem{Field: field, Message: "must not be empty"})
		}
		return append(out, Problem{Field: field, Message: fmt.Sprintf("must be at least %d characters long", k.Want)})
	case *kind.MaxLength:
		return append(out, Problem{Field: field, Message: fmt.Sprintf("must be at most %d characters long", k.Want)})
	case *kind.Pattern:
		return append(out, Problem{Field: field, Message: fmt.Sprintf("must match the pattern %s", k.Want)})
	case *kind.Minimum:
		return append(out, Problem{Field: field, Message: "must be at least " + k.Want.RatString()})
	case *kind.Maximum:
		return append(out, Problem{Field: field, Message: "must be at most " + k.Want.RatString()})
	case *kind.Format:
		return append(out, Problem{Field: field, Message: "must be a valid " + k.Want})
	}
	// The messages of the remaining kinds are the library's; they may quote the offending
	// value, which is the person's own input.
	return append(out, Problem{Field: field, Message: e.ErrorKind.LocalizedString(printer)})
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func article(types []string) string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = withArticle(t)
	}
	return strings.Join(out, " or ")
}

func withArticle(t string) string {
	switch t {
	case "integer", "array", "object":
		return "an " + t
	case "null":
		return "null"
	}
	return "a " + t
}

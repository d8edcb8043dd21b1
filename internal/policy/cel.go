package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// The CEL object types of the condition variables. Declaring them as
// objects, not maps, lets the checker reject a misspelt field
// (`resource.knd`) when the policy loads instead of failing every call.
const (
	principalType = "policy.Principal"
	actionType    = "policy.Action"
	resourceType  = "policy.Resource"
	stepType      = "policy.Step"
)

// field describes one field of a condition object: its CEL type, how to
// read it from the Go value the activation hands out, and when it counts as
// set for has().
type field struct {
	typ   *types.Type
	get   func(any) (any, error)
	isSet func(any) bool
}

// stepVars is the `step` variable: facts about how the step came to be.
type stepVars struct {
	Tainted bool
}

var stringListType = types.NewListType(types.StringType)

// The risk names as CEL values, built once so reading action.risk does not
// allocate.
var riskVals = [...]ref.Val{types.String("low"), types.String("medium"), types.String("high"), types.String("critical")}

// wrongTarget is returned when a getter receives a value of another type.
// It cannot happen through the checker, but a getter must never panic.
func wrongTarget(want string, got any) error {
	return fmt.Errorf("policy: field read on %T, want %s", got, want)
}

func principalField(typ *types.Type, get func(*Principal) ref.Val, isSet func(*Principal) bool) field {
	return field{
		typ: typ,
		get: func(v any) (any, error) {
			if p, ok := v.(*Principal); ok {
				return get(p), nil
			}
			return nil, wrongTarget(principalType, v)
		},
		isSet: func(v any) bool { p, ok := v.(*Principal); return ok && isSet(p) },
	}
}

func actionField(typ *types.Type, get func(*Action) ref.Val, isSet func(*Action) bool) field {
	return field{
		typ: typ,
		get: func(v any) (any, error) {
			if a, ok := v.(*Action); ok {
				return get(a), nil
			}
			return nil, wrongTarget(actionType, v)
		},
		isSet: func(v any) bool { a, ok := v.(*Action); return ok && isSet(a) },
	}
}

func resourceField(typ *types.Type, get func(*Resource) any, isSet func(*Resource) bool) field {
	return field{
		typ: typ,
		get: func(v any) (any, error) {
			if r, ok := v.(*Resource); ok {
				return get(r), nil
			}
			return nil, wrongTarget(resourceType, v)
		},
		isSet: func(v any) bool { r, ok := v.(*Resource); return ok && isSet(r) },
	}
}

// objectFields declares every field a condition may read. Field names are
// snake_case like the rest of the policy file.
var objectFields = map[string]map[string]field{
	principalType: {
		"id":     principalField(types.StringType, func(p *Principal) ref.Val { return types.String(p.ID) }, func(p *Principal) bool { return p.ID != "" }),
		"team":   principalField(types.StringType, func(p *Principal) ref.Val { return types.String(p.Team) }, func(p *Principal) bool { return p.Team != "" }),
		"user":   principalField(types.StringType, func(p *Principal) ref.Val { return types.String(p.User) }, func(p *Principal) bool { return p.User != "" }),
		"groups": principalField(stringListType, func(p *Principal) ref.Val { return types.NewStringList(types.DefaultTypeAdapter, p.Groups) }, func(p *Principal) bool { return len(p.Groups) > 0 }),
		// Always set: not being a guest is a fact, not a missing one.
		"guest":    principalField(types.BoolType, func(p *Principal) ref.Val { return types.Bool(p.Guest) }, func(*Principal) bool { return true }),
		"external": principalField(types.BoolType, func(p *Principal) ref.Val { return types.Bool(p.External) }, func(*Principal) bool { return true }),
	},
	actionType: {
		"agent":      actionField(types.StringType, func(a *Action) ref.Val { return types.String(a.Agent) }, func(a *Action) bool { return a.Agent != "" }),
		"name":       actionField(types.StringType, func(a *Action) ref.Val { return types.String(a.Name) }, func(a *Action) bool { return a.Name != "" }),
		"risk":       actionField(types.StringType, func(a *Action) ref.Val { return riskVals[a.Risk.clamp()] }, func(*Action) bool { return true }),
		"risk_level": actionField(types.IntType, func(a *Action) ref.Val { return types.Int(a.Risk.clamp()) }, func(*Action) bool { return true }),
		"scopes":     actionField(stringListType, func(a *Action) ref.Val { return types.NewStringList(types.DefaultTypeAdapter, a.Scopes) }, func(a *Action) bool { return len(a.Scopes) > 0 }),
		"write":      actionField(types.BoolType, func(a *Action) ref.Val { return types.Bool(a.Write) }, func(*Action) bool { return true }),
	},
	resourceType: {
		"kind": resourceField(types.StringType, func(r *Resource) any { return types.String(r.Kind) }, func(r *Resource) bool { return r.Kind != "" }),
		"name": resourceField(types.StringType, func(r *Resource) any { return types.String(r.Name) }, func(r *Resource) bool { return r.Name != "" }),
		// The map itself is returned, not a CEL wrapper: CEL indexes a
		// map[string]any directly, so resource.attrs.private costs a map
		// lookup and no allocation. A nil map reads as empty.
		"attrs": resourceField(types.NewMapType(types.StringType, types.DynType), func(r *Resource) any {
			if r.Attrs == nil {
				return emptyMap
			}
			return r.Attrs
		}, func(r *Resource) bool { return len(r.Attrs) > 0 }),
	},
	stepType: {
		"tainted": {
			typ: types.BoolType,
			get: func(v any) (any, error) {
				if s, ok := v.(*stepVars); ok {
					return types.Bool(s.Tainted), nil
				}
				return nil, wrongTarget(stepType, v)
			},
			isSet: func(any) bool { return true },
		},
	},
}

var emptyMap = map[string]any{}

// objectProvider adds the condition object types to CEL's own provider. It
// only describes types; values are the Go structs of Input, read through the
// field getters above.
type objectProvider struct {
	types.Provider
}

func (p objectProvider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := objectFields[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Provider.FindStructType(name)
}

func (p objectProvider) FindStructFieldNames(name string) ([]string, bool) {
	fs, ok := objectFields[name]
	if !ok {
		return p.Provider.FindStructFieldNames(name)
	}
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	return names, true
}

func (p objectProvider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	fs, ok := objectFields[name]
	if !ok {
		return p.Provider.FindStructFieldType(name, fieldName)
	}
	f, ok := fs[fieldName]
	if !ok {
		return nil, false
	}
	return &types.FieldType{Type: f.typ, GetFrom: f.get, IsSet: f.isSet}, true
}

// NewValue refuses to build condition objects: a condition reads the step,
// it does not invent one.
func (p objectProvider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := objectFields[name]; ok {
		return types.NewErr("%s cannot be constructed in a condition", name)
	}
	return p.Provider.NewValue(name, fields)
}

// Integer constants for comparing risk levels: action.risk_level >= HIGH.
var riskConstants = []cel.EnvOption{
	cel.Constant("LOW", cel.IntType, types.Int(Low)),
	cel.Constant("MEDIUM", cel.IntType, types.Int(Medium)),
	cel.Constant("HIGH", cel.IntType, types.Int(High)),
	cel.Constant("CRITICAL", cel.IntType, types.Int(Critical)),
}

// newEnv builds the CEL environment every condition is compiled in.
func newEnv() (*cel.Env, error) {
	// Optional types register themselves with CEL's own type registry, so
	// they come first; the object types are layered over that registry.
	base, err := cel.NewEnv(cel.OptionalTypes())
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(objectProvider{base.CELTypeProvider()}),
		cel.Variable("principal", cel.ObjectType(principalType)),
		cel.Variable("action", cel.ObjectType(actionType)),
		cel.Variable("resource", cel.ObjectType(resourceType)),
		cel.Variable("step", cel.ObjectType(stepType)),
		cel.Variable("args", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("now", cel.TimestampType),
	}
	opts = append(opts, riskConstants...)
	opts = append(opts, zoneFunctions()...)
	env, err := base.Extend(opts...)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return env, nil
}

// activation hands the condition variables to CEL. One is taken from a pool
// per decision and holds a copy of the input, so every variable is a
// pointer into it and resolving a name does not allocate. The conditions of
// one decision share it and one CEL execution frame.
type activation struct {
	in    Input
	step  stepVars
	now   ref.Val // built on first use: most conditions never read the clock
	frame *interpreter.ExecutionFrame
	err   error // from creating the frame; every evaluation then fails closed
}

var activations = sync.Pool{New: func() any { return new(activation) }}

func newActivation(in *Input) *activation {
	a := activations.Get().(*activation)
	a.in = *in
	a.step = stepVars{Tainted: in.Tainted}
	if a.in.Now.IsZero() {
		a.in.Now = time.Now()
	}
	a.frame, a.err = interpreter.NewExecutionFrame(a)
	return a
}

func (a *activation) release() {
	if a.frame != nil {
		a.frame.Close()
	}
	*a = activation{} // drop references to the input's maps
	activations.Put(a)
}

// eval runs a condition. Anything but a bool is an error: the caller fails
// closed on it.
func (a *activation) eval(prg cel.Program) (bool, error) {
	if a.err != nil {
		return false, a.err
	}
	out, _, err := prg.Eval(a.frame)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %s, not bool", out.Type())
	}
	return bool(b), nil
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "principal":
		return &a.in.Principal, true
	case "action":
		return &a.in.Action, true
	case "resource":
		return &a.in.Resource, true
	case "step":
		return &a.step, true
	case "args":
		if a.in.Args == nil {
			return emptyMap, true
		}
		return a.in.Args, true
	case "now":
		if a.now == nil {
			a.now = types.Timestamp{Time: a.in.Now}
		}
		return a.now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// The calendar functions of CEL's standard library load the time zone from
// disk on every call (about 25 µs each), which would make a business-hours
// rule the slowest thing in a decision. These overloads replace the
// library's implementations, keeping their names, signatures and meaning,
// and cache each zone after its first successful load.
var zoneOverloads = []struct {
	function, overload string
	get                func(time.Time) int64
}{
	{overloads.TimeGetFullYear, overloads.TimestampToYearWithTz, func(t time.Time) int64 { return int64(t.Year()) }},
	{overloads.TimeGetMonth, overloads.TimestampToMonthWithTz, func(t time.Time) int64 { return int64(t.Month()) - 1 }},
	{overloads.TimeGetDayOfYear, overloads.TimestampToDayOfYearWithTz, func(t time.Time) int64 { return int64(t.YearDay()) - 1 }},
	{overloads.TimeGetDayOfMonth, overloads.TimestampToDayOfMonthZeroBasedWithTz, func(t time.Time) int64 { return int64(t.Day()) - 1 }},
	{overloads.TimeGetDate, overloads.TimestampToDayOfMonthOneBasedWithTz, func(t time.Time) int64 { return int64(t.Day()) }},
	{overloads.TimeGetDayOfWeek, overloads.TimestampToDayOfWeekWithTz, func(t time.Time) int64 { return int64(t.Weekday()) }},
	{overloads.TimeGetHours, overloads.TimestampToHoursWithTz, func(t time.Time) int64 { return int64(t.Hour()) }},
	{overloads.TimeGetMinutes, overloads.TimestampToMinutesWithTz, func(t time.Time) int64 { return int64(t.Minute()) }},
	{overloads.TimeGetSeconds, overloads.TimestampToSecondsWithTz, func(t time.Time) int64 { return int64(t.Second()) }},
	{overloads.TimeGetMilliseconds, overloads.TimestampToMillisecondsWithTz, func(t time.Time) int64 { return int64(t.Nanosecond() / 1e6) }},
}

// zoneFunctionNames lets the loader find calls whose zone it should check.
var zoneFunctionNames = func() map[string]bool {
	m := map[string]bool{}
	for _, z := range zoneOverloads {
		m[z.function] = true
	}
	return m
}()

func zoneFunctions() []cel.EnvOption {
	var opts []cel.EnvOption
	for _, z := range zoneOverloads {
		get := z.get
		opts = append(opts, cel.Function(z.function,
			cel.MemberOverload(z.overload, []*cel.Type{cel.TimestampType, cel.StringType}, cel.IntType,
				cel.BinaryBinding(func(ts, tz ref.Val) ref.Val {
					t, ok := ts.(types.Timestamp)
					if !ok {
						return types.MaybeNoSuchOverloadErr(ts)
					}
					name, ok := tz.(types.String)
					if !ok {
						return types.MaybeNoSuchOverloadErr(tz)
					}
					loc, err := zone(string(name))
					if err != nil {
						return types.WrapErr(err)
					}
					return types.Int(get(t.In(loc)))
				}))))
	}
	return opts
}

// zones caches time zones by the name a condition used. Only successful
// loads of canonical names are kept, so the cache is bounded by the zone
// database and the valid offsets however the name was chosen.
var zones sync.Map // string → *time.Location

// errUnknownZone does not repeat the zone's name: at run time it may come
// from the step's arguments.
var errUnknownZone = errors.New("unknown time zone")

// zone resolves an IANA zone name ("Europe/Berlin") or a UTC offset
// ("+05:30", "-08:00"), as CEL's standard library does.
func zone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	var loc *time.Location
	if h, m, ok := strings.Cut(name, ":"); ok {
		hr, herr := strconv.Atoi(h)
		mn, merr := strconv.Atoi(m)
		if herr != nil || merr != nil || hr < -23 || hr > 23 || mn < 0 || mn > 59 {
			return nil, errUnknownZone
		}
		offset := hr*60 + mn
		if strings.HasPrefix(h, "-") {
			offset = hr*60 - mn
		}
		loc = time.FixedZone(name, offset*60)
		if len(name) > len("+hh:mm") {
			// Atoi takes any number of leading zeros; caching every
			// spelling would let a chosen name grow the cache forever.
			return loc, nil
		}
	} else {
		l, err := time.LoadLocation(name)
		if err != nil {
			return nil, errUnknownZone
		}
		loc = l
	}
	zones.Store(name, loc)
	return loc, nil
}

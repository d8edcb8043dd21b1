package agent

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Props maps a parameter's name to its JSON Schema, written as JSON.
type Props map[string]string

// ObjectSchema builds an action's parameter schema: an object with props, of which required
// must be present, refusing any other property. Properties are written in name order, so the
// schema text (shown to an LLM as a tool definition) is stable.
func ObjectSchema(p Props, required ...string) string {
	var b strings.Builder
	b.WriteString(`{"type":"object","additionalProperties":false,"properties":{`)
	for i, k := range slices.Sorted(maps.Keys(p)) {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", k, p[k])
	}
	b.WriteString(`},"required":[`)
	for i, r := range required {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", r)
	}
	b.WriteString("]}")
	return b.String()
}

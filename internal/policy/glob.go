package policy

import (
	"fmt"
	"strings"
	"unicode"
)

// A glob is a compiled pattern in which `*` matches any run of characters
// (slashes and dots included) and every other character matches itself.
// Compiling sorts patterns into cheap shapes so matching is a comparison or
// two and never allocates.
type glob struct {
	shape globShape
	lit   string   // exact text, prefix or suffix
	parts []string // for general patterns: the literal pieces between stars
	head  bool     // general: the pattern does not start with a star
	tail  bool     // general: the pattern does not end with a star
}

type globShape uint8

const (
	globAny globShape = iota
	globExact
	globPrefix // "acme/*"
	globSuffix // "*.delete_event"
	globGeneral
)

// compileGlob validates and compiles one pattern. Characters other shells
// give meaning to (? [ ] { } \) are refused rather than silently taken
// literally, so a pattern never means something other than it seems to.
func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, fmt.Errorf("empty pattern")
	}
	for _, c := range p {
		switch {
		case strings.ContainsRune(`?[]{}\`, c):
			return glob{}, fmt.Errorf("pattern %q: %q is not supported (only * is special)", p, c)
		case unicode.IsSpace(c) || unicode.IsControl(c):
			return glob{}, fmt.Errorf("pattern %q: contains a space or control character", p)
		}
	}
	if strings.Contains(p, "**") {
		return glob{}, fmt.Errorf("pattern %q: ** is not supported (a single * already matches anything)", p)
	}
	n := strings.Count(p, "*")
	switch {
	case p == "*":
		return glob{shape: globAny}, nil
	case n == 0:
		return glob{shape: globExact, lit: p}, nil
	case n == 1 && strings.HasSuffix(p, "*"):
		return glob{shape: globPrefix, lit: p[:len(p)-1]}, nil
	case n == 1 && strings.HasPrefix(p, "*"):
		return glob{shape: globSuffix, lit: p[1:]}, nil
	}
	var parts []string
	for s := range strings.SplitSeq(p, "*") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return glob{
		shape: globGeneral,
		parts: parts,
		head:  !strings.HasPrefix(p, "*"),
		tail:  !strings.HasSuffix(p, "*"),
	}, nil
}

func (g *glob) match(s string) bool {
	switch g.shape {
	case globAny:
		return true
	case globExact:
		return s == g.lit
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globSuffix:
		return strings.HasSuffix(s, g.lit)
	}
	parts := g.parts
	if g.head {
		if !strings.HasPrefix(s, parts[0]) {
			return false
		}
		s = s[len(parts[0]):]
		parts = parts[1:]
	}
	last := ""
	if g.tail {
		last = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	// Leftmost matching of each middle piece is enough: with only `*` as a
	// wildcard, taking the earliest occurrence never rules out a match that a
	// later occurrence would allow.
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return !g.tail || strings.HasSuffix(s, last)
}

// globs is the compiled value of a rule's agent, action or resource field:
// any one pattern matching is a match; no patterns match everything.
type globs []glob

func compileGlobs(ps []string) (globs, error) {
	var gs globs
	for _, p := range ps {
		g, err := compileGlob(p)
		if err != nil {
			return nil, err
		}
		if g.shape == globAny {
			return nil, nil
		}
		gs = append(gs, g)
	}
	return gs, nil
}

func (gs globs) match(s string) bool {
	if len(gs) == 0 {
		return true
	}
	for i := range gs {
		if gs[i].match(s) {
			return true
		}
	}
	return false
}

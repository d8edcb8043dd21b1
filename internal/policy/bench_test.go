package policy

import (
	"testing"
)

// BenchmarkEvaluate measures one decision on the embedded default policy:
//
//	go test -run '^$' -bench . -benchmem ./internal/policy/
func BenchmarkEvaluate(b *testing.B) {
	hours, err := Parse("default.yaml", businessHoursSource(b))
	if err != nil {
		b.Fatal(err)
	}
	managers := withReleaseManagers(b, "[U1, U2]")
	cases := []struct {
		name string
		e    *Engine
		in   Input
		want string
	}{
		// A read of a public repository: one condition, allowed.
		{"public-read-allowed", Default(), listPublicPRs, "public-reads"},
		// A private read: the public-read condition, then a pattern-only rule.
		{"private-read-grant", Default(), listPrivatePRs, "private-reads-need-a-grant"},
		// A merge: decided by patterns alone, no condition evaluated.
		{"merge-step-up", Default(), merge, "destructive-actions-need-step-up"},
		// A comment: two conditions (taint, protected branch), then approval.
		{"comment-approval", Default(), comment, "writes-need-approval"},
		// A production deploy: the deploy condition over attrs and args.
		{"deploy-second-approver", managers, owner(deploy("production"), "U9"), "production-deploys-need-two"},
		// A merge under the business-hours rule: four calendar lookups in a
		// time zone, then step-up.
		{"merge-business-hours", hours, merge, "destructive-actions-need-step-up"},
	}
	for _, c := range cases {
		if got := c.e.Evaluate(c.in).Rule; got != c.want {
			b.Fatalf("%s: decided by %q, want %q", c.name, got, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.e.Evaluate(c.in)
			}
		})
	}
}

// BenchmarkParseDefault measures compiling the default policy, which
// happens once at start-up.
func BenchmarkParseDefault(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("default.yaml", defaultSource); err != nil {
			b.Fatal(err)
		}
	}
}

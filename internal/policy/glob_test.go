package policy

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "acme/payments", true},
		{"acme/payments", "acme/payments", true},
		{"acme/payments", "acme/payments2", false},
		{"acme/payments", "acme/payment", false},
		{"acme/*", "acme/payments", true},
		{"acme/*", "acme/", true},
		{"acme/*", "acme", false},
		{"acme/*", "acme/payments:main", true},
		{"acme/*", "other/acme/x", false},
		{"*.delete_event", "calendar.delete_event", true},
		{"*.delete_event", "calendar.delete_events", false},
		{"github.*_pull_request", "github.merge_pull_request", true},
		{"github.*_pull_request", "github.get_pull_request", true},
		{"github.*_pull_request", "github.list_pull_requests", false},
		{"github.*_pull_request", "slack.merge_pull_request", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "ac", false},
		{"a*b*c", "axxbyyc", true},
		{"*x*xy", "xy", false},
		{"*x*xy", "xxy", true},
		{"*ab*b", "abb", true},
		{"*mid*", "amidb", true},
		{"*mid*", "amdb", false},
		{"acme/*:main", "acme/payments:main", true},
		{"acme/*:main", "acme/payments:dev", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.s, func(t *testing.T) {
			g, err := compileGlob(tt.pattern)
			if err != nil {
				t.Fatalf("compileGlob(%q) = %v", tt.pattern, err)
			}
			if got := g.match(tt.s); got != tt.want {
				t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}

func TestGlobErrors(t *testing.T) {
	for _, p := range []string{"", "acme/[a-z]", "acme/?", "{a,b}", `a\*`, "a b", "acme/**", "tab\there"} {
		if _, err := compileGlob(p); err == nil {
			t.Errorf("compileGlob(%q) succeeded, want an error", p)
		}
	}
}

func TestGlobs(t *testing.T) {
	gs, err := compileGlobs([]string{"github.comment", "slack.*"})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"github.comment": true, "slack.post_message": true, "github.review": false} {
		if got := gs.match(s); got != want {
			t.Errorf("match(%q) = %v, want %v", s, got, want)
		}
	}
	// A star anywhere in the list makes the whole field match anything.
	gs, err = compileGlobs([]string{"github.comment", "*"})
	if err != nil || gs != nil {
		t.Errorf("compileGlobs with * = %v, %v; want nil (match all)", gs, err)
	}
	if !gs.match("anything") {
		t.Error("an empty pattern list does not match everything")
	}
}

func BenchmarkGlob(b *testing.B) {
	gs, err := compileGlobs([]string{"github.comment", "github.review", "github.create_issue", "calendar.create_event", "slack.post_message"})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		gs.match("github.list_pull_requests")
	}
}

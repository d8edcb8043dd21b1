package web

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// testAuditKey is a made-up HMAC key for these tests only.
var testAuditKey = []byte("web-test-audit-key-0123456789abc")

// metricLines serves /metrics and returns its sample lines as a set.
func metricLines(t testing.TB, s *Server) map[string]bool {
	t.Helper()
	rec := get(t, s.Handler(), "GET", "/metrics")
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d %q", rec.Code, rec.Body.String())
	}
	lines := make(map[string]bool)
	for l := range strings.Lines(rec.Body.String()) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	return lines
}

// seriesOf counts the lines of one metric.
func seriesOf(lines map[string]bool, name string) int {
	n := 0
	for l := range lines {
		if strings.HasPrefix(l, name+"{") {
			n++
		}
	}
	return n
}

func called(service, status string) audit.Event {
	return audit.Event{Kind: audit.ProviderCalled, Actor: "T1:U1", Result: status,
		Detail: map[string]string{"service": service, "lease": "l1", "method": "GET", "path": "/user", "status": status}}
}

func TestAuditMetricsThroughRecorder(t *testing.T) {
	reg := NewRegistry()
	hook, err := AuditMetrics(reg)
	if err != nil {
		t.Fatalf("AuditMetrics: %v", err)
	}
	mem := memstore.New(memstore.Options{})
	rec, err := audit.NewRecorder(mem, testAuditKey, audit.Options{OnRecord: hook})
	if err != nil {
		t.Fatalf("NewRecorder: %v", err)
	}
	events := []audit.Event{
		{Kind: audit.PolicyDecided, Decision: "allow"},
		{Kind: audit.PolicyDecided, Decision: "allow"},
		{Kind: audit.PolicyDecided, Decision: "second_approver"},
		{Kind: audit.PolicyDecided, Decision: "effect(9)"},
		{Kind: audit.ApprovalGranted},
		{Kind: audit.ApprovalDenied},
		{Kind: audit.ApprovalDenied},
		{Kind: audit.InteractionRejected, Result: "not_owner"},
		{Kind: audit.StepUpPassed, Result: "passed"},
		{Kind: audit.StepUpFailed, Result: "failed"},
		{Kind: audit.StepUpFailed, Result: "failed"},
		{Kind: "stepup.enrolled"},
		{Kind: "Not A Kind!"},
		called("github", "200"),
		called("github", "200"),
		called("github", "401"),
		called("github", "418"),
		called("github", "error"),
		called("calendar", "503"),
		called("calendar", "299"),
		called("calendar", "20x"),
		called("calendar", "2000"),
		called("Evil Service\n", "200"),
		{Kind: audit.ProviderCalled, Result: "204"}, // no detail: the status comes from Result
	}
	for _, e := range events {
		if _, err := rec.Record(context.Background(), e); err != nil {
			t.Fatalf("Record(%s): %v", e.Kind, err)
		}
	}
	// An event the store refuses is not counted.
	mem.FailWrites(errors.New("disk full"))
	if _, err := rec.Record(context.Background(), audit.Event{Kind: audit.ApprovalGranted}); err == nil {
		t.Fatal("Record on a failing store succeeded")
	}
	mem.FailWrites(nil)

	s := newServer(t, Options{Gatherer: reg})
	lines := metricLines(t, s)
	for _, want := range []string{
		`agenthub_audit_events_total{kind="policy.decided"} 4`,
		`agenthub_audit_events_total{kind="approval.granted"} 1`,
		`agenthub_audit_events_total{kind="provider.called"} 11`,
		`agenthub_audit_events_total{kind="stepup.enrolled"} 1`,
		`agenthub_audit_events_total{kind="other"} 1`,
		`agenthub_audit_events_total{kind="token.issued"} 0`,
		`agenthub_policy_decisions_total{effect="allow"} 2`,
		`agenthub_policy_decisions_total{effect="second_approver"} 1`,
		`agenthub_policy_decisions_total{effect="other"} 1`,
		`agenthub_policy_decisions_total{effect="deny"} 0`,
		`agenthub_approvals_total{outcome="granted"} 1`,
		`agenthub_approvals_total{outcome="denied"} 2`,
		`agenthub_approvals_total{outcome="rejected"} 1`,
		`agenthub_stepups_total{result="passed"} 1`,
		`agenthub_stepups_total{result="failed"} 2`,
		`agenthub_provider_calls_total{service="github",status="200"} 2`,
		`agenthub_provider_calls_total{service="github",status="401"} 1`,
		`agenthub_provider_calls_total{service="github",status="4xx"} 1`,
		`agenthub_provider_calls_total{service="github",status="error"} 1`,
		`agenthub_provider_calls_total{service="calendar",status="503"} 1`,
		`agenthub_provider_calls_total{service="calendar",status="2xx"} 1`,
		`agenthub_provider_calls_total{service="calendar",status="other"} 2`,
		`agenthub_provider_calls_total{service="other",status="200"} 1`,
		`agenthub_provider_calls_total{service="other",status="204"} 1`,
	} {
		if !lines[want] {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if got, want := seriesOf(lines, "agenthub_provider_calls_total"), 9; got != want {
		t.Errorf("agenthub_provider_calls_total has %d series, want %d", got, want)
	}
	// The registry carries the runtime and process collectors too.
	wantFamilies := []string{"go_goroutines "}
	if runtime.GOOS == "linux" {
		wantFamilies = append(wantFamilies, "process_cpu_seconds_total ")
	}
	for _, prefix := range wantFamilies {
		found := false
		for l := range lines {
			found = found || strings.HasPrefix(l, prefix)
		}
		if !found {
			t.Errorf("/metrics lacks %s", strings.TrimSpace(prefix))
		}
	}
}

func TestAuditMetricsRegisterTwice(t *testing.T) {
	reg := NewRegistry()
	if _, err := AuditMetrics(reg); err != nil {
		t.Fatalf("AuditMetrics: %v", err)
	}
	if _, err := AuditMetrics(reg); err == nil {
		t.Error("registering the audit metrics twice succeeded")
	}
}

// TestAuditMetricsBounded checks that made-up kinds and services cannot
// grow the metrics without bound.
func TestAuditMetricsBounded(t *testing.T) {
	reg := NewRegistry()
	hook, err := AuditMetrics(reg)
	if err != nil {
		t.Fatalf("AuditMetrics: %v", err)
	}
	for i := range 1000 {
		hook(audit.Event{Kind: audit.Kind(fmt.Sprintf("made.up%d", i))})
		hook(called(fmt.Sprintf("svc%d", i), fmt.Sprint(100+i)))
	}
	lines := metricLines(t, newServer(t, Options{Gatherer: reg}))
	if got, max := seriesOf(lines, "agenthub_audit_events_total"), maxKinds+1; got > max {
		t.Errorf("agenthub_audit_events_total has %d series, want at most %d", got, max)
	}
	if !lines[fmt.Sprintf(`agenthub_audit_events_total{kind="other"} %d`, 1000-(maxKinds-len(audit.Kinds())))] {
		t.Errorf("the kinds beyond the bound are not counted as other")
	}
	// Services up to the bound, plus other; statuses: notable ones, 5
	// classes, other.
	if got, max := seriesOf(lines, "agenthub_provider_calls_total"), (maxServices+1)*(len(notableStatuses)+5+1); got > max {
		t.Errorf("agenthub_provider_calls_total has %d series, want at most %d", got, max)
	}
}

func TestStatusLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"200", "200"},
		{"401", "401"},
		{"429", "429"},
		{"202", "2xx"},
		{"302", "3xx"},
		{"418", "4xx"},
		{"599", "5xx"},
		{"101", "1xx"},
		{"error", "error"},
		{"", "other"},
		{"099", "other"},
		{"600", "other"},
		{"+200", "other"},
		{"2000", "other"},
		{"ok", "other"},
	}
	for _, tt := range tests {
		if got := statusLabel(tt.in); got != tt.want {
			t.Errorf("statusLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestValidLabel(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"github", true},
		{"google-calendar", true},
		{"stepup.enrolled", true},
		{"a_b.c-9", true},
		{"", false},
		{"other", false},
		{"GitHub", false},
		{"9lives", false},
		{"evil service", false},
		{"line\nbreak", false},
		{strings.Repeat("a", maxLabelLen), true},
		{strings.Repeat("a", maxLabelLen+1), false},
	}
	for _, tt := range tests {
		if got := validLabel(tt.in); got != tt.want {
			t.Errorf("validLabel(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func BenchmarkAuditHook(b *testing.B) {
	hook, err := AuditMetrics(NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := called("github", "200")
	for b.Loop() {
		hook(e)
	}
}

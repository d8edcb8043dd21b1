package web

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
)

// other is the label value for anything outside a label's bounded set.
const other = "other"

// Bounds of the labels that take values from events.
const (
	// maxKinds bounds the kind label: every audit kind known today fits,
	// with room for the kinds other packages add (stepup.enrolled, …).
	maxKinds = 64
	// maxServices bounds the service label of provider calls. A deployment
	// configures a handful of services.
	maxServices = 32
	// maxLabelLen bounds one label value taken from an event.
	maxLabelLen = 40
)

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, for Options.Gatherer and AuditMetrics. A registry of its own,
// rather than the global default, keeps what is exposed under the control of
// the code that builds it, and lets tests start from nothing.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// AuditMetrics registers the audit-derived counters with reg and returns
// the function that counts one stored event, for audit.Options.OnRecord:
//
//	agenthub_audit_events_total{kind}
//	agenthub_policy_decisions_total{effect}           policy.decided, by effect
//	agenthub_approvals_total{outcome}                 granted, denied or rejected (not the owner)
//	agenthub_stepups_total{result}                    passed or failed
//	agenthub_provider_calls_total{service,status}     provider.called
//
// The function is cheap, does not block and is safe for concurrent use. It
// fails only when the counters cannot be registered, such as when reg
// already has them.
func AuditMetrics(reg prometheus.Registerer) (func(audit.Event), error) {
	m := &auditMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agenthub_audit_events_total",
			Help: "Events stored in the audit trail, by kind.",
		}, []string{"kind"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agenthub_policy_decisions_total",
			Help: "Policy decisions recorded in the audit trail, by effect.",
		}, []string{"effect"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agenthub_approvals_total",
			Help: "Answers to approval requests: granted or denied by the owner, or rejected because someone else clicked.",
		}, []string{"outcome"}),
		stepups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agenthub_stepups_total",
			Help: "Step-up (second factor) attempts, by result.",
		}, []string{"result"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agenthub_provider_calls_total",
			Help: "Calls to providers made with a lease, by service and HTTP status (or error).",
		}, []string{"service", "status"}),
		kinds:    newBoundedSet(maxKinds),
		services: newBoundedSet(maxServices),
	}
	for _, c := range []prometheus.Collector{m.events, m.decisions, m.approvals, m.stepups, m.calls} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("web: register audit metrics: %w", err)
		}
	}
	// The values known in advance start at zero, so that rate() and
	// alerts work before the first such event.
	for _, k := range audit.Kinds() {
		m.kinds.admit(string(k))
		m.events.WithLabelValues(string(k))
	}
	for e := policy.Deny; e <= policy.SecondApprover; e++ {
		m.decisions.WithLabelValues(e.String())
	}
	for _, o := range []string{"granted", "denied", "rejected"} {
		m.approvals.WithLabelValues(o)
	}
	for _, r := range []string{"passed", "failed"} {
		m.stepups.WithLabelValues(r)
	}
	return m.count, nil
}

// auditMetrics holds the counters AuditMetrics registers.
type auditMetrics struct {
	events, decisions, approvals, stepups, calls *prometheus.CounterVec

	kinds, services *boundedSet
}

// count counts one stored event.
func (m *auditMetrics) count(e audit.Event) {
	m.events.WithLabelValues(m.kinds.label(string(e.Kind))).Inc()
	switch e.Kind {
	case audit.PolicyDecided:
		m.decisions.WithLabelValues(effectLabel(e.Decision)).Inc()
	case audit.ApprovalGranted:
		m.approvals.WithLabelValues("granted").Inc()
	case audit.ApprovalDenied:
		m.approvals.WithLabelValues("denied").Inc()
	case audit.InteractionRejected:
		m.approvals.WithLabelValues("rejected").Inc()
	case audit.StepUpPassed:
		m.stepups.WithLabelValues("passed").Inc()
	case audit.StepUpFailed:
		m.stepups.WithLabelValues("failed").Inc()
	case audit.ProviderCalled:
		status := e.Detail["status"]
		if status == "" {
			status = e.Result
		}
		m.calls.WithLabelValues(m.services.label(e.Detail["service"]), statusLabel(status)).Inc()
	}
}

// effectLabel is a decision's effect name, or other.
func effectLabel(decision string) string {
	eff, err := policy.ParseEffect(decision)
	if err != nil {
		return other
	}
	return eff.String()
}

// notableStatuses are the HTTP statuses counted by their code, because
// each tells an operator something different (a revoked token, a missing
// permission, rate limiting). Other statuses are counted by class.
var notableStatuses = map[int]bool{
	200: true, 201: true, 204: true, 304: true,
	400: true, 401: true, 403: true, 404: true, 409: true, 422: true, 429: true,
	500: true, 502: true, 503: true, 504: true,
}

// statusLabel maps the status a provider.called event carries to a bounded
// label: a notable code ("401"), a class ("2xx"), "error" for a call that
// got no response, or other.
func statusLabel(status string) string {
	if status == "error" {
		return status
	}
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 || code > 599 || len(status) != 3 {
		return other
	}
	if notableStatuses[code] {
		return status
	}
	return strconv.Itoa(code/100) + "xx"
}

// boundedSet admits label values until it holds max of them; later new
// values read as other. It keeps a series for every kind or service a
// deployment really has, while a bug or a hostile input that invents values
// cannot grow the metrics without bound.
type boundedSet struct {
	max int

	mu   sync.RWMutex
	seen map[string]bool
}

func newBoundedSet(limit int) *boundedSet {
	return &boundedSet{max: limit, seen: make(map[string]bool)}
}

// label returns v if it is, or can be, in the set, and other if not.
func (s *boundedSet) label(v string) string {
	s.mu.RLock()
	ok := s.seen[v]
	s.mu.RUnlock()
	if ok {
		return v
	}
	if !validLabel(v) || !s.admit(v) {
		return other
	}
	return v
}

// admit adds v unless the set is full, and reports whether v is in it.
func (s *boundedSet) admit(v string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[v] {
		return true
	}
	if len(s.seen) >= s.max {
		return false
	}
	s.seen[v] = true
	return true
}

// validLabel reports whether v looks like a kind or service name: short,
// lower-case letters, digits and "._-", starting with a letter. Anything
// else is not a name AgentHub gives, and is not worth a series.
func validLabel(v string) bool {
	if v == "" || len(v) > maxLabelLen || v == other || v[0] < 'a' || v[0] > 'z' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

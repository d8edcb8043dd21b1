// Package web is AgentHub's HTTP adapter for operators: /healthz says the
// process serves, /readyz says whether its dependencies (the store, Slack)
// answer, and /metrics exposes Prometheus metrics, among them counters
// derived from the audit trail.
//
// # Health and readiness
//
// /healthz answers 200 as long as the process serves HTTP at all; it checks
// nothing else, so an orchestrator restarts the process only when it is
// truly stuck. /readyz runs every readiness Check concurrently, each with a
// deadline, and answers 503 with the names of the failing checks when any
// fails. It never shows their errors: a store error can carry a URL, and a
// readiness endpoint is often reachable by more people than the logs are.
// The errors go to the log instead.
//
// # Audit-derived metrics
//
// AuditMetrics returns a hook for audit.Options.OnRecord. Because it counts
// events as the audit trail stores them, the counters agree with the trail:
// a decision that could not be audited did not happen, and is not counted.
// Every label takes values from a bounded set, so that an unexpected kind,
// service or status cannot make the metrics grow without bound; anything
// outside the set is counted as "other".
package web

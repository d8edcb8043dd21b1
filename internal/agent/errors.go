package agent

import (
	"fmt"
	"net/http"
)

// ErrorKind classifies a provider failure so adapters can word it and the broker can decide
// whether asking again (reconnecting, adding a scope) could help.
type ErrorKind int

// The kinds of provider failure.
const (
	// Failed is any failure not classified below, including transport errors.
	Failed ErrorKind = iota
	// NotFound: the resource does not exist, or the credential may not see it (GitHub answers
	// 404 for a private repository without the repo scope, so the two cannot be told apart).
	NotFound
	// Unauthorized: the credential was refused (expired, revoked, invalid).
	Unauthorized
	// Forbidden: the credential lacks a scope or permission.
	Forbidden
	// Conflict: the resource is not in a state that allows the action (already merged,
	// archived, protected).
	Conflict
	// Invalid: the provider refused the arguments.
	Invalid
)

var errorKindNames = [...]string{"failed", "not_found", "unauthorized", "forbidden", "conflict", "invalid"}

// String returns the kind's snake_case name.
func (k ErrorKind) String() string {
	if k >= Failed && k <= Invalid {
		return errorKindNames[k]
	}
	return fmt.Sprintf("error_kind(%d)", int(k))
}

// ProviderError is a failed provider call. Its message is safe to show to the person: it holds
// the operation, the HTTP status and the provider's own message, never a credential.
type ProviderError struct {
	Service string    // "github", "google", "slack"
	Op      string    // "merge acme/payments#7"
	Kind    ErrorKind // what kind of failure
	Status  int       // HTTP status, 0 when unknown (Slack answers errors with 200)
	Message string    // the provider's message or error code
	Err     error     // the client library's error, for logs
}

func (e *ProviderError) Error() string {
	msg := fmt.Sprintf("%s: %s: %s", e.Service, e.Op, e.Message)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	return msg
}

// Unwrap returns the client library's error.
func (e *ProviderError) Unwrap() error { return e.Err }

// KindForStatus classifies an HTTP status.
func KindForStatus(status int) ErrorKind {
	switch status {
	case http.StatusNotFound, http.StatusGone:
		return NotFound
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusForbidden:
		return Forbidden
	case http.StatusConflict, http.StatusMethodNotAllowed:
		return Conflict
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return Invalid
	}
	return Failed
}

// Package slackapp is AgentHub's Slack adapter: it renders what the broker
// says as Block Kit and will carry people's messages, clicks and slash
// commands back to the broker.
//
// This file set is the rendering layer only: pure functions from broker
// outputs, requests, grants and audit events to slack-go blocks and views,
// with no I/O. Button values carry only opaque IDs (a request ID, a grant
// ID, a service name), never arguments, resources or people, so a click
// payload says nothing a replica has to trust; the handler loads the
// request from the store and checks the clicker. Slack's Block Kit limits
// are enforced here, where messages are built, and truncation is always
// visible ("…" and "(truncated)").
//
// Still to come (issue 4): the Socket Mode loop and its acks, the event,
// interaction and slash-command handlers, App Home publishing, and the
// audit channel poster.
package slackapp

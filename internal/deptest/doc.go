// Package deptest enforces the architecture's import boundaries: its test
// lists every package's dependencies with `go list -deps` and fails when a
// package imports something DESIGN.md forbids it to.
package deptest

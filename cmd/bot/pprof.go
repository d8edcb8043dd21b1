//go:build pprof

package main

import (
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/agenthub/agenthub/internal/loopback"
)

// A build with -tags pprof (cmd/slackload -cpuprofile makes one) serves Go's
// profiles on AGENTHUB_PPROF_ADDR, a listener of its own, so that the
// binaries people run never carry them: profiles show code paths and
// memory, and no operator should have to remember to hide them.
func init() {
	addr := os.Getenv("AGENTHUB_PPROF_ADDR")
	if addr == "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || !loopback.Is(host) {
		log.Printf("AGENTHUB_PPROF_ADDR %q: profiles are served on a loopback address only, such as 127.0.0.1:6060; not serving them", addr)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() { log.Println(http.ListenAndServe(addr, mux)) }()
}

// Package loopback says whether a host names this machine: the one place
// AgentHub lets a token travel over plain HTTP (the simulated providers)
// and the only place it serves what must not be reachable from elsewhere
// (profiles, the simulated providers' consent page). It imports only the
// standard library, so settings and wiring can ask without importing the
// vault.
package loopback

import (
	"net"
	"net/url"
	"strings"
)

// Is reports whether host names this machine: "localhost" or a loopback
// address (127.0.0.0/8, ::1). host is a host name or address without a
// port, as url.URL.Hostname and net.SplitHostPort return it.
func Is(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SecureOrigin reports whether raw (a trailing "/" allowed) is an origin
// that browsers may be sent to with OAuth codes and cookies: https, or
// http on this machine; no user, path, query or fragment.
func SecureOrigin(raw string) bool {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	return err == nil && u.Host != "" && u.User == nil && u.Path == "" && u.RawQuery == "" && u.Fragment == "" &&
		(u.Scheme == "https" || (u.Scheme == "http" && Is(u.Hostname())))
}

package loopback

import "testing"

func TestIs(t *testing.T) {
	tests := []struct {
		name string
		host string
		want bool
	}{
		{"localhost", "localhost", true},
		{"IPv4 loopback", "127.0.0.1", true},
		{"elsewhere in 127/8", "127.8.9.10", true},
		{"IPv6 loopback", "::1", true},
		{"IPv4-mapped loopback", "::ffff:127.0.0.1", true},
		{"unspecified", "0.0.0.0", false},
		{"private address", "10.0.0.1", false},
		{"a name that resolves anywhere", "example.com", false},
		{"a name that merely starts like localhost", "localhost.example.com", false},
		{"bracketed, as in a URL's Host", "[::1]", false},
		{"with a port", "127.0.0.1:80", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Is(tt.host); got != tt.want {
				t.Errorf("Is(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

func TestSecureOrigin(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://agenthub.example.com":  true,
		"https://agenthub.example.com/": true,
		"http://127.0.0.1:8443":         true,
		"http://localhost:8443/":        true,
		"http://agenthub.example.com":   false,
		"https://example.com/agenthub":  false,
		"https://example.com/?x=1":      false,
		"https://u:p@example.com":       false,
		"ftp://127.0.0.1":               false,
		"":                              false,
	} {
		if got := SecureOrigin(raw); got != want {
			t.Errorf("SecureOrigin(%q) = %v, want %v", raw, got, want)
		}
	}
}

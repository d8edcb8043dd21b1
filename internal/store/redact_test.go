package store

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	const pw = "CANARYPW"
	tests := []struct {
		raw, want string
	}{
		{"bolt:agenthub.db", "bolt:agenthub.db"},
		{"bolt:/var/lib/agenthub/state.db", "bolt:/var/lib/agenthub/state.db"},
		{"redis://127.0.0.1:6379/9", "redis://127.0.0.1:6379/9"},
		{"redis://:" + pw + "@cache:6379/0", "redis://:xxxxx@cache:6379/0"},
		{"rediss://user:" + pw + "@cache:6380/1", "rediss://user:xxxxx@cache:6380/1"},
		// Typos and foreign forms: never the password.
		{"redis:/:" + pw + "@host:6379", "redis:…@host:6379"},
		{"redis:" + pw + "@host:6379", "redis:…@host:6379"},
		{"redis://:1234/" + pw + "@host:6379", "redis:…@host:6379"},
		{"user:" + pw + "@tcp(db:3306)/x", "user:…@tcp(db:3306)/x"},
		{"%zz" + pw + "@h", "(store URL …@h)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := RedactURL(tt.raw)
			if strings.Contains(got, pw) {
				t.Fatalf("RedactURL shows the password: %q", got)
			}
			if got != tt.want {
				t.Fatalf("RedactURL = %q, want %q", got, tt.want)
			}
		})
	}
}

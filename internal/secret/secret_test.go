package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretRedacts(t *testing.T) {
	const value = "hunter2-very-secret"
	s := New(value)
	type wrapper struct {
		Token Secret
		Ptr   *Secret
	}
	w := wrapper{Token: s, Ptr: &s}

	tests := []struct {
		name string
		got  func() (string, error)
	}{
		{"String", func() (string, error) { return s.String(), nil }},
		{"GoString", func() (string, error) { return s.GoString(), nil }},
		{"%v", func() (string, error) { return fmt.Sprintf("%v", s), nil }},
		{"%+v", func() (string, error) { return fmt.Sprintf("%+v", s), nil }},
		{"%#v", func() (string, error) { return fmt.Sprintf("%#v", s), nil }},
		{"%s", func() (string, error) { return fmt.Sprintf("%s", s), nil }},
		{"%q", func() (string, error) { return fmt.Sprintf("%q", s), nil }},
		{"%x", func() (string, error) { return fmt.Sprintf("%x", s), nil }},
		{"%X", func() (string, error) { return fmt.Sprintf("%X", s), nil }},
		{"%d", func() (string, error) { return fmt.Sprintf("%d", s), nil }},
		{"%10.3s", func() (string, error) { return fmt.Sprintf("%10.3s", s), nil }},
		{"Println", func() (string, error) { return fmt.Sprintln(s), nil }},
		{"struct %+v", func() (string, error) { return fmt.Sprintf("%+v", w), nil }},
		{"struct %#v", func() (string, error) { return fmt.Sprintf("%#v", w), nil }},
		{"pointer %v", func() (string, error) { return fmt.Sprintf("%v", &s), nil }},
		{"MarshalJSON", func() (string, error) { b, err := json.Marshal(s); return string(b), err }},
		{"json struct", func() (string, error) { b, err := json.Marshal(w); return string(b), err }},
		{"json map key", func() (string, error) { b, err := json.Marshal(map[string]Secret{"t": s}); return string(b), err }},
		{"MarshalText", func() (string, error) { b, err := s.MarshalText(); return string(b), err }},
		{"slog JSON", func() (string, error) {
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "token", s, "wrapped", w)
			return buf.String(), nil
		}},
		{"slog text", func() (string, error) {
			var buf bytes.Buffer
			slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "token", s, slog.Any("ptr", &s))
			return buf.String(), nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.got()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(got, value) || strings.Contains(got, "hunter2") {
				t.Fatalf("output contains the secret (output withheld)")
			}
			if !strings.Contains(got, "REDACTED") {
				t.Errorf("got %q, want it to say REDACTED", got)
			}
		})
	}
}

func TestSecretFormatExact(t *testing.T) {
	s := New("x")
	tests := []struct{ format, want string }{
		{"%v", "REDACTED"},
		{"%s", "REDACTED"},
		{"%#v", "REDACTED"},
		{"%q", `"REDACTED"`},
		{"%x", "REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			if got := fmt.Sprintf(tt.format, s); got != tt.want {
				t.Errorf("Sprintf(%q) = %q, want %q", tt.format, got, tt.want)
			}
		})
	}
	if got, _ := json.Marshal(s); string(got) != `"REDACTED"` {
		t.Errorf("json = %s, want %q", got, `"REDACTED"`)
	}
	if got := s.LogValue().String(); got != "REDACTED" {
		t.Errorf("LogValue = %q, want REDACTED", got)
	}
}

func TestSecretRevealAndIsZero(t *testing.T) {
	tests := []struct {
		name     string
		s        Secret
		wantText string
		wantZero bool
	}{
		{"zero value", Secret{}, "", true},
		{"empty", New(""), "", true},
		{"set", New("abc"), "abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Reveal(); got != tt.wantText {
				t.Errorf("Reveal() = %q, want %q", got, tt.wantText)
			}
			if got := tt.s.IsZero(); got != tt.wantZero {
				t.Errorf("IsZero() = %v, want %v", got, tt.wantZero)
			}
		})
	}
}

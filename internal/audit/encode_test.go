package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// encodingJSON is the reference appendCanonical must match.
func encodingJSON(t testing.TB, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	var allBytes []byte
	for i := range 256 {
		allBytes = append(allBytes, byte(i))
	}
	tests := []struct {
		name string
		v    map[string]any
	}{
		{"empty", map[string]any{}},
		{"scalars", map[string]any{"s": "x", "t": true, "f": false, "n": nil, "i": 7, "i64": int64(-9), "u64": uint64(1 << 63)}},
		{"floats", map[string]any{"a": 0.1, "b": 1e20, "c": 1e21, "d": 1e-6, "e": 1e-7, "f": -0.0, "g": 123456789.125, "h": math.MaxFloat64, "i": math.SmallestNonzeroFloat64, "j": 7.0}},
		{"every byte in a string", map[string]any{"s": string(allBytes)}},
		{"awkward strings", map[string]any{"s": "<a href=\"x\">&amp;</a> \u2028\u2029 é 世界 🎉 \x00\b\f\n\r\t\x7f"}},
		{"awkward keys", map[string]any{"é": 1, "<k>": 2, "a\nb": 3, "": 4, "B": 5, "a": 6}},
		{"nesting", map[string]any{"m": map[string]any{"z": []any{1, "two", nil, map[string]any{"x": []any{}}}}, "nilmap": map[string]any(nil), "nilslice": []any(nil)}},
		{"other types", map[string]any{"num": json.Number("12.50"), "strs": []string{"a", "b"}, "ints": []int{1, 2}, "time": time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), "struct": struct {
			A string `json:"a"`
			B int
		}{"x", 2}, "f32": float32(0.1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := canonicalArgs(tt.v)
			if err != nil {
				t.Fatalf("canonicalArgs: %v", err)
			}
			if want := encodingJSON(t, tt.v); string(got) != want {
				t.Errorf("canonicalArgs:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestCanonicalRejectsWhatJSONRejects(t *testing.T) {
	tests := []struct {
		name string
		v    map[string]any
	}{
		{"NaN", map[string]any{"x": math.NaN()}},
		{"infinity", map[string]any{"x": []any{math.Inf(1)}}},
		{"channel", map[string]any{"x": map[string]any{"y": make(chan int)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := canonicalArgs(tt.v); err == nil {
				t.Errorf("canonicalArgs = %s, want an error", got)
			}
		})
	}
}

func TestEntryStringsMatchEncodingJSON(t *testing.T) {
	var allBytes []byte
	for i := range 256 {
		allBytes = append(allBytes, byte(i))
	}
	for _, s := range []string{"", "plain", string(allBytes), "\u2028\u2029<>&", "é世🎉\xff\xfe"} {
		if got, want := string(appendJSONString(nil, s)), encodingJSON(t, s); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzJSONStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "\u2028\x00\"\\", "\xff\xfe", "é世🎉"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendJSONString(nil, s)), encodingJSON(t, s); got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

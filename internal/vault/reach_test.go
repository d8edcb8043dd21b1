package vault

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// reachableText returns every string an agent can reach from roots without
// unsafe or reflection on unexported fields: exported fields, through
// pointers, interfaces, slices, arrays and maps (keys too, so every header
// name and value), and, for each error, its Error text and everything its
// Unwrap methods lead to. A response's Request, and through Response the
// earlier hops of a redirect, are exported fields, so they are walked.
func reachableText(roots ...any) string {
	var b strings.Builder
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		if !v.IsValid() || depth > 32 {
			return
		}
		if v.CanInterface() {
			if err, ok := v.Interface().(error); ok && (v.Kind() != reflect.Pointer || !v.IsNil()) && (v.Kind() != reflect.Interface || !v.IsNil()) {
				b.WriteString(err.Error())
				b.WriteByte('\n')
				if u, ok := err.(interface{ Unwrap() []error }); ok {
					for _, e := range u.Unwrap() {
						walk(reflect.ValueOf(e), depth+1)
					}
				} else if e := errors.Unwrap(err); e != nil {
					walk(reflect.ValueOf(e), depth+1)
				}
			}
		}
		switch v.Kind() {
		case reflect.String:
			b.WriteString(v.String())
			b.WriteByte('\n')
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem(), depth+1)
		case reflect.Interface:
			walk(v.Elem(), depth+1)
		case reflect.Slice, reflect.Array:
			if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
				b.Write(v.Bytes())
				b.WriteByte('\n')
				return
			}
			for i := range v.Len() {
				walk(v.Index(i), depth+1)
			}
		case reflect.Map:
			iter := v.MapRange()
			for iter.Next() {
				walk(iter.Key(), depth+1)
				walk(iter.Value(), depth+1)
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i), depth+1)
				}
			}
		}
	}
	for _, r := range roots {
		walk(reflect.ValueOf(r), 0)
	}
	return b.String()
}

// The walker must find what it is looking for, or the tests that rely on
// it would pass vacuously.
func TestReachableTextFindsPlantedSecrets(t *testing.T) {
	const planted = "PLANTED-SECRET"
	sent, _ := http.NewRequest(http.MethodGet, "https://api.example/x", nil)
	sent.Header.Set("Authorization", "Bearer "+planted)
	first := &http.Response{Request: sent, Header: http.Header{}}
	hop, _ := http.NewRequest(http.MethodGet, "https://api.example/y", nil)
	hop.Response = first
	tests := []struct {
		name string
		root any
	}{
		{"request header", sent},
		{"earlier redirect hop", &http.Response{Request: hop}},
		{"wrapped url.Error", fmt.Errorf("outer: %w", &url.Error{Op: "Get", URL: "https://x/?t=" + planted, Err: errors.New("refused")})},
		{"joined error", errors.Join(errors.New("a"), fmt.Errorf("b: %w", errors.New(planted)))},
		{"header key", http.Header{planted: nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(reachableText(tt.root), planted) {
				t.Error("the planted string was not found")
			}
		})
	}
}

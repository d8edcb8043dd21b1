package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// TestKindsListsEveryKind: Kinds names every Kind constant of event.go,
// once, so the metrics label a new kind from the day it is added.
func TestKindsListsEveryKind(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "event.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Kind" {
			for _, name := range vs.Names {
				declared = append(declared, name.Name)
			}
		}
		return true
	})
	kinds := Kinds()
	if len(declared) == 0 || len(kinds) != len(declared) {
		t.Fatalf("event.go declares %d kinds, Kinds lists %d", len(declared), len(kinds))
	}
	seen := map[Kind]bool{}
	for _, k := range kinds {
		if seen[k] {
			t.Errorf("Kinds lists %q twice", k)
		}
		seen[k] = true
	}
	if !slices.Contains(kinds, RequestRefused) || !slices.Contains(kinds, VaultRekeyed) {
		t.Error("Kinds misses a kind added this year")
	}
}

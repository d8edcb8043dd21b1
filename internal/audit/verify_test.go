package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/store/memstore"
)

const chainLen = 10

// buildChain records chainLen events (request IDs req-1 … req-10) in a new
// memory store and returns the store and its entries. The clock is fixed so
// the entries are the same on every run (the fuzzer needs that of seeds).
func buildChain(t testing.TB) (*memstore.Store, [][]byte) {
	t.Helper()
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{Now: fixedClock})
	for i := 1; i <= chainLen; i++ {
		record(t, r, sampleEvent(i))
	}
	var lines [][]byte
	for _, e := range readAll(t, s, DefaultLog) {
		lines = append(lines, e.Value)
	}
	return s, lines
}

// rehash recomputes an entry's hash after it was edited, as a forger would.
func rehash(line []byte) []byte {
	line = slices.Clone(line)
	end := len(line) - len(`,"hash":"`) - 64 - 2
	sum := sha256.Sum256(line[:end])
	copy(line[end+len(`,"hash":"`):], hex.EncodeToString(sum[:]))
	return line
}

// replace edits one entry's bytes.
func replace(line []byte, old, new string) []byte {
	return bytes.Replace(slices.Clone(line), []byte(old), []byte(new), 1)
}

func exportFile(t testing.TB, lines [][]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var b []byte
	for _, l := range lines {
		b = append(append(b, l...), '\n')
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func verifyFile(t testing.TB, path string) (Summary, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Verify(f)
}

func TestVerifyIntact(t *testing.T) {
	s, lines := buildChain(t)
	var export bytes.Buffer
	n, err := Export(context.Background(), s, DefaultLog, 0, &export)
	if err != nil || n != chainLen {
		t.Fatalf("Export = %d, %v; want %d", n, err, chainLen)
	}
	if got, want := export.String(), string(bytes.Join(lines, []byte("\n")))+"\n"; got != want {
		t.Errorf("Export is not the stored bytes verbatim:\n got %s\nwant %s", got, want)
	}
	last, err := Decode(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Count: chainLen, Head: last.Hash, First: 1, Prev: genesis}

	fromStore, err := VerifyStore(context.Background(), s, DefaultLog)
	if err != nil {
		t.Fatalf("VerifyStore: %v", err)
	}
	if diff := cmp.Diff(want, fromStore); diff != "" {
		t.Errorf("VerifyStore (-want +got):\n%s", diff)
	}
	fromExport, err := verifyFile(t, exportFile(t, lines))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if diff := cmp.Diff(want, fromExport); diff != "" {
		t.Errorf("Verify (-want +got):\n%s", diff)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(lines [][]byte) [][]byte
		wantSeq uint64
	}{
		{"field altered", func(l [][]byte) [][]byte {
			l[4] = replace(l[4], `"decision":"allow"`, `"decision":"deny"`)
			return l
		}, 5},
		{"field altered and re-hashed", func(l [][]byte) [][]byte {
			l[4] = rehash(replace(l[4], `"decision":"allow"`, `"decision":"deny"`))
			return l
		}, 6},
		{"first event altered", func(l [][]byte) [][]byte {
			l[0] = replace(l[0], `"actor":"T1:U1"`, `"actor":"T1:U2"`)
			return l
		}, 1},
		{"last event altered", func(l [][]byte) [][]byte {
			l[9] = replace(l[9], `"actor":"T1:U1"`, `"actor":"T1:U2"`)
			return l
		}, 10},
		{"time altered", func(l [][]byte) [][]byte {
			l[4] = replace(l[4], `"time":"20`, `"time":"19`)
			return l
		}, 5},
		{"event removed", func(l [][]byte) [][]byte {
			return slices.Delete(l, 4, 5)
		}, 5},
		{"two events swapped", func(l [][]byte) [][]byte {
			l[4], l[5] = l[5], l[4]
			return l
		}, 5},
		{"forged event inserted with a valid prev", func(l [][]byte) [][]byte {
			forged := rehash(replace(l[4], `"request_id":"req-5"`, `"request_id":"req-forged"`))
			return slices.Insert(l, 4, forged)
		}, 5},
		{"forged event inserted with a made-up prev", func(l [][]byte) [][]byte {
			e, _ := Decode(l[4])
			forged := replace(l[4], `"prev":"`+e.Prev, `"prev":"`+strings.Repeat("ab", 32))
			return slices.Insert(l, 4, rehash(forged))
		}, 5},
		{"malformed entry", func(l [][]byte) [][]byte {
			l[4] = []byte(`{"seq":5,"kind":"step.proposed"}`)
			return l
		}, 5},
		{"garbage line", func(l [][]byte) [][]byte {
			l[4] = []byte(`hello`)
			return l
		}, 5},
		{"entry cut short", func(l [][]byte) [][]byte {
			l[4] = l[4][:len(l[4])-1]
			return l
		}, 5},
		{"hash in upper case", func(l [][]byte) [][]byte {
			l[4] = slices.Clone(l[4])
			upper := bytes.ToUpper(l[4][len(l[4])-66 : len(l[4])-2])
			copy(l[4][len(l[4])-66:], upper)
			return l
		}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(t *testing.T, sum Summary, err error) {
				t.Helper()
				var ce *ChainError
				if !errors.As(err, &ce) {
					t.Fatalf("verify = %+v, %v; want a *ChainError", sum, err)
				}
				if ce.Seq != tt.wantSeq {
					t.Errorf("first bad seq = %d (%s), want %d", ce.Seq, ce.Reason, tt.wantSeq)
				}
			}
			t.Run("store", func(t *testing.T) {
				s, _ := buildChain(t)
				s.EditLog(DefaultLog, tt.tamper)
				sum, err := VerifyStore(context.Background(), s, DefaultLog)
				check(t, sum, err)
			})
			t.Run("export", func(t *testing.T) {
				s, _ := buildChain(t)
				var export bytes.Buffer
				if _, err := Export(context.Background(), s, DefaultLog, 0, &export); err != nil {
					t.Fatal(err)
				}
				lines := bytes.Split(bytes.TrimSuffix(export.Bytes(), []byte("\n")), []byte("\n"))
				sum, err := verifyFile(t, exportFile(t, tt.tamper(lines)))
				check(t, sum, err)
			})
		})
	}
}

// A chain cannot prove it is complete at either end on its own; the head
// and the first prev are reported so they can be compared with copies kept
// elsewhere.
func TestVerifyEnds(t *testing.T) {
	s, lines := buildChain(t)
	full, err := VerifyStore(context.Background(), s, DefaultLog)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("first event removed from the store", func(t *testing.T) {
		s, _ := buildChain(t)
		s.EditLog(DefaultLog, func(l [][]byte) [][]byte { return l[1:] })
		var ce *ChainError
		if _, err := VerifyStore(context.Background(), s, DefaultLog); !errors.As(err, &ce) || ce.Seq != 1 {
			t.Errorf("VerifyStore = %v, want a *ChainError at seq 1", err)
		}
	})
	t.Run("first event removed from an export", func(t *testing.T) {
		got, err := verifyFile(t, exportFile(t, lines[1:]))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if got.First != 2 || got.Prev == genesis {
			t.Errorf("Verify = %+v, want First 2 and a non-genesis Prev to show the start is unchecked", got)
		}
	})
	t.Run("last event removed", func(t *testing.T) {
		got, err := verifyFile(t, exportFile(t, lines[:len(lines)-1]))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if got.Count != chainLen-1 || got.Head == full.Head {
			t.Errorf("Verify = %+v, want %d events and a head other than %s", got, chainLen-1, full.Head)
		}
	})
	t.Run("first event's prev altered", func(t *testing.T) {
		l := slices.Clone(lines)
		l[0] = rehash(replace(l[0], `"prev":"0`, `"prev":"1`))
		var ce *ChainError
		if _, err := verifyFile(t, exportFile(t, l)); !errors.As(err, &ce) || ce.Seq != 1 {
			t.Errorf("Verify = %v, want a *ChainError at seq 1", err)
		}
	})
}

func TestExportSince(t *testing.T) {
	s, lines := buildChain(t)
	full, err := VerifyStore(context.Background(), s, DefaultLog)
	if err != nil {
		t.Fatal(err)
	}
	third, err := Decode(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	ninth, err := Decode(lines[8])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		since uint64
		want  Summary
	}{
		{0, full},
		{1, full},
		{4, Summary{Count: 7, Head: full.Head, First: 4, Prev: third.Hash}},
		{10, Summary{Count: 1, Head: full.Head, First: 10, Prev: ninth.Hash}},
		{11, Summary{}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("since %d", tt.since), func(t *testing.T) {
			var export bytes.Buffer
			n, err := Export(context.Background(), s, DefaultLog, tt.since, &export)
			if err != nil {
				t.Fatalf("Export(since %d): %v", tt.since, err)
			}
			if uint64(n) != tt.want.Count {
				t.Errorf("Export(since %d) wrote %d events, want %d", tt.since, n, tt.want.Count)
			}
			got, err := Verify(&export)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Verify of export since %d (-want +got):\n%s", tt.since, diff)
			}
		})
	}
}

func TestVerifyInputShapes(t *testing.T) {
	_, lines := buildChain(t)
	head, _ := Decode(lines[len(lines)-1])
	joined := func(sep, end string) string {
		var parts []string
		for _, l := range lines {
			parts = append(parts, string(l))
		}
		return strings.Join(parts, sep) + end
	}
	tests := []struct {
		name  string
		input string
		want  Summary
	}{
		{"empty", "", Summary{}},
		{"only a line break", "\n", Summary{}},
		{"no final line break", joined("\n", ""), Summary{Count: chainLen, Head: head.Hash, First: 1, Prev: genesis}},
		{"CRLF", joined("\r\n", "\r\n"), Summary{Count: chainLen, Head: head.Hash, First: 1, Prev: genesis}},
		{"blank lines", joined("\n\n", "\n\n"), Summary{Count: chainLen, Head: head.Hash, First: 1, Prev: genesis}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Verify(strings.NewReader(tt.input))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerifyLongLines(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	record(t, r, Event{Kind: StepProposed})
	record(t, r, Event{Kind: ProviderCalled, Resource: strings.Repeat("r", MaxEntry-1000)}) // longer than Verify's buffer
	last := record(t, r, Event{Kind: ActionSucceeded})
	if _, err := r.Record(context.Background(), Event{Kind: ProviderCalled, Resource: strings.Repeat("r", MaxEntry)}); err == nil {
		t.Errorf("Record of an event larger than MaxEntry succeeded")
	}
	var export bytes.Buffer
	if _, err := Export(context.Background(), s, DefaultLog, 0, &export); err != nil {
		t.Fatal(err)
	}
	got, err := Verify(bytes.NewReader(export.Bytes()))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Count != 3 || got.Head != last.Hash {
		t.Errorf("Verify = %d events, head %s; want 3, %s", got.Count, got.Head, last.Hash)
	}

	huge := append(bytes.Repeat([]byte("x"), 2*MaxEntry), '\n')
	var ce *ChainError
	if _, err := Verify(io.MultiReader(bytes.NewReader(export.Bytes()), bytes.NewReader(huge))); !errors.As(err, &ce) || ce.Seq != 4 {
		t.Errorf("Verify with a line over MaxEntry = %v, want a *ChainError at seq 4", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	_, lines := buildChain(t)
	good := lines[0]
	tests := []struct {
		name string
		line []byte
	}{
		{"empty", nil},
		{"not an entry", []byte(`{"kind":"x"}`)},
		{"bad json inside a valid frame", rehash(replace(good, `"kind":"policy.decided"`, `"kind":policy.decided`))},
		{"duplicate seq key", rehash(replace(good, `"kind":`, `"seq":9,"kind":`))},
		{"leading zero seq", replace(good, `{"seq":1,`, `{"seq":01,`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := Decode(tt.line); err == nil {
				t.Errorf("Decode(%q) = %+v, want an error", tt.line, e)
			}
		})
	}
	if _, err := Decode(append(slices.Clone(good), '\n')); err != nil {
		t.Errorf("Decode of a good entry with its line break: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	_, lines := buildChain(f)
	f.Add(bytes.Join(lines[:3], []byte("\n")))
	f.Add(lines[0])
	f.Add([]byte(`{"seq":18446744073709551615,` + strings.Repeat("x", 200)))
	f.Add([]byte(`{"seq":99999999999999999999999,` + strings.Repeat("x", 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, err := Verify(bytes.NewReader(data))
		var ce *ChainError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("Verify returned %T %v, want nil or *ChainError", err, err)
		}
		if err == nil && sum.Count > 0 && len(sum.Head) != 64 {
			t.Fatalf("Verify = %+v: head is not 64 hex digits", sum)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			Decode(line) // must not panic
		}
	})
}

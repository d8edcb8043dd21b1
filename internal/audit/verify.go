package audit

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/agenthub/agenthub/internal/store"
)

// readPage is how many entries Export and VerifyStore read per store call.
const readPage = 4096

// Summary describes a verified chain.
type Summary struct {
	// Count is the number of events verified.
	Count uint64
	// Head is the hash of the last event, "" when there were none. Compare
	// it with a head recorded elsewhere (the slog sink, the audit channel)
	// to detect a chain rewritten from some point to its end, or cut short.
	Head string
	// First is the seq of the first event verified: 1 for a whole log. When
	// it is larger (an export made with since > 1), the first event's Prev
	// could not be checked against its predecessor; compare Prev with the
	// Head of a verified export that ends at First-1.
	First uint64
	// Prev is the first event's Prev: 64 zeros when First is 1.
	Prev string
}

// ChainError reports the first place where a chain is broken.
type ChainError struct {
	// Seq is the first bad sequence number: the event that was altered,
	// the first one missing, or the one found out of place. It is 0 when
	// the very first line is too mangled to read a seq from.
	Seq    uint64
	Reason string
}

// Error names the first bad seq and why it is bad.
func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at seq %d: %s", e.Seq, e.Reason)
}

// chain checks entries one after another.
type chain struct {
	sum      Summary
	lastSeq  uint64
	lastHash [hexLen]byte // as text: comparing text avoids decoding hex
}

// add checks one entry (without its line break) against the previous one.
func (c *chain) add(line []byte) error {
	f, err := parseFrame(line)
	if err != nil {
		seq := c.lastSeq + 1
		if c.sum.Count == 0 {
			seq = 0
		}
		if f.seq != 0 {
			seq = f.seq // the prefix was readable
		}
		return &ChainError{Seq: seq, Reason: err.Error()}
	}
	if c.sum.Count == 0 {
		if !isLowerHex(f.prev) {
			return &ChainError{Seq: f.seq, Reason: "malformed entry: prev is not lowercase hex"}
		}
		if f.seq == 1 && string(f.prev) != genesis {
			return &ChainError{Seq: 1, Reason: "first event's prev is not all zeros (events inserted before it or altered)"}
		}
		c.sum.First = f.seq
		c.sum.Prev = string(f.prev)
	} else {
		want := c.lastSeq + 1
		switch {
		case f.seq > want:
			return &ChainError{Seq: want, Reason: fmt.Sprintf("found seq %d where %d was expected (events removed or reordered)", f.seq, want)}
		case f.seq < want:
			return &ChainError{Seq: f.seq, Reason: fmt.Sprintf("seq %d appears again after seq %d (events inserted or reordered)", f.seq, c.lastSeq)}
		case string(f.prev) != string(c.lastHash[:]):
			return &ChainError{Seq: f.seq, Reason: fmt.Sprintf("prev does not match the hash of seq %d (seq %d altered and re-hashed, or seq %d altered or inserted)", c.lastSeq, c.lastSeq, f.seq)}
		}
	}
	// The stored hash must be exactly the lowercase hex of the SHA-256 of
	// the bytes before it; comparing text also rejects any other spelling.
	sum := sha256.Sum256(f.hashed)
	var h [hexLen]byte
	hex.Encode(h[:], sum[:])
	if string(h[:]) != string(f.hash) {
		return &ChainError{Seq: f.seq, Reason: "hash does not match the content (event altered)"}
	}
	c.sum.Count++
	c.lastSeq, c.lastHash = f.seq, h
	return nil
}

func (c *chain) summary() Summary {
	s := c.sum
	if s.Count > 0 {
		s.Head = string(c.lastHash[:])
	}
	return s
}

// Verify checks an export read from r: every line is a well-formed entry
// whose hash matches its bytes, each seq follows the previous one and each
// prev is the previous hash. It hashes the bytes as stored and never
// re-encodes or unmarshals them. Empty lines are skipped; a trailing "\r"
// is ignored. A broken chain returns a *ChainError naming the first bad
// seq, with a Summary of the events before it. The first line may start
// anywhere (see Summary.First).
func Verify(r io.Reader) (Summary, error) {
	br := bufio.NewReaderSize(r, 1<<16) // longer lines are put together below
	var c chain
	var long []byte // a line longer than br's buffer
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			if len(long) > MaxEntry {
				// A hostile file must not make the verifier hold it whole.
				seq := c.lastSeq + 1
				if c.sum.Count == 0 {
					seq = 0
				}
				return c.summary(), &ChainError{Seq: seq, Reason: fmt.Sprintf("malformed entry: longer than %d bytes", MaxEntry)}
			}
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return c.summary(), fmt.Errorf("audit: read export: %w", err)
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > 0 {
			if cerr := c.add(line); cerr != nil {
				return c.summary(), cerr
			}
		}
		if err != nil { // io.EOF
			return c.summary(), nil
		}
	}
}

// VerifyStore checks the whole log in s as Verify checks an export, and also
// that each entry sits at the seq it names and that the log starts at 1.
func VerifyStore(ctx context.Context, s store.Store, log string) (Summary, error) {
	var c chain
	from := uint64(1)
	for {
		entries, err := s.Read(ctx, log, from, readPage)
		if err != nil {
			return c.summary(), fmt.Errorf("audit: read log %q: %w", log, err)
		}
		if len(entries) == 0 {
			return c.summary(), nil
		}
		for _, en := range entries {
			if c.sum.Count == 0 && en.Seq != 1 {
				return c.summary(), &ChainError{Seq: 1, Reason: fmt.Sprintf("log starts at seq %d", en.Seq)}
			}
			if err := c.add(en.Value); err != nil {
				return c.summary(), err
			}
			if c.lastSeq != en.Seq {
				return c.summary(), &ChainError{Seq: en.Seq, Reason: fmt.Sprintf("store entry %d holds seq %d", en.Seq, c.lastSeq)}
			}
		}
		from = entries[len(entries)-1].Seq + 1
	}
}

// Export writes the events of log in s with seq >= since as JSON Lines: each
// stored entry verbatim, then a line break. since 0 or 1 exports the whole
// log. It returns how many events it wrote.
func Export(ctx context.Context, s store.Store, log string, since uint64, w io.Writer) (n int, err error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	from := max(since, 1)
	for {
		entries, err := s.Read(ctx, log, from, readPage)
		if err != nil {
			return n, fmt.Errorf("audit: read log %q: %w", log, err)
		}
		if len(entries) == 0 {
			break
		}
		for _, en := range entries {
			bw.Write(en.Value)
			if err := bw.WriteByte('\n'); err != nil {
				return n, fmt.Errorf("audit: write export: %w", err)
			}
			n++
		}
		from = entries[len(entries)-1].Seq + 1
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("audit: write export: %w", err)
	}
	return n, nil
}

package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// TimeFormat is the layout of an event's time in the canonical encoding:
// RFC 3339, UTC, exactly three fractional digits, so every timestamp has
// the same width and sorts as text.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// The fixed frame of an encoded entry. Verify relies on it to find seq,
// prev and hash without parsing JSON.
const (
	seqPrefix   = `{"seq":`
	prevField   = `,"prev":"`
	hashField   = `,"hash":"`
	hexLen      = 2 * sha256.Size
	hashedTail  = len(prevField) + hexLen + len(`"`)  // `,"prev":"<64 hex>"`, the end of the hashed bytes
	hashTail    = len(hashField) + hexLen + len(`"}`) // `,"hash":"<64 hex>"}`, not hashed
	frameSuffix = hashedTail + hashTail
	// minEntry is the shortest well-formed entry: `{"seq":1,` and the suffix.
	minEntry = len(seqPrefix) + 2 + frameSuffix
)

// genesis is the Prev of the first event of a log.
var genesis = strings.Repeat("0", hexLen)

// Summary limits: a summary is for people skimming the trail, the digest is
// what proves which arguments were used.
const (
	summaryMaxString = 64  // runes kept of one string value
	summaryMaxLen    = 512 // bytes of the whole summary
)

// redacted replaces values that must never reach the trail.
const redacted = "REDACTED"

// secretKeyParts are substrings of argument names whose values are treated as
// secrets. Matching is by substring and case-insensitive, so it errs towards
// hiding ("monkey" is hidden too); a summary loses a little, a leak cannot
// be undone.
var secretKeyParts = []string{
	"token", "secret", "password", "passwd", "key", "code", "auth",
	"cookie", "credential", "session", "signature", "bearer",
}

// secretValuePrefixes are prefixes of well-known credential formats (GitHub,
// Slack, Google, bearer headers). A value that starts with one is hidden
// whatever its argument is called.
var secretValuePrefixes = []string{
	"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
	"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-",
	"ya29.", "1//", "bearer ", "basic ",
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, p := range secretKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

func isSecretValue(s string) bool {
	for _, p := range secretValuePrefixes {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// canonicalArgs is the canonical JSON of a step's arguments: exactly what
// encoding/json produces with HTML escaping off — object keys sorted, no
// insignificant whitespace, numbers in their shortest form.
func canonicalArgs(args map[string]any) ([]byte, error) {
	return appendCanonical(make([]byte, 0, 256), args)
}

// appendCanonical appends v as encoding/json with SetEscapeHTML(false)
// would, directly for the types that decoded JSON and typical arguments are
// made of and through encoding/json for the rest, which is several times
// slower.
func appendCanonical(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case float64:
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			return appendFloat(b, v), nil
		}
	case map[string]any:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendCanonical(b, v[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonical(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// The error names a type or a non-finite number, never a value.
		return nil, fmt.Errorf("audit: encode args: %w", err)
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

// appendFloat formats f as encoding/json does (like ES6): plain decimal
// between 1e-6 and 1e21, exponent form outside, without exponent padding.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// argsDigest returns the hex HMAC-SHA256 of canonical under key.
func argsDigest(key, canonical []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(canonical)
	return hex.EncodeToString(m.Sum(nil))
}

// summarize renders args as space-separated k=v pairs sorted by key, with
// values in JSON form, secret values replaced by REDACTED and long strings
// cut short with "…". Nested objects are redacted by the same rules.
func summarize(args map[string]any) string {
	b := make([]byte, 0, 128)
	for i, k := range sortedKeys(args) {
		if i > 0 {
			b = append(b, ' ')
		}
		if isPlainKey(k) {
			b = append(b, k...)
		} else {
			b = strconv.AppendQuote(b, truncate(k))
		}
		b = append(b, '=')
		if isSecretKey(k) {
			b = append(b, redacted...)
		} else {
			b = appendSummaryValue(b, args[k])
		}
		if len(b) > summaryMaxLen {
			break
		}
	}
	if len(b) > summaryMaxLen {
		b = append(cutUTF8(b, summaryMaxLen), "…"...)
	}
	return string(b)
}

// sortedKeys returns m's keys in byte order, as encoding/json orders them.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isPlainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// appendSummaryValue appends v in JSON form with the redaction rules applied.
func appendSummaryValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		if isSecretValue(v) {
			return append(b, redacted...)
		}
		return appendJSONString(b, truncate(v))
	case bool:
		return strconv.AppendBool(b, v)
	case json.Number:
		return append(b, truncate(v.String())...)
	case map[string]any:
		b = append(b, '{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, truncate(k))
			b = append(b, ':')
			if isSecretKey(k) {
				b = append(b, redacted...)
			} else {
				b = appendSummaryValue(b, v[k])
			}
			if len(b) > summaryMaxLen {
				break
			}
		}
		return append(b, '}')
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
		return appendSummaryValue(b, m)
	case []any:
		return appendSummaryList(b, v)
	case []string:
		return appendSummaryList(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case float64:
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			return appendFloat(b, v)
		}
	}
	// Other types: their JSON form. A type that marshals to a string, an
	// object or an array goes through the rules above so a secret cannot
	// hide in it.
	j, err := json.Marshal(v)
	if err != nil || len(j) == 0 {
		return append(b, "?"...)
	}
	var x any
	switch j[0] {
	case '"':
		x = new(string)
	case '{':
		x = new(map[string]any)
	case '[':
		x = new([]any)
	default:
		return append(b, truncate(string(j))...)
	}
	if err := json.Unmarshal(j, x); err != nil {
		return append(b, "?"...)
	}
	switch x := x.(type) {
	case *string:
		return appendSummaryValue(b, *x)
	case *map[string]any:
		return appendSummaryValue(b, *x)
	case *[]any:
		return appendSummaryValue(b, *x)
	}
	return b
}

// appendSummaryList appends list as a JSON array of summary values,
// stopping early once the summary is over its bound.
func appendSummaryList[E any](b []byte, list []E) []byte {
	b = append(b, '[')
	for i, e := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSummaryValue(b, e)
		if len(b) > summaryMaxLen {
			break
		}
	}
	return append(b, ']')
}

// truncate keeps the first summaryMaxString runes of s.
func truncate(s string) string {
	if utf8.RuneCountInString(s) <= summaryMaxString {
		return s
	}
	n := 0
	for i := range s {
		if n == summaryMaxString {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// cutUTF8 shortens b to at most n bytes without splitting a rune.
func cutUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// sanitize makes the caller's fields valid UTF-8, so that what Record
// returns is exactly what Decode reads back from the store.
func sanitize(e *Event) {
	for _, p := range []*string{&e.Actor, &e.Agent, &e.Action, &e.Resource, &e.RequestID, &e.Decision, &e.Rule, &e.Result} {
		if !utf8.ValidString(*p) {
			*p = strings.ToValidUTF8(*p, "\uFFFD")
		}
	}
	if !utf8.ValidString(string(e.Kind)) {
		e.Kind = Kind(strings.ToValidUTF8(string(e.Kind), "\uFFFD"))
	}
	for k, v := range e.Detail {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			m := make(map[string]string, len(e.Detail))
			for k, v := range e.Detail {
				m[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(v, "\uFFFD")
			}
			e.Detail = m
			return
		}
	}
}

// appendBody appends the part of the canonical encoding that the caller's
// fields determine: from `,"kind":` up to, not including, `,"prev":`. Empty
// fields are omitted; the order is fixed.
func appendBody(b []byte, e *Event) []byte {
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(e.Kind))
	b = appendField(b, `,"actor":`, e.Actor)
	b = appendField(b, `,"agent":`, e.Agent)
	b = appendField(b, `,"action":`, e.Action)
	b = appendField(b, `,"resource":`, e.Resource)
	b = appendField(b, `,"request_id":`, e.RequestID)
	b = appendField(b, `,"decision":`, e.Decision)
	b = appendField(b, `,"rule":`, e.Rule)
	b = appendField(b, `,"result":`, e.Result)
	if len(e.Detail) > 0 {
		b = append(b, `,"detail":{`...)
		for i, k := range sortedKeys(e.Detail) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, e.Detail[k])
		}
		b = append(b, '}')
	}
	b = appendField(b, `,"args_hmac":`, e.ArgsDigest)
	b = appendField(b, `,"args_summary":`, e.ArgsSummary)
	return b
}

// bodySize estimates the length of e's body so it is built in one
// allocation: field values plus room for names and the odd escape.
func bodySize(e *Event) int {
	n := 192 + len(e.Kind) + len(e.Actor) + len(e.Agent) + len(e.Action) + len(e.Resource) +
		len(e.RequestID) + len(e.Decision) + len(e.Rule) + len(e.Result) + len(e.ArgsDigest) + len(e.ArgsSummary)
	for k, v := range e.Detail {
		n += len(k) + len(v) + 6
	}
	return n
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, name...)
	return appendJSONString(b, v)
}

// appendEntry appends the complete entry for one event: seq and time (as
// formatted with TimeFormat) around body, prev, and the SHA-256 of all of
// that as hash. It returns the extended buffer and the hex hash.
func appendEntry(b []byte, seq uint64, t, body []byte, prev *[hexLen]byte) ([]byte, [hexLen]byte) {
	start := len(b)
	b = append(b, seqPrefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"time":"`...)
	b = append(b, t...)
	b = append(b, '"')
	b = append(b, body...)
	b = append(b, prevField...)
	b = append(b, prev[:]...)
	b = append(b, '"')
	sum := sha256.Sum256(b[start:])
	var h [hexLen]byte
	hex.Encode(h[:], sum[:])
	b = append(b, hashField...)
	b = append(b, h[:]...)
	b = append(b, `"}`...)
	return b, h
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the ASCII bytes a JSON string holds as they are.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string, byte for byte as
// encoding/json does without HTML escaping: it escapes what JSON requires
// plus U+2028 and U+2029 (so an entry never contains a line break), and
// writes invalid UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// frame is what Verify reads from an entry without parsing its JSON.
type frame struct {
	seq    uint64
	hashed []byte // the bytes the hash covers
	prev   []byte // the 64 characters of prev, not yet checked to be hex
	hash   []byte // the 64 characters of hash, not yet checked to be hex
}

// errMalformed explains why an entry does not have the canonical frame.
var errMalformed = errors.New("malformed entry")

// parseFrame reads seq from the fixed prefix and prev and hash from the
// fixed-length suffix of one entry (without its line break).
func parseFrame(line []byte) (frame, error) {
	var f frame
	if len(line) < minEntry || string(line[:len(seqPrefix)]) != seqPrefix {
		return f, fmt.Errorf("%w: no {\"seq\": prefix or too short", errMalformed)
	}
	i := len(seqPrefix)
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		d := uint64(line[i] - '0')
		if f.seq > (1<<64-1-d)/10 {
			return frame{}, fmt.Errorf("%w: seq overflows", errMalformed)
		}
		f.seq = f.seq*10 + d
	}
	// The seq must end with a comma before the suffix starts.
	if i == len(seqPrefix) || i >= len(line)-frameSuffix || line[i] != ',' || f.seq == 0 || line[len(seqPrefix)] == '0' {
		return frame{}, fmt.Errorf("%w: bad seq", errMalformed)
	}
	tail := line[len(line)-frameSuffix:]
	if string(tail[:len(prevField)]) != prevField ||
		tail[len(prevField)+hexLen] != '"' ||
		string(tail[hashedTail:hashedTail+len(hashField)]) != hashField ||
		string(tail[frameSuffix-2:]) != `"}` {
		return f, fmt.Errorf("%w: no prev and hash suffix", errMalformed)
	}
	f.prev = tail[len(prevField) : len(prevField)+hexLen]
	f.hash = tail[hashedTail+len(hashField) : frameSuffix-2]
	f.hashed = line[:len(line)-hashTail]
	return f, nil
}

// isLowerHex reports whether b is lowercase hex. Only lowercase is accepted
// so that every byte of an entry is fixed: changing the case of a digit is
// tampering too.
func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Decode parses one stored entry (without its line break) for display. It
// checks the frame and that the JSON agrees with it, but not the hash
// chain; that is Verify's job.
func Decode(line []byte) (Event, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	f, err := parseFrame(line)
	if err != nil {
		return Event{}, fmt.Errorf("audit: decode: %w", err)
	}
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return Event{}, fmt.Errorf("audit: decode seq %d: %w", f.seq, err)
	}
	// encoding/json keeps the last of duplicate keys; insist that the
	// fields shown are the ones the frame (and so the chain) covers.
	if !isLowerHex(f.prev) || !isLowerHex(f.hash) {
		return Event{}, fmt.Errorf("audit: decode seq %d: %w: prev or hash is not lowercase hex", f.seq, errMalformed)
	}
	if e.Seq != f.seq || e.Prev != string(f.prev) || e.Hash != string(f.hash) {
		return Event{}, fmt.Errorf("audit: decode seq %d: fields disagree with the frame", f.seq)
	}
	return e, nil
}

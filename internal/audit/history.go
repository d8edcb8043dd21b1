package audit

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// tailPage is how many entries TailOf reads at a time, walking back.
const tailPage = 128

// TailOf returns the last n events whose Actor is actor among the last
// window events of the log, oldest first. It is how a person's recent
// history is shown (App Home lists their last ten events): window bounds
// the read, so a person who has been quiet for a long time gets fewer than
// n events, or none, rather than a scan of the whole trail. An empty actor
// matches nothing: events without an actor are nobody's history.
//
// It reads back from the head a page at a time and stops as soon as it has
// n events, and it decodes only entries whose stored bytes name the actor
// (the stored line has the actor in a fixed, canonical form), so a busy
// trail costs a person's App Home little.
func (r *Recorder) TailOf(ctx context.Context, actor string, n, window int) ([]Event, error) {
	if actor == "" || n <= 0 || window <= 0 {
		return nil, nil
	}
	// The stored line's own spelling of the field (appendJSONString, not
	// encoding/json, which would escape <, > and &), with the comma that
	// makes it the top-level field.
	needle := appendJSONString([]byte(`,"actor":`), actor)
	head, err := r.store.Head(ctx, r.log)
	if err != nil {
		return nil, fmt.Errorf("audit: read head of log %q: %w", r.log, err)
	}
	var mine []Event // newest first
	end := head.Seq  // the newest seq not yet read
	for read := 0; end > 0 && read < window && len(mine) < n; {
		size := min(tailPage, window-read, int(min(end, uint64(tailPage))))
		from := end - uint64(size) + 1
		entries, err := r.store.Read(ctx, r.log, from, size)
		if err != nil {
			return nil, fmt.Errorf("audit: read log %q: %w", r.log, err)
		}
		for i := len(entries) - 1; i >= 0 && len(mine) < n; i-- {
			if !bytes.Contains(entries[i].Value, needle) {
				continue
			}
			e, err := Decode(entries[i].Value)
			if err != nil {
				return nil, err
			}
			if e.Actor == actor {
				mine = append(mine, e)
			}
		}
		read += size
		end = from - 1
	}
	slices.Reverse(mine)
	return mine, nil
}

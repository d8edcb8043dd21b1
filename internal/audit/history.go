package audit

import (
	"context"
	"slices"
)

// TailOf returns the last n events whose Actor is actor among the last
// window events of the log, oldest first. It is how a person's recent
// history is shown (App Home lists their last ten events): window bounds
// the read, so a person who has been quiet for a long time gets fewer than
// n events, or none, rather than a scan of the whole trail. An empty actor
// matches nothing: events without an actor are nobody's history.
func (r *Recorder) TailOf(ctx context.Context, actor string, n, window int) ([]Event, error) {
	if actor == "" || n <= 0 || window <= 0 {
		return nil, nil
	}
	events, err := r.Tail(ctx, window)
	if err != nil {
		return nil, err
	}
	// Walk back from the newest so the result is at most n long and does
	// not keep the window's events alive.
	var mine []Event
	for i := len(events) - 1; i >= 0 && len(mine) < n; i-- {
		if events[i].Actor == actor {
			mine = append(mine, events[i])
		}
	}
	slices.Reverse(mine)
	return mine, nil
}

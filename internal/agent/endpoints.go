package agent

import (
	"strings"

	"github.com/agenthub/agenthub/internal/sim"
)

// Endpoints are the base URLs of the providers' APIs, each ending in a slash.
type Endpoints struct {
	GitHub   string // go-github BaseURL, e.g. https://api.github.com/
	Calendar string // calendar/v3 endpoint, e.g. https://www.googleapis.com/calendar/v3/
	Slack    string // slack-go API URL, e.g. https://slack.com/api/
}

// DefaultEndpoints returns the real providers' endpoints.
func DefaultEndpoints() Endpoints {
	return Endpoints{
		GitHub:   "https://api.github.com/",
		Calendar: "https://www.googleapis.com/calendar/v3/",
		Slack:    "https://slack.com/api/",
	}
}

// SimEndpoints returns the endpoints of the simulated providers served at base (an
// httptest.Server URL, or any URL when the client's transport is sim.World.Transport).
func SimEndpoints(base string) Endpoints {
	base = strings.TrimSuffix(base, "/")
	return Endpoints{
		GitHub:   base + sim.GitHubPrefix,
		Calendar: base + sim.CalendarPrefix,
		Slack:    base + sim.SlackPrefix,
	}
}

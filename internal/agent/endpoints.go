package agent

// Endpoints are the base URLs of the providers' APIs, each ending in a slash.
type Endpoints struct {
	GitHub   string // go-github BaseURL, e.g. https://api.github.com/
	Calendar string // calendar/v3 endpoint, e.g. https://www.googleapis.com/calendar/v3/
	Slack    string // slack-go API URL, e.g. https://slack.com/api/
}

// DefaultEndpoints returns the real providers' endpoints. The simulated
// providers' are the wiring's business (simenv.Endpoints), so that agents
// know nothing of the simulation.
func DefaultEndpoints() Endpoints {
	return Endpoints{
		GitHub:   "https://api.github.com/",
		Calendar: "https://www.googleapis.com/calendar/v3/",
		Slack:    "https://slack.com/api/",
	}
}

// Package connecttest drives connect flows as a person's browser does, for
// the tests of the packages whose flows internal/connect runs (providers,
// identity providers).
package connecttest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/connect"
)

// Browser follows redirects and keeps cookies, like a person's browser.
type Browser struct {
	t *testing.T
	c *http.Client
	// Pages are the bodies of AgentHub's own pages it was shown (those
	// under the public URL given to New), for canary checks.
	Pages  []string
	public string
}

// New returns a browser for the AgentHub at public (its PublicURL).
func New(t *testing.T, public string) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Browser{t: t, c: &http.Client{Jar: jar}, public: public}
}

// StopAt makes the browser stop, unfollowed, at the first redirect whose
// URL stop matches (nil: follow every redirect).
func (b *Browser) StopAt(stop func(*url.URL) bool) {
	if stop == nil {
		b.c.CheckRedirect = nil
		return
	}
	b.c.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if stop(r.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

// AtCallback matches a connect callback URL (for StopAt).
func AtCallback(u *url.URL) bool { return strings.HasPrefix(u.Path, connect.CallbackPath) }

// Response is what the browser got in the end.
type Response struct {
	Status int
	Body   string
	Header http.Header
	URL    *url.URL // the last URL, after redirects
}

// Do sends a request (a form POST from one of AgentHub's pages when form
// is not nil) and follows what comes back.
func (b *Browser) Do(method, u string, form url.Values) Response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if strings.HasPrefix(resp.Request.URL.String(), b.public) {
		b.Pages = append(b.Pages, string(raw))
	}
	return Response{Status: resp.StatusCode, Body: string(raw), Header: resp.Header, URL: resp.Request.URL}
}

// Open is a person opening a link AgentHub made and pressing Continue on
// its start page: the last response, wherever the redirects ended.
func (b *Browser) Open(link string) Response {
	b.t.Helper()
	start := b.Do(http.MethodGet, link, nil)
	if start.Status != http.StatusOK || !strings.Contains(start.Body, "Continue to") {
		b.t.Fatalf("start page: status %d", start.Status)
	}
	u, err := url.Parse(link)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.Do(http.MethodPost, b.public+connect.StartPath, url.Values{"t": {u.Query().Get("t")}})
}

package connect

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
)

// pageTemplate is every page the flow shows: a title, a few lines, and on
// the start page the Continue form. No script, no external asset.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}} · AgentHub</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1d1c1d}
h1{font-size:1.4rem}
button{font:inherit;padding:.5rem 1.2rem;border:0;border-radius:4px;background:#007a5a;color:#fff;cursor:pointer}
.muted{color:#616061}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Lines}}<p>{{.}}</p>
{{end}}{{range .Secret}}<p><code style="font-size:1.1rem;word-break:break-all">{{.}}</code></p>
{{end}}{{range .After}}<p>{{.}}</p>
{{end}}{{if .Token}}<form method="post" action="{{.Action}}">
<input type="hidden" name="t" value="{{.Token}}">
<button type="submit">Continue to {{.Service}}</button>
</form>
<p class="muted">If you did not ask for this in Slack, close this tab: nothing happens.</p>
{{end}}</body>
</html>
`))

// page is what one page shows.
type page struct {
	Title   string
	Lines   []string
	Secret  []string // shown to the person once, set apart (an authenticator's key)
	After   []string // lines after Secret
	Service string   // the provider's name, for the Continue button
	Token   string   // the link, on the start page only
	Action  string   // where Continue posts
}

// show writes p with status and the headers every page carries.
func show(w http.ResponseWriter, status int, p page) {
	write(w, status, p, "", "no-referrer")
}

// showStart writes the start page, whose Continue posts here and is sent
// on to provider (an origin): browsers apply form-action to where a POST
// redirects, too. Its referrer policy lets the POST carry this origin
// (browsers without Sec-Fetch-Site send Origin: null under no-referrer)
// and sends no referrer to the provider.
func showStart(w http.ResponseWriter, p page, provider string) {
	write(w, http.StatusOK, p, provider, "same-origin")
}

func write(w http.ResponseWriter, status int, p page, formAction, referrer string) {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	csp := "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	if formAction != "" {
		// Browsers apply form-action to where the POST redirects, too.
		csp += " " + formAction
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", referrer)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

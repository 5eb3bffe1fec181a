package admin

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"time"
)

// The operator dashboard (GET /admin/) is a static page: index.html, app.js
// and style.css, embedded in the binary. It holds no data and loads nothing
// from elsewhere; its script reads the admin API (GET /admin/v1/nodes every
// 2 s, POST /admin/v1/nodes/{id}/drain) with the token the operator types
// in, sent only in the Authorization header. So the page and its two files
// are served without the token (a browser cannot send a bearer header when
// it opens a page), and everything the page calls stays behind it.
//
//go:embed dashboard
var dashboardFS embed.FS

// dashboardCSP confines the page to its own origin: its own script and
// style, API calls to the node only, no framing (the drain button must not
// be clickjacked), and no form submission (the script handles the token
// form; without it, the token must not land in a URL).
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardFile returns the embedded file and content type served at the
// request path p.
func dashboardFile(p string) (name, contentType string, ok bool) {
	switch p {
	case "/admin/":
		return "dashboard/index.html", "text/html; charset=utf-8", true
	case "/admin/app.js":
		return "dashboard/app.js", "text/javascript; charset=utf-8", true
	case "/admin/style.css":
		return "dashboard/style.css", "text/css; charset=utf-8", true
	}
	return "", "", false
}

// isDashboardPath reports whether p is one of the dashboard's files, or
// /admin (a redirect to /admin/). They are served without the token: a
// browser cannot send an Authorization header when it opens a page, and
// they hold no data. The page asks the operator for the token and sends it
// with every API call, and those stay behind the token.
func isDashboardPath(p string) bool {
	if p == "/admin" {
		return true
	}
	_, _, ok := dashboardFile(p)
	return ok
}

// dashboardPaths returns every path isDashboardPath accepts.
func dashboardPaths() []string {
	return []string{"/admin", "/admin/", "/admin/app.js", "/admin/style.css"}
}

// dashboardAsset is one embedded file, ready to serve.
type dashboardAsset struct {
	body        []byte
	contentType string
	etag        string
}

// dashboard serves the embedded files at their paths.
type dashboard struct {
	assets map[string]dashboardAsset // by request path
}

// dashboardHandler returns the handler of the dashboard's page and files.
// routes.go gives it GET and HEAD requests for the paths isDashboardPath
// accepts, before and without the token check; anything else gets 404
// (405 for other methods).
func dashboardHandler() http.Handler {
	d := &dashboard{assets: make(map[string]dashboardAsset)}
	for _, p := range dashboardPaths() {
		name, ctype, ok := dashboardFile(p)
		if !ok {
			continue
		}
		// Reading a file go:embed holds cannot fail; a file missing from the
		// directory would be a 404, which the tests catch.
		body, err := dashboardFS.ReadFile(name)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(body)
		d.assets[p] = dashboardAsset{body: body, contentType: ctype, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
	}
	return d
}

func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/admin" {
		// Relative, so it also works behind a proxy that adds a path prefix
		// (the page calls the API by relative paths too).
		w.Header().Set("Location", "admin/")
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	a, ok := d.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	// Revalidated on every load (ETag), so a new binary's page never runs
	// with an old script.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

package admin

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestDashboardServesItsFiles(t *testing.T) {
	h := dashboardHandler()
	tests := []struct {
		path, ctype, contains string
	}{
		{"/admin/", "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"/admin/app.js", "text/javascript; charset=utf-8", "v1/nodes"},
		{"/admin/style.css", "text/css; charset=utf-8", "svg.plot"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s = %d", tt.path, w.Code)
			}
			hdr := w.Header()
			if got := hdr.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tt.ctype)
			}
			if !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
			for k, want := range map[string]string{
				"Content-Security-Policy": dashboardCSP,
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Cache-Control":           "no-cache",
			} {
				if got := hdr.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}

			// Revalidation: the ETag answers 304; HEAD has no body.
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.Header.Set("If-None-Match", hdr.Get("ETag"))
			w = httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusNotModified {
				t.Errorf("GET with If-None-Match = %d, want 304", w.Code)
			}
			w = httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodHead, tt.path, nil))
			if w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Errorf("HEAD = %d with %d bytes", w.Code, w.Body.Len())
			}
		})
	}
}

func TestDashboardOtherRequests(t *testing.T) {
	h := dashboardHandler()
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/admin", http.StatusMovedPermanently},
		{http.MethodPost, "/admin/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/admin/index.html", http.StatusNotFound},
		{http.MethodGet, "/admin/v1/nodes", http.StatusNotFound},
		{http.MethodGet, "/admin/dashboard/app.js", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, w.Code, tt.status)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/admin", nil))
	if loc := w.Header().Get("Location"); loc != "admin/" {
		t.Errorf("/admin redirects to %q, want admin/", loc)
	}
}

// The token check exempts these paths and nothing else under /admin.
func TestIsDashboardPath(t *testing.T) {
	for _, p := range dashboardPaths() {
		if !isDashboardPath(p) {
			t.Errorf("isDashboardPath(%q) = false", p)
		}
	}
	for _, p := range []string{"", "/", "/admin/v1/nodes", "/admin/v1/node", "/admin/v1/nodes/a/drain", "/admin/v1/openapi.json",
		"/metrics", "/admin/index.html", "/admin//", "/admin/app.js/", "/admin/../admin/", "/ADMIN/", "/admin/x"} {
		if isDashboardPath(p) {
			t.Errorf("isDashboardPath(%q) = true", p)
		}
	}
}

// Every embedded file is served, and the page loads nothing from
// elsewhere: its only references are its own two files, and the script
// calls the API by relative paths.
func TestDashboardSelfContained(t *testing.T) {
	h := dashboardHandler()
	served := make(map[string]bool)
	for _, p := range dashboardPaths() {
		if name, _, ok := dashboardFile(p); ok {
			served[name] = true
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
			if w.Code != http.StatusOK {
				t.Errorf("GET %s = %d", p, w.Code)
			}
		}
	}
	err := fs.WalkDir(dashboardFS, "dashboard", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !served[p] {
			t.Errorf("%s is embedded but not served", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	page, err := dashboardFS.ReadFile("dashboard/index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?i)\b(?:src|href|action)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) == 0 {
		t.Fatal("index.html references nothing")
	}
	for _, r := range refs {
		switch r[1] {
		case "app.js", "style.css", "data:,":
		default:
			t.Errorf("index.html references %q", r[1])
		}
	}
	urlRe := regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s'"` + "`" + `]*`)
	for _, name := range []string{"dashboard/app.js", "dashboard/style.css", "dashboard/index.html"} {
		b, err := dashboardFS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range urlRe.FindAllString(string(b), -1) {
			if u != "http://www.w3.org/2000/svg" { // the SVG namespace, not a request
				t.Errorf("%s names %q", name, u)
			}
		}
		if strings.Contains(string(b), "@import") || strings.Contains(string(b), "url(") {
			t.Errorf("%s loads a resource from CSS", name)
		}
	}
}

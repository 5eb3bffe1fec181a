package node

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// CORS (Config.CORSOrigins): browsers on the listed origins may open
// streams and, unless the list is the open node's default, publish (with a
// preflight: publishing sends Authorization and a JSON body). Echo's CORS
// middleware decides; streams are hijacked and write their head by hand,
// so appendCORSHeaders copies what it set.

// cors returns the middleware of the stream routes and of the publish
// routes (nil: no CORS headers for publishing).
func (s *Server) cors() (streams, publish echo.MiddlewareFunc) {
	if len(s.cfg.CORSOrigins) == 0 {
		return nil, nil
	}
	base := middleware.CORSConfig{
		AllowOrigins:     s.cfg.CORSOrigins,
		AllowCredentials: s.cfg.CORSCredentials,
		MaxAge:           600,
	}
	sc := base
	sc.AllowMethods = []string{http.MethodGet}
	sc.AllowHeaders = []string{"Authorization", "Last-Event-ID"}
	sc.ExposeHeaders = []string{"X-SSE-Node"}
	streams = middleware.CORSWithConfig(sc)
	if s.cfg.corsDefault {
		return streams, nil
	}
	pc := base
	pc.AllowMethods = []string{http.MethodPost}
	pc.AllowHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key"}
	return streams, middleware.CORSWithConfig(pc)
}

// corsHeaders are the response headers the CORS middleware may set on a
// stream.
var corsHeaders = []string{
	"Access-Control-Allow-Origin",
	"Access-Control-Allow-Credentials",
	"Access-Control-Expose-Headers",
	"Vary",
}

// appendCORSHeaders appends the CORS headers of h to a hand-written
// response head. A value with a byte that cannot be in a header (only
// possible if a request header smuggled one past the server) is dropped.
func appendCORSHeaders(b []byte, h http.Header) []byte {
	for _, k := range corsHeaders {
		for _, v := range h.Values(k) {
			if strings.ContainsAny(v, "\r\n\x00") {
				continue
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// validOrigin reports whether o is an origin as browsers send it,
// scheme://host[:port], optionally with a "*." wildcard label.
func validOrigin(o string) bool {
	u, err := url.Parse(strings.Replace(o, "://*.", "://wildcard.", 1))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil &&
		!strings.ContainsAny(o, " \t\r\n,")
}

// validCookieName reports whether s is a cookie name (an RFC 7230 token).
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

package admin

import (
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/ssecluster/ssecluster/node/auth"
)

// authenticate requires "Authorization: Bearer <token>" on every request
// when token is set. The comparison is constant-time over SHA-256 digests,
// so neither the token's bytes nor its length leak through timing. The
// answer to a missing or wrong token never echoes what was sent.
func authenticate(token string) echo.MiddlewareFunc {
	want := auth.NewStaticToken(token)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if token == "" { // loopback only (see listenAddr)
			return next
		}
		return func(c echo.Context) error {
			got := auth.Bearer(c.Request().Header.Get("Authorization"))
			if got == "" {
				return unauthorized(c, "missing bearer token: send the header Authorization: Bearer followed by the admin token")
			}
			if !want.Matches(got) {
				return unauthorized(c, "invalid bearer token")
			}
			return next(c)
		}
	}
}

func unauthorized(c echo.Context, msg string) error {
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="ssecluster-admin"`)
	return errorf(http.StatusUnauthorized, "unauthorized", "%s", msg)
}

// rateLimit bounds the requests per second of each source address (the
// peer's address: X-Forwarded-For is not trusted on the admin listener,
// which no proxy should front). Idle addresses are forgotten after three
// minutes. A refusal is 429 with Retry-After.
func rateLimit(perSec float64, burst int) echo.MiddlewareFunc {
	store := middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
		Rate: rate.Limit(perSec), Burst: burst, ExpiresIn: 3 * time.Minute,
	})
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: store,
		IdentifierExtractor: func(c echo.Context) (string, error) {
			host, _, err := net.SplitHostPort(c.Request().RemoteAddr)
			if err != nil {
				return c.Request().RemoteAddr, nil
			}
			return host, nil
		},
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", "1")
			return errorf(http.StatusTooManyRequests, "rate_limited", "too many admin requests from this address (at most %g per second)", perSec)
		},
	})
}

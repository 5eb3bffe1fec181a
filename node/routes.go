package node

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ssecluster/ssecluster/internal/apierr"
)

// routes builds the Echo instance with every route of the public listener.
// No gzip, timeout or body-dump middleware: they break or bloat streams
// (SSE-NOTES §4.2).
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = apierr.Handler(s.log, "public", &s.stats.Rejected)
	e.Pre(s.limitRequest)
	e.Use(middleware.Recover())

	streams, publish := s.cors()
	var sm, pm []echo.MiddlewareFunc
	if streams != nil {
		sm = append(sm, streams)
		e.OPTIONS("/v1/events", preflightOnly, streams)
	}
	if publish != nil {
		pm = append(pm, publish)
		e.OPTIONS("/v1/publish", preflightOnly, publish)
	}
	e.GET("/v1/events", s.subscribe, sm...)
	e.POST("/v1/publish", s.publish, pm...)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/healthz", s.healthz)
	e.HEAD("/readyz", s.readyz)
	return e
}

// preflightOnly answers an OPTIONS request the CORS middleware left to
// it: one from no allowed origin, or no preflight at all.
func preflightOnly(c echo.Context) error { return c.NoContent(http.StatusNoContent) }

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "node_id": s.cfg.NodeID})
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.ready(c.Request().Context()); err != nil {
		return errorf(http.StatusServiceUnavailable, "not_ready", "%s", err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "node_id": s.cfg.NodeID})
}

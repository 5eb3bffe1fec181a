package node

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// routes builds the Echo instance with every route of the public listener.
// No gzip, timeout or body-dump middleware: they break or bloat streams
// (SSE-NOTES §4.2).
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(s.log)
	e.Use(middleware.Recover())

	e.GET("/v1/events", s.subscribe)
	e.POST("/v1/publish", s.publish)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.HEAD("/healthz", s.healthz)
	e.HEAD("/readyz", s.readyz)
	return e
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "node_id": s.cfg.NodeID})
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.ready(c.Request().Context()); err != nil {
		return errorf(http.StatusServiceUnavailable, "not_ready", "%s", err.Error())
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready", "node_id": s.cfg.NodeID})
}

package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ssecluster/ssecluster/internal/apierr"
)

// routes builds the Echo instance with every route of the admin listener.
// The token check runs for every request, unknown paths included (a
// client without the token learns nothing, not even which paths exist),
// except the dashboard's static files (see dashboard).
func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = apierr.Handler(s.log, "admin", &s.rejected)
	e.Use(middleware.Recover())
	if s.cfg.Rate > 0 {
		e.Use(rateLimit(s.cfg.Rate, s.cfg.Burst))
	}
	dash := dashboardHandler()
	auth := authenticate(s.cfg.Token)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		checked := auth(next)
		return func(c echo.Context) error {
			if dash != nil && isDashboardPath(c.Request().URL.Path) {
				return next(c)
			}
			return checked(c)
		}
	})

	e.GET("/admin/v1/node", s.getNode)
	e.GET("/admin/v1/nodes", s.getNodes)
	e.POST("/admin/v1/nodes/:id/drain", s.postNodeDrain)
	e.POST("/admin/v1/drain", s.postDrain)
	e.GET("/admin/v1/topics", s.getTopics)
	e.GET("/admin/v1/topics/*", s.getTopic) // topics may contain "/"
	e.GET("/admin/v1/connections", s.getConnections)
	e.DELETE("/admin/v1/connections/:id", s.deleteConnection)
	e.GET("/admin/v1/openapi.json", s.getOpenAPI)

	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{
		ErrorLog:      slogPromLogger{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})))

	// net/http/pprof, mounted here rather than through http.DefaultServeMux
	// (its init registers there; nothing serves that mux).
	e.GET("/debug/pprof/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index))) // named profiles: heap, goroutine, ...
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.POST("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))

	if dash != nil {
		// Exactly the dashboard's paths: a wildcard under /admin/ would
		// shadow the API's 405s.
		h := echo.WrapHandler(dash)
		for _, p := range dashboardPaths() {
			e.GET(p, h)
			e.HEAD(p, h)
		}
	}
	return e
}

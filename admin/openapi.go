package admin

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPI is the OpenAPI 3 document of the admin API. The tests validate
// it and check every endpoint's answers against it, so it cannot drift.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document of the admin API (JSON).
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// getOpenAPI answers GET /admin/v1/openapi.json.
func (s *Server) getOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", openAPI)
}

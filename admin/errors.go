package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// apiError is every error a handler answers with; errorHandler renders it
// as {"error":{"code","message"}}, the shape of the public API's errors
// (node/errors.go).
type apiError struct {
	Status  int
	Code    string // stable, machine-readable: "invalid_window"
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorHandler renders handler errors as JSON. Echo's own errors (404,
// 405, 413) keep their status with a code derived from it; anything else
// is our fault: 500, logged, with no internals exposed.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		body := errorBody{Error: errorDetail{Code: "internal", Message: "internal error"}}
		var ae *apiError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
			status, body.Error.Code, body.Error.Message = ae.Status, ae.Code, ae.Message
		case errors.As(err, &he):
			status = he.Code
			body.Error.Code = codeForStatus(status)
			body.Error.Message = http.StatusText(status)
			if m, ok := he.Message.(string); ok && m != "" {
				body.Error.Message = m
			}
		}
		if status >= 500 && status != http.StatusServiceUnavailable {
			log.Error("admin request failed", "method", c.Request().Method, "path", c.Path(), "status", status, "err", err)
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, body)
		}
		if werr != nil {
			log.Debug("writing admin error response", "err", werr)
		}
	}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}

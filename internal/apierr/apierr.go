// Package apierr is the error side of every ssecluster HTTP API: the JSON
// shape {"error":{"code","message"}}, the Echo error handler that writes
// it, and the counters of those answers by status and code that the
// metrics export. The public listener (package node) and the admin
// listener (package admin) share it, so a client sees one error format and
// an operator one refusal count.
package apierr

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
)

// Error is every error a handler answers with; Handler renders it.
type Error struct {
	Status  int
	Code    string // stable, machine-readable: "invalid_topic"
	Message string // for people; never echoes secrets or raw input
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an Error whose message is format applied to args.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Body is the JSON of every error response.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the inside of Body.
type Detail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Handler renders handler errors as JSON and counts them in counts (nil:
// not counted). Echo's own errors (404, 405, 413) keep their status with a
// code derived from it; anything else is our fault: 500, logged, with no
// internals exposed. what names the listener in logs.
func Handler(log *slog.Logger, what string, counts *Counts) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status, body := Render(err)
		counts.Add(status, body.Error.Code)
		if req := c.Request(); req.ContentLength != 0 {
			// The body may be unread (refused before it was read): close
			// after the answer, or Go would first read what remains of it.
			c.Response().Header().Set("Connection", "close")
		}
		// 503s are expected states (not ready, broker down) that their
		// handlers log where useful; only our own faults are errors here.
		if status >= 500 && status != http.StatusServiceUnavailable {
			log.Error(what+" request failed", "method", c.Request().Method, "path", c.Path(), "status", status, "err", err)
		}
		var werr error
		if c.Request().Method == http.MethodHead {
			werr = c.NoContent(status)
		} else {
			werr = c.JSON(status, body)
		}
		if werr != nil {
			log.Debug("writing "+what+" error response", "err", werr)
		}
	}
}

// Render returns the status and body err is answered with.
func Render(err error) (int, Body) {
	body := Body{Error: Detail{Code: "internal", Message: "internal error"}}
	status := http.StatusInternalServerError
	if ae, ok := errors.AsType[*Error](err); ok {
		return ae.Status, Body{Error: Detail{Code: ae.Code, Message: ae.Message}}
	}
	if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		status = he.Code
		body.Error.Code = CodeForStatus(status)
		body.Error.Message = http.StatusText(status)
		if m, ok := he.Message.(string); ok && m != "" {
			body.Error.Message = m
		}
	}
	return status, body
}

// CodeForStatus is the code of an error that has only a status.
func CodeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadRequest:
		return "bad_request"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}

// Counts counts error answers by status and code. Codes are the fixed
// strings of this repository's handlers and CodeForStatus, never input, so
// the set (and the metric's label values) stays small. The zero value is
// ready; a nil *Counts counts nothing. Safe for concurrent use.
type Counts struct {
	m sync.Map // countKey -> *atomic.Int64
}

type countKey struct {
	status int
	code   string
}

// Count is one line of a Counts snapshot.
type Count struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Count  int64  `json:"count"`
}

// Add counts one answer.
func (c *Counts) Add(status int, code string) {
	if c == nil {
		return
	}
	k := countKey{status, code}
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Snapshot returns the counts, ordered by status then code.
func (c *Counts) Snapshot() []Count {
	out := []Count{}
	if c == nil {
		return out
	}
	c.m.Range(func(k, v any) bool {
		ck := k.(countKey)
		out = append(out, Count{Status: ck.status, Code: ck.code, Count: v.(*atomic.Int64).Load()})
		return true
	})
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(a.Status, b.Status), cmp.Compare(a.Code, b.Code))
	})
	return out
}

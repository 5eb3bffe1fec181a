package node

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/pubsub"
)

// MaxCursorEntryBytes is the longest entry of a cursor the node writes
// (pubsub.Cursor: partition, epoch and position of one partition, with its
// separator); a stream's cursor has at most one per topic.
const MaxCursorEntryBytes = 64

// limitRequest refuses, before routing, requests whose target or header
// fields exceed the configured limits: 414 and 431 with a JSON error
// (counted like every error answer). Go's server enforces a hard cap far
// above these (see Config.MaxHeaderBytes); below it the refusal is ours.
func (s *Server) limitRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if len(req.RequestURI) > s.cfg.MaxURLBytes {
			c.Response().Header().Set("Connection", "close")
			return errorf(http.StatusRequestURITooLong, "uri_too_long", "the request target exceeds %d bytes", s.cfg.MaxURLBytes)
		}
		if headerBytes(req.Header) > s.cfg.MaxHeaderBytes {
			c.Response().Header().Set("Connection", "close")
			return errorf(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "the header fields exceed %d bytes", s.cfg.MaxHeaderBytes)
		}
		return next(c)
	}
}

// headerBytes is the size of h on the wire: "Name: value\r\n" per value.
func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// minCursorBytes is the longest cursor the node may write to a stream: one
// entry per partition the stream's topics span.
func (c *Config) minCursorBytes() int {
	return MaxCursorEntryBytes * min(c.MaxTopics, pubsub.MaxPartitions)
}

// hardHeaderCap is what Go's server is told (http.Server.MaxHeaderBytes,
// which counts the request line too): far enough above our limits that
// every request near them reaches limitRequest and gets a JSON answer.
func (c *Config) hardHeaderCap() int { return 4*c.MaxHeaderBytes + c.MaxURLBytes }

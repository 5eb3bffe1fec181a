package node

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/pubsub"
)

// MaxCursorEntryBytes is the longest entry of a cursor the node writes
// (pubsub.Cursor: partition, epoch and position of one partition, with its
// separator); a stream's cursor has one per partition its topics span.
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
		if headerBytes(req) > s.cfg.MaxHeaderBytes {
			c.Response().Header().Set("Connection", "close")
			return errorf(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "the header fields exceed %d bytes", s.cfg.MaxHeaderBytes)
		}
		// The server has no read timeout (streams live for hours): every
		// request gets BodyTimeout to deliver its body. Streams clear the
		// deadline once hijacked, publish once the body is read. Without it
		// a request answered before its announced body arrived would hold
		// its connection for ever (Go reads up to 256 KiB of an unread body
		// before it writes the answer).
		_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
		if req.ContentLength != 0 && (req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions) {
			// A body no handler here reads: answer at once, then close.
			c.Response().Header().Set("Connection", "close")
		}
		return next(c)
	}
}

// headerBytes is the size of the request's header fields on the wire,
// "Name: value\r\n" per value, Host included (Go moves it out of Header).
func headerBytes(req *http.Request) int {
	n := len("Host: \r\n") + len(req.Host)
	for k, vs := range req.Header {
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

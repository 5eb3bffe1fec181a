package loadtest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/ssecluster/ssecluster/node/sse"
)

// Reason says why a connection attempt failed or a stream ended. The set is
// fixed: reports count by reason.
type Reason uint8

// Reasons.
const (
	ReasonNone           Reason = iota
	ReasonRefused               // dial: connection refused (nothing listens, or the backlog is full)
	ReasonNoLocalPort           // dial: no local port or address left (ephemeral ports exhausted: add source addresses)
	ReasonTooManyFiles          // dial: this process ran out of file descriptors (add workers)
	ReasonDialTimeout           // dial: no answer in DialTimeout
	ReasonDialError             // dial: any other error
	ReasonHeadTimeout           // no complete response head in HeadTimeout
	ReasonHTTPStatus            // answered, but not 200
	ReasonNotEventStream        // 200, but Content-Type is not text/event-stream
	ReasonBadResponse           // the response head does not parse
	ReasonEOF                   // the server ended the stream cleanly
	ReasonReset                 // the connection was reset or broke
	ReasonReadError             // any other read error
	ReasonProtocol              // the stream broke the SSE or HTTP chunked syntax
	ReasonShed                  // a 200 stream that ended before any id or event: the target shed it with a retry hint
	numReasons
)

var reasonNames = [numReasons]string{
	"none", "refused", "no_local_port", "too_many_files", "dial_timeout", "dial_error",
	"head_timeout", "http_status", "not_event_stream", "bad_response",
	"eof", "reset", "read_error", "protocol_error", "shed",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// reasonCounts counts events by Reason.
type reasonCounts [numReasons]int64

// toMap returns the non-zero counts by name, nil when all are zero.
func (rc *reasonCounts) toMap() map[string]int64 {
	var m map[string]int64
	for r, n := range rc {
		if n != 0 {
			if m == nil {
				m = make(map[string]int64)
			}
			m[Reason(r).String()] = n
		}
	}
	return m
}

// dialReason classifies a failed dial.
func dialReason(err error) Reason {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return ReasonNoLocalPort
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return ReasonTooManyFiles
	case isTimeout(err):
		return ReasonDialTimeout
	}
	return ReasonDialError
}

// headReason classifies a failure while writing the request or reading the
// response head.
func headReason(err error) Reason {
	switch {
	case isTimeout(err):
		return ReasonHeadTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonReset
	}
	return ReasonBadResponse
}

// readReason classifies the error that ended a stream.
func readReason(err error) Reason {
	switch {
	case errors.Is(err, io.EOF):
		return ReasonEOF
	case errors.Is(err, sse.ErrLineTooLong):
		return ReasonProtocol
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return ReasonReset
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ReasonReadError
	}
	if errors.Is(err, context.Canceled) {
		return ReasonReadError
	}
	return ReasonProtocol // malformed chunk framing and the like
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

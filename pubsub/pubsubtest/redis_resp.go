package pubsubtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// respConn is the smallest RESP2 client that the helper and its tests need:
// PING, SHUTDOWN, SET/GET. It is not a Redis client for anything else.
type respConn struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration // deadline of every do
}

// respError is an error reply ("-ERR ...").
type respError string

func (e respError) Error() string { return "redis: " + string(e) }

// maxRESPBulk bounds a bulk reply the client accepts (Redis's own limit).
const maxRESPBulk = 512 << 20

func dialRESP(addr string, timeout time.Duration) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &respConn{conn: c, r: bufio.NewReader(c), timeout: timeout}, nil
}

func (c *respConn) close() { _ = c.conn.Close() }

// do sends one command and reads its reply: a string (simple or bulk), an
// int64, nil (null), []any (array), or a respError as the error.
func (c *respConn) do(args ...string) (any, error) {
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	if err := c.send(args...); err != nil {
		return nil, err
	}
	return c.read()
}

func (c *respConn) send(args ...string) error {
	b := strconv.AppendInt([]byte{'*'}, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	_, err := c.conn.Write(b)
	return err
}

func (c *respConn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("resp: malformed line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return nil, respError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil || n < -1 || n > maxRESPBulk:
			return nil, fmt.Errorf("resp: bad bulk length %q", body)
		case n == -1:
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		switch {
		case err != nil || n < -1 || n > 1<<20:
			return nil, fmt.Errorf("resp: bad array length %q", body)
		case n == -1:
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			v, err := c.read()
			var re respError
			if errors.As(err, &re) {
				v, err = re, nil // an error inside an array is a value
			}
			if err != nil {
				return nil, err
			}
			arr[i] = v
		}
		return arr, nil
	}
	return nil, fmt.Errorf("resp: unknown reply type %q", kind)
}

// isConnClosed reports whether err means the server closed the connection.
func isConnClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

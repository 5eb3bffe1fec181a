//go:build !linux

package node

import (
	"syscall"
	"time"
)

// setUserTimeout is a no-op where TCP_USER_TIMEOUT does not exist: dead
// peers are then found by write errors alone.
func setUserTimeout(syscall.RawConn, time.Duration) {}

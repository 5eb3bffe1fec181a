//go:build unix && !linux

package pubsubtest

import "syscall"

// sysProcAttr puts the server in its own process group, so that signals
// reach a forked child too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

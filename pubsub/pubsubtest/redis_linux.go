package pubsubtest

import "syscall"

// sysProcAttr puts the server in its own process group, so that signals
// reach a forked child too, and has the kernel kill it if the test binary
// dies without running its cleanups (a panic, a -timeout): no orphaned
// servers. Pdeathsig fires when the thread that started the server exits,
// which in Go happens only to threads locked by LockOSThread.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

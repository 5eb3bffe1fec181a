//go:build linux

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller geometry.
const (
	pollReadBuf  = 64 << 10 // one read per ready socket, into the loop's buffer
	pollEvents   = 256      // ready sockets taken per epoll_wait
	pollMaxReads = 4        // full reads of one socket per round before the others' turn
)

// poller reads the sockets of many streams with a few loops, each a
// goroutine owning an epoll set. With a goroutine per stream, every event
// costs a read that returns data, a read that returns EAGAIN, a netpoller
// wake-up and two goroutine switches; a loop reads each ready socket once
// and handles its events right there, so an event costs one read(2) and a
// share of one epoll_wait.
//
// The sockets are edge-triggered: a socket is reported again only when
// more data (or the peer's FIN) arrives. A read that does not fill the
// buffer has drained the socket (TCP returns all it holds), so one read
// per report is enough; a socket whose reads fill the buffer is read again
// in the next round (more), and one that reports the peer's FIN is read
// until EOF.
//
// A loop never blocks its thread: its epoll set is itself registered with
// the Go runtime's netpoller (an epoll fd is pollable), the loop parks in
// RawConn.Read while its set is empty and calls epoll_wait only with a zero
// timeout. A loop blocked in epoll_wait would hold a P in a system call:
// with a loop per P, every other goroutine (connects, the publisher) would
// wait for sysmon to retake one, and sysmon, which then polls every 20 µs,
// woke half as often again as it does now.
//
// The loops are started and waited for by Pool.Run (run) and stop when its
// context ends, closing every socket they hold. A stream hands its socket
// to a loop in read and blocks until the loop answers on the connection's
// done channel; meanwhile the loop owns the stream's state.
type poller struct {
	loops []*pollLoop
}

// newPoller returns a poller of n loops, or if n <= 0 of one loop per P.
// Loop i records latencies into shard i of the pool's histogram.
//
// Fewer loops find more sockets ready per round, so with an otherwise idle
// reader one loop costs less per event than two (BenchmarkSocketRead,
// paced: 3.2 against 4.0 µs); but in fan-out runs against a node on the
// same 2 cores two loops cost as much (4.4–4.7 against 4.6–4.7 CPU-µs per
// event with 18,000 streams, 6.0 against 6.1 with 5,000), deliver a little
// sooner, and only more loops can use more cores.
func newPoller(n int) (*poller, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	pl := &poller{}
	for i := range n {
		l, err := newPollLoop(i)
		if err != nil {
			for _, l := range pl.loops {
				l.closeAll()
			}
			return nil, err
		}
		pl.loops = append(pl.loops, l)
	}
	return pl, nil
}

// pollConn is one connection handed to a loop.
type pollConn struct {
	s    *stream
	fd   int
	done chan Reason // cap 1: the loop's one answer, never blocks it
	end  bool        // answered; owned by the loop
}

// pollLoop is one goroutine's epoll set.
type pollLoop struct {
	shard int
	epfd  int
	ep    *os.File // epfd, registered with the runtime's netpoller
	wake  int      // eventfd in the set: poked to stop the loop or to cancel a connection

	mu      sync.Mutex // guards what follows
	stopped bool
	added   []*pollConn // registered, not yet in byFD
	cancels []*pollConn // whose read ctx ended

	// Owned by the loop goroutine.
	byFD   []*pollConn
	more   []*pollConn // sockets whose last read filled the buffer
	buf    []byte
	events []unix.EpollEvent
	live   liveCounts
}

func newPollLoop(shard int) (*pollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loadtest: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("loadtest: epoll fd: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("loadtest: eventfd: %w", err)
	}
	// os.NewFile registers a non-blocking descriptor with the netpoller.
	l := &pollLoop{shard: shard, epfd: epfd, ep: os.NewFile(uintptr(epfd), "epoll"), wake: wake}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		l.closeAll()
		return nil, fmt.Errorf("loadtest: epoll_ctl eventfd: %w", err)
	}
	return l, nil
}

// read hands the stream's connection to a loop and waits until the stream
// ends, or until ctx ends (then the connection is closed). If the socket
// cannot be detached from nc, the stream is read on this goroutine.
func (pl *poller) read(ctx context.Context, s *stream, nc net.Conn) Reason {
	fd, err := detach(nc)
	if err != nil {
		return s.readConn(ctx, nc)
	}
	l := pl.loops[s.key%len(pl.loops)]
	s.in.shard = l.shard
	pc := &pollConn{s: s, fd: fd, done: make(chan Reason, 1)}
	if err := l.add(pc); err != nil {
		_ = unix.Close(fd)
		return readReason(err)
	}
	stop := context.AfterFunc(ctx, func() { l.cancel(pc) })
	defer stop()
	return <-pc.done
}

// detach takes the socket away from nc: it returns a duplicate of nc's
// descriptor (non-blocking, as nc's is) and closes nc, which removes the
// original from the Go runtime's poller, so only a loop's epoll set is
// woken by the socket.
func detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("loadtest: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("loadtest: detach: %w", err)
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("loadtest: detach: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("loadtest: detach: %w", dupErr)
	}
	_ = nc.Close()
	return fd, nil
}

// add registers pc with the loop. The loop takes it into byFD when the
// socket first reports (or on a cancel), so add never waits for the loop.
func (l *pollLoop) add(pc *pollConn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return net.ErrClosed
	}
	// Under mu: once stopped is set nothing is added, so the loop's final
	// sweep closes every socket it was given.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(pc.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, pc.fd, &ev); err != nil {
		return fmt.Errorf("loadtest: epoll_ctl: %w", err)
	}
	l.added = append(l.added, pc)
	return nil
}

// cancel asks the loop to end pc (its read ctx ended). Late calls, after
// pc ended or the loop stopped, do nothing.
func (l *pollLoop) cancel(pc *pollConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if l.cancels = append(l.cancels, pc); len(l.cancels) == 1 {
		l.pokeLocked()
	}
}

// stop wakes the loop to see that its context ended.
func (l *pollLoop) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.pokeLocked()
	}
}

func (l *pollLoop) pokeLocked() {
	var one = [8]byte{1}
	_, _ = unix.Write(l.wake, one[:]) // EAGAIN: already poked enough
}

// run reads the loop's sockets until ctx ends, then closes them all. Each
// round takes what epoll_wait reports ready, reads every ready socket, and
// adds the round's live counts to the pool; when nothing is ready the loop
// parks in the runtime's netpoller until its set is.
func (l *pollLoop) run(ctx context.Context, p *Pool) {
	defer l.closeAll()
	stop := context.AfterFunc(ctx, l.stop)
	defer stop()
	l.buf = make([]byte, pollReadBuf)
	l.events = make([]unix.EpollEvent, pollEvents)
	rc, err := l.ep.SyscallConn()
	if err == nil {
		err = rc.Read(func(uintptr) bool { return l.rounds(ctx, p) })
	}
	if err != nil {
		p.cfg.Logger.Error("loadtest: poller failed, closing its streams", "err", err)
	}
}

// rounds runs rounds until nothing is ready (false: park until the set is)
// or ctx has ended (true).
func (l *pollLoop) rounds(ctx context.Context, p *Pool) bool {
	for ctx.Err() == nil {
		n, err := epollNow(l.epfd, l.events)
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.cfg.Logger.Error("loadtest: epoll_wait failed, closing its streams", "err", err)
			return true
		}
		if n <= 0 && len(l.more) == 0 {
			return false
		}
		for _, ev := range l.events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == l.wake {
				l.woken()
			} else if pc := l.conn(fd); pc != nil {
				l.readReady(pc, ev.Events)
			}
		}
		if len(l.more) > 0 {
			more := l.more
			l.more = nil
			for _, pc := range more {
				if !pc.end {
					l.readReady(pc, 0)
				}
			}
		}
		l.live.flush(&p.delivered, &p.onTimeUniq)
	}
	return true
}

// conn returns the connection of fd, taking in newly added ones if fd is
// not known yet.
func (l *pollLoop) conn(fd int) *pollConn {
	if fd < len(l.byFD) && l.byFD[fd] != nil {
		return l.byFD[fd]
	}
	l.takeAdded()
	if fd < len(l.byFD) {
		return l.byFD[fd]
	}
	return nil
}

// takeAdded moves the connections registered since the last look into
// byFD.
func (l *pollLoop) takeAdded() {
	l.mu.Lock()
	added := l.added
	l.added = nil
	l.mu.Unlock()
	for _, pc := range added {
		if pc.fd >= len(l.byFD) {
			l.byFD = append(l.byFD, make([]*pollConn, pc.fd+1-len(l.byFD)+64)...)
		}
		l.byFD[pc.fd] = pc
	}
}

// woken handles a poke: cancelled connections end (the stop itself is seen
// by run's loop condition).
func (l *pollLoop) woken() {
	var b [8]byte
	_, _ = unix.Read(l.wake, b[:])
	l.takeAdded() // a cancelled connection may not be in byFD yet
	l.mu.Lock()
	cancels := l.cancels
	l.cancels = nil
	l.mu.Unlock()
	for _, pc := range cancels {
		if !pc.end {
			l.finish(pc, readReason(net.ErrClosed))
		}
	}
}

// readReady reads what pc's socket holds and handles it. events are what
// epoll reported: after the peer's FIN (or an error) the socket is read
// until EOF, as no further report will come.
func (l *pollLoop) readReady(pc *pollConn, events uint32) {
	s := pc.s
	toEOF := events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for reads := 1; ; reads++ {
		n, err := readNow(pc.fd, l.buf)
		switch {
		case n > 0:
			r, end := s.feed(l.buf[:n], time.Now().UnixNano())
			l.live.delivered += s.in.live.delivered
			l.live.onTimeUniq += s.in.live.onTimeUniq
			s.in.live = liveCounts{}
			switch {
			case end:
				l.finish(pc, r)
				return
			case n < len(l.buf) && !toEOF:
				return // drained: the next arrival is reported
			case reads == pollMaxReads:
				l.more = append(l.more, pc) // the others' turn; more in the next round
				return
			}
		case err == nil: // n == 0: the peer closed
			l.finish(pc, s.in.eof())
			return
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return // nothing more; reported when there is
		default:
			l.finish(pc, readReason(os.NewSyscallError("read", err)))
			return
		}
	}
}

// finish ends pc: its socket is closed (which also takes it out of the
// epoll set) and its stream is told why.
func (l *pollLoop) finish(pc *pollConn, r Reason) {
	pc.end = true
	if pc.fd < len(l.byFD) && l.byFD[pc.fd] == pc {
		l.byFD[pc.fd] = nil
	}
	_ = unix.Close(pc.fd)
	pc.done <- r
}

// closeAll stops the loop for good: nothing can be added afterwards, every
// connection it holds ends, and its descriptors are closed.
func (l *pollLoop) closeAll() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.takeAdded()
	for _, pc := range l.byFD {
		if pc != nil {
			l.finish(pc, readReason(net.ErrClosed))
		}
	}
	l.byFD, l.more = nil, nil
	_ = unix.Close(l.wake)
	_ = l.ep.Close() // closes epfd
}

// run runs every loop until ctx ends and they have closed their sockets.
func (pl *poller) run(ctx context.Context, p *Pool) {
	var wg sync.WaitGroup
	for _, l := range pl.loops {
		wg.Go(func() { l.run(ctx, p) })
	}
	wg.Wait()
}

// readNow and epollNow are read(2) and epoll_wait(2) with a zero timeout,
// made as raw system calls: on a non-blocking socket and with no timeout
// they return at once, so they need not tell the scheduler that the
// goroutine may block. That bookkeeping (entersyscall) costs little by
// itself, but the first one after the process was idle wakes sysmon, which
// then polls every 20 µs for a millisecond, after every published event. In
// a fan-out run (5,000 streams, 20 events/s) raw calls took sysmon from
// 2,600 sleeps/s and 6.5% of the tool's CPU time to 130/s and 2.7%.

func readNow(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func epollNow(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

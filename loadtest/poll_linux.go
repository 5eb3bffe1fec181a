//go:build linux

package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Poller geometry.
const (
	pollReadBuf = 64 << 10 // one read per ready socket, into the loop's buffer
	pollEvents  = 256      // ready sockets taken per epoll_wait
)

// poller reads the sockets of many streams with a few loops, each a
// goroutine owning an epoll set. With a goroutine per stream, every event
// costs a read that returns data, a read that returns EAGAIN, a netpoller
// wake-up and two goroutine switches; a loop reads each ready socket once
// (level-triggered: a socket with more to read stays ready) and handles its
// events right there, so an event costs one read(2) and a share of one
// epoll_wait.
//
// The loops are started and waited for by Pool.Run (run) and stop when its
// context ends, closing every socket they hold. A stream hands its socket
// to a loop in read and blocks until the loop answers on the connection's
// done channel; meanwhile the loop owns the stream's state.
type poller struct {
	loops []*pollLoop
}

// newPoller returns a poller of n loops. Loop i records latencies into
// shard i of the pool's histogram.
func newPoller(n int) (*poller, error) {
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
	wake  int // eventfd in the set: poked to stop the loop or to cancel a connection

	mu      sync.Mutex // guards what follows
	stopped bool
	added   []*pollConn // registered, not yet in byFD
	cancels []*pollConn // whose read ctx ended

	// Owned by the loop goroutine.
	byFD   []*pollConn
	buf    []byte
	events []unix.EpollEvent
	live   liveCounts
}

func newPollLoop(shard int) (*pollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loadtest: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("loadtest: eventfd: %w", err)
	}
	l := &pollLoop{shard: shard, epfd: epfd, wake: wake}
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(pc.fd)}
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
// round takes what epoll_wait reports ready, reads every ready socket once,
// and adds the round's live counts to the pool.
func (l *pollLoop) run(ctx context.Context, p *Pool) {
	defer l.closeAll()
	stop := context.AfterFunc(ctx, l.stop)
	defer stop()
	l.buf = make([]byte, pollReadBuf)
	l.events = make([]unix.EpollEvent, pollEvents)
	for ctx.Err() == nil {
		n, err := unix.EpollWait(l.epfd, l.events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.cfg.Logger.Error("loadtest: epoll_wait failed, closing its streams", "err", err)
			return
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			if fd == l.wake {
				l.woken()
				continue
			}
			if pc := l.conn(fd); pc != nil {
				l.readReady(pc)
			}
		}
		l.live.flush(&p.delivered, &p.onTimeUniq)
	}
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

// readReady reads what pc's socket holds, once, and handles it.
func (l *pollLoop) readReady(pc *pollConn) {
	s := pc.s
	n, err := unix.Read(pc.fd, l.buf)
	switch {
	case n > 0:
		r, end := s.feed(l.buf[:n], time.Now().UnixNano())
		l.live.delivered += s.in.live.delivered
		l.live.onTimeUniq += s.in.live.onTimeUniq
		s.in.live = liveCounts{}
		if end {
			l.finish(pc, r)
		}
	case err == nil: // n == 0: the peer closed
		l.finish(pc, s.in.eof())
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		// Nothing after all; still registered, reported again when ready.
	default:
		l.finish(pc, readReason(os.NewSyscallError("read", err)))
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
	l.byFD = nil
	_ = unix.Close(l.wake)
	_ = unix.Close(l.epfd)
}

// run runs every loop until ctx ends and they have closed their sockets.
func (pl *poller) run(ctx context.Context, p *Pool) {
	var wg sync.WaitGroup
	for _, l := range pl.loops {
		wg.Go(func() { l.run(ctx, p) })
	}
	wg.Wait()
}

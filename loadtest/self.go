package loadtest

import (
	"runtime"
	"syscall"
	"time"
)

// ProcessStats is the load generator's own cost: it shares the machine with
// what it measures, so its CPU time belongs beside every figure.
type ProcessStats struct {
	Processes  int     `json:"processes"`
	CPUSeconds float64 `json:"cpu_seconds"` // user + system, all processes
	MaxRSSKiB  int64   `json:"max_rss_kib"` // sum of each process's peak
	// MachineCores is the number of CPUs the machine offers the
	// processes (runtime.NumCPU; workers run on the same machine).
	MachineCores int `json:"machine_cores"`
}

// selfStats returns this process's CPU time and peak resident memory so far.
func selfStats() ProcessStats {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return ProcessStats{}
	}
	tv := func(t syscall.Timeval) float64 {
		return (time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond).Seconds()
	}
	return ProcessStats{Processes: 1, CPUSeconds: tv(ru.Utime) + tv(ru.Stime), MaxRSSKiB: ru.Maxrss, MachineCores: runtime.NumCPU()}
}

func (p *ProcessStats) add(o ProcessStats) {
	p.Processes += o.Processes
	p.CPUSeconds += o.CPUSeconds
	p.MaxRSSKiB += o.MaxRSSKiB
	p.MachineCores = max(p.MachineCores, o.MachineCores)
}

// busyShare is the share of the machine's cores the processes used on
// average over elapsedS seconds; 0 when unknown.
func (p ProcessStats) busyShare(elapsedS float64) float64 {
	if p.Processes == 0 || p.MachineCores == 0 || elapsedS <= 0 {
		return 0
	}
	return p.CPUSeconds / elapsedS / float64(p.MachineCores)
}

// selfBoundShare is the busyShare from which a report warns that the load
// generator, not only the target, may bound its figures: the generator
// shares the machine with the target, and beyond this it leaves the target
// (and itself) little room.
const selfBoundShare = 0.6

package loadtest

import (
	"syscall"
	"time"
)

// ProcessStats is the load generator's own cost: it shares the machine with
// what it measures, so its CPU time belongs beside every figure.
type ProcessStats struct {
	Processes  int     `json:"processes"`
	CPUSeconds float64 `json:"cpu_seconds"` // user + system, all processes
	MaxRSSKiB  int64   `json:"max_rss_kib"` // sum of each process's peak
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
	return ProcessStats{Processes: 1, CPUSeconds: tv(ru.Utime) + tv(ru.Stime), MaxRSSKiB: ru.Maxrss}
}

func (p *ProcessStats) add(o ProcessStats) {
	p.Processes += o.Processes
	p.CPUSeconds += o.CPUSeconds
	p.MaxRSSKiB += o.MaxRSSKiB
}

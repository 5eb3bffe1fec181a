package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// NodeStats is what the target's own processes (Config.NodePIDs, on this
// machine) used during the run, read from /proc: resident memory before the
// streams, with the streams held (at the end of the publishing or idle
// phase), and CPU time from the moment every stream was up to that end.
type NodeStats struct {
	Processes []NodeProcess `json:"processes"`
	// Streams is how many streams were established when the memory was
	// sampled; RSSPerStreamKiB the growth of the summed RSS per stream
	// (0 and "not measured" in the text when a sample is missing).
	Streams         int64   `json:"streams"`
	RSSPerStreamKiB float64 `json:"rss_per_stream_kib"`
	// CPUSeconds is the summed CPU time of the processes over the measured
	// phase; CPUPerMillion that per million delivered events.
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPerMillion float64 `json:"cpu_s_per_million_delivered,omitempty"`
}

// NodeProcess is one process's samples; a sample of a process that is gone
// (a storm killed it) is left at 0 and Error says so.
type NodeProcess struct {
	PID          int     `json:"pid"`
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSLoadedKiB int64   `json:"rss_loaded_kib"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	Error        string  `json:"error,omitempty"`

	cpu0 float64
	ok0  bool
}

// nodeSampler samples NodePIDs at three points of a run.
type nodeSampler struct{ st NodeStats }

func newNodeSampler(pids []int) *nodeSampler {
	if len(pids) == 0 {
		return nil
	}
	ns := &nodeSampler{}
	for _, pid := range pids {
		np := NodeProcess{PID: pid}
		rss, _, err := procSample(pid)
		if err != nil {
			np.Error = err.Error()
		}
		np.RSSBeforeKiB = rss
		ns.st.Processes = append(ns.st.Processes, np)
	}
	return ns
}

// up marks the start of the measured phase (every stream up).
func (ns *nodeSampler) up() {
	if ns == nil {
		return
	}
	for i := range ns.st.Processes {
		np := &ns.st.Processes[i]
		if _, cpu, err := procSample(np.PID); err == nil {
			np.cpu0, np.ok0 = cpu, true
		}
	}
}

// loaded takes the samples at the end of the measured phase, with streams
// established.
func (ns *nodeSampler) loaded(streams int64) {
	if ns == nil {
		return
	}
	ns.st.Streams = streams
	var before, after int64
	complete := true
	for i := range ns.st.Processes {
		np := &ns.st.Processes[i]
		rss, cpu, err := procSample(np.PID)
		if err != nil {
			np.Error = err.Error()
			complete = false
			continue
		}
		np.RSSLoadedKiB = rss
		if np.ok0 {
			np.CPUSeconds = cpu - np.cpu0
			ns.st.CPUSeconds += np.CPUSeconds
		}
		before += np.RSSBeforeKiB
		after += rss
		complete = complete && np.RSSBeforeKiB > 0
	}
	if complete && streams > 0 {
		ns.st.RSSPerStreamKiB = float64(after-before) / float64(streams)
	}
}

func (ns *nodeSampler) stats(delivered int64) *NodeStats {
	if ns == nil {
		return nil
	}
	st := ns.st
	if delivered > 0 {
		st.CPUPerMillion = st.CPUSeconds / float64(delivered) * 1e6
	}
	return &st
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample returns a process's resident memory (KiB) and CPU time.
func procSample(pid int) (rssKiB int64, cpuS float64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// Fields after the command name (which may hold spaces and parens):
	// state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, 0, fmt.Errorf("process %d: unexpected /proc stat", pid)
	}
	if f[0] == "Z" {
		return 0, 0, fmt.Errorf("process %d: gone (zombie)", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("process %d: unexpected /proc stat", pid)
	}
	return rssKiB, float64(ut+st) / clockTicks, nil
}

// writeText adds the node lines of a report.
func (ns *NodeStats) writeText(f func(string, ...any)) {
	f("target     %d process(es):", len(ns.Processes))
	for _, p := range ns.Processes {
		if p.Error != "" && p.RSSLoadedKiB == 0 {
			f("  pid %d RSS %.1f MiB before, then %s;", p.PID, float64(p.RSSBeforeKiB)/1024, p.Error)
			continue
		}
		f("  pid %d RSS %.1f -> %.1f MiB, %.2f CPU-s;", p.PID, float64(p.RSSBeforeKiB)/1024, float64(p.RSSLoadedKiB)/1024, p.CPUSeconds)
	}
	f("\n")
	if ns.RSSPerStreamKiB > 0 {
		f("           RSS per stream %.2f KiB (%d streams)", ns.RSSPerStreamKiB, ns.Streams)
	} else {
		f("           RSS per stream not measured (a process was missing)")
	}
	f(", CPU %.2f s", ns.CPUSeconds)
	if ns.CPUPerMillion > 0 {
		f(" (%.2f CPU-s per million delivered events)", ns.CPUPerMillion)
	}
	f("\n")
}

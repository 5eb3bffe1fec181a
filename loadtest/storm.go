package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Storm is the fault a storm run injects while it publishes: a signal to a
// process of the target (SIGKILL a node, SIGTERM to drain it, SIGSTOP to
// freeze it) or a shell command (restart a node, block a port). The
// streams, reconnecting like browsers (Config.Reconnect), then show the
// reconnect wave: how fast they come back and whether they resume exactly.
type Storm struct {
	// At is when the fault comes, from the first publish; default a third
	// of Config.Duration.
	At time.Duration
	// Signal (KILL, TERM, STOP, CONT, INT, HUP) is sent to PID; or Cmd is
	// run with "sh -c" (bounded by StormCmdTimeout).
	Signal string
	PID    int
	Cmd    string
}

// StormCmdTimeout bounds a storm command.
const StormCmdTimeout = 2 * time.Minute

// stormSignals are the signals a storm may send.
var stormSignals = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
}

// Set reports whether a fault is configured.
func (s Storm) Set() bool { return s.Signal != "" || s.PID != 0 || s.Cmd != "" }

func (s Storm) validate(c Config) error {
	if !s.Set() {
		return nil
	}
	var errs []error
	if s.Cmd != "" && (s.Signal != "" || s.PID != 0) {
		errs = append(errs, errors.New("loadtest: a storm is a signal or a command, not both"))
	}
	if s.Cmd == "" {
		if _, ok := stormSignals[s.Signal]; !ok {
			errs = append(errs, fmt.Errorf("loadtest: storm signal %q is not one of KILL, TERM, STOP, CONT, INT, HUP", s.Signal))
		}
		if s.PID <= 1 {
			errs = append(errs, fmt.Errorf("loadtest: storm pid %d must name a process of the target", s.PID))
		}
	}
	if s.At < 0 || c.Duration > 0 && s.At >= c.Duration {
		errs = append(errs, fmt.Errorf("loadtest: storm at %s must be within the duration %s", s.At, c.Duration))
	}
	if !c.Reconnect {
		errs = append(errs, errors.New("loadtest: a storm needs streams that reconnect"))
	}
	if c.Idle {
		errs = append(errs, errors.New("loadtest: a storm needs a publishing run (its figures are resumes)"))
	}
	return errors.Join(errs...)
}

// action describes the fault for the report.
func (s Storm) action() string {
	if s.Cmd != "" {
		return "sh -c " + fmt.Sprintf("%q", s.Cmd)
	}
	return fmt.Sprintf("SIG%s to pid %d", s.Signal, s.PID)
}

// StormStats is what a storm did and how the streams rode it out.
type StormStats struct {
	Action string `json:"action"`
	// AtS is when the fault came, in seconds from the first publish.
	AtS             float64 `json:"at_s"`
	TriggeredUnixNs int64   `json:"triggered_unix_ns"`
	Error           string  `json:"error,omitempty"`
	Output          string  `json:"output,omitempty"` // the command's output, cut to 2 KiB
	// FirstDropS is from the fault to the first stream that dropped and
	// came back (how fast the fault was noticed); WaveS from the fault to
	// the last stream established again (the whole reconnect wave). Both 0
	// when no stream resumed.
	FirstDropS float64 `json:"first_drop_s"`
	WaveS      float64 `json:"wave_s"`
}

// maxStormOutput bounds the command output kept in the report.
const maxStormOutput = 2048

// run waits until At after start, then injects the fault.
func (s Storm) run(ctx context.Context, start time.Time) *StormStats {
	st := &StormStats{Action: s.action()}
	if !sleepUntil(ctx, start.Add(s.At)) {
		st.Error = "the run ended before the fault was due"
		return st
	}
	now := time.Now()
	st.AtS = now.Sub(start).Seconds()
	st.TriggeredUnixNs = now.UnixNano()
	if s.Cmd == "" {
		if err := syscall.Kill(s.PID, stormSignals[s.Signal]); err != nil {
			st.Error = fmt.Sprintf("kill: %v", err)
		}
		return st
	}
	cctx, cancel := context.WithTimeout(ctx, StormCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "sh", "-c", s.Cmd)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		st.Error = err.Error()
	}
	b := bytes.TrimSpace(out.Bytes())
	if len(b) > maxStormOutput {
		b = b[len(b)-maxStormOutput:]
	}
	st.Output = string(b)
	return st
}

// waveFigures derives FirstDropS and WaveS from the reconnect figures.
func (st *StormStats) waveFigures(rs *ReconnectStats) {
	if st == nil || st.TriggeredUnixNs == 0 {
		return
	}
	if rs.LastResumeUnixNs > st.TriggeredUnixNs {
		st.WaveS = float64(rs.LastResumeUnixNs-st.TriggeredUnixNs) / 1e9
	}
	if rs.FirstDropUnixNs > st.TriggeredUnixNs {
		st.FirstDropS = float64(rs.FirstDropUnixNs-st.TriggeredUnixNs) / 1e9
	}
}

// writeText adds the storm lines of a report.
func (st *StormStats) writeText(f func(string, ...any)) {
	f("storm      %s at %.1f s", st.Action, st.AtS)
	if st.Error != "" {
		f(" FAILED: %s", st.Error)
	}
	f("\n")
	if st.WaveS > 0 {
		f("           first resumed drop %.2f s after the fault, last stream back %.2f s after it\n", st.FirstDropS, st.WaveS)
	} else {
		f("           no stream dropped and came back after the fault\n")
	}
}

package loadtest

import (
	"sync"
	"time"
)

// How a resume (a stream established again after a drop, with
// Last-Event-ID) turned out, judged by the first event it delivered.
const (
	resumeExact      = iota // the next sequence number: nothing lost, nothing twice
	resumeGap               // a later number: events were skipped
	resumeDuplicate         // a number seen before: events were sent twice
	resumeReordered         // a missing number arriving late
	resumeReset             // the target said history is gone (a reset event)
	resumeUnverified        // no event arrived before the stream dropped again or the run ended
	numResumeKinds
)

var resumeNames = [numResumeKinds]string{"exact", "gap", "duplicate", "reordered", "reset", "unverified"}

// resumeCounts counts resumes by kind.
type resumeCounts [numResumeKinds]int64

func (rc *resumeCounts) add(o *resumeCounts) {
	for i, n := range o {
		rc[i] += n
	}
}

func (rc *resumeCounts) toMap() map[string]int64 {
	var m map[string]int64
	for i, n := range rc {
		if n != 0 {
			if m == nil {
				m = make(map[string]int64)
			}
			m[resumeNames[i]] = n
		}
	}
	return m
}

// reconnects holds a pool's reconnect figures. Reconnects are rare next to
// events, so one lock is enough.
type reconnects struct {
	mu        sync.Mutex
	hint      *Histogram // the wait each reconnect was told to make (the last retry hint)
	wait      *Histogram // the wait it made, from the drop's end to the new attempt
	resume    *Histogram // from a drop to the stream established again
	early     int64      // waits shorter than their hint (never, unless the clock jumps)
	firstDrop int64      // Unix ns of the first drop that resumed; 0: none
	lastBack  int64      // Unix ns of the last stream established again
}

func newReconnects() reconnects {
	return reconnects{hint: NewHistogram(), wait: NewHistogram(), resume: NewHistogram()}
}

// waited records one wait before a reconnect attempt against its hint.
func (r *reconnects) waited(hint, waited time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hint.Record(hint)
	r.wait.Record(waited)
	if waited < hint {
		r.early++
	}
}

// resumed records a stream established again at back after dropping at drop.
func (r *reconnects) resumed(drop, back time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resume.Record(back.Sub(drop))
	if d := drop.UnixNano(); r.firstDrop == 0 || d < r.firstDrop {
		r.firstDrop = d
	}
	r.lastBack = max(r.lastBack, back.UnixNano())
}

// ReconnectStats is what the streams' reconnects looked like: the browser
// behaviour (wait the last retry hint, come back with Last-Event-ID) and
// what the target made of it.
type ReconnectStats struct {
	// Attempts made after a wait (Connect.Reconnects), each with its hint
	// and actual wait; Early counts waits shorter than the hint.
	Hint  *Histogram `json:"hint"`
	Wait  *Histogram `json:"wait"`
	Early int64      `json:"early"`
	// Resumed is streams established again after a drop; TimeToResume from
	// the drop to the new stream (hint, failed attempts and connect).
	Resumed      int64      `json:"resumed"`
	TimeToResume *Histogram `json:"time_to_resume"`
	// Outcome of each resume by its first event: exact, gap, duplicate,
	// reordered, reset, unverified (no event came before the next drop or
	// the end).
	Outcomes map[string]int64 `json:"outcomes,omitempty"`
	// FirstDropUnixNs and LastResumeUnixNs bound the reconnect activity
	// (0: none); a storm's wave is measured from them.
	FirstDropUnixNs  int64 `json:"first_drop_unix_ns,omitempty"`
	LastResumeUnixNs int64 `json:"last_resume_unix_ns,omitempty"`
}

// fill writes the figures into rs (under the lock).
func (r *reconnects) fill(rs *ReconnectStats, outcomes *resumeCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs.Hint, rs.Wait, rs.TimeToResume = r.hint, r.wait, r.resume
	rs.Early = r.early
	rs.Resumed = r.resume.Count()
	rs.Outcomes = outcomes.toMap()
	rs.FirstDropUnixNs, rs.LastResumeUnixNs = r.firstDrop, r.lastBack
}

// merge adds another worker's reconnect figures.
func (rs *ReconnectStats) merge(o *ReconnectStats) {
	rs.Hint = mergeHist(rs.Hint, o.Hint)
	rs.Wait = mergeHist(rs.Wait, o.Wait)
	rs.TimeToResume = mergeHist(rs.TimeToResume, o.TimeToResume)
	rs.Early += o.Early
	rs.Resumed += o.Resumed
	rs.Outcomes = addMaps(rs.Outcomes, o.Outcomes)
	if o.FirstDropUnixNs != 0 && (rs.FirstDropUnixNs == 0 || o.FirstDropUnixNs < rs.FirstDropUnixNs) {
		rs.FirstDropUnixNs = o.FirstDropUnixNs
	}
	rs.LastResumeUnixNs = max(rs.LastResumeUnixNs, o.LastResumeUnixNs)
}

// writeText adds the reconnect lines of a report.
func (rs *ReconnectStats) writeText(f func(string, ...any), reconnects int64) {
	f("reconnect  attempts %d  resumed %d  outcomes: %s\n", reconnects, rs.Resumed, orNone(fmtCounts(rs.Outcomes)))
	f("           hint         %s\n", fmtHist(rs.Hint))
	f("           wait         %s  (shorter than the hint: %d)\n", fmtHist(rs.Wait), rs.Early)
	f("           to resume    %s\n", fmtHist(rs.TimeToResume))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

package survival

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Bin is [second, count]: count streams whose observed time, rounded up to
// whole seconds, is second.
type Bin [2]int64

// Bins is a node's survival data in 1-second bins, sparse and ascending:
// the form in which nodes share it (JSON) so a cluster view can merge them.
type Bins struct {
	// WindowS is the window the bins cover, in seconds.
	WindowS float64 `json:"window_s"`
	// Censored are the streams still open, by age.
	Censored []Bin `json:"censored"`
	// Closed are the closed streams by close reason name, by lifetime.
	Closed map[string]ReasonBins `json:"closed"`
}

// ReasonBins are the closes of one reason.
type ReasonBins struct {
	Failure bool  `json:"failure"`
	Bins    []Bin `json:"bins"`
}

// Merge adds up bins of several nodes. The merged window is the shortest
// (every node covers at least that much).
func Merge(all ...Bins) Bins {
	out := Bins{Closed: make(map[string]ReasonBins)}
	censored := make(map[int64]int64)
	closed := make(map[string]map[int64]int64)
	failure := make(map[string]bool)
	first := true
	for _, b := range all {
		if first || b.WindowS < out.WindowS {
			out.WindowS = b.WindowS
		}
		first = false
		addBins(censored, b.Censored)
		for name, rb := range b.Closed {
			m := closed[name]
			if m == nil {
				m = make(map[int64]int64)
				closed[name] = m
			}
			addBins(m, rb.Bins)
			failure[name] = failure[name] || rb.Failure
		}
	}
	if len(censored) > 0 {
		out.Censored = sortedBins(censored)
	}
	for name, m := range closed {
		out.Closed[name] = ReasonBins{Failure: failure[name], Bins: sortedBins(m)}
	}
	return out
}

func addBins(m map[int64]int64, bins []Bin) {
	for _, b := range bins {
		if b[1] > 0 {
			m[b[0]] += b[1]
		}
	}
}

// Summary computes the survival figures from the bins, at 1-second
// resolution (see the package doc), at points (DefaultPoints when nil).
func (b Bins) Summary(points []Point) Summary {
	if points == nil {
		points = DefaultPoints()
	}
	points = slices.Clone(points)
	slices.SortStableFunc(points, func(x, y Point) int { return cmp.Compare(x.At, y.At) })
	names := slices.Sorted(maps.Keys(b.Closed))
	if len(names) >= openMark {
		names = names[:openMark-1] // cannot happen with this package's reasons
	}
	reasons := make([]Reason, len(names))
	type entry struct {
		sec, n int64
		reason uint8
	}
	var entries []entry
	var total int64
	for i, name := range names {
		rb := b.Closed[name]
		reasons[i] = Reason{Name: name, Failure: rb.Failure}
		for _, x := range rb.Bins {
			if x[1] > 0 {
				entries = append(entries, entry{x[0], x[1], uint8(i)})
				total += x[1]
			}
		}
	}
	for _, x := range b.Censored {
		if x[1] > 0 {
			entries = append(entries, entry{x[0], x[1], openMark})
			total += x[1]
		}
	}
	slices.SortFunc(entries, func(x, y entry) int { return cmp.Compare(x.sec, y.sec) })
	tab := newTable(reasons, total, points, time.Second)
	for i := 0; i < len(entries); {
		j := i
		for j < len(entries) && entries[j].sec == entries[i].sec {
			tab.add(entries[j].reason, entries[j].n)
			j++
		}
		tab.endGroup(entries[i].sec)
		i = j
	}
	return tab.summary(time.Duration(b.WindowS * float64(time.Second)))
}

package latency

import (
	"fmt"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Snapshot holds the histograms of the three windows, in µs.
type Snapshot struct {
	Last1m, Last5m, SinceStart *hdr.PackedHistogram
}

// Summary is one window's figures (JSON shape of the admin API), in µs.
// Percentiles and the maximum are the highest value of their histogram
// bucket: exact below 2048 µs, within 0.1% above.
type Summary struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50_us"`
	P90   int64 `json:"p90_us"`
	P99   int64 `json:"p99_us"`
	P999  int64 `json:"p999_us"`
	Max   int64 `json:"max_us"`
}

// Windows is the push latency of a node or a cluster (JSON shape of the
// admin API's "push_latency").
type Windows struct {
	Last1m     Summary `json:"last_1m"`
	Last5m     Summary `json:"last_5m"`
	SinceStart Summary `json:"since_start"`
}

// Summarize returns the figures of h (all zero when h is empty).
func Summarize(h *hdr.PackedHistogram) Summary {
	if h == nil || h.TotalCount() == 0 {
		return Summary{}
	}
	q := h.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
	return Summary{Count: h.TotalCount(), P50: q[0], P90: q[1], P99: q[2], P999: q[3], Max: h.Max()}
}

// Windows returns the figures of the snapshot's three windows.
func (s Snapshot) Windows() Windows {
	return Windows{Last1m: Summarize(s.Last1m), Last5m: Summarize(s.Last5m), SinceStart: Summarize(s.SinceStart)}
}

// Export is a Snapshot in transferable form (JSON): each window's histogram
// in the HdrHistogram V2 compressed encoding, base64, as every HdrHistogram
// implementation reads it.
type Export struct {
	Last1m     string `json:"last_1m"`
	Last5m     string `json:"last_5m"`
	SinceStart string `json:"since_start"`
}

// Export encodes the snapshot.
func (s Snapshot) Export() (Export, error) {
	var e Export
	for _, x := range []struct {
		h   *hdr.PackedHistogram
		dst *string
	}{{s.Last1m, &e.Last1m}, {s.Last5m, &e.Last5m}, {s.SinceStart, &e.SinceStart}} {
		if x.h == nil {
			continue
		}
		b, err := x.h.Encode()
		if err != nil {
			return Export{}, fmt.Errorf("latency: encode: %w", err)
		}
		*x.dst = string(b)
	}
	return e, nil
}

// Decode decodes an Export. An empty string decodes as an empty histogram.
func (e Export) Decode() (Snapshot, error) {
	var s Snapshot
	for _, x := range []struct {
		enc string
		dst **hdr.PackedHistogram
	}{{e.Last1m, &s.Last1m}, {e.Last5m, &s.Last5m}, {e.SinceStart, &s.SinceStart}} {
		if x.enc == "" {
			*x.dst = newPacked(defaultHighest)
			continue
		}
		h, err := hdr.DecodePacked([]byte(x.enc))
		if err != nil {
			return Snapshot{}, fmt.Errorf("latency: decode: %w", err)
		}
		*x.dst = h
	}
	return s, nil
}

// Merge adds up snapshots window by window (exactly: bucket by bucket).
// Histograms of another geometry are re-recorded at their buckets' values.
func Merge(snaps ...Snapshot) Snapshot {
	out := Snapshot{Last1m: newPacked(defaultHighest), Last5m: newPacked(defaultHighest), SinceStart: newPacked(defaultHighest)}
	for _, s := range snaps {
		for _, x := range []struct{ dst, src *hdr.PackedHistogram }{
			{out.Last1m, s.Last1m}, {out.Last5m, s.Last5m}, {out.SinceStart, s.SinceStart},
		} {
			if x.src != nil {
				x.dst.Merge(x.src)
			}
		}
	}
	return out
}

// MergeExports decodes and merges exports of several nodes.
func MergeExports(exports ...Export) (Snapshot, error) {
	snaps := make([]Snapshot, 0, len(exports))
	for _, e := range exports {
		s, err := e.Decode()
		if err != nil {
			return Snapshot{}, err
		}
		snaps = append(snaps, s)
	}
	return Merge(snaps...), nil
}

package loadtest

import (
	"encoding/json"
	"testing"
	"time"
)

func TestHistogramMerge(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := 1; i <= 900; i++ {
		d := time.Duration(i) * time.Microsecond
		a.Record(d)
		all.Record(d)
	}
	for i := 1; i <= 100; i++ {
		d := time.Duration(i) * 10 * time.Millisecond
		b.Record(d)
		all.Record(d)
	}
	// Through JSON, as worker processes send them.
	var a2, b2 Histogram
	for _, c := range []struct {
		h   *Histogram
		dst *Histogram
	}{{a, &a2}, {b, &b2}} {
		js, err := json.Marshal(c.h)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(js, c.dst); err != nil {
			t.Fatal(err)
		}
	}
	m := NewHistogram()
	m.Merge(&a2)
	m.Merge(&b2)
	if m.Count() != 1000 {
		t.Fatalf("merged count %d, want 1000", m.Count())
	}
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		if got, want := m.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged quantile %v = %v, want %v (as if recorded in one)", q, got, want)
		}
	}
	// Averaging the halves' p99 would say ~0.5 s; the merged one knows the
	// top 10% are the slow half.
	if p90 := m.Quantile(0.9); p90 > time.Millisecond {
		t.Errorf("p90 %v, want <= 1ms (900 of 1000 values are below 1ms)", p90)
	}
	if p99 := m.Quantile(0.99); p99 < 900*time.Millisecond || p99 > 901*time.Millisecond {
		t.Errorf("p99 %v, want about 900ms", p99)
	}
	if mx := m.Max(); mx < time.Second || mx > 1001*time.Millisecond {
		t.Errorf("max %v, want about 1s", mx)
	}
}

func TestHistogramEmptyJSON(t *testing.T) {
	js, err := json.Marshal(NewHistogram())
	if err != nil {
		t.Fatal(err)
	}
	var h Histogram
	if err := json.Unmarshal(js, &h); err != nil {
		t.Fatal(err)
	}
	if h.Count() != 0 || h.Quantile(0.99) != 0 {
		t.Errorf("empty histogram came back with count %d", h.Count())
	}
}

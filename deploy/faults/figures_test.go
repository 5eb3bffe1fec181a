package faults

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ssecluster/ssecluster/loadtest"
)

// TestBackAfter checks the stall figure on a made-up timeline: samples
// every 100 ms, the fault at 1000 ms.
func TestBackAfter(t *testing.T) {
	delivered := func(s loadtest.Sample) (int64, bool) { return s.Delivered, true }
	timeline := func(values ...int64) []loadtest.Sample {
		tl := make([]loadtest.Sample, len(values))
		for i, v := range values {
			tl[i] = loadtest.Sample{UnixMs: int64(i) * 100, Delivered: v}
		}
		return tl
	}
	for _, tc := range []struct {
		name string
		tl   []loadtest.Sample
		want float64
	}{
		{"never stalls", timeline(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13), 0},
		{"short stall", timeline(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 11, 12), 0},
		// flat from 1000 to 1700 ms, growing again at 1800: back 0.8 s after the fault
		{"stall", timeline(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11, 11, 11, 11, 11, 11, 12, 13), 0.8},
		// a stall that ended before the fault does not count
		{"stall before", timeline(1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7), 0},
		// the last of two stalls counts
		{"two stalls", timeline(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11, 11, 11, 11, 12, 13, 13, 13, 13, 13, 13, 13, 14), 1.4},
		// publishing ended: flat to the end is not a stall that ended
		{"flat at the end", timeline(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11, 11, 11, 11, 11), 0},
	} {
		if got := backAfter(tc.tl, 1000, delivered); got != tc.want {
			t.Errorf("%s: back after %.2fs, want %.2fs", tc.name, got, tc.want)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	section := beginMarker + "\nnew\n" + endMarker + "\n"
	for _, tc := range []struct{ name, before, after string }{
		{"appended", "# B\n\ntext\n", "# B\n\ntext\n\n" + section},
		{"replaced", "# B\n" + beginMarker + "\nold\n" + endMarker + "\nafter\n", "# B\n" + beginMarker + "\nnew\n" + endMarker + "\nafter\n"},
	} {
		if err := os.WriteFile(file, []byte(tc.before), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := replaceSection(file, section); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if b, _ := os.ReadFile(file); string(b) != tc.after {
			t.Errorf("%s: file is\n%q\nwant\n%q", tc.name, b, tc.after)
		}
	}
	if err := os.WriteFile(file, []byte("x\n"+endMarker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replaceSection(file, section); err == nil {
		t.Error("a lone end marker: want an error, not a guess")
	}
}

package loadtest

import (
	"slices"
	"testing"
)

func TestSeqChecker(t *testing.T) {
	tests := []struct {
		name                                   string
		first                                  int64
		seqs                                   []int64
		verdicts                               []Verdict
		unique, dups, reordered, gaps, missing int64
	}{
		{
			name: "in order", seqs: []int64{1, 2, 3, 4},
			verdicts: []Verdict{InOrder, InOrder, InOrder, InOrder},
			unique:   4,
		},
		{
			name: "gap never filled", seqs: []int64{1, 2, 5, 6},
			verdicts: []Verdict{InOrder, InOrder, Gap, InOrder},
			unique:   4, gaps: 1, missing: 2,
		},
		{
			name: "missing first", seqs: []int64{2, 3},
			verdicts: []Verdict{Gap, InOrder},
			unique:   2, gaps: 1, missing: 1,
		},
		{
			name: "duplicate of the last", seqs: []int64{1, 2, 2, 3},
			verdicts: []Verdict{InOrder, InOrder, Duplicate, InOrder},
			unique:   3, dups: 1,
		},
		{
			name: "duplicate of an old one", seqs: []int64{1, 2, 3, 1},
			verdicts: []Verdict{InOrder, InOrder, InOrder, Duplicate},
			unique:   3, dups: 1,
		},
		{
			name: "swap", seqs: []int64{1, 3, 2, 4},
			verdicts: []Verdict{InOrder, Gap, Reordered, InOrder},
			unique:   4, reordered: 1, gaps: 1,
		},
		{
			name: "late arrival splits a missing range", seqs: []int64{1, 6, 3, 2, 5, 4, 4},
			verdicts: []Verdict{InOrder, Gap, Reordered, Reordered, Reordered, Reordered, Duplicate},
			unique:   6, reordered: 4, gaps: 1, dups: 1,
		},
		{
			name: "partly filled gap", seqs: []int64{1, 5, 3},
			verdicts: []Verdict{InOrder, Gap, Reordered},
			unique:   3, reordered: 1, gaps: 1, missing: 2,
		},
		{
			name: "joined mid-sequence", first: 100, seqs: []int64{100, 101, 99},
			verdicts: []Verdict{InOrder, InOrder, Duplicate},
			unique:   2, dups: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c SeqChecker
			if tc.first != 0 {
				c = NewSeqChecker(tc.first)
			}
			var got []Verdict
			for _, s := range tc.seqs {
				got = append(got, c.Observe(s))
			}
			if !slices.Equal(got, tc.verdicts) {
				t.Errorf("verdicts %v, want %v", got, tc.verdicts)
			}
			if c.Unique != tc.unique || c.Duplicates != tc.dups || c.Reordered != tc.reordered || c.Gaps != tc.gaps || c.Missing() != tc.missing {
				t.Errorf("unique %d dups %d reordered %d gaps %d missing %d, want %d %d %d %d %d",
					c.Unique, c.Duplicates, c.Reordered, c.Gaps, c.Missing(),
					tc.unique, tc.dups, tc.reordered, tc.gaps, tc.missing)
			}
		})
	}
}

// TestSeqCheckerManyGaps checks that forgetting old missing ranges keeps
// them counted as missing.
func TestSeqCheckerManyGaps(t *testing.T) {
	var c SeqChecker
	n := int64(maxSpans + 10)
	for i := int64(1); i <= n; i++ {
		c.Observe(2 * i) // every odd number is missing
	}
	if c.Missing() != n || c.Gaps != n || c.Unique != n {
		t.Fatalf("missing %d gaps %d unique %d, want %d each", c.Missing(), c.Gaps, c.Unique, n)
	}
	if v := c.Observe(2*n - 1); v != Reordered { // a recent range is remembered
		t.Errorf("late recent number: %v, want reordered", v)
	}
	if v := c.Observe(1); v != Duplicate { // the oldest range was forgotten
		t.Errorf("late forgotten number: %v, want duplicate", v)
	}
}

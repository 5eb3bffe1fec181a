package retry

import (
	"math/rand/v2"
	"testing"
	"time"
)

var testPolicy = Policy{Base: time.Second, Cap: 60 * time.Second, HealthyAfter: 60 * time.Second, EarlyLimit: 2}

func seeded() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func TestValidate(t *testing.T) {
	tests := []struct {
		p  Policy
		ok bool
	}{
		{testPolicy, true},
		{Policy{Base: 0, Cap: time.Second, HealthyAfter: time.Second}, false},
		{Policy{Base: 2 * time.Second, Cap: time.Second, HealthyAfter: time.Second}, false},
		{Policy{Base: time.Second, Cap: time.Minute, HealthyAfter: 30 * time.Second}, false},
		{Policy{Base: time.Second, Cap: time.Minute, HealthyAfter: time.Minute, EarlyLimit: -1}, false},
	}
	for _, tc := range tests {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tc.p, err, tc.ok)
		}
	}
}

func TestCeiling(t *testing.T) {
	tests := []struct {
		k    int
		want time.Duration
	}{
		{-1, time.Second}, {0, time.Second}, {1, 2 * time.Second}, {5, 32 * time.Second},
		{6, 60 * time.Second}, {30, 60 * time.Second}, {1000, 60 * time.Second},
	}
	for _, tc := range tests {
		if got := testPolicy.Ceiling(tc.k); got != tc.want {
			t.Errorf("Ceiling(%d) = %s, want %s", tc.k, got, tc.want)
		}
	}
}

// TestHintBounds: every hint of attempt k is in [0, Ceiling(k)], whole
// milliseconds, and both ends of the interval are reachable.
func TestHintBounds(t *testing.T) {
	r := seeded()
	p := Policy{Base: 4 * time.Millisecond, Cap: 20 * time.Millisecond, HealthyAfter: time.Second}
	for k := range 5 {
		ceil := p.Ceiling(k)
		var lo, hi = ceil, time.Duration(0)
		for range 2000 {
			h := p.Hint(k, r)
			if h < 0 || h > ceil || h%time.Millisecond != 0 {
				t.Fatalf("attempt %d: hint %s outside [0, %s] or not whole ms", k, h, ceil)
			}
			lo, hi = min(lo, h), max(hi, h)
		}
		if lo != 0 || hi != ceil {
			t.Errorf("attempt %d: hints spanned [%s, %s], want [0, %s]", k, lo, hi, ceil)
		}
	}
}

func TestNoJitter(t *testing.T) {
	p := testPolicy
	p.NoJitter = true
	for k := range 8 {
		if h := p.Hint(k, seeded()); h != p.Ceiling(k) {
			t.Errorf("attempt %d: hint %s, want exactly %s", k, h, p.Ceiling(k))
		}
	}
}

// TestHintSpread: 10,000 hints of one attempt are spread evenly over the
// interval (a chi-square test over 20 bins; the source is seeded, so the
// test is deterministic, and a clumping policy fails it).
func TestHintSpread(t *testing.T) {
	const n, bins = 10000, 20
	r := seeded()
	ceil := testPolicy.Ceiling(3) // 8 s
	var count [bins]int
	for range n {
		h := testPolicy.Hint(3, r)
		b := min(int(int64(h)*bins/int64(ceil+time.Millisecond)), bins-1)
		count[b]++
	}
	const want = float64(n) / bins
	chi2, most := 0.0, 0
	for _, c := range count {
		d := float64(c) - want
		chi2 += d * d / want
		most = max(most, c)
	}
	// 43.82 is the chi-square critical value for 19 degrees of freedom at
	// p = 0.001.
	if chi2 > 43.82 || float64(most) > 1.2*want {
		t.Errorf("hints not uniform: chi2 %.1f, fullest bin %d of mean %.0f; bins %v", chi2, most, want, count)
	}
}

func TestDecide(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := testPolicy
	tests := []struct {
		name    string
		prev    State
		known   bool
		verdict Verdict
		attempt int
		early   int
		hint    time.Duration // exact for early answers; else the ceiling
	}{
		{"first connect", State{}, false, Serve, 0, 0, time.Second},
		{"short stream, hint obeyed", State{Attempt: 2, Issued: now.Add(-5 * time.Second), Hint: 3 * time.Second}, true, Serve, 3, 0, 8 * time.Second},
		{"healthy stream", State{Attempt: 4, Issued: now.Add(-61 * time.Second), Hint: 10 * time.Second}, true, Serve, 0, 0, time.Second},
		{"early", State{Attempt: 1, Issued: now.Add(-300 * time.Millisecond), Hint: 2 * time.Second}, true, TooEarly, 1, 1, 1700 * time.Millisecond},
		{"early again", State{Attempt: 1, Issued: now.Add(-1 * time.Second), Hint: 2 * time.Second, Early: 1}, true, TooEarly, 1, 2, time.Second},
		{"persistent offender", State{Attempt: 1, Issued: now.Add(-1 * time.Second), Hint: 2 * time.Second, Early: 2}, true, TooMany, 1, 3, time.Second},
		{"exactly on time", State{Attempt: 1, Issued: now.Add(-2 * time.Second), Hint: 2 * time.Second, Early: 2}, true, Serve, 2, 0, 4 * time.Second},
		{"clock step back", State{Attempt: 5, Issued: now.Add(time.Hour), Hint: 2 * time.Second}, true, Serve, 0, 0, time.Second},
		{"attempt capped", State{Attempt: maxAttempt, Issued: now.Add(-61 * time.Second / 2), Hint: time.Second}, true, Serve, maxAttempt, 0, 60 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.prev, tc.known, now, seeded())
			if d.Verdict != tc.verdict || d.Next.Attempt != tc.attempt || d.Next.Early != tc.early {
				t.Fatalf("Decide = %s attempt %d early %d, want %s attempt %d early %d", d.Verdict, d.Next.Attempt, d.Next.Early, tc.verdict, tc.attempt, tc.early)
			}
			switch tc.verdict {
			case Serve:
				if d.Hint < 0 || d.Hint > tc.hint || d.Next.Hint != d.Hint || !d.Next.Issued.Equal(now) {
					t.Errorf("served with hint %s (ceiling %s), next %+v", d.Hint, tc.hint, d.Next)
				}
			default:
				if d.Hint != tc.hint || d.Next.Issued != tc.prev.Issued || d.Next.Hint != tc.prev.Hint {
					t.Errorf("early answer hint %s, want the remaining %s; next %+v must keep the admission", d.Hint, tc.hint, d.Next)
				}
			}
		})
	}
}

// TestAttemptsGrowAndReset: a client that keeps failing right after each
// admission, and obeys every hint, sees its interval double up to the cap;
// one healthy stream brings it back to the base.
func TestAttemptsGrowAndReset(t *testing.T) {
	p := testPolicy
	r := seeded()
	now := time.Unix(1_800_000_000, 0)
	d := p.Decide(State{}, false, now, r)
	for k := 1; k <= 8; k++ {
		now = now.Add(d.Hint) // the stream dies at once; the client waits its hint
		d = p.Decide(d.Next, true, now, r)
		if d.Verdict != Serve || d.Next.Attempt != k || d.Hint > p.Ceiling(k) {
			t.Fatalf("attempt %d: %+v", k, d)
		}
	}
	now = now.Add(p.HealthyAfter + d.Hint)
	if d = p.Decide(d.Next, true, now, r); d.Next.Attempt != 0 || d.Hint > p.Base {
		t.Errorf("after a healthy stream: %+v, want attempt 0 and a hint within the base", d)
	}
}

func TestShedAndGoodbye(t *testing.T) {
	p := testPolicy
	now := time.Unix(1_800_000_000, 0)
	st, h := p.Shed(State{Attempt: 2, Issued: now.Add(-time.Hour)}, now, seeded())
	if st.Attempt != 3 || st.Hint != h || h > p.Ceiling(3) || !st.Issued.Equal(now) {
		t.Errorf("Shed = %+v, %s", st, h)
	}
	admitted := State{Attempt: 5, Issued: now.Add(-time.Second), Hint: 30 * time.Second}
	if g := p.Goodbye(admitted, now, seeded()); g < 29*time.Second {
		t.Errorf("Goodbye %s is shorter than the 29 s left of the admission's hint", g)
	}
	if g := p.Goodbye(State{Issued: now.Add(-time.Hour), Hint: time.Second}, now, seeded()); g > p.Base {
		t.Errorf("Goodbye of an old stream %s, want within the base", g)
	}
}

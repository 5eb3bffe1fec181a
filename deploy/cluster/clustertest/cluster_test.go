package clustertest

import (
	"os/exec"
	"testing"
)

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "/tmp/Test x/001", "it's", "", "$(echo no)", "a\"b", "semi;colon"} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh read %q back as %q (%v)", s, out, err)
		}
	}
}

func TestLBNotUp(t *testing.T) {
	for out, want := range map[string]bool{
		"NAME ...\n  lb: node1 UP, 0 streams\n  lb: node2 UP, 3 streams\n": false,
		"  lb: node1 UP, 0 streams\n  lb: node2 NOLB, 0 streams\n":         true,
		"  lb: node1 DOWN, 0 streams\n":                                    true,
		"  lb: node1 UP 1/2, 0 streams\n":                                  false,
	} {
		if got := lbNotUp.MatchString(out); got != want {
			t.Errorf("lbNotUp(%q) = %v, want %v", out, got, want)
		}
	}
}

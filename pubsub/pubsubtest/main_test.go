package pubsubtest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests if a goroutine outlives them, such as an
// os/exec copier of a redis-server that was never waited for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

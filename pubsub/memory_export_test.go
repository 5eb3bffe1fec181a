package pubsub

import "time"

// SetMemoryClock replaces m's clock. Call it before m is used.
func SetMemoryClock(m *Memory, now func() time.Time) { m.now = now }

// MemoryIdempotencyKeys returns how many idempotency keys m remembers.
func MemoryIdempotencyKeys(m *Memory) int { return m.idem.size() }

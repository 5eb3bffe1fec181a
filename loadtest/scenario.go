package loadtest

import (
	"fmt"
	"strings"
	"time"
)

// The scenarios of sseload, as presets of Config that flags then refine.
const (
	// ScenarioCapacity holds idle streams for Duration and publishes
	// nothing: connect times, and with NodePIDs the target's memory per
	// stream.
	ScenarioCapacity = "capacity"
	// ScenarioFanout puts every stream on one topic and publishes Rate
	// events per second to it.
	ScenarioFanout = "fanout"
	// ScenarioTopics gives every stream its own topic (Topics = Subs) and
	// publishes Rate events per second round-robin over them.
	ScenarioTopics = "topics"
	// ScenarioStorm holds streams that reconnect like browsers, publishes,
	// and injects a fault (Storm) a third of the way in: the report shows
	// the reconnect wave and whether every resume was exact.
	ScenarioStorm = "storm"
	// ScenarioRun is the plain run: every figure from the flags.
	ScenarioRun = "run"
)

// Scenarios lists the scenario names in the order the help shows them.
func Scenarios() []string {
	return []string{ScenarioCapacity, ScenarioFanout, ScenarioTopics, ScenarioStorm, ScenarioRun}
}

// StreamsPerWorker is how many streams one worker process is given when
// the worker count is left to the tool: the file-descriptor limit here is
// 20000 per process, and a process needs some for itself.
const StreamsPerWorker = 18000

// Scenario returns the preset Config of a scenario; callers then set the
// target and whatever they change.
func Scenario(name string) (Config, error) {
	c := Config{Scenario: name, Ramp: DefaultRamp, Topics: 1}
	switch name {
	case ScenarioCapacity:
		c.Subs, c.Idle, c.Duration = 10000, true, 30*time.Second
	case ScenarioFanout:
		c.Subs, c.Rate, c.Duration, c.Warmup = 5000, 10, 60*time.Second, 5*time.Second
	case ScenarioTopics:
		c.Subs, c.Topics, c.Rate, c.Duration, c.Warmup = 5000, 5000, 1000, 30*time.Second, 5*time.Second
	case ScenarioStorm:
		c.Subs, c.Topics, c.Rate, c.Duration, c.Warmup = 3000, 10, 100, 40*time.Second, 3*time.Second
		c.Reconnect, c.Drain = true, 15*time.Second
		c.SampleEvery = 100 * time.Millisecond // the wave's peak connect rate needs a fine timeline
	case ScenarioRun:
		c.Subs, c.Rate, c.Duration = 1000, 10, 10*time.Second
	default:
		return Config{}, fmt.Errorf("loadtest: unknown scenario %q (want one of %s)", name, strings.Join(Scenarios(), ", "))
	}
	return c, nil
}

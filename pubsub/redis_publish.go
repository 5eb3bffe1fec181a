package pubsub

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// trimLua trims a partition stream to about MaxLen entries and records the
// position of the last removed entry in the meta key, so that a resume from
// before it is reported as lost history instead of silently skipping it.
// It removes len-maxlen entries once the stream holds more than
// maxlen+chunk, so the cost is amortised over chunk publishes.
//
// KEYS[1] stream, KEYS[2] meta; ARGV[1] epoch, ARGV[2] maxlen, ARGV[3] chunk.
const trimLua = `
local function trim(stream, meta, epoch, maxlen, chunk)
  local len = redis.call('XLEN', stream)
  if len <= maxlen + chunk then return end
  local k = math.min(len - maxlen, 100000)
  local r = redis.call('XRANGE', stream, '-', '+', 'COUNT', k + 1)
  redis.call('XTRIM', stream, 'MINID', r[k + 1][1])
  redis.call('SET', meta, epoch .. ' ' .. r[k][1])
end
`

// metaLua reads (or creates, with the candidate epoch ARGV[1]) the epoch.
const metaLua = `
local function epoch_of(meta, candidate)
  local m = redis.call('GET', meta)
  if not m then
    redis.call('SET', meta, candidate .. ' 0-0')
    return candidate
  end
  return string.match(m, '^(%S+)')
end
`

// publishLua appends the messages of one partition atomically.
//
// KEYS[1] stream, KEYS[2] meta, KEYS[3..] idempotency keys.
// ARGV[1] candidate epoch, ARGV[2] maxlen, ARGV[3] chunk, ARGV[4] key ttl
// seconds, ARGV[5] count, then per message: topic, event, data, ts, index
// of its idempotency key in KEYS (0 for none).
// Returns {epoch, {id...}}.
var publishScript = redis.NewScript(metaLua + trimLua + `
local epoch = epoch_of(KEYS[2], ARGV[1])
local n = tonumber(ARGV[5])
local ids = {}
for i = 0, n - 1 do
  local b = 6 + i * 5
  local ik = tonumber(ARGV[b + 4])
  local id = false
  if ik > 0 then id = redis.call('GET', KEYS[ik]) end
  if not id then
    id = redis.call('XADD', KEYS[1], '*', 'topic', ARGV[b], 'event', ARGV[b + 1], 'data', ARGV[b + 2], 'ts', ARGV[b + 3])
    if ik > 0 then redis.call('SET', KEYS[ik], id, 'EX', ARGV[4]) end
  end
  ids[i + 1] = id
end
trim(KEYS[1], KEYS[2], epoch, tonumber(ARGV[2]), tonumber(ARGV[3]))
return {epoch, ids}
`)

// maintainScript trims a partition that only plain XADDs (from publishers
// outside ssecluster) have grown. KEYS[1] stream, KEYS[2] meta; ARGV[1]
// candidate epoch, ARGV[2] maxlen, ARGV[3] chunk.
var maintainScript = redis.NewScript(metaLua + trimLua + `
local epoch = epoch_of(KEYS[2], ARGV[1])
trim(KEYS[1], KEYS[2], epoch, tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
`)

// Publish implements Broker. Messages are grouped by partition; each group
// is stored by one script run, so a group is atomic and ordered. Groups are
// pipelined; an error leaves the other groups stored (retry with the same
// idempotency keys is safe).
func (r *Redis) Publish(ctx context.Context, msgs []Message) (_ []ID, err error) {
	defer func() { r.errs.add(opPublish, err) }()
	if len(msgs) == 0 {
		return nil, nil
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	type group struct {
		p    int
		idx  []int // indexes into msgs
		keys []string
		args []any
	}
	var groups []*group
	byPart := make(map[int]*group)
	for i, m := range msgs {
		p := PartitionOf(m.Topic, r.cfg.Partitions)
		g := byPart[p]
		if g == nil {
			g = &group{p: p, keys: []string{r.streamKey(p), r.metaKey(p)}}
			g.args = []any{NewEpoch(), r.cfg.MaxLen, r.chunk, int64(r.cfg.IdempotencyTTL / time.Second), 0}
			byPart[p] = g
			groups = append(groups, g)
		}
		ki := 0
		if m.IdempotencyKey != "" {
			g.keys = append(g.keys, r.idemKey(p, m.Topic, m.IdempotencyKey))
			ki = len(g.keys)
		}
		g.idx = append(g.idx, i)
		g.args = append(g.args, m.Topic, m.Type, m.Data, now, ki)
	}
	for _, g := range groups {
		g.args[4] = len(g.idx)
	}

	run := func(pipe redis.Scripter) []*redis.Cmd {
		cmds := make([]*redis.Cmd, len(groups))
		for i, g := range groups {
			cmds[i] = publishScript.EvalSha(ctx, pipe, g.keys, g.args...)
		}
		return cmds
	}
	var cmds []*redis.Cmd
	for attempt := 0; ; attempt++ {
		if len(groups) == 1 {
			cmds = run(r.cmd)
		} else {
			pipe := r.cmd.Pipeline()
			cmds = run(pipe)
			_, _ = pipe.Exec(ctx) // errors are read per command below
		}
		noScript := false
		for _, c := range cmds {
			if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				noScript = true
			}
		}
		if !noScript || attempt > 0 {
			break
		}
		// A restarted Redis forgot the script; NOSCRIPT means nothing ran,
		// so loading it and running everything again cannot store twice.
		// (Groups that did run are deduplicated only by idempotency keys,
		// so retry only when every group failed with NOSCRIPT.)
		allNoScript := true
		for _, c := range cmds {
			if !redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
				allNoScript = false
			}
		}
		if !allNoScript {
			break
		}
		if err := publishScript.Load(ctx, r.cmd).Err(); err != nil {
			return nil, classify("load publish script", err)
		}
	}

	ids := make([]ID, len(msgs))
	for gi, g := range groups {
		res, err := cmds[gi].Slice()
		if err != nil {
			return nil, classify(fmt.Sprintf("publish partition %d", g.p), err)
		}
		epoch, idList, err := parsePublishReply(res, len(g.idx))
		if err != nil {
			return nil, fmt.Errorf("%w: publish partition %d: %w", ErrOutcomeUnknown, g.p, err)
		}
		for j, mi := range g.idx {
			ids[mi] = ID{Partition: g.p, Epoch: epoch, Pos: idList[j]}
		}
	}
	return ids, nil
}

func parsePublishReply(res []any, n int) (string, []Pos, error) {
	if len(res) != 2 {
		return "", nil, fmt.Errorf("pubsub: publish reply has %d elements", len(res))
	}
	epoch, ok := res[0].(string)
	if !ok || !ValidEpoch(epoch) {
		return "", nil, fmt.Errorf("pubsub: publish reply epoch %v", res[0])
	}
	list, ok := res[1].([]any)
	if !ok || len(list) != n {
		return "", nil, fmt.Errorf("pubsub: publish reply ids %v", res[1])
	}
	out := make([]Pos, n)
	for i, v := range list {
		s, ok := v.(string)
		if !ok {
			return "", nil, fmt.Errorf("pubsub: publish reply id %v", v)
		}
		p, err := ParsePos(s)
		if err != nil {
			return "", nil, fmt.Errorf("pubsub: publish reply id %q: %w", s, err)
		}
		out[i] = p
	}
	return epoch, out, nil
}

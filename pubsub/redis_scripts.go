package pubsub

import "github.com/redis/go-redis/v9"

// The Lua scripts of the Redis broker. Every script touches the keys of
// one partition only (one hash tag, so one Redis Cluster slot), declares
// them all in KEYS, and so runs atomically on whichever server holds the
// partition. In a Redis Cluster a script whose keys are split by a slot
// migration in progress is refused with TRYAGAIN or ASK before it runs;
// a command per key (a MULTI of GET and XRANGE) could instead read a meta
// key that has not arrived yet as missing.

// trimLua trims a partition stream to about MaxLen entries and records the
// position of the last removed entry in the meta key, so that a resume from
// before it is reported as lost history instead of silently skipping it.
// It removes len-maxlen entries once the stream holds more than
// maxlen+chunk, so the cost is amortised over chunk publishes.
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

// metaLua reads (or creates, with the candidate epoch) the epoch. A new
// epoch starts after whatever the stream already holds: entries left from
// before (a meta key evicted or deleted while its stream stayed) belong to
// no epoch a cursor knows, and are never delivered again as new events.
const metaLua = `
local function epoch_of(meta, stream, candidate)
  local m = redis.call('GET', meta)
  if not m then
    local base = '0-0'
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    if last[1] then base = last[1][1] end
    redis.call('SET', meta, candidate .. ' ' .. base)
    return candidate
  end
  return string.match(m, '^(%S+)')
end
`

// publishScript appends the messages of one partition atomically.
//
// KEYS[1] stream, KEYS[2] meta, KEYS[3..] idempotency keys.
// ARGV[1] candidate epoch, ARGV[2] maxlen, ARGV[3] chunk, ARGV[4] key ttl
// seconds, ARGV[5] count, then per message: topic, event, data, ts, index
// of its idempotency key in KEYS (0 for none).
// Returns {epoch, {id...}}.
//
// A message whose idempotency key is known is not stored again; its key's
// expiry is renewed instead. That renewal is a write, so a WAIT that
// follows on the same connection waits for the replication of everything
// before it, the first store of the message included: a retry is only
// confirmed once the event is on the replicas.
var publishScript = redis.NewScript(metaLua + trimLua + `
local epoch = epoch_of(KEYS[2], KEYS[1], ARGV[1])
local n = tonumber(ARGV[5])
local ids = {}
for i = 0, n - 1 do
  local b = 6 + i * 5
  local ik = tonumber(ARGV[b + 4])
  local id = false
  if ik > 0 then id = redis.call('GET', KEYS[ik]) end
  if id then
    redis.call('EXPIRE', KEYS[ik], ARGV[4])
  else
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
local epoch = epoch_of(KEYS[2], KEYS[1], ARGV[1])
trim(KEYS[1], KEYS[2], epoch, tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
`)

// epochScript creates the meta key of a partition when it is missing.
// KEYS[1] stream, KEYS[2] meta; ARGV[1] candidate epoch.
var epochScript = redis.NewScript(metaLua + `
return epoch_of(KEYS[2], KEYS[1], ARGV[1])
`)

// viewScript reads a partition at one instant, without writing (so it runs
// when Redis is out of memory): the meta value, the last and (optionally)
// the first entry id, the length, and a range of entries.
//
// KEYS[1] stream, KEYS[2] meta. ARGV[1] range start ("" for no range;
// inclusive: callers that resume after a position ask for it too, to
// check that it is still there), ARGV[2] range end, ARGV[3] count,
// ARGV[4] "1" for first and length.
// Returns {meta or nil, last id or "", first id or "", length, entries}.
var viewScript = redis.NewScript(`#!lua flags=no-writes
local meta = redis.call('GET', KEYS[2])
local lastid, first, n = '', '', 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if last[1] then lastid = last[1][1] end
if ARGV[4] == '1' then
  local f = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if f[1] then first = f[1][1] end
  n = redis.call('XLEN', KEYS[1])
end
local entries = {}
if ARGV[1] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))
end
return {meta, lastid, first, n, entries}
`)

// bumpScript starts a new epoch for a partition whose history was rolled
// back behind the nodes' backs (a failover promoted a replica that lacks
// entries a node had read or published; a stream key evicted). It is a
// compare-and-set: it acts only if the meta value is still the one the
// caller saw (so the caller's check that the position is past the trim
// point still holds) and the position the caller found missing is missing
// on this server too (a reader whose connection still points at another
// server must not restart a healthy partition).
//
// The new epoch starts where the old and the new history part: at the
// newest of the caller's known positions (newest first, each with its ts
// field or "") that is still in the stream with the same ts. Entries after
// it were written after the rollback and are delivered in the new epoch,
// after the reset. When none is left, at the newest entry older than the
// oldest candidate (or the trim position).
//
// KEYS[1] stream, KEYS[2] meta. ARGV[1] meta value seen, ARGV[2] new
// epoch, ARGV[3] missing position, then pairs of candidate position and
// ts.
// Returns {1, new meta} when it started a new epoch, {2, meta} when the
// meta changed meanwhile (or is gone), {3, meta} when the position exists.
var bumpScript = redis.NewScript(`
local m = redis.call('GET', KEYS[2])
if m ~= ARGV[1] then return {2, m or ''} end
local x = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
if x[1] then return {3, m} end
local function tsof(e)
  local f = e[2]
  for i = 1, #f, 2 do if f[i] == 'ts' then return f[i + 1] end end
  return ''
end
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local trimmed = string.match(m, '^%S+ (%S+)')
local base = nil
local oldest = nil
for i = 4, #ARGV - 1, 2 do
  oldest = ARGV[i]
  local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if e[1] and (ARGV[i + 1] == '' or tsof(e[1]) == ARGV[i + 1]) then
    base = ARGV[i]
    break
  end
end
if not base then
  base = trimmed
  if oldest then
    local e = redis.call('XREVRANGE', KEYS[1], '(' .. oldest, '-', 'COUNT', 1)
    if e[1] then base = e[1][1] end
  end
end
if less(base, trimmed) then base = trimmed end
local nm = ARGV[2] .. ' ' .. base
redis.call('SET', KEYS[2], nm)
return {1, nm}
`)

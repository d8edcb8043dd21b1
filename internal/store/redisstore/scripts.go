package redisstore

import "github.com/redis/go-redis/v9"

// nowMS is shared by the scripts that need the server's clock; see the
// package comment for why the server's and not the client's. Scores are
// integer milliseconds, so "score < now" is written "score <= now - 1",
// which avoids formatting a Lua number into an exclusive "(" bound.
const nowMS = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// Script results shared with the Go side.
const (
	resNotFound = 0
	resConflict = 1
	resOK       = 2
)

// writeScript is Put and Create.
// KEYS: record, index. ARGV: value, ttl in ms (0 = none), id, "1" for create-if-absent.
// Returns 1 when written, 0 when Create found a live record.
var writeScript = redis.NewScript(nowMS + `
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 1)
local ttl = tonumber(ARGV[2])
local set = {'SET', KEYS[1], ARGV[1]}
if ttl > 0 then
  set[#set + 1] = 'PX'
  set[#set + 1] = ARGV[2]
end
if ARGV[4] == '1' then
  set[#set + 1] = 'NX'
end
if not redis.call(unpack(set)) then
  return 0
end
local score = '+inf'
if ttl > 0 then
  score = now + ttl
end
redis.call('ZADD', KEYS[2], score, ARGV[3])
return 1
`)

// compareGuard opens the compare-and-swap and compare-and-delete scripts:
// it returns resNotFound when KEYS[1] does not exist and resConflict when
// its value is not ARGV[1], and falls through only on a match.
const compareGuard = `
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if cur ~= ARGV[1] then
  return 1
end
`

// casScript is CompareAndSwap.
// KEYS: record, index. ARGV: old, next, ttl in ms (0 = none, -1 = keep), id.
// Returns resNotFound, resConflict or resOK.
var casScript = redis.NewScript(nowMS + compareGuard + `
local ttl = tonumber(ARGV[3])
if ttl < 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  -- The index entry already holds the exact expiry. Only an entry that went
  -- missing is restored, which spares the common path TIME and ZADD.
  if not redis.call('ZSCORE', KEYS[2], ARGV[4]) then
    local pttl = redis.call('PTTL', KEYS[1])
    local score = '+inf'
    if pttl >= 0 then
      score = now_ms() + pttl
    end
    redis.call('ZADD', KEYS[2], score, ARGV[4])
  end
elseif ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('ZADD', KEYS[2], now_ms() + ttl, ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[4])
end
return 2
`)

// cadScript is CompareAndDelete.
// KEYS: record, index. ARGV: old, id. Returns resNotFound, resConflict or resOK.
var cadScript = redis.NewScript(compareGuard + `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 2
`)

// indexScript is the first half of List. KEYS: index. It prunes expired
// members and returns the IDs of the live ones.
var indexScript = redis.NewScript(nowMS + `
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
`)

// fetchScript is the second half of List. KEYS: records. Returns, for each
// record, its value and PTTL, or false and -2 when it is gone.
var fetchScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  out[2 * i - 1] = v
  if v then
    out[2 * i] = redis.call('PTTL', k)
  else
    out[2 * i] = -2
  end
end
return out
`)

// appendScript is Append. KEYS: log. ARGV: after, values…
// Returns {1, new length} or {0, current length} on a stale head. RPUSH goes
// in chunks because Lua's unpack has a limit of a few thousand values.
var appendScript = redis.NewScript(`
local n = redis.call('LLEN', KEYS[1])
if n ~= tonumber(ARGV[1]) then
  return {0, n}
end
for i = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return {1, n + #ARGV - 1}
`)

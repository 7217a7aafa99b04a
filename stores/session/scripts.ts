/**
 * Lua scripts of the session store.
 *
 * Keys of one session id `SID` (names as Redis sees them, `kp` = ioredis `keyPrefix`):
 * - `kp` + `prefix` + `SID`: the session, a string written by the serializer, exactly as
 *   connect-redis writes it (so sessions survive a switch from connect-redis and back);
 * - `{kp prefix SID}:m`: its companion hash, in the same Cluster slot (its hash tag is the whole
 *   session key): `i` = the full name of the owner's index, `e` = the expiry the index holds for
 *   it; or, after destroy/revoke, only `x` = 1 (a tombstone: the id is never written again);
 * - `kp` + `indexPrefix` + `{user}`: the owner's index, a sorted set of ids scored by expiry (ms).
 *
 * The index may lag a session's TTL (reads refresh the TTL without writing the index) by at
 * most `lag` ms, so an entry is certainly dead only once its score is `grace` (> lag) ms past;
 * only then is it pruned by score, and the index key expires `grace` ms after its last entry.
 *
 * On a standalone Redis (`ARGV` flag `inline` = 1) each operation is one script that also
 * updates the index named in the companion hash. On Cluster the index lives in another slot,
 * so the caller runs the index step itself: index first when a session is written, session
 * first when one is deleted. Then every live session with an owner is indexed at every instant,
 * and an index entry is a hint checked against the companion hash before it is trusted.
 */
import { defineScript } from "../core/scripts.js";

const PREAMBLE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Expire the index 'grace' ms after its latest entry (never, for sessions without TTL).
local function index_expire(idx, grace)
  local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #last == 0 then return end
  local score = tonumber(last[2])
  if score == math.huge then redis.call('PERSIST', idx) else redis.call('PEXPIREAT', idx, math.floor(score + grace)) end
end

-- Add or move 'sid' in the index; returns ids past 'max' (oldest expiry first, never 'sid').
local function index_put(idx, sid, exp, now, grace, max)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. (now - grace))
  redis.call('ZADD', idx, exp, sid)
  local evict = {}
  local over = redis.call('ZCARD', idx) - max
  if over > 0 then
    for _, id in ipairs(redis.call('ZRANGE', idx, 0, over)) do
      if id ~= sid and #evict < over then evict[#evict + 1] = id end
    end
  end
  index_expire(idx, grace)
  return evict
end

-- Expiry in ms for a TTL in ms (0 = no TTL).
local function expiry(now, ttl)
  if ttl > 0 then return now + ttl end
  return math.huge
end

-- Turns the companion hash into a tombstone kept as long as the session could have lived (and
-- never shorter than a tombstone already there).
local function bury(sk, mk, keep)
  local pttl = redis.call('PTTL', sk)
  if pttl > keep then keep = pttl end
  if redis.call('HEXISTS', mk, 'x') == 1 then
    local left = redis.call('PTTL', mk)
    if left > keep then keep = left end
  end
  redis.call('DEL', sk, mk)
  redis.call('HSET', mk, 'x', '1')
  redis.call('PEXPIRE', mk, keep)
end
`;

/**
 * Reads a session and refreshes its TTL (the `touch` express-session would send at the end).
 * KEYS: session, companion. ARGV: mode (`none` | `json`: TTL from the session's
 * `cookie.originalMaxAge`, else ARGV[2] | `fixed`: ARGV[2]), ttlMs, lag, grace, inline, want
 * value, sid.
 * Returns nil when missing, else { value or false, index name or false, new expiry or false,
 * expiry the index held }; an index name is returned (Cluster) when the index lags more than
 * `lag` and the caller must move it forward with `session_bump` and `session_seen`. Inline,
 * the script does that itself. A missing entry is added back: the companion names the owner.
 */
export const READ = defineScript(
  "session_read",
  `${PREAMBLE}
local v = redis.call('GET', KEYS[1])
if not v then return nil end
local out = { false, false, false, false }
if ARGV[6] == '1' then out[1] = v end
local mode = ARGV[1]
if mode == 'none' then return out end
local ttl = tonumber(ARGV[2])
if mode == 'json' then
  local ok, s = pcall(cjson.decode, v)
  if ok and type(s) == 'table' and type(s.cookie) == 'table' and type(s.cookie.originalMaxAge) == 'number' then
    ttl = math.ceil(s.cookie.originalMaxAge / 1000) * 1000
  end
end
if ttl <= 0 then return out end
redis.call('PEXPIRE', KEYS[1], ttl)
local m = redis.call('HMGET', KEYS[2], 'i', 'e')
if not m[1] then return out end
redis.call('PEXPIRE', KEYS[2], ttl)
local now = now_ms()
local exp = now + ttl
if exp - tonumber(m[2] or 0) <= tonumber(ARGV[3]) then return out end
if ARGV[5] == '1' then
  if redis.call('ZADD', m[1], 'GT', 'CH', exp, ARGV[7]) == 1 then
    index_expire(m[1], tonumber(ARGV[4]))
  end
  redis.call('HSET', KEYS[2], 'e', exp)
  return out
end
out[2] = m[1]
out[3] = exp
out[4] = m[2] or ''
return out
`,
);

/**
 * Cluster step 1 of a lagging read: KEYS: index. ARGV: sid, expiry, grace. Adds the entry back
 * if it went missing; an entry for a session revoked meanwhile is only a dead hint (listings
 * and revokes check the owner), pruned by score.
 */
export const BUMP = defineScript(
  "session_bump",
  `${PREAMBLE}
if redis.call('ZADD', KEYS[1], 'GT', 'CH', ARGV[2], ARGV[1]) == 1 then
  index_expire(KEYS[1], tonumber(ARGV[3]))
end
return 1
`,
);

/**
 * Cluster step 2 of a lagging read: KEYS: companion. ARGV: expiry, the expiry read before.
 * Compare-and-set: a write in between (which may have shortened the entry) wins.
 */
export const SEEN = defineScript(
  "session_seen",
  `if redis.call('HGET', KEYS[1], 'e') == ARGV[2] then redis.call('HSET', KEYS[1], 'e', ARGV[1]) end
return 1
`,
);

/** Cluster step 1 of a write with an owner: KEYS: index. ARGV: sid, ttlMs, grace, max. Returns ids to evict. */
export const INDEX_PUT = defineScript(
  "session_index_put",
  `${PREAMBLE}
local now = now_ms()
return index_put(KEYS[1], ARGV[1], expiry(now, tonumber(ARGV[2])), now, tonumber(ARGV[3]), tonumber(ARGV[4]))
`,
);

/**
 * Writes a session unless its id is tombstoned.
 * KEYS: session, companion, [index when inline and owned]. ARGV: value, ttlMs (0 = none),
 * index name ('' = no owner), grace, max, sid, inline, lag.
 * Returns { 1 = written | 0 = tombstoned, previous index name or '', ids to evict... }.
 * Inline, a write by the same owner whose index entry lags by at most `lag` leaves the index
 * alone (as a read would), so a busy session costs its index nothing on most writes.
 */
export const WRITE = defineScript(
  "session_write",
  `${PREAMBLE}
if redis.call('HEXISTS', KEYS[2], 'x') == 1 then return { 0, '' } end
local ttl = tonumber(ARGV[2])
local owner = ARGV[3]
local now = now_ms()
local exp = expiry(now, ttl)
local inline = ARGV[7] == '1'
local m = redis.call('HMGET', KEYS[2], 'i', 'e')
local prev = m[1]
local indexed = exp
local out = { 1, prev or '' }
if inline and owner ~= '' then
  if prev == owner and ttl > 0 and m[2] and exp - tonumber(m[2]) <= tonumber(ARGV[8]) then
    indexed = tonumber(m[2])
  else
    local evict = index_put(KEYS[3], ARGV[6], exp, now, tonumber(ARGV[4]), tonumber(ARGV[5]))
    for _, id in ipairs(evict) do out[#out + 1] = id end
  end
end
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[1]) end
if owner ~= '' then
  redis.call('HSET', KEYS[2], 'i', owner, 'e', indexed)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
elseif prev then
  redis.call('DEL', KEYS[2])
end
if inline and prev and prev ~= owner then redis.call('ZREM', prev, ARGV[6]) end
return out
`,
);

/**
 * Deletes a session and tombstones its id: destroy (any owner) or revoke (only if the owner's
 * index is ARGV[1]). KEYS: session, companion. ARGV: required index ('' = any), tombstone
 * minimum ms, sid, inline. Returns { 1, index name or '' }, { 0 } when someone else's, or
 * { 2, '' } when a revoke found no owner (the id is tombstoned all the same).
 */
export const KILL = defineScript(
  "session_kill",
  `${PREAMBLE}
local owner = redis.call('HGET', KEYS[2], 'i')
if ARGV[1] ~= '' and owner and owner ~= ARGV[1] then return { 0 } end
bury(KEYS[1], KEYS[2], tonumber(ARGV[2]))
-- No owner yet (on Cluster, a write between its index step and its session step): the
-- tombstone makes that write fail, so a revoked-everywhere user cannot keep it.
if not owner then return { ARGV[1] == '' and 1 or 2, '' } end
if ARGV[4] == '1' then redis.call('ZREM', owner, ARGV[3]) end
return { 1, owner }
`,
);

/**
 * Standalone only: revokes every session in one index but one, in one script.
 * KEYS: index. ARGV: full index name, session key prefix (with keyPrefix), except ('' = none),
 * tombstone minimum ms, keyPrefix. Returns the revoked ids.
 */
export const KILL_ALL = defineScript(
  "session_kill_all",
  `${PREAMBLE}
local revoked = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[3] then
    local sk = ARGV[2] .. sid
    local mk = ARGV[5] .. '{' .. sk .. '}:m'
    if redis.call('HGET', mk, 'i') == ARGV[1] then
      bury(sk, mk, tonumber(ARGV[4]))
      revoked[#revoked + 1] = sid
    end
    -- Standalone writes move entries atomically: one not (or no longer) this user's is dead.
    redis.call('ZREM', KEYS[1], sid)
  end
end
return revoked
`,
);

/** Reads a session for a listing, without refreshing it. KEYS: session, companion. Returns { value, pttl, index name } or nil. */
export const PEEK = defineScript(
  "session_peek",
  `local v = redis.call('GET', KEYS[1])
if not v then return nil end
return { v, redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'i') }
`,
);

/**
 * Lua scripts of the session store.
 *
 * Keys of one session id `SID` (names as Redis sees them, `kp` = the client's `keyPrefix`):
 * - `kp` + `prefix` + `SID`: the session, a string written by the serializer, exactly as
 *   connect-redis writes it (so sessions survive a switch from connect-redis and back);
 * - `{kp prefix SID}:m`: its companion hash, in the same Cluster slot (its hash tag is the whole
 *   session key): `i` = the full name of the owner's index, `e` = the expiry the index holds for
 *   it; or, after destroy/revoke, only `x` = 1 (a tombstone: the id is never written again);
 * - `kp` + `indexPrefix` + `{user}`: the owner's index, a sorted set of ids scored by expiry (ms).
 *
 * The index may lag a session's TTL (reads refresh the TTL without writing the index) by at
 * most `LAG_MS`, so an entry is certainly dead only once its score is `GRACE_MS` (> lag) past;
 * only then is it pruned by score, and the index key expires `GRACE_MS` after its last entry.
 *
 * On a standalone Redis (`inline` = 1) each operation is one script that also updates the index
 * named in the companion hash. On Cluster the index lives in another slot, so the caller runs
 * the index step itself: index first when a session is written, session first when one is
 * deleted. Then every live session with an owner is indexed at every instant, and an index
 * entry is a hint checked against the companion hash before it is trusted.
 *
 * Every script below has the same form: a block naming each KEYS[i] and ARGV[i] and the reply,
 * and a body that binds its arguments to local names first.
 */
import { defineScript } from "../core/scripts.js";

/** An index entry is certainly dead `GRACE_MS` after its score. */
export const GRACE_MS = 60_000;
/** A read moves the index forward once it lags the session's expiry by more than this. */
export const LAG_MS = 30_000;

const PREAMBLE = `
local GRACE = ${GRACE_MS}
local LAG = ${LAG_MS}

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Expire the index GRACE ms after its latest entry (never, for sessions without TTL).
local function index_expire(idx)
  local last = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #last == 0 then return end
  local score = tonumber(last[2])
  if score == math.huge then redis.call('PERSIST', idx) else redis.call('PEXPIREAT', idx, math.floor(score + GRACE)) end
end

-- Add or move 'sid' in the index; returns ids past 'max' (oldest expiry first, never 'sid').
local function index_put(idx, sid, exp, now, max)
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. (now - GRACE))
  redis.call('ZADD', idx, exp, sid)
  local evict = {}
  local over = redis.call('ZCARD', idx) - max
  if over > 0 then
    for _, id in ipairs(redis.call('ZRANGE', idx, 0, over)) do
      if id ~= sid and #evict < over then evict[#evict + 1] = id end
    end
  end
  index_expire(idx)
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
 * Read a session and refresh its TTL (`get`: the refresh express-session's `touch` would ask
 * for at the end of the request), or only refresh it (`touch`).
 *
 * KEYS[1]  session    the session string
 * KEYS[2]  companion  its companion hash
 * ARGV[1]  mode       `none`: no refresh; `json`: TTL from the stored session's
 *                     `cookie.originalMaxAge` (whole seconds, rounded up), else ttlMs;
 *                     `fixed`: ttlMs
 * ARGV[2]  ttlMs      the TTL to set (see mode)
 * ARGV[3]  inline     1 on a standalone Redis (the script moves the index itself)
 * ARGV[4]  want       1 to return the value (get), 0 not to (touch)
 * ARGV[5]  sid        the session id (its index member)
 * Returns  nil when missing, else { value or false, index name or false, new expiry or false,
 *          expiry the index held or false, TTL set in ms (0 = none) }. An index name is
 *          returned (Cluster) when the index lags by more than LAG and the caller must move it
 *          forward with `BUMP` then `SEEN`; inline, the script does that itself, adding back a
 *          missing entry (the companion names the owner).
 */
export const READ = defineScript(
  "session_read",
  `${PREAMBLE}
local mode, ttl, inline, want, sid = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4] == '1', ARGV[5]
local v = redis.call('GET', KEYS[1])
if not v then return nil end
local out = { false, false, false, false, 0 }
if want then out[1] = v end
if mode == 'none' then return out end
if mode == 'json' then
  local ok, s = pcall(cjson.decode, v)
  if ok and type(s) == 'table' and type(s.cookie) == 'table' and type(s.cookie.originalMaxAge) == 'number' then
    ttl = math.ceil(s.cookie.originalMaxAge / 1000) * 1000
  end
end
if ttl <= 0 then return out end
redis.call('PEXPIRE', KEYS[1], ttl)
out[5] = ttl
local m = redis.call('HMGET', KEYS[2], 'i', 'e')
if not m[1] then return out end
redis.call('PEXPIRE', KEYS[2], ttl)
local exp = now_ms() + ttl
if exp - tonumber(m[2] or 0) <= LAG then return out end
if inline then
  if redis.call('ZADD', m[1], 'GT', 'CH', exp, sid) == 1 then index_expire(m[1]) end
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
 * Cluster step 1 of a lagging read: move the entry forward (or add it back if it went
 * missing). An entry for a session revoked meanwhile is only a dead hint (listings and revokes
 * check the owner), pruned by score.
 *
 * KEYS[1]  index      the owner's index
 * ARGV[1]  sid        the session id
 * ARGV[2]  expiry     the session's new expiry (ms)
 * Returns  1
 */
export const BUMP = defineScript(
  "session_bump",
  `${PREAMBLE}
local sid, exp = ARGV[1], ARGV[2]
if redis.call('ZADD', KEYS[1], 'GT', 'CH', exp, sid) == 1 then index_expire(KEYS[1]) end
return 1
`,
);

/**
 * Cluster step 2 of a lagging read: record the expiry the index now holds. Compare-and-set: a
 * write in between (which may have shortened the entry) wins.
 *
 * KEYS[1]  companion  the session's companion hash
 * ARGV[1]  expiry     the expiry `BUMP` wrote
 * ARGV[2]  before     the expiry the read saw ('' for none)
 * Returns  1
 */
export const SEEN = defineScript(
  "session_seen",
  `local exp, before = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[1], 'e') == before then redis.call('HSET', KEYS[1], 'e', exp) end
return 1
`,
);

/**
 * Cluster step 1 of a write with an owner: add or move the entry in the owner's index.
 *
 * KEYS[1]  index      the owner's index
 * ARGV[1]  sid        the session id
 * ARGV[2]  ttlMs      the session's TTL (0 = none)
 * ARGV[3]  max        `maxSessionsPerUser`
 * Returns  the ids to evict (past max, oldest expiry first)
 */
export const INDEX_PUT = defineScript(
  "session_index_put",
  `${PREAMBLE}
local sid, ttl, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
return index_put(KEYS[1], sid, expiry(now, ttl), now, max)
`,
);

/**
 * Write a session unless its id is tombstoned. Inline, a write by the same owner whose index
 * entry lags by at most LAG leaves the index alone (as a read would), so a busy session costs
 * its index nothing on most writes.
 *
 * KEYS[1]  session    the session string
 * KEYS[2]  companion  its companion hash
 * KEYS[3]  index      the owner's index (only inline and owned)
 * ARGV[1]  value      the serialized session
 * ARGV[2]  ttlMs      its TTL (0 = none)
 * ARGV[3]  owner      the full name of the owner's index ('' = no owner)
 * ARGV[4]  max        `maxSessionsPerUser`
 * ARGV[5]  sid        the session id
 * ARGV[6]  inline     1 on a standalone Redis
 * Returns  { 1 = written | 0 = tombstoned, previous index name or '', ids to evict... }
 */
export const WRITE = defineScript(
  "session_write",
  `${PREAMBLE}
local value, ttl, owner, max, sid, inline = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6] == '1'
if redis.call('HEXISTS', KEYS[2], 'x') == 1 then return { 0, '' } end
local now = now_ms()
local exp = expiry(now, ttl)
local m = redis.call('HMGET', KEYS[2], 'i', 'e')
local prev = m[1]
local indexed = exp
local out = { 1, prev or '' }
if inline and owner ~= '' then
  if prev == owner and ttl > 0 and m[2] and exp - tonumber(m[2]) <= LAG then
    indexed = tonumber(m[2])
  else
    for _, id in ipairs(index_put(KEYS[3], sid, exp, now, max)) do out[#out + 1] = id end
  end
end
if ttl > 0 then redis.call('SET', KEYS[1], value, 'PX', ttl) else redis.call('SET', KEYS[1], value) end
if owner ~= '' then
  redis.call('HSET', KEYS[2], 'i', owner, 'e', indexed)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
elseif prev then
  redis.call('DEL', KEYS[2])
end
if inline and prev and prev ~= owner then redis.call('ZREM', prev, sid) end
return out
`,
);

/**
 * Delete a session and tombstone its id: destroy (any owner) or revoke (only if its owner's
 * index is `required`).
 *
 * KEYS[1]  session    the session string
 * KEYS[2]  companion  its companion hash
 * ARGV[1]  required   the full name of the index it must belong to ('' = any)
 * ARGV[2]  keepMs     the tombstone's shortest life
 * ARGV[3]  sid        the session id
 * ARGV[4]  inline     1 on a standalone Redis (the script removes the index entry)
 * Returns  { 1, index name or '' } done; { 0 } someone else's (nothing done); { 2, '' } a
 *          revoke that found no owner (the id is tombstoned all the same)
 */
export const KILL = defineScript(
  "session_kill",
  `${PREAMBLE}
local required, keep, sid, inline = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local owner = redis.call('HGET', KEYS[2], 'i')
if required ~= '' and owner and owner ~= required then return { 0 } end
bury(KEYS[1], KEYS[2], keep)
-- No owner yet (on Cluster, a write between its index step and its session step): the
-- tombstone makes that write fail, so a revoked-everywhere user cannot keep it.
if not owner then return { required == '' and 1 or 2, '' } end
if inline then redis.call('ZREM', owner, sid) end
return { 1, owner }
`,
);

/**
 * Standalone only: revoke every session in one index but one, in one script.
 *
 * KEYS[1]  index      the user's index
 * ARGV[1]  owner      its full name (as the companions hold it)
 * ARGV[2]  sessions   the session key prefix, with the client's keyPrefix
 * ARGV[3]  except     a session id to keep ('' = none)
 * ARGV[4]  keepMs     the tombstones' shortest life
 * ARGV[5]  keyPrefix  the client's keyPrefix ('' without)
 * Returns  the revoked ids
 */
export const KILL_ALL = defineScript(
  "session_kill_all",
  `${PREAMBLE}
local owner, sessions, except, keep, kp = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local revoked = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= except then
    local sk = sessions .. sid
    local mk = kp .. '{' .. sk .. '}:m'
    if redis.call('HGET', mk, 'i') == owner then
      bury(sk, mk, keep)
      revoked[#revoked + 1] = sid
    end
    -- Standalone writes move entries atomically: one not (or no longer) this user's is dead.
    redis.call('ZREM', KEYS[1], sid)
  end
end
return revoked
`,
);

/**
 * Read a session for a listing, without refreshing it.
 *
 * KEYS[1]  session    the session string
 * KEYS[2]  companion  its companion hash
 * Returns  nil when missing, else { value, PTTL, index name or false }
 */
export const PEEK = defineScript(
  "session_peek",
  `local v = redis.call('GET', KEYS[1])
if not v then return nil end
return { v, redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'i') }
`,
);

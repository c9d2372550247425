//! The Lua scripts that make each step atomic. Every script touches exactly one Redis key
//! (`KEYS[1]`), so each runs whole on the one node owning that key's slot, in a cluster too.
//!
//! They run through `EVALSHA` (loaded on first `NOSCRIPT`). A replayed call (the client
//! retries once after a dropped connection, not knowing whether the first call ran) is
//! harmless in each: see the notes per script.

use std::sync::LazyLock;

use redis::Script;

/// Writes a record. `KEYS[1]` record; `ARGV`: mode (`put`: always; `new`: only when no live
/// record is there; `replace`: only over a live record; `replace_if`: only over a live record
/// whose value is `ARGV[10]`), now, ttl seconds (`0`: already expired, only remove what is
/// there), exp, created, updated, generation, index list, value, expected value.
///
/// Reply `{written, old generation, old index list}`: `written` is 0 when the mode's condition
/// failed; the old fields are nil when nothing was replaced. A replay finds its own
/// generation in place and reports success without touching it, never naming its own
/// generation as "old" (which would have the caller remove its fresh index entries).
pub(crate) static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local now = tonumber(ARGV[2])
local kind = redis.call('TYPE', key)['ok']
local old_gen, old_idx = false, false
if kind == 'hash' then
  local old = redis.call('HMGET', key, 'f', 'exp', 'g', 'idx')
  local exp = tonumber(old[2])
  if old[1] ~= '1' or exp == nil then
    return redis.error_reply('WARDCORRUPT record in an unknown format')
  end
  if old[3] == ARGV[7] then return {1, false, false} end
  if exp > now then
    if ARGV[1] == 'new' then return {0, false, false} end
    if ARGV[1] == 'replace_if' and redis.call('HGET', key, 'v') ~= ARGV[10] then
      return {0, false, false}
    end
  elseif ARGV[1] == 'replace' or ARGV[1] == 'replace_if' then
    return {0, false, false}
  end
  old_gen, old_idx = old[3], old[4]
elseif kind ~= 'none' then
  return redis.error_reply('WARDCORRUPT record key holds another type')
elseif ARGV[1] == 'replace' or ARGV[1] == 'replace_if' then
  return {0, false, false}
end
redis.call('DEL', key)
if ARGV[3] ~= '0' then
  redis.call('HSET', key, 'f', '1', 'exp', ARGV[4], 'c', ARGV[5], 'u', ARGV[6],
    'g', ARGV[7], 'idx', ARGV[8], 'v', ARGV[9])
  redis.call('EXPIRE', key, ARGV[3])
end
return {1, old_gen, old_idx}
"#,
    )
});

/// Removes a record and returns it. `KEYS[1]` record; `ARGV[1]`: `take` (also return the
/// value), `delete`, or `delete_if` (only when its value is `ARGV[2]`: otherwise nothing is
/// removed and the reply is nil, as for an absent record).
///
/// Reply nil when absent, else `{f, exp, generation, index list, value or f}`. Expired records
/// are removed too; the caller reads `exp` to tell whether it was live. A record this build
/// cannot read is left in place and reported (`WARDCORRUPT`), as the other backends do. A replay
/// finds nothing and answers nil: a single-use record is never handed out twice (a replayed
/// `delete_if` then reports "not held", which a lock's owner only logs).
pub(crate) static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return false end
if kind ~= 'hash' then
  return redis.error_reply('WARDCORRUPT record key holds another type')
end
local last = 'f'
if ARGV[1] == 'take' then last = 'v' end
local r = redis.call('HMGET', key, 'f', 'exp', 'g', 'idx', last)
if r[1] ~= '1' or tonumber(r[2]) == nil then
  return redis.error_reply('WARDCORRUPT record in an unknown format')
end
if ARGV[1] == 'delete_if' and redis.call('HGET', key, 'v') ~= ARGV[2] then return false end
redis.call('DEL', key)
return r
"#,
    )
});

/// Removes a record only if it has expired. `KEYS[1]` record; `ARGV[1]` now.
///
/// Reply `{1, generation, index list}` when removed, `{0, exp}` when live, `{-1}` when absent,
/// `{-2}` when unreadable (left in place: `get` reports it, the sweep moves on).
pub(crate) static SWEEP_ONE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return {-1} end
if kind ~= 'hash' then return {-2} end
local r = redis.call('HMGET', key, 'f', 'exp', 'g', 'idx')
local exp = tonumber(r[2])
if r[1] ~= '1' or exp == nil then return {-2} end
if exp > tonumber(ARGV[1]) then return {0, r[2]} end
redis.call('DEL', key)
return {1, r[3], r[4]}
"#,
    )
});

/// Adds a member to a ZSET and keeps the set alive long enough. `KEYS[1]` ZSET; `ARGV`:
/// member, score, ttl seconds (`0`: leave the set's TTL alone), trim bound (members scored at
/// or below it are dropped first). Idempotent.
pub(crate) static ZSET_ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[4])
redis.call('ZADD', key, ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 and redis.call('TTL', key) < ttl then
  redis.call('EXPIRE', key, ttl)
end
return 1
"#,
    )
});

/// Removes a member only while it still has the score the caller saw, so a member re-added
/// meanwhile by a newer write stays. `KEYS[1]` ZSET; `ARGV`: member, score. Idempotent.
pub(crate) static ZSET_REMOVE_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"#,
    )
});

/// One hit on a sliding window (`ward_store::rate`). `KEYS[1]` HASH: field = sub-window
/// index, value = hits counted in it; `ARGV`: the current sub-window, how many sub-windows
/// before the newest still count, the limit, the key's TTL in milliseconds.
///
/// The newest sub-window is the later of the caller's and the newest stored (another
/// instance's clock may run ahead): never less than was counted. Older fields are deleted;
/// the rest are summed; below the limit the hit is counted in the newest. Reply
/// `{accepted 0|1, sub-window, count, …}` with the pairs that still count, for the caller's
/// `Retry-After`. A replay (retry after a dropped connection) may count a hit twice: the
/// error is on the side of refusing, never of a larger budget.
pub(crate) static RATE_HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key = KEYS[1]
local newest_field = ARGV[1]
local newest = tonumber(ARGV[1])
local reach = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  local s = tonumber(flat[i])
  if s > newest then newest, newest_field = s, flat[i] end
end
local total, reply = 0, {0}
for i = 1, #flat, 2 do
  if tonumber(flat[i]) < newest - reach then
    redis.call('HDEL', key, flat[i])
  else
    total = total + tonumber(flat[i + 1])
    table.insert(reply, flat[i])
    table.insert(reply, flat[i + 1])
  end
end
if total < limit then
  local count = redis.call('HINCRBY', key, newest_field, 1)
  reply[1] = 1
  local found = false
  for i = 2, #reply, 2 do
    if reply[i] == newest_field then reply[i + 1] = tostring(count) found = true end
  end
  if not found then
    table.insert(reply, newest_field)
    table.insert(reply, tostring(count))
  end
end
redis.call('PEXPIRE', key, ARGV[4])
return reply
"#,
    )
});

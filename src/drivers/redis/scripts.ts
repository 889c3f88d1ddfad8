import { createHash } from 'node:crypto';
import type { Connection } from './client.js';

/**
 * The Lua scripts of the Redis driver: each step that reads and writes a
 * lock's keys runs as one script, so no other client's command comes between
 * (see docs/internals/redis-lease.md). Times are the server's (`TIME`), so
 * the clients' clocks never have to agree; replies carry durations only.
 *
 * Keys of one lock (`<base>` = `<prefix>{<name>}`, one hash slot):
 * - `<base>:holders`: sorted set, holder token -> lease end (server ms);
 * - `<base>:records`: hash, holder token -> `<kind> <limit> <slot> <fence> <record JSON>`;
 * - `<base>:fence`: the fencing counter (INCR), never expires;
 * - `<base>:writers`: sorted set, waiting writer id -> end of its announcement.
 */

/** Common prologue: `now` (server ms), sweep() drops expired holders (sweepWriters() expired writers), expire() keeps the keys no longer than their last lease. */
const PROLOGUE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function sweep()
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    redis.call('HDEL', KEYS[2], unpack(gone))
  end
end
local function sweepWriters()
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
end
local function expire(key, other)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 2 then
    redis.call('PEXPIREAT', key, last[2])
    if other then redis.call('PEXPIREAT', other, last[2]) end
  end
end
local function soonest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 2 then return tonumber(first[2]) - now end
  return -1
end
`;

/**
 * Acquire. KEYS: holders, records, fence, writers. ARGV: token, lease ms,
 * kind (`x` exclusive, `s` shared, `c` counted), limit, record JSON, writer
 * id (an exclusive waiter's: announced in `writers` while it waits, so new
 * shared holders queue behind it; empty for a single attempt).
 * Returns `{1, fence, slot}`; `{0, ms until the soonest lease end or -1}`
 * when busy; `{-1, held kind, held limit}` when the holders disagree.
 */
const ACQUIRE = `${PROLOGUE}
sweep()
local kind, limit, writer = ARGV[3], tonumber(ARGV[4]), ARGV[6]
local holders = redis.call('ZRANGE', KEYS[1], 0, -1)
local heldKind, heldLimit = nil, 1
if #holders > 0 then
  local v = redis.call('HGET', KEYS[2], holders[1]) or 'x 1'
  local k, l = string.match(v, '^(%a) (%d+)')
  heldKind, heldLimit = k, tonumber(l)
end
if heldKind and ((heldKind == 'c' and (kind ~= 'c' or heldLimit ~= limit)) or (heldKind ~= 'c' and kind == 'c')) then
  return {-1, heldKind, heldLimit}
end
local busy = false
if kind == 'x' then busy = #holders > 0
elseif kind == 's' then
  sweepWriters()
  busy = heldKind == 'x' or redis.call('ZCARD', KEYS[4]) > 0
else busy = heldKind == 'x' or #holders >= limit end
if busy then
  if writer ~= '' then
    sweepWriters()
    redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), writer)
    expire(KEYS[4])
  end
  local wait = soonest(KEYS[1])
  if kind == 's' then
    local w = soonest(KEYS[4])
    if w >= 0 and (wait < 0 or w < wait) then wait = w end
  end
  return {0, wait}
end
local slot = -1
if kind == 'c' then
  local used = {}
  for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
    local s = string.match(v, '^%a %d+ (%-?%d+)')
    if s then used[tonumber(s)] = true end
  end
  slot = 0
  while used[slot] do slot = slot + 1 end
end
local fence = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], kind .. ' ' .. limit .. ' ' .. slot .. ' ' .. fence .. ' ' .. ARGV[5])
if #holders == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
else
  expire(KEYS[1], KEYS[2])
end
if writer ~= '' then redis.call('ZREM', KEYS[4], writer) end
return {1, fence, slot}
`;

/**
 * Extend. KEYS: holders, records, fence (unused), writers. ARGV: token,
 * lease ms. Returns -1 when the token no longer holds a running lease (it
 * ended, or the key is gone), else the number of waiting writers.
 */
const EXTEND = `${PROLOGUE}
sweepWriters()
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ends or tonumber(ends) <= now then return -1 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
expire(KEYS[1], KEYS[2])
return redis.call('ZCOUNT', KEYS[4], now + 1, '+inf')
`;

/**
 * Release: removes the token only if it is still there (compare, then
 * delete: a holder whose lease ended never removes another's), and wakes
 * the waiters. KEYS: holders, records. ARGV: token, channel. Returns 1 when removed.
 */
const RELEASE = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], '1')
return 1
`;

/** A waiting writer gives up its announcement (got the lock elsewhere, timed out, aborted). KEYS: writers. ARGV: id, channel. */
const WITHDRAW = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('PUBLISH', ARGV[2], '1') end
return 0
`;

/** Every holder whose lease runs: their record values. KEYS: holders, records. */
const HOLDERS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
if #tokens == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(tokens))
`;

/** A script sent by its SHA-1 (EVALSHA), and in full once when the server does not know it yet. */
export class Script {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * Sends the script in full (EVAL: there is no later tick to retry a
   * NOSCRIPT) in this tick, without waiting for the reply (process exit): a
   * client that writes to its socket at once (ioredis) delivers it.
   */
  sendNow(connection: Connection, keys: readonly string[], args: readonly string[]): void {
    connection.command(['EVAL', this.#source, String(keys.length), ...keys, ...args]).catch(() => {});
  }

  async run(connection: Connection, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await connection.command(['EVALSHA', this.#sha, ...tail]);
    } catch (error) {
      if (!String((error as Error | null)?.message).includes('NOSCRIPT')) throw error;
      return connection.command(['EVAL', this.#source, ...tail]);
    }
  }
}

export const SCRIPTS = {
  acquire: new Script(ACQUIRE),
  extend: new Script(EXTEND),
  release: new Script(RELEASE),
  withdraw: new Script(WITHDRAW),
  holders: new Script(HOLDERS),
};

import { describe } from '../../shared/describe.js';
import { InvalidArgumentError } from '../../shared/errors.js';
import { integerInRange, MAX_WAIT_MS, optionalString, optionsRecord, type OptionsShape } from '../../shared/validate.js';
import { connectionOf, flavourOf } from './client.js';
import { loadClientModule, openConnection } from './connect.js';
import { createRedisDriver } from './driver.js';
import { Link } from './link.js';
import type { AsyncLockDriver } from '../types.js';

/**
 * `exclusive-process/redis`: locks shared by every process that reaches one
 * Redis server, through leases kept by Lua scripts. `ioredis` and `redis`
 * (optional peer dependencies) are loaded by this entry point only.
 */

/**
 * Options of {@link redis}: `client` or `url` (exactly one).
 *
 * @example
 * ```ts
 * const options: RedisOptions = { url: 'redis://localhost:6379', lease: 10_000 };
 * ```
 */
export interface RedisOptions {
  /**
   * An ioredis client (`new Redis()`, `Cluster`) or a connected node-redis
   * v4+ client (`createClient()` after `connect()`). Used as is; the driver
   * duplicates it for a subscriber connection (waits, shared holds), which it
   * closes itself. The client stays yours to close. Default: none.
   */
  client?: unknown;
  /**
   * `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). The
   * driver opens its connections with ioredis, else node-redis, and closes
   * them at exit; they do not keep the process alive. Default: none.
   */
  url?: string;
  /** Start of every key (and channel) the driver uses. Default: `'exclusive-process:'`. */
  prefix?: string;
  /**
   * How long a holder's lease lasts, in ms: the longest a holder that
   * died without releasing (`kill -9`, a lost machine) or froze keeps the
   * lock (Redis cannot know a client died). A live holder extends it every
   * `lease / 3` and is told through `lock.signal` (a `LockLostError`)
   * before it ends when it cannot. Choose it longer than any pause the
   * holder's process may see (GC, a busy event loop, a slow network),
   * short enough for the wait you accept after a crash. Default: `10000`.
   */
  lease?: number;
  /**
   * Bound on connecting and on each command, in ms. An unreachable server,
   * a bad address or a refused password fails within it with a
   * `LockDriverError` (`ERR_DRIVER_UNAVAILABLE`). Default: `5000`.
   */
  connectTimeout?: number;
}

const REDIS_OPTIONS: OptionsShape = {
  known: ['client', 'url', 'prefix', 'lease', 'connectTimeout'],
  aliases: { connectionString: 'url', redis: 'client', ttl: 'lease', duration: 'lease', keyPrefix: 'prefix' },
  notObject: 'redis(options) needs an object',
  notAnOption: 'is not a redis() option',
};

/**
 * A driver that keeps locks in Redis, for exclusion across machines. Pass
 * it as the `driver` option of any asynchronous form of the API.
 *
 * - Each hold is a lease (`lease` ms) extended in the background; a holder
 *   that can no longer be sure of it (an extension failed, the connection
 *   dropped, the process froze past it) sees `lock.signal` abort with a
 *   `LockLostError` before the lease ends by its own clock.
 * - `lock.fencingToken`: a bigint that grows with every acquisition of the
 *   name (a counter in Redis): give it to the resource you protect.
 * - Waits sleep until a release is published (pub/sub), or the current
 *   holder's lease ends; `mode: 'shared'` and `limit` are supported.
 * - Not guaranteed: a failover to a replica that missed the write, or a
 *   restart without persistence, loses locks (and counters).
 *
 * Create one driver per process and reuse it.
 *
 * @throws {InvalidArgumentError} for bad options, at once.
 * @throws {LockDriverError} `ERR_DRIVER_UNAVAILABLE` with `url` when neither `ioredis` nor `redis` is installed.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis';
 * import { exclusive } from 'exclusive-process';
 * import { redis } from 'exclusive-process/redis';
 *
 * const driver = redis({ client: new Redis(process.env.REDIS_URL) });
 * const reindex = exclusive(async () => work({ signal: exclusive.signal() }), { name: 'reindex', driver, wait: 60_000 });
 * await reindex();
 * ```
 */
export function redis(options: RedisOptions): AsyncLockDriver {
  const o = optionsRecord(options, REDIS_OPTIONS);
  const prefix = parsePrefix(o.prefix);
  const leaseMs = o.lease === undefined ? 10_000 : integerInRange(o.lease, 'lease', 100, MAX_WAIT_MS);
  const timeoutMs = o.connectTimeout === undefined ? 5000 : integerInRange(o.connectTimeout, 'connectTimeout', 1, MAX_WAIT_MS);
  if ((o.client === undefined) === (o.url === undefined)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'redis() needs exactly one of options.client and options.url');
  }
  if (o.client !== undefined) {
    if (flavourOf(o.client) === undefined) {
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_TYPE',
        `options.client must be an ioredis client or a node-redis (v4+) client, got ${describe(o.client)}`
      );
    }
    const connection = connectionOf(o.client);
    const where = whereOfClient(o.client);
    const link = new Link({ where, commandTimeoutMs: timeoutMs, owned: false, open: () => Promise.resolve(connection) });
    return createRedisDriver({ link, base: `redis://${where}#`, prefix, leaseMs });
  }
  const url = parseUrl(o.url);
  const loaded = loadClientModule();
  const where = `${url.hostname || 'localhost'}:${url.port || '6379'}/${url.pathname.slice(1) || '0'}`;
  const link = new Link({
    where,
    commandTimeoutMs: timeoutMs,
    owned: true,
    open: () => openConnection(loaded, url.href, where, timeoutMs),
  });
  return createRedisDriver({ link, base: `redis://${where}#`, prefix, leaseMs });
}

function parsePrefix(value: unknown): string {
  const prefix = optionalString(value, 'prefix') ?? 'exclusive-process:';
  if (/[{}]/.test(prefix)) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      "options.prefix must not contain '{' or '}' (the driver adds the hash tag itself)"
    );
  }
  return prefix;
}

function parseUrl(value: unknown): URL {
  const text = optionalString(value, 'url')!;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', "options.url must be a URL such as 'redis://user:password@host:6379/0'");
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.url must start with redis:// or rediss://, got ${url.protocol}//`);
  }
  if (url.pathname.length > 1 && !/^\/\d+$/.test(url.pathname)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'options.url may only name a database number (redis://host:6379/0)');
  }
  return url;
}

/** `host:port/db` of a client, as its options say (for messages and the in-process registry key). */
function whereOfClient(client: unknown): string {
  const options = (client as { options?: Record<string, unknown> }).options ?? {};
  if (typeof options.url === 'string') {
    try {
      const url = new URL(options.url);
      return `${url.hostname || 'localhost'}:${url.port || '6379'}/${url.pathname.slice(1) || scalar(options.database, '0')}`;
    } catch {
      // Fall through to the fields.
    }
  }
  const socket = (options.socket ?? {}) as Record<string, unknown>;
  const host = scalar(options.host ?? socket.host ?? socket.path, 'localhost');
  const port = scalar(options.port ?? socket.port, '6379');
  return `${host}:${port}/${scalar(options.db ?? options.database, '0')}`;
}

/** A string or number option as text, else `fallback`. */
function scalar(value: unknown, fallback: string): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : fallback;
}

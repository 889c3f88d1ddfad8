import { attemptUnlessAborted } from './acquire.js';
import { keysOfResource } from './acquire.js';
import { recordOfValue } from './holder.js';
import { keyBase, nameOfHoldersKey, scriptKeys } from './keys.js';
import { SCRIPTS } from './scripts.js';
import { waitLockOn } from './wait.js';
import type { Link } from './link.js';
import type { AsyncLockDriver, DriverLock, HolderRecord } from '../types.js';

/**
 * The Redis driver: each lock is a set of leases in Redis (one for an
 * exclusive holder, one per shared holder or slot), taken and given back by
 * Lua scripts, extended in the background, with a fencing counter per name,
 * and pub/sub wake-ups for waiters. See docs/internals/redis-lease.md.
 */

/** What the entry point resolved from the user's options. */
export interface RedisDriverConfig {
  readonly link: Link;
  /** Resource prefix: `redis://host:port/db#`. */
  readonly base: string;
  readonly prefix: string;
  readonly leaseMs: number;
}

export function createRedisDriver(config: RedisDriverConfig): AsyncLockDriver {
  const { link, leaseMs, prefix } = config;
  return {
    kind: 'redis',
    synchronous: false,
    releaseOnSignals: true, // a lease outlives a process killed by a signal
    modes: { shared: true, counted: true },
    locate: (name) => `${config.base}${keyBase(prefix, name)}`,
    tryLock: (resource, record, signal) => tryLockOn(link, resource, record, leaseMs, signal),
    waitLock: (resource, record, signal) => waitLockOn(link, resource, record, signal, leaseMs),
    holder: async (resource, name) => (await holdersOf(link, resource, name))[0] ?? null,
    holders: (resource, name) => holdersOf(link, resource, name),
    list: () => listNames(link, prefix),
    cleanup: () => {
      for (const hold of [...link.holds]) hold.atExit();
      link.close();
    },
  };
}

async function tryLockOn(
  link: Link,
  resource: string,
  record: HolderRecord,
  leaseMs: number,
  signal?: AbortSignal
): Promise<DriverLock | null> {
  const result = await attemptUnlessAborted(link, resource, record, leaseMs, signal);
  return result !== undefined && 'lock' in result ? result.lock : null;
}

/** Every holder whose lease runs, in slot order for a counted lock. */
async function holdersOf(link: Link, resource: string, name: string): Promise<HolderRecord[]> {
  const keys = keysOfResource(resource);
  const values = (await link.run(SCRIPTS.holders, scriptKeys(keys).slice(0, 2), [], 'looking up the holders')) as unknown[];
  const records = values.filter((value) => typeof value === 'string').map((value) => recordOfValue(value, name));
  return records.sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
}

/** The names of the locks held under the prefix now (SCAN; on Redis Cluster, of the node the client reaches). */
async function listNames(link: Link, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}{*}:holders`;
  const names = new Set<string>();
  let cursor = '0';
  do {
    const reply = (await link.send(
      (connection) => connection.command(['SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000']),
      'listing the locks'
    )) as [unknown, string[]];
    cursor = String(reply[0]);
    for (const key of reply[1]) {
      const name = nameOfHoldersKey(prefix, key);
      if (name !== undefined) names.add(name);
    }
  } while (cursor !== '0');
  return [...names].sort();
}

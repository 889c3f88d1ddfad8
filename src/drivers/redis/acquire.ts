import { randomBytes } from 'node:crypto';
import { lockMismatch } from '../../shared/errors.js';
import { limitOf } from '../../shared/holder-record.js';
import { recordJson } from './holder.js';
import { keysOf, scriptKeys, type LockKeys } from './keys.js';
import { holdLock, releaseToken } from './lease.js';
import { SCRIPTS } from './scripts.js';
import { unlessAborted } from './client.js';
import type { Link } from './link.js';
import type { DriverLock, HolderRecord } from '../types.js';

/** The outcome of one attempt: the lock, or how long until the soonest lease of a holder ends (-1: none). */
export type Attempt = { readonly lock: DriverLock } | { readonly retryInMs: number };

/** The key base of a resource (`redis://host:port/db#<base>`, see `locate`). */
export function keysOfResource(resource: string): LockKeys {
  return keysOf(resource.slice(resource.indexOf('#') + 1));
}

/** The script's kind letter of a request: `x` exclusive, `s` shared, `c` counted. */
function kindOf(record: HolderRecord): 'x' | 's' | 'c' {
  if (record.mode === 'shared') return 's';
  return limitOf(record) > 1 ? 'c' : 'x';
}

/**
 * One run of the acquire script. `writer`: an exclusive waiter's id, which
 * the script announces while the lock is busy (new shared holders then
 * queue behind it). Throws ERR_LOCK_MISMATCH when the holders use the name
 * another way, a LockDriverError when Redis is out of reach.
 */
export async function attempt(link: Link, resource: string, record: HolderRecord, leaseMs: number, writer = ''): Promise<Attempt> {
  const keys = keysOfResource(resource);
  const token = randomBytes(12).toString('base64url');
  const kind = kindOf(record);
  const leaseStart = performance.now();
  let reply: unknown[];
  try {
    reply = (await link.run(
      SCRIPTS.acquire,
      scriptKeys(keys),
      [token, String(leaseMs), kind, String(limitOf(record)), recordJson(record), writer],
      'acquiring the lock'
    )) as unknown[];
  } catch (error) {
    // The script may have run even so: a lock nobody would know of is given back (or ends with its lease).
    void releaseToken(link, keys, token);
    throw error;
  }
  const status = Number(reply[0]);
  if (status === -1) throw mismatch(record, String(reply[1]), Number(reply[2]));
  if (status === 0) return { retryInMs: Number(reply[1]) };
  const fence = BigInt(reply[1] as number | string);
  const slot = Number(reply[2]);
  const details = { fencingToken: fence.toString() };
  if (slot >= 0) record.slot = slot;
  return { lock: holdLock(link, { resource, keys, token, record, fence, leaseStart, leaseMs, details }) };
}

/** {@link attempt}, given up (undefined) when `signal` aborts first: a lock its script took after that is given back. */
export function attemptUnlessAborted(
  link: Link,
  resource: string,
  record: HolderRecord,
  leaseMs: number,
  signal: AbortSignal | undefined,
  writer = ''
): Promise<Attempt | undefined> {
  return unlessAborted(attempt(link, resource, record, leaseMs, writer), signal, (late) => {
    if ('lock' in late) void Promise.resolve(late.lock.release()).catch(() => {});
  });
}

function mismatch(record: HolderRecord, heldKind: string, heldLimit: number): Error {
  const held = heldKind === 's' ? { mode: 'shared' as const } : heldKind === 'c' ? { limit: heldLimit } : {};
  return lockMismatch(record.name, held, { mode: record.mode, limit: record.limit });
}

import { applicationName, holderTag } from './holder.js';
import { keyOf } from './key.js';
import { holdLock } from './lease.js';
import { lastRow, sqlState, type Session } from './session.js';
import { checkBlockers, joinFamily, pollCounted, takeSlot, unlockAll, useOf } from './modes.js';
import { lockTimeoutSql, TRY_SHARED_SQL, TRY_SQL, WAIT_SHARED_SQL, WAIT_SQL } from './sql.js';
import type { SessionPool } from './pool.js';
import type { DriverLock, HolderRecord } from '../types.js';

/** The parameters of TRY_SQL and WAIT_SQL on `session`. */
function lockParams(session: Session, key: bigint, record: HolderRecord): unknown[] {
  return [key.toString(), applicationName(record), session.backendPid, session.marker];
}

/**
 * `pg_try_advisory_lock` on a dedicated session (shared for a shared or
 * counted request, which also takes a slot first and joins its family
 * after): the lock, or null when held elsewhere.
 */
export async function tryLockOn(
  pool: SessionPool,
  resource: string,
  record: HolderRecord,
  signal?: AbortSignal
): Promise<DriverLock | null> {
  const key = keyOf(resource);
  const use = useOf(record);
  return unlessAborted(signal, () =>
    pool.onSession(
      'trying the lock',
      async (session) => {
        const foreign = (): Error => pool.foreignSession(session, 'trying the lock');
        // The server's idle clock (idle_session_timeout) starts when it ends the
        // statement, which is after we sent it: the lease counts from then.
        const leaseStart = performance.now();
        const slot = use === 'counted' ? await takeSlot(session, key, record, foreign) : -1;
        if (slot === null) return busy(pool, session, key, record);
        const row = lastRow(
          await session.query(holderTag(record) + (use === 'plain' ? TRY_SQL : TRY_SHARED_SQL), lockParams(session, key, record))
        );
        if (row.ok === null) throw foreign();
        if (row.ok !== true) {
          if (slot >= 0) await unlockAll(session, foreign);
          return busy(pool, session, key, record);
        }
        if (use !== 'plain' && !(await joinFamily(session, key, record, foreign))) return busy(pool, session, key, record);
        return holdLock(pool, { session, record, resource, key, token: BigInt(row.token as string), leaseStart });
      },
      signal
    )
  );
}

/** Null for a request that found the lock busy, unless what keeps it out disagrees with it (ERR_LOCK_MISMATCH); the session, holding nothing, goes back. */
async function busy(pool: SessionPool, session: Session, key: bigint, record: HolderRecord): Promise<null> {
  await checkBlockers(session, key, record);
  pool.give(session);
  return null;
}

/** `null` instead of the error when `signal` aborted the attempt (a connection being opened is closed at once). */
async function unlessAborted(signal: AbortSignal | undefined, attempt: () => Promise<DriverLock | null>): Promise<DriverLock | null> {
  try {
    return await attempt();
  } catch (error) {
    if (signal?.aborted) return null;
    throw error;
  }
}

/**
 * `pg_advisory_lock` (or `_shared`) under `lock_timeout` on a dedicated
 * session: the server's own queue, where a shared request waits behind an
 * exclusive one queued before it. `signal` sends a CancelRequest. A counted
 * request tries again until a slot is free. Null when the wait timed out or
 * was aborted.
 */
export async function waitLockOn(
  pool: SessionPool,
  resource: string,
  record: HolderRecord,
  signal: AbortSignal,
  timeoutMs?: number
): Promise<DriverLock | null> {
  if (signal.aborted) return null;
  if (useOf(record) === 'counted') return pollCounted(() => tryLockOn(pool, resource, record, signal), signal, timeoutMs);
  const key = keyOf(resource);
  return unlessAborted(signal, () =>
    pool.onSession(
      'waiting for the lock',
      async (session) => {
        if (signal.aborted) {
          pool.give(session);
          return null;
        }
        const row = await waitOnSession(pool, session, { key, record, signal, timeoutMs });
        if (row === null) return null;
        if (row.locked === null) throw pool.foreignSession(session, 'waiting for the lock');
        const token = BigInt(row.token as string);
        if (useOf(record) === 'plain') {
          const leaseStart = await restartIdleClock(session, record);
          return holdLock(pool, { session, record, resource, key, token, leaseStart });
        }
        // The statements that join the family restart the idle clock.
        const leaseStart = performance.now();
        if (!(await joinFamily(session, key, record, () => pool.foreignSession(session, 'waiting for the lock')))) {
          pool.give(session);
          return null;
        }
        return holdLock(pool, { session, record, resource, key, token, leaseStart });
      },
      signal
    )
  );
}

interface Wait {
  readonly key: bigint;
  readonly record: HolderRecord;
  readonly signal: AbortSignal;
  readonly timeoutMs: number | undefined;
}

/**
 * Runs WAIT_SQL, cancelled by `wait.signal`: its row once granted, or null
 * when the wait timed out or was cancelled (a session that may still meet a
 * late cancel, or holds a lock granted as we gave up, is closed, not reused).
 */
async function waitOnSession(pool: SessionPool, session: Session, wait: Wait): Promise<Record<string, unknown> | null> {
  const { signal } = wait;
  let cancelled = false;
  let fallback: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    cancelled = true;
    session.cancel();
    // A cancel that never arrives must not leave us waiting: closing the connection ends the wait too.
    fallback = setTimeout(() => session.destroy(), pool.config.queryTimeoutMs);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  let row: Record<string, unknown>;
  try {
    await session.query(lockTimeoutSql(wait.timeoutMs));
    // A cancel that reached the server between the two statements was
    // ignored (nothing ran): do not start a wait nobody wants.
    if (cancelled) throw signal.reason;
    const sql = useOf(wait.record) === 'plain' ? WAIT_SQL : WAIT_SHARED_SQL;
    row = lastRow(await session.query(holderTag(wait.record) + sql, lockParams(session, wait.key, wait.record), Infinity));
  } catch (error) {
    if (waitEnded(pool, session, error, cancelled)) return null;
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
    clearTimeout(fallback);
  }
  if (cancelled) {
    // Granted just as we gave up. A late cancel could still hit this
    // session's next statement, so do not reuse it: closing releases the lock.
    session.destroy();
    return null;
  }
  return row;
}

/** True when a failed wait only ended (cancelled, or timed out by the server), having put the session away. */
function waitEnded(pool: SessionPool, session: Session, error: unknown, cancelled: boolean): boolean {
  if (cancelled) {
    // Our cancel request may still be on its way (the server's own
    // lock_timeout can end the wait first): it would cancel whatever
    // this session runs next, so the session is not reused.
    session.destroy();
    return true;
  }
  if (sqlState(error) === '55P03') {
    pool.give(session); // the server timed the wait out: the session is idle, without the lock
    return true;
  }
  return false;
}

/**
 * When a wait ended on the server is unknown (the reply may have sat in a
 * buffer): one more statement restarts its idle clock after a moment we
 * know, and the lease counts from that, which this returns.
 */
async function restartIdleClock(session: Session, record: HolderRecord): Promise<number> {
  const sentAt = performance.now();
  try {
    await session.query(`${holderTag(record)}SELECT 1`);
  } catch (error) {
    session.destroy(); // closing the connection makes the server release the lock
    throw error;
  }
  return sentAt;
}

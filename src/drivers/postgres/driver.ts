import { LockDriverError, LockLostError } from '../../shared/errors.js';
import { advisoryKeyOf, lockIds } from './key.js';
import { lastRow, messageOf, numberOrNull, Session, sqlState, stringOrNull, type PgModule, type SessionConfig } from './session.js';
import type { AsyncLockDriver, DriverLock, HolderRecord } from '../types.js';

/**
 * The PostgreSQL driver: session advisory locks (`pg_advisory_lock(bigint)`)
 * on sessions dedicated to exclusive-process.
 *
 * - One session per held lock; nobody else queries it, so the lock is ours
 *   alone and dies with the connection (the server releases it at once when
 *   the holder's process dies or its connection drops).
 * - Waiting is the server's own queue: `SET lock_timeout` + `pg_advisory_lock`;
 *   an abort sends a CancelRequest. No client polling.
 * - A holder learns of a loss through `DriverLock.lost`: connection error or
 *   end, a failed heartbeat, or a heartbeat lease that ran out. The lease is
 *   what makes the bound hold for a frozen holder: the server ends a session
 *   idle for `sessionTimeout` (idle_session_timeout), the heartbeat keeps a
 *   live holder's session busy enough, and the client gives the lock up on
 *   its side `sessionTimeout` after the last heartbeat it sent that
 *   succeeded, i.e. never later than the server may have.
 * - Fencing token: `pg_current_xact_id()` taken in a statement that runs
 *   after the lock was granted. Transaction ids only grow in a cluster (64
 *   bits with epoch, never wrap, survive restarts and are replicated), need
 *   no table, sequence or privilege, and the previous holder's id was taken
 *   before it released, so each holder's token exceeds every earlier one.
 *   The statement also writes a WAL message, so its commit is durable
 *   before the token is returned (see AFTER_GRANT).
 */

/** What the entry point resolved from the user's options. */
export interface PostgresDriverConfig extends SessionConfig {
  readonly pg: PgModule;
  /** Resource prefix: `postgres://host:port/database`. */
  readonly base: string;
  readonly heartbeatMs: number;
  /** Idle sessions kept for reuse. */
  readonly maxIdle: number;
}

/** Prefix of our sessions' application_name; holders add `<pid> <since ms> <host>`. */
export const APPLICATION_NAME = 'exclusive-process';
const APPLICATION_NAME_RE = /^exclusive-process (\d+) (\d+)(?: (.*))?$/;

/**
 * What others learn of a holder beyond its application_name (63 bytes): a
 * comment opening every statement of the holding session, read back from
 * `pg_stat_activity.query` (the session's last statement; visible to the
 * same role, superusers and pg_read_all_stats). JSON in ASCII, with `/` and
 * `*` escaped so the comment can neither end nor nest early, and short enough
 * for the default track_activity_query_size (1024 bytes).
 */
const TAG_START = '/* exclusive-process ';
const TAG_MAX = 1000;
const TAG_RE = /^\/\* exclusive-process (\{.*?\}) \*\//;

function holderTag(record: HolderRecord): string {
  for (let command = record.command; ;) {
    const json = JSON.stringify(command === undefined ? {} : { command })
      .replace(/[/*\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    if (command === undefined || TAG_START.length + json.length + 4 <= TAG_MAX) return `${TAG_START}${json} */ `;
    command = `${command.slice(0, Math.floor(command.length * 0.8))}…`;
  }
}

/** The command a holder's tag names, if the asker may read its last statement. */
function commandOfTag(query: unknown): string | undefined {
  const json = typeof query === 'string' ? TAG_RE.exec(query)?.[1] : undefined;
  if (json === undefined) return undefined;
  try {
    const { command } = JSON.parse(json) as { command?: unknown };
    return typeof command === 'string' ? command : undefined;
  } catch {
    return undefined;
  }
}

/** `HolderRecord.details` of a holding session, the same whether the holder or another process asks. */
function holderDetails(backendPid: number, applicationName: string | null, seen: Session['seen']): NonNullable<HolderRecord['details']> {
  return { backendPid, applicationName, clientAddress: seen.clientAddress, clientPort: seen.clientPort, user: seen.user };
}


/**
 * The session guard, part of every statement that takes a lock: true only
 * in the session we prepared ($3, $4: its backend pid and random marker)
 * while it holds no lock of ours (`exclusive_process.holding`). So a lock is
 * never taken in a session that a transaction-mode pooler (PgBouncer)
 * happened to pick, nor re-entered (advisory locks are reentrant) in a
 * pooled server session that already holds it for another client.
 */
const OUR_SESSION = "pg_backend_pid() = $3::int AND current_setting('exclusive_process.session', true) = $4::text " +
  "AND coalesce(current_setting('exclusive_process.holding', true), '') = ''";

/**
 * Columns computed once the lock is granted (`<granted>`): the fencing
 * token; a transactional WAL message, so that this statement's commit is
 * flushed like any write before we return (the session forces
 * synchronous_commit on, see Session), and the token can never be handed
 * out again after a server crash or failover (a transaction that only takes
 * an id writes no WAL, commits asynchronously, and its id may be reissued
 * after a crash; so may any under synchronous_commit = off); the holder's name tag; the
 * holding flag.
 */
const AFTER_GRANT = (granted: string): string =>
  `CASE WHEN ${granted} THEN pg_current_xact_id()::text END AS token, ` +
  `CASE WHEN ${granted} THEN pg_logical_emit_message(true, 'exclusive-process', $1::bigint::text)::text END AS wal, ` +
  `CASE WHEN ${granted} THEN set_config('application_name', $2::text, false) END AS app, ` +
  `CASE WHEN ${granted} THEN set_config('exclusive_process.holding', $1::bigint::text, false) END AS holding`;

// OFFSET 0 keeps the subquery (the lock) evaluated before the outer
// projection, so the token is taken after the lock is granted.
// `ok` is null when the guard failed.
const TRY_SQL = `SELECT t.ok, ${AFTER_GRANT('t.ok')} ` +
  `FROM (SELECT CASE WHEN ${OUR_SESSION} THEN pg_try_advisory_lock($1::bigint) END AS ok OFFSET 0) t`;

// The same as a wait: `locked` is '' once granted, null when the guard failed.
const WAIT_SQL = `SELECT t.locked, ${AFTER_GRANT('t.locked IS NOT NULL')} ` +
  `FROM (SELECT CASE WHEN ${OUR_SESSION} THEN pg_advisory_lock($1::bigint)::text END AS locked OFFSET 0) t`;

const UNLOCK_SQL = "SELECT pg_advisory_unlock($1::bigint) AS ok, set_config('exclusive_process.holding', '', false) AS holding";

const HELD_BY_US_SQL =
  "SELECT pg_backend_pid() AS pid, current_setting('exclusive_process.session', true) AS marker, " +
  "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted " +
  'AND pid = pg_backend_pid() AND classid = $1::oid AND objid = $2::oid AND objsubid = 1 ' +
  'AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS held';

const HOLDER_SQL =
  'SELECT l.pid AS backend_pid, a.application_name, host(a.client_addr) AS client_addr, a.client_port, a.usename, a.query ' +
  'FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid ' +
  "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 1 " +
  'AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) ' +
  'ORDER BY l.pid LIMIT 1';

export function createPostgresDriver(config: PostgresDriverConfig): AsyncLockDriver {
  const idle: Session[] = [];
  const open = new Set<Session>();
  /** Idle sessions are closed well before the server's idle_session_timeout could end them. */
  const idleMs = Math.floor(config.sessionTimeoutMs / 2);

  function keyOf(resource: string): bigint {
    return BigInt(resource.slice(resource.lastIndexOf('#') + 1));
  }

  async function take(signal?: AbortSignal): Promise<{ session: Session; reused: boolean }> {
    for (let session = idle.pop(); session !== undefined; session = idle.pop()) {
      clearTimeout(session.idleTimer);
      if (session.dead === undefined && performance.now() - session.idleSince < idleMs) return { session, reused: true };
      session.destroy();
    }
    const session = await Session.open(config, signal);
    open.add(session);
    session.onDeath(() => {
      open.delete(session);
      const i = idle.indexOf(session);
      if (i >= 0) idle.splice(i, 1);
    });
    return { session, reused: false };
  }

  function give(session: Session): void {
    if (session.dead !== undefined) {
      session.destroy();
      return;
    }
    if (idle.length >= config.maxIdle) {
      session.close();
      return;
    }
    session.idleSince = performance.now();
    session.idleTimer = setTimeout(() => {
      const i = idle.indexOf(session);
      if (i >= 0) idle.splice(i, 1);
      session.close();
    }, idleMs);
    session.idleTimer.unref();
    idle.push(session);
  }

  /**
   * Runs the first statement of an acquisition; a reused idle session that
   * turns out dead (killed while this process was frozen) is replaced once.
   */
  async function onSession<T>(what: string, work: (session: Session) => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { session, reused } = await take(signal);
      try {
        return await work(session);
      } catch (error) {
        if (session.dead !== undefined && reused && attempt === 0) continue;
        session.destroy();
        throw asDriverError(error, what);
      }
    }
  }

  function asDriverError(error: unknown, what: string): unknown {
    if (error instanceof LockDriverError || (error as { name?: unknown } | null)?.name === 'AbortError') return error;
    return new LockDriverError('ERR_DRIVER_UNAVAILABLE', `PostgreSQL at ${config.where} failed while ${what}: ${messageOf(error)}`, error);
  }

  /** A session that changed under us: a transaction-mode pooler (PgBouncer) in front of the server. */
  function foreignSession(session: Session, when: string): LockDriverError {
    session.destroy();
    return new LockDriverError('ERR_DRIVER_UNSUPPORTED',
      `A statement on our connection to ${config.where} ran in another server session than the one we prepared (${when}): ` +
      'a pooler in transaction or statement mode (e.g. PgBouncer pool_mode=transaction) sits in front of PostgreSQL, and session advisory locks cannot work through it. ' +
      'Connect to PostgreSQL directly, or through a session-mode pool. No lock was taken.');
  }

  function applicationName(record: HolderRecord): string {
    const host = (record.host ?? '').replace(/[^A-Za-z0-9._-]/g, '');
    const since = (record.since ?? new Date()).getTime();
    return `${APPLICATION_NAME} ${record.pid ?? 0} ${since} ${host}`.slice(0, 63).trimEnd();
  }

  /** A lock now held on `session`: heartbeat, lease and loss reporting until released. */
  function held(session: Session, record: HolderRecord, resource: string, key: bigint, token: bigint, leaseStart: number): DriverLock {
    const { name } = record;
    const tag = holderTag(record);
    const { classid, objid } = lockIds(key);
    const controller = new AbortController();
    const margin = Math.min(500, Math.floor(config.sessionTimeoutMs / 10));
    let released = false;
    let beating = false;
    let lease: NodeJS.Timeout | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let stopWatching = (): void => {};

    const stop = (): void => {
      clearInterval(heartbeat);
      clearTimeout(lease);
      stopWatching();
    };
    const lose = (why: string, cause?: unknown): void => {
      if (released || controller.signal.aborted) return;
      stop();
      const error = new LockLostError(name, resource, why, cause);
      // Make sure the server lets go too (it may not have noticed yet).
      session.destroy(error);
      controller.abort(error);
    };
    const renew = (sentAt: number): void => {
      clearTimeout(lease);
      lease = setTimeout(() => lose(
        `PostgreSQL at ${config.where} answered no heartbeat for ${config.sessionTimeoutMs} ms (sessionTimeout), so the server may have ended ` +
        'the session (idle_session_timeout): this process was frozen or too busy, or the network is down'), sentAt + config.sessionTimeoutMs - margin - performance.now());
      lease.unref();
    };
    const beat = async (): Promise<void> => {
      if (beating || released || controller.signal.aborted) return;
      beating = true;
      const sentAt = performance.now();
      try {
        const row = lastRow(await session.query(tag + HELD_BY_US_SQL, [classid, objid]));
        if (released) return;
        if (Number(row.pid) !== session.backendPid || row.marker !== session.marker) {
          const which = Number(row.pid) !== session.backendPid ? `backend ${String(row.pid)}, not ${session.backendPid}` : 'another client prepared it since';
          lose(`the connection now reaches another server session (${which}): ` +
            'a transaction-mode pooler such as PgBouncer is in the way, and the lock may stay held by a pooled server connection until it ends');
        } else if (row.held !== true) {
          lose(`the session (backend ${session.backendPid}) no longer holds the advisory lock`);
        } else {
          renew(sentAt);
        }
      } catch (error) {
        lose(`the heartbeat to PostgreSQL at ${config.where} failed: ${messageOf(error)}`, error);
      } finally {
        beating = false;
      }
    };

    renew(leaseStart);
    heartbeat = setInterval(() => void beat(), config.heartbeatMs);
    heartbeat.unref();
    stopWatching = session.onDeath((error) => lose(`the connection to PostgreSQL at ${config.where} ended: ${messageOf(error)}`, error));

    return {
      lost: controller.signal,
      fencingToken: token,
      details: holderDetails(session.backendPid, applicationName(record), session.seen),
      async release() {
        released = true;
        stop();
        if (controller.signal.aborted || session.dead !== undefined) {
          session.destroy();
          return;
        }
        try {
          const row = lastRow(await session.query(UNLOCK_SQL, [key.toString()]));
          if (row.ok === true) give(session);
          else session.destroy();
        } catch {
          // The connection is gone or broken: closing it makes the server release.
          session.destroy();
        }
      },
    };
  }

  async function tryLock(resource: string, record: HolderRecord, signal?: AbortSignal): Promise<DriverLock | null> {
    const key = keyOf(resource);
    return unlessAborted(signal, () => onSession('trying the lock', async (session) => {
      // The server's idle clock (idle_session_timeout) starts when it ends the
      // statement, which is after we sent it: the lease counts from then.
      const sentAt = performance.now();
      const row = lastRow(await session.query(holderTag(record) + TRY_SQL, [key.toString(), applicationName(record), session.backendPid, session.marker]));
      if (row.ok === null) throw foreignSession(session, 'trying the lock');
      if (row.ok !== true) {
        give(session);
        return null;
      }
      return held(session, record, resource, key, BigInt(row.token as string), sentAt);
    }, signal));
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

  async function waitLock(resource: string, record: HolderRecord, signal: AbortSignal, timeoutMs?: number): Promise<DriverLock | null> {
    if (signal.aborted) return null;
    const key = keyOf(resource);
    // lock_timeout: 0 = wait for ever; otherwise the server gives up itself (SQLSTATE 55P03).
    const lockTimeout = timeoutMs === undefined || !Number.isFinite(timeoutMs) ? 0 : Math.min(0x7fffffff, Math.max(1, Math.ceil(timeoutMs)));
    return unlessAborted(signal, () => onSession('waiting for the lock', async (session) => {
      if (signal.aborted) {
        give(session);
        return null;
      }
      let cancelled = false;
      let fallback: NodeJS.Timeout | undefined;
      const onAbort = (): void => {
        cancelled = true;
        session.cancel();
        // A cancel that never arrives must not leave us waiting: closing the connection ends the wait too.
        fallback = setTimeout(() => session.destroy(), config.queryTimeoutMs);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let row: Record<string, unknown>;
      try {
        await session.query(`SET lock_timeout = ${lockTimeout}`);
        // A cancel that reached the server between the two statements was
        // ignored (nothing ran): do not start a wait nobody wants.
        if (cancelled) throw signal.reason;
        row = lastRow(await session.query(holderTag(record) + WAIT_SQL, [key.toString(), applicationName(record), session.backendPid, session.marker], Infinity));
      } catch (error) {
        if (cancelled) {
          // Our cancel request may still be on its way (the server's own
          // lock_timeout can end the wait first): it would cancel whatever
          // this session runs next, so the session is not reused.
          session.destroy();
          return null;
        }
        if (sqlState(error) === '55P03') {
          give(session); // the server timed the wait out: the session is idle, without the lock
          return null;
        }
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
      if (row.locked === null) throw foreignSession(session, 'waiting for the lock');
      // When the wait ended on the server is unknown (the reply may have sat
      // in a buffer): one more statement restarts its idle clock after a
      // moment we know, and the lease counts from that.
      const sentAt = performance.now();
      try {
        await session.query(`${holderTag(record)}SELECT 1`);
      } catch (error) {
        session.destroy(); // closing the connection makes the server release the lock
        throw error;
      }
      return held(session, record, resource, key, BigInt(row.token as string), sentAt);
    }, signal));
  }

  async function holder(resource: string, name: string): Promise<HolderRecord | null> {
    const { classid, objid } = lockIds(keyOf(resource));
    const row = await onSession('looking up the holder', async (session) => {
      const result = await session.query(HOLDER_SQL, [classid, objid]);
      give(session);
      return (Array.isArray(result) ? result[result.length - 1] : result).rows[0];
    });
    if (row === undefined) return null;
    const applicationName = stringOrNull(row.application_name);
    const ours = applicationName === null ? null : APPLICATION_NAME_RE.exec(applicationName);
    const seen = { clientAddress: stringOrNull(row.client_addr), clientPort: numberOrNull(row.client_port), user: stringOrNull(row.usename) };
    const record: HolderRecord = { name, pid: ours !== null ? Number(ours[1]) : null, details: holderDetails(Number(row.backend_pid), applicationName, seen) };
    const host = ours?.[3] || seen.clientAddress;
    if (host) record.host = host;
    if (ours !== null) record.since = new Date(Number(ours[2]));
    const command = ours !== null ? commandOfTag(row.query) : undefined;
    if (command !== undefined) record.command = command;
    return record;
  }

  return {
    kind: 'postgres',
    synchronous: false,
    locate: (name) => `${config.base}#${advisoryKeyOf(name)}`,
    tryLock,
    waitLock,
    holder,
    cleanup() {
      // Synchronous by contract: closing the sockets is enough, the server
      // releases a session's advisory locks when its connection ends.
      for (const session of [...open]) session.destroy();
      idle.length = 0;
    },
  };
}

import { LockLostError } from '../../shared/errors.js';
import { applicationName, holderDetails, holderTag } from './holder.js';
import { lockIds } from './key.js';
import { lastRow, messageOf, type Session } from './session.js';
import { useOf } from './modes.js';
import { HELD_BY_US_SQL, UNLOCK_MODES_SQL, UNLOCK_SQL, WRITER_WAITS_SQL } from './sql.js';
import type { SessionPool } from './pool.js';
import type { DriverLock, HolderRecord } from '../types.js';

/**
 * A lock held on its own session, until released: a heartbeat that checks
 * the session still holds it, and a lease that gives it up on our side
 * `sessionTimeout` after the last heartbeat that succeeded, never later than
 * the server may have (idle_session_timeout). Any loss aborts `lost` with a
 * LockLostError. See docs/internals/postgres-lease.md.
 */
export interface HeldLockSpec {
  readonly session: Session;
  readonly record: HolderRecord;
  readonly resource: string;
  readonly key: bigint;
  readonly token: bigint;
  /** When the statement that restarted the server's idle clock was sent (`performance.now()`). */
  readonly leaseStart: number;
}

/** How long a shared hold believes its last look at the server's queue (see Lease.writerWaits). */
const WRITER_CHECK_MS = 20;

/** Starts the heartbeat and lease of a lock now held on `spec.session`. */
export function holdLock(pool: SessionPool, spec: HeldLockSpec): DriverLock {
  const lease = new Lease(pool, spec);
  const { session, record, token } = spec;
  return {
    lost: lease.lost,
    fencingToken: token,
    details: holderDetails(session.backendPid, applicationName(record), session.seen),
    release: () => lease.release(),
    ...(useOf(record) === 'shared' && { contended: () => lease.writerWaits() }),
  };
}

class Lease {
  readonly #pool: SessionPool;
  readonly #spec: HeldLockSpec;
  readonly #tag: string;
  readonly #ids: { classid: string; objid: string };
  readonly #controller = new AbortController();
  /** The lease ends this long before sessionTimeout, for the heartbeat's own latency. */
  readonly #margin: number;
  #released = false;
  #beating = false;
  /** What the last look at the server's queue found (writerWaits), when, and whether a look is on its way. */
  #writer = { waits: false, at: -Infinity, looking: false };
  #lease: NodeJS.Timeout | undefined;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #stopWatching: () => void;

  constructor(pool: SessionPool, spec: HeldLockSpec) {
    this.#pool = pool;
    this.#spec = spec;
    this.#tag = holderTag(spec.record);
    this.#ids = lockIds(spec.key);
    this.#margin = Math.min(500, Math.floor(pool.config.sessionTimeoutMs / 10));
    this.#renew(spec.leaseStart);
    this.#heartbeat = setInterval(() => void this.#beat(), pool.config.heartbeatMs);
    this.#heartbeat.unref();
    this.#stopWatching = spec.session.onDeath((error) =>
      this.#lose(`the connection to PostgreSQL at ${pool.config.where} ended: ${messageOf(error)}`, error)
    );
  }

  get lost(): AbortSignal {
    return this.#controller.signal;
  }

  async release(): Promise<void> {
    const { session, key } = this.#spec;
    this.#released = true;
    this.#stop();
    if (this.#controller.signal.aborted || session.dead !== undefined) {
      session.destroy();
      return;
    }
    try {
      const unlock = useOf(this.#spec.record) === 'plain' ? UNLOCK_SQL : UNLOCK_MODES_SQL;
      const row = lastRow(await session.query(this.#tag + unlock, [key.toString()]));
      if (row.ok === true) this.#pool.give(session);
      else session.destroy();
    } catch {
      // The connection is gone or broken: closing it makes the server release.
      session.destroy();
    }
  }

  /**
   * A shared hold: true when an exclusive request waits in the server's
   * queue for the name, so this thread's shared calls stop joining this hold
   * (they queue behind the writer instead). Synchronous, as the core asks:
   * it answers from its last look and has the next look taken when that one
   * is older than WRITER_CHECK_MS, on this hold's session.
   */
  writerWaits(): boolean {
    const writer = this.#writer;
    if (!writer.looking && !this.#released && performance.now() - writer.at > WRITER_CHECK_MS) {
      writer.looking = true;
      this.#spec.session
        .query(this.#tag + WRITER_WAITS_SQL, [this.#spec.key.toString()])
        .then((result) => (writer.waits = lastRow(result).waits === true))
        .catch(() => {}) // the heartbeat reports a broken session
        .finally(() => {
          writer.looking = false;
          writer.at = performance.now();
        });
    }
    return writer.waits;
  }

  #stop(): void {
    clearInterval(this.#heartbeat);
    clearTimeout(this.#lease);
    this.#stopWatching?.();
  }

  #lose(why: string, cause?: unknown): void {
    if (this.#released || this.#controller.signal.aborted) return;
    this.#stop();
    const error = new LockLostError(this.#spec.record.name, this.#spec.resource, why, cause);
    // Make sure the server lets go too (it may not have noticed yet).
    this.#spec.session.destroy(error);
    this.#controller.abort(error);
  }

  /** Restarts the lease from `sentAt`, when a heartbeat that succeeded was sent. */
  #renew(sentAt: number): void {
    const { sessionTimeoutMs, where } = this.#pool.config;
    clearTimeout(this.#lease);
    this.#lease = setTimeout(
      () =>
        this.#lose(
          `PostgreSQL at ${where} answered no heartbeat for ${sessionTimeoutMs} ms (sessionTimeout), so the server may have ended ` +
            'the session (idle_session_timeout): this process was frozen or too busy, or the network is down'
        ),
      sentAt + sessionTimeoutMs - this.#margin - performance.now()
    );
    this.#lease.unref();
  }

  async #beat(): Promise<void> {
    if (this.#beating || this.#released || this.#controller.signal.aborted) return;
    this.#beating = true;
    const sentAt = performance.now();
    try {
      const row = lastRow(await this.#spec.session.query(this.#tag + HELD_BY_US_SQL, [this.#ids.classid, this.#ids.objid]));
      if (this.#released) return;
      const lostWhy = this.#whyNotHeld(row);
      if (lostWhy !== undefined) this.#lose(lostWhy);
      else this.#renew(sentAt);
    } catch (error) {
      this.#lose(`the heartbeat to PostgreSQL at ${this.#pool.config.where} failed: ${messageOf(error)}`, error);
    } finally {
      this.#beating = false;
    }
  }

  /** Why a heartbeat's HELD_BY_US_SQL row shows the lock lost, or undefined when still held. */
  #whyNotHeld(row: Record<string, unknown>): string | undefined {
    const { session } = this.#spec;
    if (Number(row.pid) !== session.backendPid || row.marker !== session.marker) {
      const which =
        Number(row.pid) !== session.backendPid
          ? `backend ${String(row.pid)}, not ${session.backendPid}`
          : 'another client prepared it since';
      return (
        `the connection now reaches another server session (${which}): ` +
        'a transaction-mode pooler such as PgBouncer is in the way, and the lock may stay held by a pooled server connection until it ends'
      );
    }
    if (row.held !== true) return `the session (backend ${session.backendPid}) no longer holds the advisory lock`;
    return undefined;
  }
}

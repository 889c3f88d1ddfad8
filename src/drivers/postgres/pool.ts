import { ExclusiveProcessError, LockDriverError } from '../../shared/errors.js';
import { messageOf, Session } from './session.js';
import type { PostgresDriverConfig } from './driver.js';

/**
 * The dedicated sessions of one driver: those open, and the idle ones kept
 * for the next acquisition (at most `maxIdle`, each closed after
 * `sessionTimeout / 2` unused, well before the server's
 * idle_session_timeout could end it).
 */
export class SessionPool {
  readonly config: PostgresDriverConfig;
  readonly #idle: Session[] = [];
  readonly #open = new Set<Session>();
  readonly #idleMs: number;

  constructor(config: PostgresDriverConfig) {
    this.config = config;
    this.#idleMs = Math.floor(config.sessionTimeoutMs / 2);
  }

  /** An idle session still fresh enough, else a new one. */
  async take(signal?: AbortSignal): Promise<{ session: Session; reused: boolean }> {
    for (let session = this.#idle.pop(); session !== undefined; session = this.#idle.pop()) {
      clearTimeout(session.idleTimer);
      if (session.dead === undefined && performance.now() - session.idleSince < this.#idleMs) return { session, reused: true };
      session.destroy();
    }
    const session = await Session.open(this.config, signal);
    this.#open.add(session);
    session.onDeath(() => {
      this.#open.delete(session);
      this.#forget(session);
    });
    return { session, reused: false };
  }

  /** Takes back a session that holds nothing: kept idle for reuse, or closed. */
  give(session: Session): void {
    if (session.dead !== undefined) {
      session.destroy();
      return;
    }
    if (this.#idle.length >= this.config.maxIdle) {
      session.close();
      return;
    }
    session.idleSince = performance.now();
    session.idleTimer = setTimeout(() => {
      this.#forget(session);
      session.close();
    }, this.#idleMs);
    session.idleTimer.unref();
    this.#idle.push(session);
  }

  /**
   * Runs the first statement of an acquisition; a reused idle session that
   * turns out dead (killed while this process was frozen) is replaced once.
   */
  async onSession<T>(what: string, work: (session: Session) => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const { session, reused } = await this.take(signal);
      try {
        return await work(session);
      } catch (error) {
        if (session.dead !== undefined && reused && attempt === 0) continue;
        session.destroy();
        throw this.#asDriverError(error, what);
      }
    }
  }

  /** A session that changed under us: a transaction-mode pooler (PgBouncer) in front of the server. */
  foreignSession(session: Session, when: string): LockDriverError {
    session.destroy();
    return new LockDriverError(
      'ERR_DRIVER_UNSUPPORTED',
      `A statement on our connection to ${this.config.where} ran in another server session than the one we prepared (${when}): ` +
        'a pooler in transaction or statement mode (e.g. PgBouncer pool_mode=transaction) sits in front of PostgreSQL, and session advisory locks cannot work through it. ' +
        'Connect to PostgreSQL directly, or through a session-mode pool. No lock was taken.'
    );
  }

  /**
   * Closes every session. Synchronous by contract: closing the sockets is
   * enough, the server releases a session's advisory locks when its
   * connection ends.
   */
  destroyAll(): void {
    for (const session of [...this.#open]) session.destroy();
    this.#idle.length = 0;
  }

  #forget(session: Session): void {
    const i = this.#idle.indexOf(session);
    if (i >= 0) this.#idle.splice(i, 1);
  }

  #asDriverError(error: unknown, what: string): unknown {
    // Our own typed errors (a mismatch found on the server) pass as they are.
    if (error instanceof ExclusiveProcessError || (error as { name?: unknown } | null)?.name === 'AbortError') return error;
    return new LockDriverError(
      'ERR_DRIVER_UNAVAILABLE',
      `PostgreSQL at ${this.config.where} failed while ${what}: ${messageOf(error)}`,
      error
    );
  }
}

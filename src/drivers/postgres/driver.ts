import { advisoryKeyOf } from './key.js';
import { tryLockOn, waitLockOn } from './acquire.js';
import { holdersOf } from './holder.js';
import { SessionPool } from './pool.js';
import type { PgModule, SessionConfig } from './session.js';
import type { AsyncLockDriver } from '../types.js';

export { APPLICATION_NAME } from './holder.js';

/**
 * The PostgreSQL driver: session advisory locks (`pg_advisory_lock(bigint)`),
 * one dedicated session per held lock, waits in the server's own queue, a
 * heartbeat lease that bounds how long a frozen holder keeps the lock, and
 * `pg_current_xact_id()` as fencing token. See docs/internals/postgres-lease.md.
 * Shared and counted locks (modes.ts): docs/internals/modes.md.
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

export function createPostgresDriver(config: PostgresDriverConfig): AsyncLockDriver {
  const pool = new SessionPool(config);
  return {
    kind: 'postgres',
    synchronous: false,
    locate: (name) => `${config.base}#${advisoryKeyOf(name)}`,
    tryLock: (resource, record, signal) => tryLockOn(pool, resource, record, signal),
    waitLock: (resource, record, signal, timeoutMs) => waitLockOn(pool, resource, record, signal, timeoutMs),
    modes: { shared: true, counted: true },
    holder: async (resource, name) => (await holdersOf(pool, resource, name))[0] ?? null,
    holders: (resource, name) => holdersOf(pool, resource, name),
    cleanup: () => pool.destroyAll(),
  };
}

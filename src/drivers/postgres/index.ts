import type { ConnectionOptions } from 'node:tls';
import { describe } from '../../shared/describe.js';
import { integerInRange, MAX_WAIT_MS, optionalString, optionsRecord, type OptionsShape } from '../../shared/validate.js';
import { APPLICATION_NAME, createPostgresDriver } from './driver.js';
import { advisoryKeyOf } from './key.js';
import type { PgModule } from './session.js';
import type { AsyncLockDriver } from '../types.js';
import { InvalidArgumentError, LockDriverError } from '../../shared/errors.js';

/**
 * `exclusive-process/postgres`: locks shared by every machine that reaches
 * one PostgreSQL database (cron jobs and migrations on many hosts or pods),
 * through session advisory locks. `pg` (an optional peer dependency) is
 * loaded by this entry point only.
 */

/**
 * Options of {@link postgres}. Where to connect is given as in `pg`: a
 * `connectionString`, separate fields, or the `PG*` environment variables
 * (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`).
 *
 * @example
 * ```ts
 * const options: PostgresOptions = { connectionString: process.env.DATABASE_URL, sessionTimeout: 10_000 };
 * ```
 */
export interface PostgresOptions {
  /** `postgres://user:password@host:port/database?sslmode=...`. Default: from the fields below and `PG*` variables. */
  connectionString?: string;
  /** Server host name, address, or Unix socket directory. Default: `$PGHOST`, else `localhost`. */
  host?: string;
  /** Server port. Default: `$PGPORT`, else `5432`. */
  port?: number;
  /** Role to connect as. Default: `$PGUSER`, else the OS user. */
  user?: string;
  /** Password, or a function returning it (e.g. a short-lived IAM token). Default: `$PGPASSWORD`. */
  password?: string | (() => string | Promise<string>);
  /** Database. Locks are per database: two databases of one server never conflict. Default: `$PGDATABASE`, else the user name. */
  database?: string;
  /** TLS: `true`, or `tls.connect` options. Default: off unless the connection string asks. */
  ssl?: boolean | ConnectionOptions;
  /**
   * The longest a frozen or cut-off holder keeps the lock, in ms: set as the
   * lock session's `idle_session_timeout`, so the server ends a session whose
   * heartbeats stopped (SIGSTOP, a paused VM, a network partition) and frees
   * its lock; the holder, when it runs again, sees `lock.signal` abort. A
   * live holder is never affected (its heartbeats keep the session busy).
   * Default: `5000`.
   */
  sessionTimeout?: number;
  /**
   * Interval of the heartbeat query on each held lock's session, in ms; at
   * most half of `sessionTimeout`. It also checks that the session still
   * holds the lock. Default: `1000`.
   */
  heartbeat?: number;
  /**
   * Bound on connecting (DNS, TCP, TLS, authentication) and on each
   * statement other than the lock wait itself, in ms. A bad address or a
   * dead server fails within it, with a `LockDriverError`. Default: `5000`.
   */
  connectTimeout?: number;
  /** Idle dedicated sessions kept for the next acquisition (each is closed after `sessionTimeout / 2` unused). Default: `2`. */
  maxIdle?: number;
  /**
   * Extra configuration passed to `new pg.Client()` (e.g. `types`,
   * `stream`). The options above win over it. Default: none.
   */
  clientConfig?: Record<string, unknown>;
}

/** pg's own words for our options (`new pg.Client()` takes `connectionTimeoutMillis`), suggested when not a typo. */
const PG_ALIASES: Readonly<Record<string, string>> = {
  url: 'connectionString',
  databaseUrl: 'connectionString',
  connectionTimeoutMillis: 'connectTimeout',
};

const KNOWN = [
  'connectionString',
  'host',
  'port',
  'user',
  'password',
  'database',
  'ssl',
  'sessionTimeout',
  'heartbeat',
  'connectTimeout',
  'maxIdle',
  'clientConfig',
];

const POSTGRES_OPTIONS: OptionsShape = {
  known: KNOWN,
  aliases: PG_ALIASES,
  notObject: 'postgres(options) needs an object',
  notAnOption: 'is not a postgres() option',
};

/**
 * Why pg could not parse the connection string, worded the same in every
 * runtime: Deno's URL parser adds the input (a password too) to its
 * "Invalid URL", Node's and Bun's do not.
 */
function parseFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.startsWith('Invalid URL') ? 'Invalid URL' : message;
}

/**
 * A driver that keeps locks in PostgreSQL (session advisory locks), for
 * exclusion across machines. Pass it as the `driver` option of any form of
 * the API. It is asynchronous: use async functions with `exclusive()`,
 * `Exclusive.run()` or `Exclusive.acquire()`.
 *
 * - Lock name -> key: {@link advisoryKey} (documented, stable hash).
 * - `wait`: the server's own queue (`pg_advisory_lock` under `lock_timeout`);
 *   `signal` cancels the wait.
 * - Each held lock has its own connection; its process dying, or the
 *   connection dropping, frees the lock at once on the server. A loss while
 *   held aborts `lock.signal` with a {@link LockLostError}.
 * - `lock.fencingToken`: a bigint that grows with every acquisition in the
 *   cluster (`pg_current_xact_id()`); a shared or counted hold gets its own.
 * - `mode: 'shared'` (`pg_advisory_lock_shared`: the server queues new
 *   readers behind a waiting writer) and `limit` (one advisory key per slot).
 * - Needs PostgreSQL 14+, reached directly or through a session-mode pooler
 *   (a transaction-mode PgBouncer breaks session locks; it is detected and
 *   refused where possible).
 *
 * Create one driver per process and reuse it: it pools its sessions. Its
 * type, {@link AsyncLockDriver}, makes `Exclusive.lock()` and `forever()`
 * with it a type error (they fail at run time with `ERR_DRIVER_UNSUPPORTED`).
 *
 * @throws {LockDriverError} `ERR_DRIVER_UNAVAILABLE` when `pg` is not installed.
 * @throws {InvalidArgumentError} for bad options, at once.
 *
 * @example
 * ```ts
 * import { exclusive } from 'exclusive-process';
 * import { postgres } from 'exclusive-process/postgres';
 *
 * const driver = postgres({ connectionString: process.env.DATABASE_URL });
 * const migrate = exclusive(runMigrations, { name: 'migrate', driver, wait: 60_000 });
 * await migrate();
 * ```
 */
export function postgres(options: PostgresOptions = {}): AsyncLockDriver {
  const { connection, timing } = parsePostgresOptions(options);
  const pg = loadPg();
  const clientConfig: Record<string, unknown> = { ...connection.clientConfig, application_name: APPLICATION_NAME };
  for (const [key, value] of Object.entries(connection.fields)) {
    if (value !== undefined) clientConfig[key] = value;
  }
  // The connection parameters as pg resolves them (string, fields, PG* variables), without connecting.
  let probe: { host: string; port: number; database?: string };
  try {
    probe = new pg.Client(clientConfig);
  } catch (error) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.connectionString cannot be parsed: ${parseFailure(error)}`);
  }
  const database = probe.database ?? '';
  const hostPart = probe.host.startsWith('/') ? encodeURIComponent(probe.host) : probe.host.includes(':') ? `[${probe.host}]` : probe.host;
  return createPostgresDriver({
    pg,
    clientConfig,
    where: `${probe.host}:${probe.port}/${database}`,
    base: `postgres://${hostPart}:${probe.port}/${encodeURIComponent(database)}`,
    ...timing,
  });
}

/** The connection options given to pg, checked. */
interface ConnectionSettings {
  readonly fields: Readonly<Record<string, unknown>>;
  readonly clientConfig: Readonly<Record<string, unknown>> | undefined;
}

/** The driver's timing options, checked, with their defaults. */
interface TimingSettings {
  readonly sessionTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly queryTimeoutMs: number;
  readonly maxIdle: number;
}

/** Validates every option of postgres() eagerly, with the option's name in each error. */
function parsePostgresOptions(options: unknown): { connection: ConnectionSettings; timing: TimingSettings } {
  const o = optionsRecord(options, POSTGRES_OPTIONS);
  return { connection: parseConnection(o), timing: parseTiming(o) };
}

function parseConnection(o: Record<string, unknown>): ConnectionSettings {
  const connectionString = optionalString(o.connectionString, 'connectionString');
  if (connectionString !== undefined && !/^postgres(ql)?:\/\//i.test(connectionString) && !connectionString.startsWith('/')) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      "options.connectionString must be a URL such as 'postgres://user:password@host:5432/database' (or a Unix socket directory)"
    );
  }
  const host = optionalString(o.host, 'host');
  const port = o.port === undefined ? undefined : integerInRange(o.port, 'port', 1, 65535);
  const user = optionalString(o.user, 'user');
  const database = optionalString(o.database, 'database');
  if (o.password !== undefined && typeof o.password !== 'string' && typeof o.password !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.password must be a string or a function, got ${describe(o.password)}`);
  }
  if (o.ssl !== undefined && typeof o.ssl !== 'boolean' && (typeof o.ssl !== 'object' || o.ssl === null)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.ssl must be a boolean or TLS options, got ${describe(o.ssl)}`);
  }
  if (o.clientConfig !== undefined && (typeof o.clientConfig !== 'object' || o.clientConfig === null)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `options.clientConfig must be an object, got ${describe(o.clientConfig)}`);
  }
  return {
    fields: { connectionString, host, port, user, password: o.password, database, ssl: o.ssl },
    clientConfig: o.clientConfig as Record<string, unknown> | undefined,
  };
}

function parseTiming(o: Record<string, unknown>): TimingSettings {
  const sessionTimeoutMs = o.sessionTimeout === undefined ? 5000 : integerInRange(o.sessionTimeout, 'sessionTimeout', 100, MAX_WAIT_MS);
  const heartbeatMs =
    o.heartbeat === undefined
      ? Math.min(1000, Math.floor(sessionTimeoutMs / 2))
      : integerInRange(o.heartbeat, 'heartbeat', 10, MAX_WAIT_MS);
  if (heartbeatMs * 2 > sessionTimeoutMs) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `options.heartbeat (${heartbeatMs} ms) must be at most half of options.sessionTimeout (${sessionTimeoutMs} ms)`
    );
  }
  const queryTimeoutMs = o.connectTimeout === undefined ? 5000 : integerInRange(o.connectTimeout, 'connectTimeout', 1, MAX_WAIT_MS);
  const maxIdle = o.maxIdle === undefined ? 2 : integerInRange(o.maxIdle, 'maxIdle', 0, 1000);
  return { sessionTimeoutMs, heartbeatMs, queryTimeoutMs, maxIdle };
}

/**
 * The advisory lock key of a lock name: the first 8 bytes of the SHA-256
 * digest of the name's UTF-8 bytes, as a signed big-endian 64-bit integer.
 * Other programs take the same lock with `pg_advisory_lock(key)`; in SQL the
 * key is
 * `('x' || left(encode(sha256(convert_to(name, 'UTF8')), 'hex'), 16))::bit(64)::bigint`.
 *
 * @example
 * ```ts
 * advisoryKey('migrate'); // 4307694844222389748n
 * // psql: SELECT pg_try_advisory_lock(4307694844222389748);
 * ```
 */
export function advisoryKey(name: string): bigint {
  if (typeof name !== 'string') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `advisoryKey(name) needs a string, got ${describe(name)}`);
  }
  return advisoryKeyOf(name);
}

function loadPg(): PgModule {
  try {
    return require('pg') as PgModule;
  } catch (error) {
    const missing = (error as { code?: unknown }).code === 'MODULE_NOT_FOUND' && String((error as Error).message).includes("'pg'");
    throw new LockDriverError(
      'ERR_DRIVER_UNAVAILABLE',
      missing ? "The postgres driver needs the 'pg' package: npm install pg" : `The 'pg' package cannot load: ${(error as Error).message}`,
      error
    );
  }
}

import { sessionSetup } from './sql.js';
import { randomUUID } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { LockDriverError } from '../../shared/errors.js';

/**
 * One PostgreSQL session dedicated to exclusive-process: a `pg.Client` that
 * no one else ever queries, so the session advisory lock it takes belongs to
 * us alone. It serializes its own queries (pg warns when queries overlap),
 * keeps the process alive only while a query is in flight (an idle or
 * lock-holding session never prevents a normal exit), and reports its death
 * once, whatever the cause: socket error, server shutdown,
 * `pg_terminate_backend`, `idle_session_timeout`, or our own `destroy()`.
 */

/** The part of a `pg.Client` we use (pg is an optional peer: no static import). */
export interface PgClient {
  readonly host: string;
  readonly port: number;
  readonly database?: string;
  readonly user?: string;
  processID: number | null;
  secretKey: number | Buffer | null;
  connection: { stream: Socket };
  connect(): Promise<unknown>;
  query(text: string, values?: unknown[]): Promise<PgResult | PgResult[]>;
  end(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
}

export interface PgResult {
  rows: Record<string, unknown>[];
}

/** The `pg` module, as far as we need it. */
export interface PgModule {
  Client: new (config: Record<string, unknown>) => PgClient;
}

/** What every session of one driver shares. */
export interface SessionConfig {
  readonly pg: PgModule;
  /** Passed to `new pg.Client()`. */
  readonly clientConfig: Readonly<Record<string, unknown>>;
  /** `host:port/database`, for messages (never the password). */
  readonly where: string;
  /** `idle_session_timeout` of the session, ms. */
  readonly sessionTimeoutMs: number;
  /** Bound on connecting and on every statement except a lock wait, ms. */
  readonly queryTimeoutMs: number;
}

/** An error from the server carries its SQLSTATE in `code`. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** True for an error after which the server has closed the session (severity FATAL or PANIC). */
function isFatal(error: unknown): boolean {
  const severity = (error as { severity?: unknown } | null)?.severity;
  return severity === 'FATAL' || severity === 'PANIC';
}

/** CancelRequest code of the wire protocol (1234 << 16 | 5678). */
const CANCEL_REQUEST_CODE = 80877102;

export class Session {
  readonly client: PgClient;
  readonly config: SessionConfig;
  /** The server process of this session (`pg_backend_pid()`), known once opened. */
  backendPid = 0;
  /** This session as `pg_stat_activity` shows it to others (client address and port, role), known once opened. */
  seen: { clientAddress: string | null; clientPort: number | null; user: string | null } = {
    clientAddress: null,
    clientPort: null,
    user: null,
  };
  /**
   * A random value set in the session (`exclusive_process.session`): with
   * the backend pid, what proves a statement runs in *this* session, and
   * not in another one a transaction-mode pooler picked.
   */
  readonly marker = randomUUID();
  /** Why the session ended; undefined while it is alive. */
  dead: Error | undefined;
  /** When it was last returned to the idle pool (performance.now()). */
  idleSince = 0;
  idleTimer: NodeJS.Timeout | undefined;
  readonly #deathListeners = new Set<(error: Error) => void>();
  /** The last queued query: the next one starts after it settles. */
  #tail: Promise<unknown> = Promise.resolve();
  #inFlight = 0;
  readonly #sockets: Socket[] = [];

  private constructor(config: SessionConfig) {
    this.config = config;
    this.client = new config.pg.Client({
      ...config.clientConfig,
      connectionTimeoutMillis: config.queryTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, Math.floor(config.sessionTimeoutMs / 2)),
    });
    // pg emits 'error' for a connection that dies while idle; without a
    // listener that would crash the process.
    this.client.on('error', (error) => this.#die(error));
    this.client.on('end', () => this.#die(new Error('the connection was closed')));
    this.#sockets.push(this.client.connection.stream);
  }

  /**
   * Connects and prepares a dedicated session. Fails with a LockDriverError
   * within `queryTimeoutMs` (bad host, refused, authentication, missing
   * database, server too old), never hangs; at once when `signal` aborts
   * (the caller then checks `signal.aborted`).
   */
  static async open(config: SessionConfig, signal?: AbortSignal): Promise<Session> {
    signal?.throwIfAborted();
    const session = new Session(config);
    const onAbort = (): void => session.destroy(new Error('aborted while connecting'));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await session.#prepare();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async #prepare(): Promise<Session> {
    await this.#connect();
    // The TLS upgrade replaces the stream: keep both for ref/unref/destroy.
    if (!this.#sockets.includes(this.client.connection.stream)) this.#sockets.push(this.client.connection.stream);
    try {
      const row = lastRow(await this.query(sessionSetup(this.config.sessionTimeoutMs, this.marker)));
      this.backendPid = Number(row.pid);
      this.seen = {
        clientAddress: stringOrNull(row.client_addr),
        clientPort: numberOrNull(row.client_port),
        user: stringOrNull(row.usename),
      };
    } catch (error) {
      this.destroy();
      throw setupError(error, this.config.where);
    }
    return this;
  }

  async #connect(): Promise<void> {
    this.#ref(1);
    try {
      await this.client.connect();
    } catch (error) {
      this.destroy();
      throw new LockDriverError(
        'ERR_DRIVER_UNAVAILABLE',
        `Cannot connect to PostgreSQL at ${this.config.where}: ${messageOf(error)}`,
        error
      );
    } finally {
      this.#ref(-1);
    }
  }

  /**
   * Runs one statement (or a `;`-separated list, without `values`) after
   * the previous one settled. `timeoutMs`: past it the session is
   * destroyed and the query fails (Infinity for a lock wait).
   */
  query(text: string, values?: unknown[], timeoutMs = this.config.queryTimeoutMs): Promise<PgResult | PgResult[]> {
    const run = async (): Promise<PgResult | PgResult[]> => {
      if (this.dead !== undefined) throw this.dead;
      this.#ref(1);
      let timer: NodeJS.Timeout | undefined;
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(
          () =>
            this.destroy(
              new LockDriverError('ERR_DRIVER_UNAVAILABLE', `PostgreSQL at ${this.config.where} did not answer within ${timeoutMs} ms`)
            ),
          timeoutMs
        );
      }
      try {
        return await this.client.query(text, values);
      } catch (error) {
        // The server ending the session (terminated, shut down) answers with a
        // FATAL error before the connection closes: the session is dead now.
        if (isFatal(error)) this.#die(error as Error);
        // A dead connection rejects with pg's generic message: give the cause.
        throw this.dead ?? error;
      } finally {
        clearTimeout(timer);
        this.#ref(-1);
      }
    };
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => {});
    return result;
  }

  /**
   * Asks the server to cancel the running statement (the wire protocol's
   * CancelRequest, on its own short connection, as libpq's PQcancel does).
   * A session that is not running a statement ignores it. The connection
   * stays open until the other end closes it, as libpq waits for: PgBouncer
   * drops a cancel request whose client has already closed its side.
   */
  cancel(): void {
    const { processID, secretKey, host, port } = this.client;
    if (processID === null || secretKey === null || this.dead !== undefined) return;
    const packet = Buffer.alloc(typeof secretKey === 'number' ? 16 : 12 + secretKey.length);
    packet.writeInt32BE(packet.length, 0);
    packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
    packet.writeInt32BE(processID, 8);
    if (typeof secretKey === 'number') packet.writeInt32BE(secretKey, 12);
    else secretKey.copy(packet, 12);
    const socket = host.startsWith('/') ? netConnect(`${host}/.s.PGSQL.${port}`) : netConnect(port, host);
    socket.on('error', () => {}); // the caller's fallback (destroying the session) covers a failed cancel
    socket.setTimeout(this.config.queryTimeoutMs, () => socket.destroy());
    socket.on('connect', () => socket.write(packet));
    socket.on('end', () => socket.destroy());
    socket.unref();
  }

  /** Calls `listener` once when the session ends; returns an unsubscribe function. */
  onDeath(listener: (error: Error) => void): () => void {
    if (this.dead !== undefined) {
      listener(this.dead);
      return () => {};
    }
    this.#deathListeners.add(listener);
    return () => this.#deathListeners.delete(listener);
  }

  /**
   * Closes the connection now, synchronously (usable at process exit). The
   * server ends the session and releases its advisory locks as soon as it
   * reads the end of the connection.
   */
  destroy(reason: Error = new Error('the session was closed by exclusive-process')): void {
    this.#die(reason);
    clearTimeout(this.idleTimer);
    for (const socket of this.#sockets) socket.destroy?.();
  }

  /** Closes an idle session politely (Terminate message). */
  close(): void {
    this.#die(new Error('the session was closed by exclusive-process'));
    clearTimeout(this.idleTimer);
    this.client.end().catch(() => {});
    for (const socket of this.#sockets) socket.unref?.();
  }

  #die(error: Error): void {
    if (this.dead !== undefined) return;
    this.dead = error;
    const listeners = [...this.#deathListeners];
    this.#deathListeners.clear();
    for (const listener of listeners) listener(error);
  }

  /** The socket keeps the process alive only while a query is in flight. */
  #ref(delta: number): void {
    const before = this.#inFlight;
    this.#inFlight += delta;
    if (before === 0 && this.#inFlight > 0) for (const socket of this.#sockets) socket.ref?.();
    else if (before > 0 && this.#inFlight === 0) for (const socket of this.#sockets) socket.unref?.();
  }
}

/** The last result of a (possibly multi-statement) query. */
export function lastResult(results: PgResult | PgResult[]): PgResult {
  const result = Array.isArray(results) ? results[results.length - 1] : results;
  if (result === undefined) throw new Error('PostgreSQL returned no result');
  return result;
}

/** The first row of the last result of a (possibly multi-statement) query. */
export function lastRow(results: PgResult | PgResult[]): Record<string, unknown> {
  const row = lastResult(results).rows[0];
  if (row === undefined) throw new Error('PostgreSQL returned no row');
  return row;
}

export function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

export function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}

export function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(messageOf).join('; ');
  const message = (error as Error | null)?.message;
  const state = sqlState(error);
  const text = typeof message === 'string' && message !== '' ? message : String((error as { code?: unknown } | null)?.code ?? error);
  return state !== undefined ? `${text} (SQLSTATE ${state})` : text;
}

/** The error for a failed session setup: a server too old for idle_session_timeout (42704) is unsupported. */
function setupError(error: unknown, where: string): LockDriverError {
  if (sqlState(error) === '42704') {
    return new LockDriverError(
      'ERR_DRIVER_UNSUPPORTED',
      `The PostgreSQL server at ${where} is too old: the postgres driver needs PostgreSQL 14 or later (idle_session_timeout). ${messageOf(error)}`,
      error
    );
  }
  if (error instanceof LockDriverError) return error;
  return new LockDriverError('ERR_DRIVER_UNAVAILABLE', `Cannot prepare a PostgreSQL session at ${where}: ${messageOf(error)}`, error);
}

/**
 * The contract between the shared lock logic (src/core/lock.ts) and the per-OS
 * drivers. Drivers only talk to the OS: reentrancy, in-process queueing,
 * wait policy, holder records and exit cleanup are shared and live elsewhere.
 */

export type { HolderRecord, LockMode } from '../shared/holder-record.js';
import type { HolderRecord } from '../shared/holder-record.js';

/**
 * A lock held through a driver (what `LockDriver.tryLock` returns).
 *
 * @example
 * ```ts
 * const held: DriverLock = { release: () => unlock(fd) };
 * ```
 */
export interface DriverLock {
  /** Gives the lock up. Called once. */
  release(): void | Promise<void>;
  /** Aborted when the driver learns the lock was lost (e.g. its connection dropped). */
  readonly lost?: AbortSignal;
  /** True when the previous holder died while holding it (Windows `WAIT_ABANDONED`). */
  readonly abandoned?: boolean;
  /** A number that grows with every acquisition, where the backend provides one. */
  readonly fencingToken?: bigint;
  /** The `details` of this hold, as the driver's `holder()` reports them to other processes (so the holder sees them too). */
  readonly details?: HolderRecord['details'];
  /**
   * The open file descriptor that holds the lock, where the lock lives on one
   * (posix flock): the `exclusive` command hands it to its command, as
   * flock(1) does (it covers the moment between a killed tool's death and
   * its guard killing the command).
   */
  readonly descriptor?: number;
  /**
   * A shared hold only (optional): true when another process waits to take
   * the lock exclusively, so this thread must not let more of its own calls
   * join this hold (they queue behind that writer instead). Absent: never.
   */
  contended?(): boolean;
}

/**
 * What a driver can take besides plain exclusive locks (`LockDriver.modes`).
 *
 * @example
 * ```ts
 * const modes: DriverModes = { shared: true, counted: true };
 * ```
 */
export interface DriverModes {
  /** `mode: 'shared'`: many shared holders at once, writers not starved. */
  readonly shared: boolean;
  /** `limit` above 1: at most `limit` holders, each in its own slot freed when it dies. */
  readonly counted: boolean;
}

/**
 * A lock backend. Built-in: `posix` (flock), `windows` (named mutex),
 * `portable` (pid file), and `postgres` (advisory locks, from
 * `exclusive-process/postgres`). A driver object may be passed as the
 * `driver` option. Optional methods: none by default.
 *
 * @example
 * ```ts
 * import { postgres } from 'exclusive-process/postgres';
 * const driver: LockDriver = postgres({ connectionString: process.env.DATABASE_URL });
 * await Exclusive.run({ name: 'migrate', driver }, migrate);
 * ```
 */
export interface LockDriver {
  /** Short name used in messages and status output. */
  readonly kind: string;
  /**
   * The modes it takes besides plain exclusive locks (optional; absent:
   * none). A driver that declares one reads the request from the record
   * passed to `tryLock` and the waits: `record.mode` (`'shared'`, absent for
   * exclusive) and `record.limit` (absent: 1). Requests for a mode a driver
   * does not declare are refused with `ERR_MODE_UNSUPPORTED` before it is
   * called, so a driver that knows nothing of modes never takes a shared or
   * counted request as an exclusive one.
   */
  readonly modes?: DriverModes;
  /**
   * True when a lock it holds outlives a process ended by a signal it does
   * not handle, until something times it out (a Redis lease), so the core
   * also runs `cleanup()` on SIGINT, SIGTERM and SIGHUP once it holds one
   * (optional; absent: the OS or the server frees it with the process).
   */
  readonly releaseOnSignals?: boolean;
  /** True when `tryLock`, `release` and `holder` complete synchronously (required by `Exclusive.lock()` and `forever()`). */
  readonly synchronous: boolean;
  /**
   * Where the lock called `name` lives: a file path, mutex name or key.
   * Reported as `lockfile`. With `kind`, the key of the in-process registry
   * (shared by every copy of this package in a thread): two drivers of one
   * kind that locate a name at the same resource are one lock there (see
   * `registryKey` for drivers of two kinds that exclude each other).
   * `dir` is the `dir` option as given (undefined: the default directory).
   */
  locate(name: string, dir: string | undefined): string;
  /**
   * The in-process registry key of the lock at `resource`, for drivers whose
   * locks exclude another kind's (optional; default `<kind>\n<resource>`).
   * posix and portable return `file\n<the name's .lock path>` for a name's
   * `.lock` and `.pid`: one entry per name, so a thread's calls through
   * either driver queue, re-enter and are refused as through one, instead
   * of a synchronous wait waiting for this thread for ever.
   */
  registryKey?(resource: string): string;
  /**
   * One attempt without waiting: the lock, or `null` when someone else holds
   * it. `signal` is the caller's AbortSignal, for drivers whose attempt can
   * take time (opening a connection): when it aborts they stop and return `null`.
   */
  tryLock(resource: string, record: HolderRecord, signal?: AbortSignal): DriverLock | null | Promise<DriverLock | null>;
  /**
   * A native wait (optional): resolves with the lock, or `null` once `signal`
   * aborts (it also aborts at the deadline). `timeoutMs` is the wait's limit,
   * undefined for ever, for drivers whose OS or server can time it. Drivers
   * without `waitLock` are retried by the shared code whenever `watch`
   * reports a change, and on a slow poll for holders that crash.
   */
  waitLock?(resource: string, record: HolderRecord, signal: AbortSignal, timeoutMs?: number): Promise<DriverLock | null>;
  /**
   * A synchronous wait for ever (optional): blocks this thread until the
   * lock is acquired. Used by synchronous forms with `wait: true` and no
   * `signal`; without it they poll.
   */
  waitLockSync?(resource: string, record: HolderRecord): DriverLock;
  /**
   * True when this driver object (this thread) holds the lock at `resource`
   * under another path to the same file: a bind mount, or on macOS a name
   * differing only in case (optional). A synchronous wait then fails at once,
   * as it does for the same path, instead of waiting for itself for ever.
   */
  heldByThisThread?(resource: string): boolean;
  /**
   * Calls `onChange` when the lock may have been released (optional).
   * Returns a function that stops watching, or undefined when it cannot
   * watch (the shared code then polls faster and asks again). Called once
   * per wait for its whole length, and again after `onChange` (the resource
   * may have been replaced), so a driver may keep what makes its retries of
   * `resource` cheap (an open file) until watching stops.
   */
  watch?(resource: string, onChange: () => void): (() => void) | undefined;
  /**
   * The current holder as recorded by it, `{ pid: null }` when held by an
   * unknown holder, or `null` when free. `name` is the lock name `resource`
   * was located from (a driver need not remember it: the acquiring methods
   * have it as `record.name`).
   */
  holder(resource: string, name: string): HolderRecord | null | Promise<HolderRecord | null>;
  /**
   * Every current holder, each with its `mode` (and `slot` for a counted
   * lock); `[]` when free (optional; default: `holder()`'s, if any). A
   * process's shared calls that share one hold are one holder.
   */
  holders?(resource: string, name: string): HolderRecord[] | Promise<HolderRecord[]>;
  /**
   * Announces a request that is about to wait (optional), until the
   * returned function is called, whether the wait got the lock or not.
   * Drivers with shared locks give writers precedence here: while an
   * exclusive request announced waits, new shared requests wait behind it.
   */
  announce?(resource: string, record: HolderRecord): () => void;
  /**
   * The names of the locks that have a trace here (files in `dir`, mutex
   * info files, server locks), held or not, for `exclusive status` (optional).
   */
  list?(dir: string | undefined): string[] | Promise<string[]>;
  /** Called once at process exit: release what is still held and remove this process's leftover lock files that are free. Must be synchronous. */
  cleanup?(): void;
}

/**
 * A driver that works synchronously, as `Exclusive.lock()`, `forever()` and
 * exclusive synchronous functions need: its `synchronous` is the literal
 * `true`. The built-in `posix`, `windows` and `portable` drivers are.
 *
 * @example
 * ```ts
 * import { windows } from 'exclusive-process';
 * const driver: SyncLockDriver = windows({ scope: 'global' });
 * using lock = Exclusive.lock({ name: 'x', driver });
 * ```
 */
export interface SyncLockDriver extends LockDriver {
  readonly synchronous: true;
  tryLock(resource: string, record: HolderRecord, signal?: AbortSignal): DriverLock | null;
  holder(resource: string, name: string): HolderRecord | null;
}

/**
 * A driver that works only asynchronously (its `synchronous` is the literal
 * `false`), such as `postgres()`: the types refuse it where a synchronous
 * driver is needed (`Exclusive.lock()`, `forever()`), and
 * `Exclusive.holder()` returns a promise for it.
 *
 * @example
 * ```ts
 * import { postgres } from 'exclusive-process/postgres';
 * const driver: AsyncLockDriver = postgres({ connectionString: process.env.DATABASE_URL });
 * await using lock = await Exclusive.acquire({ name: 'x', driver });
 * ```
 */
export interface AsyncLockDriver extends LockDriver {
  readonly synchronous: false;
}

/**
 * Names of the built-in drivers accepted by the `driver` option. Default:
 * `'windows'` on Windows, `'posix'` elsewhere.
 *
 * @example
 * ```ts
 * const driver: DriverName = 'portable';
 * Exclusive.lock({ name: 'x', driver });
 * ```
 */
export type DriverName = 'posix' | 'windows' | 'portable';

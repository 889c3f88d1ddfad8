import { describe } from '../shared/describe.js';
import { driverByName } from '../drivers/select.js';
import type { DriverName, LockDriver, LockMode } from '../drivers/types.js';
import { InvalidArgumentError, LockDriverError } from '../shared/errors.js';
import { validateName } from '../drivers/file/path.js';
import {
  integerInRange,
  MAX_WAIT_MS,
  oneOf,
  optionalBoolean,
  optionalSignal,
  optionalString,
  optionsRecord,
  type OptionsShape,
} from '../shared/validate.js';
import type { LockSettings } from '../core/settings.js';
import { MAX_LIMIT } from '../shared/holder-record.js';

export type { LockSettings } from '../core/settings.js';

/**
 * Options accepted by every form: `@Exclusive()`, `exclusive(fn)`,
 * `Exclusive.forever/run/lock/acquire`.
 *
 * @example
 * ```ts
 * const options: ExclusiveOptions = { name: 'nightly', wait: 30_000, die: true };
 * ```
 */
export interface ExclusiveOptions {
  /**
   * The lock's name: any non-empty string. Processes using the same name
   * (and directory and driver) exclude each other.
   * Default: derived from the caller's file (see README, "Default names").
   */
  name?: string;
  /**
   * When another process holds the lock, print `Another '<name>' process is
   * already running (pid <pid>).` (or, when a `wait` ran out, the timed-out
   * message) to stderr and exit the process with `exitCode`, instead of
   * throwing `CannotAcquireLock`. When the holder is this process (another
   * call of the same method: a server's concurrent request), it throws
   * `CannotAcquireLock` as without `die`, so the process holding the lock is
   * not ended. Default: `false`.
   *
   * @example
   * ```ts
   * const migrateOnce = exclusive(migrate, { name: 'migrate', die: true });
   * // a second process calling it exits 1; a second concurrent call in this process throws CannotAcquireLock
   * ```
   */
  die?: boolean;
  /**
   * When the lock is held (by another process, or by another call of this
   * one), skip quietly instead of throwing: the call does not run and
   * resolves (or returns) `undefined`; `Exclusive.lock()`, `acquire()` and
   * `forever()` give `null` instead of a handle. For scheduled jobs whose
   * every fire must run once somewhere, not everywhere. Logged
   * (`NODE_DEBUG=exclusive-process`) and traced (outcome `'skipped'`). Not
   * with `die` (another policy) nor `wait` (skipping gives up at once).
   * Default: `false`.
   *
   * @example
   * ```ts
   * const sync = exclusive(async () => pullMail(), { name: 'sync-mail', skip: true });
   * await sync(); // undefined, without running, when another process is syncing
   * ```
   */
  skip?: boolean;
  /** The exit code used by `die`. Default: `1`. */
  exitCode?: number;
  /**
   * How long to wait for a held lock: `false` fails at once, `true` waits for
   * ever, a number waits that many **milliseconds** (`wait: 10` is 10 ms,
   * not 10 s; the `exclusive` command's `-w` counts seconds), at most
   * 2147483647. Default: `false`.
   *
   * @example
   * ```ts
   * await Exclusive.run({ name: 'nightly', wait: 30_000 }, job); // up to 30 seconds
   * ```
   */
  wait?: boolean | number;
  /**
   * Stops a wait: the call then rejects with `signal.reason` (an aborted
   * signal stops it before it starts, in every form). A synchronous wait runs
   * no JavaScript, so it cannot see a signal: `lock()`, `forever()` and sync
   * functions with a `wait` throw `ERR_INVALID_ARG_VALUE` for one that has
   * not aborted. Default: none.
   */
  signal?: AbortSignal;
  /**
   * The lock directory (file-based drivers). Default:
   * `$EXCLUSIVE_PROCESS_DIR`, else the first of `/run/lock`, `/var/lock` that
   * is mode 1777, else `/tmp`: the same for every user of the host (Windows:
   * the temp dir, which only holds holder records).
   */
  dir?: string;
  /**
   * The backend: `'posix'` (flock), `'windows'` (named mutex), `'portable'`
   * (pid file, no native code) or a driver object such as
   * `postgres({...})`. Default: the platform's native driver.
   */
  driver?: DriverName | LockDriver;
  /**
   * `exclusive(fn)` and `@Exclusive` only: whether the function is
   * asynchronous, for functions whose `async` was compiled away (TypeScript
   * `target` ES2016 or lower, older Babel or SWC targets), which return a
   * promise from a plain function. `true`: the lock is kept until the
   * promise settles, every call returns a promise, a conflict rejects, and
   * `wait` waits without blocking the thread. Default: whether `fn` is
   * declared `async`.
   *
   * @example
   * ```ts
   * const job = exclusive(compiledAsyncJob, { async: true, wait: true });
   * ```
   */
  async?: boolean;
  /**
   * `'exclusive'`: one holder at a time. `'shared'`: any number of shared
   * holders at once, never together with an exclusive one (readers and a
   * writer). Writers are not starved: while an exclusive request waits, new
   * shared requests wait behind it, across processes. A call chain holding
   * the lock exclusively may take it shared (it holds more already); one
   * holding it shared that asks for it exclusively gets `LockModeError`
   * `ERR_LOCK_UPGRADE`. Drivers: posix (see README, "Modes"). Default: `'exclusive'`.
   *
   * @example
   * ```ts
   * await Exclusive.run({ name: 'db', mode: 'shared' }, readReport); // many readers at once
   * ```
   */
  mode?: LockMode;
  /**
   * A counted lock: at most `limit` holders of the name at once, each in a
   * slot of its own that is freed at once when its holder dies. An integer
   * from 1 to 64 (each slot is a file or OS object); every user of a name
   * must give the same `limit` (others get `LockModeError` `ERR_LOCK_MISMATCH`).
   * Not with `mode: 'shared'`. Default: `1` (a plain lock).
   *
   * @example
   * ```ts
   * const encode = exclusive(run, { name: 'encode', limit: 3, wait: true }); // at most 3 at once on this host
   * ```
   */
  limit?: number;
}

export { MAX_LIMIT };

const KNOWN = ['name', 'die', 'skip', 'exitCode', 'wait', 'signal', 'dir', 'driver', 'async', 'mode', 'limit'];

/** Other lock libraries' words for our options, suggested when they are not a typo of one. */
const ALIASES: Readonly<Record<string, string>> = { timeout: 'wait', directory: 'dir' };

const OPTIONS: OptionsShape = { known: KNOWN, aliases: ALIASES, notObject: 'options must be an object', notAnOption: 'is not an option' };

/** Validates options eagerly, throwing a TypeError with a Node-style `code` naming the exact option. */
export function parseOptions(options: unknown): LockSettings {
  const o = optionsRecord(options, OPTIONS);
  const mode = oneOf(o.mode, 'mode', ['exclusive', 'shared'] as const) ?? 'exclusive';
  const limit = parseLimit(o.limit, mode);
  const driver = parseDriver(o.driver);
  requireModeSupport(driver, mode, limit);
  const die = optionalBoolean(o.die, 'die') ?? false;
  const waitMs = parseWait(o.wait);
  return {
    name: o.name === undefined ? undefined : validateName(o.name),
    die,
    skip: parseSkip(o.skip, die, waitMs),
    exitCode: o.exitCode === undefined ? 1 : integerInRange(o.exitCode, 'exitCode', 0, 255),
    waitMs,
    signal: optionalSignal(o.signal, 'signal'),
    dir: parseDir(o.dir),
    driver,
    async: optionalBoolean(o.async, 'async'),
    mode,
    limit,
  };
}

/** `limit`: 1 to MAX_LIMIT, and only for exclusive requests (a shared lock has no bound to give). */
function parseLimit(value: unknown, mode: LockMode): number {
  if (value === undefined) return 1;
  const limit = integerInRange(value, 'limit', 1, MAX_LIMIT);
  if (mode === 'shared' && limit > 1) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `options.limit cannot be combined with mode: 'shared' (got limit ${limit}): shared holders are not counted. ` +
        'Use limit alone for at most N holders, or mode: shared alone for readers and writers'
    );
  }
  return limit;
}

/** Refuses, before any attempt, a mode the driver does not declare: never an exclusive lock taken in its place. */
function requireModeSupport(driver: LockDriver, mode: LockMode, limit: number): void {
  const what =
    mode === 'shared' ? (driver.modes?.shared ? undefined : "mode: 'shared'") : limit > 1 && !driver.modes?.counted ? 'limit' : undefined;
  if (what === undefined) return;
  throw new LockDriverError(
    'ERR_MODE_UNSUPPORTED',
    `The ${driver.kind} driver does not support ${what} yet; use the posix driver (Linux, macOS) for shared and counted locks.`
  );
}

const HOLDER_OPTIONS: OptionsShape = { ...OPTIONS, known: ['dir', 'driver'], notAnOption: 'is not an option of holder()' };

/** The options of `Exclusive.holder()`: `dir` and `driver` only, checked like the others (a typo is an error). */
export function parseHolderOptions(options: unknown): LockSettings {
  const o = optionsRecord(options, HOLDER_OPTIONS);
  return parseOptions({ dir: o.dir, driver: o.driver });
}

export { MAX_WAIT_MS };

/** `skip`, refused beside the options it contradicts: `die` (another conflict policy) and a `wait` (skipping gives up at once). */
function parseSkip(value: unknown, die: boolean, waitMs: number): boolean {
  const skip = optionalBoolean(value, 'skip') ?? false;
  if (skip && die) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'options.skip and options.die cannot be combined: on a conflict skip gives up quietly, die ends the process; choose one'
    );
  }
  if (skip && waitMs > 0) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `options.skip and options.wait cannot be combined: skip gives up at once when the lock is held; to wait and then give up, use wait and catch CannotAcquireLock (reason 'timed-out')`
    );
  }
  return skip;
}

function parseWait(value: unknown): number {
  if (value === undefined || value === false) return 0;
  if (value === true) return Infinity;
  if (typeof value !== 'number') {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_TYPE',
      `options.wait must be a boolean or a number of milliseconds, got ${describe(value)}`
    );
  }
  if (Number.isNaN(value) || value < 0) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.wait must be >= 0 milliseconds, got ${value}`);
  }
  if (value > MAX_WAIT_MS) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `options.wait must be at most ${MAX_WAIT_MS} milliseconds (about 24.8 days, the longest timer Node has), got ${value}; use wait: true to wait for ever`
    );
  }
  return value;
}

function parseDir(value: unknown): string | undefined {
  const dir = optionalString(value, 'dir');
  if (dir !== undefined && (dir.length === 0 || dir.includes('\0'))) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.dir must be a non-empty path without NUL bytes, got ${describe(dir)}`);
  }
  return dir;
}

function parseDriver(value: unknown): LockDriver {
  if (value === undefined || typeof value === 'string') return driverByName(value);
  if (isDriver(value)) return value;
  throw new InvalidArgumentError(
    'ERR_INVALID_ARG_TYPE',
    `options.driver must be 'posix', 'windows', 'portable' or a driver object, got ${describe(value)}`
  );
}

function isDriver(value: unknown): value is LockDriver {
  const d = value as Partial<LockDriver> | null;
  return (
    typeof d === 'object' &&
    d !== null &&
    typeof d.kind === 'string' &&
    typeof d.synchronous === 'boolean' &&
    typeof d.locate === 'function' &&
    typeof d.tryLock === 'function' &&
    typeof d.holder === 'function'
  );
}

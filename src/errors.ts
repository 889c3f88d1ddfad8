/**
 * Errors thrown by exclusive-process. Every one carries a stable `code`
 * (messages may change between versions, codes may not).
 */

/**
 * Thrown when a lock is held by someone else and `wait` ran out (or was
 * `false`, the default), unless `die` is set.
 *
 * @example
 * ```ts
 * try {
 *   using lock = Exclusive.lock({ name: 'backup' });
 * } catch (error) {
 *   if (error instanceof CannotAcquireLock) console.log(error.pid); // holder
 * }
 * ```
 */
export class CannotAcquireLock extends Error {
  /** Always `'ERR_LOCK_HELD'`. */
  readonly code = 'ERR_LOCK_HELD';
  /** The lock's name, as given or derived. */
  readonly lockName: string;
  /** Where the lock lives: a file path, mutex name or advisory key. */
  readonly lockfile: string;
  /** The holder's pid when known, else `null`. */
  readonly pid: number | null;

  constructor(lockName: string, lockfile: string, pid: number | null) {
    super(`Another '${lockName}' process is already running (pid ${pid ?? 'unknown'}).`);
    this.name = 'CannotAcquireLock';
    this.lockName = lockName;
    this.lockfile = lockfile;
    this.pid = pid;
  }
}

/**
 * Stable codes of {@link LockFileError}.
 *
 * @example
 * ```ts
 * const code: LockFileErrorCode = 'ERR_LOCK_PERMISSION';
 * ```
 */
export type LockFileErrorCode =
  /** The lock directory or file may not be created, opened or written by this user. */
  | 'ERR_LOCK_PERMISSION'
  /** The lock path is a symlink, a hard link, a directory or another non-regular file. */
  | 'ERR_LOCK_FILE_UNSAFE'
  /** The lock directory is missing and cannot be created, or is not a directory. */
  | 'ERR_LOCK_DIR'
  /** Any other system error on the lock file (no space, too many open files...). */
  | 'ERR_LOCK_IO';

/**
 * The lock's file or directory cannot be used safely. The message names the
 * path and the fix; the original system error, if any, is `cause`.
 *
 * @example
 * ```ts
 * try { Exclusive.lock({ name: 'x', dir: '/proc' }); }
 * catch (error) { if (error instanceof LockFileError) console.error(error.code, error.path); }
 * ```
 */
export class LockFileError extends Error {
  readonly code: LockFileErrorCode;
  /** The file or directory at fault. */
  readonly path: string;

  constructor(code: LockFileErrorCode, path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LockFileError';
    this.code = code;
    this.path = path;
  }
}

/**
 * The chosen driver cannot run here (its native binding does not load, or
 * it does not support the requested operation). `code` is
 * `'ERR_DRIVER_UNAVAILABLE'` or `'ERR_DRIVER_UNSUPPORTED'`.
 *
 * @example
 * ```ts
 * Exclusive.lock({ name: 'x', driver: 'windows' }); // on Linux: throws LockDriverError
 * ```
 */
export class LockDriverError extends Error {
  readonly code: 'ERR_DRIVER_UNAVAILABLE' | 'ERR_DRIVER_UNSUPPORTED';

  constructor(code: LockDriverError['code'], message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LockDriverError';
    this.code = code;
  }
}

/**
 * Codes of invalid-argument errors, as Node's own.
 *
 * @example
 * ```ts
 * const code: ArgumentErrorCode = 'ERR_INVALID_LOCK_NAME';
 * ```
 */
export type ArgumentErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_INVALID_ARG_VALUE' | 'ERR_INVALID_LOCK_NAME';

/**
 * A bad option or lock name, thrown eagerly (when the decorator, wrapper or
 * call is made), never from inside a lock operation. `code` is one of
 * {@link ArgumentErrorCode}.
 *
 * @example
 * ```ts
 * exclusive(fn, { wait: -1 }); // TypeError [ERR_INVALID_ARG_VALUE]: options.wait ...
 * ```
 */
export class InvalidArgumentError extends TypeError {
  readonly code: ArgumentErrorCode;

  constructor(code: ArgumentErrorCode, message: string) {
    super(message);
    this.name = 'TypeError';
    this.code = code;
  }
}

/**
 * The lock was lost while held (its database session ended, a frozen
 * holder outlived its session timeout...). It is the reason of the
 * handle's `signal`. `code` is `'ERR_LOCK_LOST'`; the cause, if any, is `cause`.
 *
 * @example
 * ```ts
 * lock.signal.addEventListener('abort', () => {
 *   if (lock.signal.reason instanceof LockLostError) stopWriting();
 * });
 * ```
 */
export class LockLostError extends Error {
  /** Always `'ERR_LOCK_LOST'`. */
  readonly code = 'ERR_LOCK_LOST';
  /** The lock's name. */
  readonly lockName: string;
  /** Where the lock lived (`postgres://host:port/db#key`). */
  readonly lockfile: string;

  constructor(lockName: string, lockfile: string, why: string, cause?: unknown) {
    super(`The lock '${lockName}' was lost: ${why}.`, cause === undefined ? undefined : { cause });
    this.name = 'LockLostError';
    this.lockName = lockName;
    this.lockfile = lockfile;
  }
}

/**
 * A call that needs a held lock was made without one: `exclusive.signal()`
 * outside an exclusive function. `code` is `'ERR_NOT_HOLDING'`.
 *
 * @example
 * ```ts
 * exclusive.signal(); // at top level: throws NotHoldingError
 * ```
 */
export class NotHoldingError extends Error {
  readonly code = 'ERR_NOT_HOLDING';

  constructor(message: string) {
    super(message);
    this.name = 'NotHoldingError';
  }
}

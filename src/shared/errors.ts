/**
 * Errors thrown by exclusive-process. Every one carries a stable `code`
 * (messages may change between versions, codes may not).
 */

import type { HolderRecord } from './holder-record.js';
import { isThisHost, isThisProcess } from './holder-record.js';

/**
 * Marks every error of this package, on its prototype. A registered symbol
 * (`Symbol.for`), so that errors thrown by another copy of the package (two
 * versions in one `node_modules` tree) are recognised too.
 */
const BRAND = Symbol.for('exclusive-process.error');

/** How messages name the `wait` option (the `exclusive` command says `-w` instead). */
export const WAIT_OPTION = '`wait`';

/**
 * The base of every error this package throws ({@link CannotAcquireLock},
 * {@link LockFileError}, {@link LockDriverError}, {@link InvalidArgumentError},
 * {@link LockLostError}, {@link NotHoldingError}, {@link InstanceError}), to tell them from other
 * errors (Node's own, whose codes also start with `ERR_`) with `instanceof`.
 * It is never thrown by itself. `error instanceof ExclusiveProcessError` is
 * true for the errors of any copy of the package loaded in the process, and
 * for {@link InvalidArgumentError}, which extends `TypeError` (as Node's
 * argument errors do) and so cannot extend this class.
 *
 * @example
 * ```ts
 * try {
 *   await Exclusive.run({ name: 'nightly' }, job);
 * } catch (error) {
 *   if (!(error instanceof ExclusiveProcessError)) throw error; // a bug of the job, not of the lock
 *   console.error(`lock: ${error.message} (${error.code})`);
 * }
 * ```
 */
export class ExclusiveProcessError extends Error {
  /** A stable code, such as `'ERR_LOCK_HELD'` (messages may change between versions, codes may not). */
  declare readonly code: string;

  /**
   * `instanceof ExclusiveProcessError` looks for the brand, which every error
   * of every copy of the package has; `instanceof` a subclass stays the
   * ordinary prototype check (static methods are inherited, hence the test on `this`).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== ExclusiveProcessError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return (typeof value === 'object' || typeof value === 'function') && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}

/** Brands the errors of a class (on its prototype: invisible in logs, JSON and `Object.keys`). */
function brand(errorClass: new (...args: never[]) => Error): void {
  Object.defineProperty(errorClass.prototype, BRAND, { value: true });
}
brand(ExclusiveProcessError);

/**
 * Why a lock could not be acquired ({@link CannotAcquireLock}'s `reason`):
 * - `'held-elsewhere'`: another process holds it and the call did not wait
 *   (the message is `Another '<name>' process is already running (pid <pid>).`);
 * - `'held-in-process'`: another call of this same process holds it (or
 *   another thread of it) and the call did not wait;
 * - `'timed-out'`: the `wait` ran out while someone (`holder`) still held it;
 * - `'would-deadlock'`: a synchronous wait was refused at once, because this
 *   thread holds the lock (through another call, another copy of the package
 *   or another path to the same file) and blocking would never end, or
 *   (Windows) a helper thread of this process waits for it and could take it
 *   while this thread blocks.
 *
 * @example
 * ```ts
 * const reason: ConflictReason = 'timed-out';
 * ```
 */
export type ConflictReason = 'held-elsewhere' | 'held-in-process' | 'timed-out' | 'would-deadlock';

/**
 * What the conflict policy saw, from which {@link CannotAcquireLock} builds
 * its message. `waitedMs`: the wait that ran out (`timed-out`). `deadlock`
 * (`would-deadlock`, or `held-in-process` when a synchronous wait would
 * deadlock): what this thread has: the lock (`'held'`), the same file
 * under another path (`'other-path'`), or a helper thread waiting for it
 * that could take it while this thread blocks (`'waiting'`).
 *
 * @example
 * ```ts
 * const details: ConflictDetails = { reason: 'timed-out', holder: null, waitedMs: 5_000 };
 * ```
 */
export interface ConflictDetails {
  readonly reason: ConflictReason;
  readonly holder: HolderRecord | null;
  readonly waitedMs?: number;
  readonly deadlock?: 'held' | 'other-path' | 'waiting';
  /** Every holder known (shared and counted locks have several); default: `holder` alone. */
  readonly holders?: readonly HolderRecord[];
  /** The `limit` of a counted lock whose slots are all taken. Default: 1. */
  readonly limit?: number;
}

/**
 * Thrown when a lock is held and `wait` ran out (or was `false`, the
 * default) or a synchronous wait would deadlock, unless `die` applies (it
 * does only when another process holds the lock). `reason` says which case it is and the
 * message says what to do; `holder` is the holder's record when known.
 *
 * @example
 * ```ts
 * try {
 *   using lock = Exclusive.lock({ name: 'backup', wait: 5_000 });
 * } catch (error) {
 *   if (!(error instanceof CannotAcquireLock)) throw error;
 *   if (error.reason === 'timed-out') console.log(`still held by ${error.holder?.command} since ${error.holder?.since?.toISOString()}`);
 *   else console.log(error.reason, error.pid); // 'held-elsewhere' 4242
 * }
 * ```
 */
export class CannotAcquireLock extends ExclusiveProcessError {
  /** Always `'ERR_LOCK_HELD'`, whatever the `reason`. */
  override readonly code = 'ERR_LOCK_HELD';
  /** The lock's name, as given or derived. */
  readonly lockName: string;
  /** Where the lock lives: a file path, mutex name or advisory key. */
  readonly lockfile: string;
  /** The holder's pid when known (this process's own for `held-in-process`), else `null`. */
  readonly pid: number | null;
  /**
   * Which case this is (see {@link ConflictReason}). Default, for an error
   * built without details: `'held-elsewhere'`.
   *
   * @example
   * ```ts
   * if (error.reason === 'held-in-process') return respond(409, 'already running');
   * ```
   */
  readonly reason: ConflictReason;
  /**
   * The holder's record as its driver (or this process) knows it: pid,
   * command, since when, host; `null` when unknown.
   *
   * @example
   * ```ts
   * console.log(error.holder?.command, error.holder?.since); // 'node backup.js' 2026-12-01T23:55:00.000Z
   * ```
   */
  readonly holder: HolderRecord | null;
  /**
   * The pids of every holder known: one for an exclusive lock, each shared
   * holder or each counted lock's slot holder (`pid` is one of them). Empty when unknown.
   *
   * @example
   * ```ts
   * if (error.pids.length === 3) console.log(`all slots taken by ${error.pids.join(', ')}`);
   * ```
   */
  readonly pids: readonly number[];

  constructor(lockName: string, lockfile: string, pid: number | null, details?: ConflictDetails) {
    super(conflictMessage(lockName, pid, details ?? { reason: 'held-elsewhere', holder: null }));
    this.name = 'CannotAcquireLock';
    this.lockName = lockName;
    this.lockfile = lockfile;
    this.pid = pid;
    this.reason = details?.reason ?? 'held-elsewhere';
    this.holder = details?.holder ?? null;
    this.pids = holderPids(details, pid);
  }

  /**
   * The running instance's reply, when `Exclusive.forever()` (without `die`)
   * delivered this process's `data` to it through its `onSecondInstance`;
   * undefined otherwise. Default: undefined.
   *
   * @example
   * ```ts
   * try { Exclusive.forever({ name: 'my-app', data: { file } }); }
   * catch (error) { if (error instanceof CannotAcquireLock && error.reply) process.exit(error.reply.exitCode); }
   * ```
   */
  reply?: InstanceReply;
}

/**
 * What a running instance's `onSecondInstance` answered (see
 * `Exclusive.forever()` and `Exclusive.notify()`): the exit code the second
 * instance ends with (default 0) and a message it prints. `failed` is true
 * when the handler threw or returned something else than a reply: the code
 * is then 1 and the message says why.
 *
 * @example
 * ```ts
 * const reply: InstanceReply = { exitCode: 0, message: 'opened in the running window' };
 * ```
 */
export interface InstanceReply {
  /** The exit code the second instance ends with (0 to 255). Default: 0. */
  readonly exitCode: number;
  /** Printed by a second instance that dies: to stdout, or to stderr when `failed`. Default: none. */
  readonly message?: string;
  /** True when the handler threw, returned a bad reply or the instance ended before replying. Default: absent. */
  readonly failed?: true;
}

/** The known pids of the holders in `details` (else `pid`), without repeats. */
function holderPids(details: ConflictDetails | undefined, pid: number | null): number[] {
  const pids = (details?.holders ?? (details?.holder ? [details.holder] : [])).map((holder) => holder.pid).filter((p) => p !== null);
  if (pids.length === 0 && pid !== null) pids.push(pid);
  return [...new Set(pids)];
}

/** The message of each case: the first is the Python model's, word for word; the others say what happened and what to do. */
function conflictMessage(name: string, pid: number | null, details: ConflictDetails): string {
  const { reason, holder } = details;
  const who = describeHolder(holder, pid);
  switch (reason) {
    case 'held-elsewhere':
      if ((details.limit ?? 1) > 1) return slotsTakenMessage(name, details.limit!, holderPids(details, pid));
      return `Another '${name}' process is already running (pid ${pid ?? 'unknown'}).`;
    case 'held-in-process':
      return (
        `The lock '${name}' is held by another call in this process (${who}). ` +
        (details.deadlock === undefined
          ? 'Pass `wait` to queue this call behind it, or do not start it again before that call ends.'
          : 'To queue this call behind it, pass `wait` in an async function or to Exclusive.acquire() (a synchronous wait would block the thread that must release it), ' +
            'or do not start it again before that call ends.')
      );
    case 'timed-out':
      return (
        `Gave up waiting for the lock '${name}' after ${duration(details.waitedMs ?? 0)}: it is still held by ${holderKind(holder, who)}. ` +
        `Wait longer (${WAIT_OPTION}), or find out why the holder keeps it so long.`
      );
    case 'would-deadlock':
      return deadlockMessage(name, who, details.deadlock ?? 'held');
  }
}

/** `All 3 'encode' slots are taken (pids 11, 12, 13).` */
function slotsTakenMessage(name: string, limit: number, pids: readonly number[]): string {
  const who = pids.length === 0 ? 'holders unknown' : `pid${pids.length === 1 ? '' : 's'} ${pids.join(', ')}`;
  return `All ${limit} '${name}' slots are taken (${who}).`;
}

function deadlockMessage(name: string, who: string, deadlock: NonNullable<ConflictDetails['deadlock']>): string {
  const withoutBlocking = 'take it in an async function or with Exclusive.acquire(), which wait without blocking the thread.';
  if (deadlock === 'waiting') {
    return (
      `Waiting for the lock '${name}' synchronously could deadlock: another call in this process is waiting for it on a helper thread, ` +
      `and could take it while this thread is blocked (held now by ${who}). Instead, ${withoutBlocking}`
    );
  }
  const what = deadlock === 'other-path' ? 'it under another path to the same file, such as a bind mount' : 'it';
  return (
    `Waiting for the lock '${name}' would deadlock: this thread already holds ${what} (${who}), ` +
    `and a synchronous wait blocks the thread that must release it. Release it first, or ${withoutBlocking}`
  );
}

/** `another process (pid 4242, ...)`, `another call in this process (...)` or `an unknown holder`. */
function holderKind(holder: HolderRecord | null, who: string): string {
  if (holder === null || holder.pid === null) return 'an unknown holder';
  return `${isThisProcess(holder) ? 'another call in this process' : 'another process'} (${who})`;
}

/** `pid 4242 on db1, \`node backup.js\`, since 2026-12-01T23:55:00.000Z`: what is known of the holder. */
function describeHolder(holder: HolderRecord | null, pid: number | null): string {
  const parts = [`pid ${holder?.pid ?? pid ?? 'unknown'}${isThisHost(holder?.host) ? '' : ` on ${holder!.host!}`}`];
  if (holder?.command !== undefined) parts.push(`\`${holder.command}\``);
  if (holder?.since !== undefined) parts.push(`since ${holder.since.toISOString()}`);
  return parts.join(', ');
}

/** `300 ms`, `5 s`, `1.5 s`. */
function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(3))} s`;
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
export class LockFileError extends ExclusiveProcessError {
  override readonly code: LockFileErrorCode;
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
export class LockDriverError extends ExclusiveProcessError {
  /** `ERR_MODE_UNSUPPORTED`: the driver cannot take locks in the requested `mode` or with a `limit` (the message names the driver). */
  override readonly code: 'ERR_DRIVER_UNAVAILABLE' | 'ERR_DRIVER_UNSUPPORTED' | 'ERR_MODE_UNSUPPORTED';

  constructor(code: LockDriverError['code'], message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LockDriverError';
    this.code = code;
  }
}

/**
 * Stable codes of {@link LockModeError}.
 *
 * @example
 * ```ts
 * const code: LockModeErrorCode = 'ERR_LOCK_UPGRADE';
 * ```
 */
export type LockModeErrorCode =
  /** A call chain holding a lock shared asked for it exclusively: waiting would deadlock against itself. */
  | 'ERR_LOCK_UPGRADE'
  /** Holders of one name disagree: another `limit`, counted against plain or shared use, or shared against counted. */
  | 'ERR_LOCK_MISMATCH';

/**
 * A request that cannot be granted in its mode whatever the wait: an
 * upgrade from shared to exclusive in one call chain (`ERR_LOCK_UPGRADE`),
 * or holders of one name that disagree on what it is (`ERR_LOCK_MISMATCH`:
 * `limit: 2` against `limit: 3`, counted against plain). `lockName` is the
 * lock; `holder`, when known, the holder it disagrees with.
 *
 * @example
 * ```ts
 * await Exclusive.run({ name: 'db', mode: 'shared' }, () =>
 *   Exclusive.run({ name: 'db' }, write) // rejects LockModeError ERR_LOCK_UPGRADE
 * );
 * ```
 */
export class LockModeError extends ExclusiveProcessError {
  override readonly code: LockModeErrorCode;
  /** The lock's name. */
  readonly lockName: string;
  /** The holder whose use disagrees, when known. */
  readonly holder: HolderRecord | null;

  constructor(code: LockModeErrorCode, lockName: string, message: string, holder: HolderRecord | null = null) {
    super(message);
    this.name = 'LockModeError';
    this.code = code;
    this.lockName = lockName;
    this.holder = holder;
  }
}

/**
 * The ERR_LOCK_MISMATCH error: the lock is held one way (`held`) and a call
 * asked for it another (`asked`). The one message for it, in the core and the drivers.
 *
 * @example
 * ```ts
 * throw lockMismatch('encode', { limit: 3 }, { limit: 2 }); // The lock 'encode' is held counted (limit 3) and this call asked for it counted (limit 2): ...
 * ```
 */
export function lockMismatch(
  name: string,
  held: Pick<HolderRecord, 'mode' | 'limit'>,
  asked: Pick<HolderRecord, 'mode' | 'limit'>,
  holder: HolderRecord | null = null
): LockModeError {
  return new LockModeError(
    'ERR_LOCK_MISMATCH',
    name,
    `The lock '${name}' is held ${describeUse(held)} and this call asked for it ${describeUse(asked)}: ` +
      'every user of a name must ask for it alike (same mode family and limit).',
    holder
  );
}

/** How a holder record uses its name, for messages: `shared`, `counted (limit 3)` or `exclusive`. */
export function describeUse(record: Pick<HolderRecord, 'mode' | 'limit'>): string {
  if ((record.limit ?? 1) > 1) return `counted (limit ${record.limit})`;
  return record.mode === 'shared' ? 'shared' : 'exclusive';
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
// A TypeError (as Node's own argument errors), and also an ExclusiveProcessError.
brand(InvalidArgumentError);

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
export class LockLostError extends ExclusiveProcessError {
  /** Always `'ERR_LOCK_LOST'`. */
  override readonly code = 'ERR_LOCK_LOST';
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
export class NotHoldingError extends ExclusiveProcessError {
  override readonly code = 'ERR_NOT_HOLDING';

  constructor(message: string) {
    super(message);
    this.name = 'NotHoldingError';
  }
}

/**
 * Stable codes of {@link InstanceError}.
 *
 * @example
 * ```ts
 * const code: InstanceErrorCode = 'ERR_NO_INSTANCE';
 * ```
 */
export type InstanceErrorCode =
  /** Nobody holds the lock, or its holder does not listen (no `onSecondInstance`). */
  | 'ERR_NO_INSTANCE'
  /** The running instance did not reply within the timeout. */
  | 'ERR_INSTANCE_TIMEOUT'
  /** The endpoint belongs to another user, or is not a socket of mode 0600: nothing is sent. */
  | 'ERR_INSTANCE_PERMISSION'
  /** The message or the reply is larger than the limit (1 MiB of JSON), or is not JSON. */
  | 'ERR_INSTANCE_PROTOCOL'
  /** Any other system error while talking to (or setting up) the endpoint. */
  | 'ERR_INSTANCE_IO';

/**
 * Talking to the running instance of a single-instance app failed
 * (`Exclusive.notify()`, or `Exclusive.forever()` delivering to it). The
 * system error, if any, is `cause`; `path` is the socket or pipe.
 *
 * @example
 * ```ts
 * try { await Exclusive.notify('my-app', { reload: true }); }
 * catch (error) { if (error instanceof InstanceError && error.code === 'ERR_NO_INSTANCE') startIt(); }
 * ```
 */
export class InstanceError extends ExclusiveProcessError {
  override readonly code: InstanceErrorCode;
  /** The socket (or Windows pipe) of the running instance. */
  readonly path: string;

  constructor(code: InstanceErrorCode, path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'InstanceError';
    this.code = code;
    this.path = path;
  }
}

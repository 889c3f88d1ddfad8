import type { ExclusiveLock } from '../core/handle.js';
import type { AsyncLockDriver, DriverName, HolderRecord, LockDriver, SyncLockDriver } from '../drivers/types.js';
import type { ExclusiveOptions } from './options.js';
import type { InstanceReply } from '../shared/errors.js';
import type { NotifyOptions } from './single-instance.js';
import type { InstanceReplyLike } from '../instance/server.js';
import type { SecondInstance } from '../instance/protocol.js';
import type { NotAGenerator } from './wrap.js';

/**
 * What `Exclusive.holder()` reports about the holder of a lock. Fields the
 * driver does not know are absent.
 *
 * @example
 * ```ts
 * const holder: LockHolder | null = Exclusive.holder('nightly');
 * if (holder) console.log(`held by ${holder.pid} on ${holder.host} since ${holder.since?.toISOString()}`);
 * ```
 */
export interface LockHolder extends HolderRecord {
  /** Where the lock lives (file, mutex name or key). */
  lockfile: string;
  /** The driver that was asked. */
  driver: string;
}

/**
 * Options of `Exclusive.holder()`: the ones that say where a lock lives.
 * Defaults as in {@link ExclusiveOptions}.
 *
 * @example
 * ```ts
 * const options: HolderOptions = { dir: '/var/lib/myapp/locks' };
 * Exclusive.holder('nightly', options);
 * ```
 */
export type HolderOptions = Pick<ExclusiveOptions, 'dir' | 'driver'>;

/** Any method a decorator may wrap. */
export type Method = (this: any, ...args: any[]) => any;

/**
 * A method decorator usable in both TypeScript decorator modes, as returned
 * by `Exclusive(options)`.
 *
 * @example
 * ```ts
 * const nightly: ExclusiveDecorator = Exclusive({ name: 'nightly' });
 * class Jobs { @nightly run() {} }
 * ```
 */
export interface ExclusiveDecorator {
  /** Standard (TC39) decorators: methods only, not generator methods. */
  <M extends Method>(method: M & NotAGenerator<M>, context: ClassMethodDecoratorContext): M;
  /** `experimentalDecorators`: methods only (no getters, setters or generator methods). */
  <M extends Method>(
    target: object,
    key: string | symbol,
    descriptor: TypedPropertyDescriptor<M> & NotAGenerator<M>
  ): TypedPropertyDescriptor<M>;
}

/**
 * The decorator `Exclusive({ skip: true })` returns: as
 * {@link ExclusiveDecorator}, but a skipped call returns (or resolves to)
 * `undefined`, which the method's declared return type must admit
 * (`void`, `Promise<void>`, `Promise<Report | undefined>`): TypeScript
 * cannot change a decorated method's type, so it is checked instead.
 *
 * @example
 * ```ts
 * class Jobs {
 *   @Exclusive({ skip: true }) async tick(): Promise<void> {} // compiles
 *   @Exclusive({ skip: true }) async build(): Promise<string | undefined> { return 'built'; } // compiles
 * }
 * ```
 */
export interface SkippingDecorator {
  /** Standard (TC39) decorators. */
  <M extends Method>(method: M & NotAGenerator<M> & MaySkip<M>, context: ClassMethodDecoratorContext): M;
  /** `experimentalDecorators`. */
  <M extends Method>(
    target: object,
    key: string | symbol,
    descriptor: TypedPropertyDescriptor<M> & NotAGenerator<M> & MaySkip<M>
  ): TypedPropertyDescriptor<M>;
}

/** `unknown` for a method whose result admits `undefined` (what a skipped call gives); else a type none has, whose key says why. */
type MaySkip<M extends Method> =
  undefined extends Awaited<ReturnType<M>>
    ? unknown
    : { "a skipped call returns undefined: declare the method's return type with `| undefined` (or void)": never };

/**
 * Options with `skip: true`: a conflict skips the call quietly (see
 * {@link ExclusiveOptions.skip}), so the forms' results admit `undefined`
 * (functions) or `null` (handles). Only a literal `skip: true` is seen by
 * the types: options typed as plain `ExclusiveOptions` are typed as if
 * `skip` were false.
 *
 * @example
 * ```ts
 * const options: SkipOptions = { name: 'tick', skip: true };
 * const lock = Exclusive.lock(options); // ExclusiveLock | null
 * ```
 */
export type SkipOptions = ExclusiveOptions & { skip: true };

/**
 * The type of {@link Exclusive}: the decorator and its static helpers.
 *
 * @example
 * ```ts
 * const api: ExclusiveApi = Exclusive;
 * api.forever({ die: true });
 * ```
 */
export interface ExclusiveApi extends ExclusiveDecorator {
  /**
   * Makes a method exclusive (see {@link exclusive} for how sync and async
   * methods behave). Works on instance and static methods, in standard and
   * `experimentalDecorators` mode, as `@Exclusive`, `@Exclusive()` or
   * `@Exclusive({...})`. Default name: `<file name>:<Class>.<method>` of the
   * declaring class.
   *
   * @example
   * ```ts
   * class Jobs {
   *   @Exclusive() async backup() {}
   *   @Exclusive({ name: 'migrate', die: true }) migrate() {}
   * }
   * ```
   */
  (options: SkipOptions): SkippingDecorator;
  (options?: ExclusiveOptions): ExclusiveDecorator;

  /**
   * Holds a lock for the rest of the process: for a whole script (cron job,
   * migration). Released, and its file removed, on exit, `process.exit()`,
   * uncaught exceptions, SIGINT, SIGTERM and SIGHUP (the process then ends
   * as the signal would have ended it). Every later acquisition of the same
   * lock in this thread re-enters. Default name: the calling file. With
   * `skip: true`, `null` when another holds the lock.
   *
   * @example
   * ```ts
   * Exclusive.forever({ die: true }); // a second copy prints the message and exits 1
   * ```
   * @throws {CannotAcquireLock} when another holds the lock (unless `die`: then the process exits).
   * @throws {InvalidArgumentError} for bad options, or no default name (code without a file).
   * @throws {LockDriverError} `ERR_DRIVER_UNSUPPORTED` for an asynchronous driver (a type error too).
   */
  forever<D extends DriverName | LockDriver = DriverName>(options: ForeverOptions<D> & { skip: true }): ExclusiveLock | null;
  forever<D extends DriverName | LockDriver = DriverName>(options?: ForeverOptions<D>): ExclusiveLock;

  /**
   * Sends `data` to the running instance of a single-instance app (the
   * process whose `Exclusive.forever({ name, onSecondInstance })` holds the
   * lock `name` in `options.dir` through `options.driver`) and resolves with
   * its handler's reply. Never takes the lock. The message is JSON
   * (`{ argv, cwd, pid, data }`: this process's whole `process.argv`, its
   * working directory and pid), at most 1 MiB. A handler that throws gives a
   * reply with `exitCode: 1` and `failed: true`. Delivery is local to the
   * host (a Unix socket beside the lock file, a named pipe on Windows), also
   * with a driver whose locks span hosts. Default `timeout`: 5000 ms.
   *
   * @example
   * ```ts
   * const reply = await Exclusive.notify('my-app', { reload: true }, { timeout: 5_000 });
   * console.log(reply.exitCode, reply.message); // 0 'reloaded'
   * ```
   * @throws {InstanceError} (rejects) `ERR_NO_INSTANCE` when nobody holds the lock or its holder does not listen,
   * `ERR_INSTANCE_TIMEOUT` when no reply came in time, `ERR_INSTANCE_PERMISSION` when the instance is another user's,
   * `ERR_INSTANCE_PROTOCOL` when it refused the message or answered garbage.
   * @throws {InvalidArgumentError} (rejects) for a bad name, options, or `data` that is not JSON or too large.
   */
  notify(name: string, data?: unknown, options?: NotifyOptions): Promise<InstanceReply>;

  /**
   * Runs `fn` holding the lock and releases it when `fn`'s promise settles.
   * Default name: the calling file. `options` may be left out:
   * `Exclusive.run(fn)`. With `skip: true`, resolves to `undefined` without
   * calling `fn` when another holds the lock.
   *
   * @example
   * ```ts
   * const file = await Exclusive.run({ name: 'x' }, async (lock) => lock.lockfile);
   * await Exclusive.run({ name: 'tick', skip: true }, tick); // undefined, tick not called, when held elsewhere
   * await Exclusive.run(async () => migrate()); // default name and options
   * ```
   * @throws {CannotAcquireLock} (rejects) when another holds the lock, unless `die`.
   * @throws {InvalidArgumentError} (rejects) for bad options or a missing `fn`.
   */
  run<R>(options: SkipOptions, fn: (lock: ExclusiveLock) => R): Promise<Awaited<R> | undefined>;
  run<R>(options: ExclusiveOptions | undefined, fn: (lock: ExclusiveLock) => R): Promise<Awaited<R>>;
  run<R>(fn: (lock: ExclusiveLock) => R): Promise<Awaited<R>>;

  /**
   * Takes the lock synchronously (a try, unless `wait` is set: then it
   * blocks this thread). For `using`. Default name: the calling file.
   * With `skip: true`, `null` when another holds the lock (`using` accepts it).
   *
   * @example
   * ```ts
   * { using lock = Exclusive.lock({ name: 'x' }); /* held here *\/ }
   * ```
   * @throws {CannotAcquireLock} when another holds the lock (unless `die`).
   * @throws {InvalidArgumentError} for bad options, or no default name (code without a file).
   * @throws {LockDriverError} `ERR_DRIVER_UNSUPPORTED` for an asynchronous driver (a type error too).
   */
  lock<D extends DriverName | LockDriver = DriverName>(options: SyncOptions<D> & { skip: true }): ExclusiveLock | null;
  lock<D extends DriverName | LockDriver = DriverName>(options?: SyncOptions<D>): ExclusiveLock;

  /**
   * Takes the lock, waiting without blocking per `wait` and `signal`.
   * For `await using`. Default name: the calling file. With `skip: true`,
   * resolves to `null` when another holds the lock.
   *
   * @example
   * ```ts
   * await using held = await Exclusive.acquire({ name: 'x', wait: true });
   * await using maybe = await Exclusive.acquire({ name: 'x', skip: true }); // null when held elsewhere
   * ```
   * @throws {CannotAcquireLock} (rejects) when another holds the lock, unless `die`.
   * @throws {InvalidArgumentError} for bad options (rejects).
   */
  acquire(options: SkipOptions): Promise<ExclusiveLock | null>;
  acquire(options?: ExclusiveOptions): Promise<ExclusiveLock>;

  /**
   * Who holds the lock `name` (in `options.dir`, through `options.driver`):
   * `null` when free; `pid: null` when held by a holder that left no
   * readable record. Never takes the lock. Synchronous drivers (the
   * built-in names, {@link SyncLockDriver}) answer at once; asynchronous
   * ones ({@link AsyncLockDriver}, such as `postgres()`) return a promise.
   *
   * @example
   * ```ts
   * Exclusive.holder('nightly'); // { pid: 4242, host: 'db1', command: 'node backup.js', since: Date, ... } or null
   * await Exclusive.holder('migrate', { driver: postgres() }); // a promise: the server is asked
   * ```
   * @throws {InvalidArgumentError} for a bad name or options.
   */
  holder(name: string, options?: HolderOptions & { driver?: DriverName | SyncLockDriver }): LockHolder | null;
  holder(name: string, options: HolderOptions & { driver: AsyncLockDriver }): Promise<LockHolder | null>;
  holder(name: string, options: HolderOptions): LockHolder | null | Promise<LockHolder | null>;

  /**
   * Every current holder of the lock `name`, each with its `mode`
   * (`'exclusive'` or `'shared'`) and, for a counted lock, its `limit` and
   * `slot`: `[]` when free. One exclusive holder, or each shared holder
   * (a process's calls sharing one hold count once), or each counted slot's
   * holder. Never takes the lock; answers as `holder()` does (a promise for
   * an asynchronous driver).
   *
   * @example
   * ```ts
   * Exclusive.holders('db'); // [{ pid: 11, mode: 'shared', ... }, { pid: 12, mode: 'shared', ... }]
   * Exclusive.holders('encode'); // [{ pid: 11, mode: 'exclusive', limit: 3, slot: 0, ... }, ...]
   * ```
   * @throws {InvalidArgumentError} for a bad name or options.
   */
  holders(name: string, options?: HolderOptions & { driver?: DriverName | SyncLockDriver }): LockHolder[];
  holders(name: string, options: HolderOptions & { driver: AsyncLockDriver }): Promise<LockHolder[]>;
  holders(name: string, options: HolderOptions): LockHolder[] | Promise<LockHolder[]>;
}

/**
 * Options of the forms that lock synchronously (`Exclusive.lock()`,
 * `forever()`): a driver whose type says it is asynchronous
 * ({@link AsyncLockDriver}, such as `postgres()`) is a type error, as it
 * fails at run time. A driver typed only as `LockDriver` is checked at run time.
 *
 * @example
 * ```ts
 * const options: SyncOptions = { name: 'x', driver: 'portable' };
 * Exclusive.lock(options);
 * ```
 */
export type SyncOptions<D extends DriverName | LockDriver = DriverName | LockDriver> = Omit<ExclusiveOptions, 'driver'> & {
  /** As in {@link ExclusiveOptions}, but not an asynchronous driver. */
  driver?: D & SynchronousOnly<D>;
};

/**
 * The options of `Exclusive.forever()`: those of {@link SyncOptions} plus the
 * single-instance ones. A second instance (a process that finds the lock
 * held) that passes `onSecondInstance` or `data` hands `{ argv, cwd, pid,
 * data }` to the running instance and waits (up to 10 s) for its reply:
 * with `die`, it prints the reply's `message` (stdout; stderr for a failed
 * reply) and exits with its `exitCode` (default 0); without, it throws
 * {@link CannotAcquireLock} with the reply as `reply`. When the running
 * instance does not listen, it behaves as without these options. They
 * cannot be combined with `wait`.
 *
 * @example
 * ```ts
 * Exclusive.forever({
 *   name: 'my-app',
 *   die: true,
 *   data: { files: process.argv.slice(2) },
 *   onSecondInstance: ({ data }) => ({ message: `opened ${(data as { files: string[] }).files.join(', ')}` }),
 * });
 * ```
 */
export type ForeverOptions<D extends DriverName | LockDriver = DriverName | LockDriver> = SyncOptions<D> & {
  /**
   * Makes this process, when it gets the lock, the running instance: each
   * later process that calls `forever()` with the same name (and `dir`,
   * `driver`) and `data` or `onSecondInstance` delivers its message here
   * and gets what this returns (`{ exitCode?, message? }`, or nothing for
   * exit code 0). Several run at once; a throw is a failed reply (exit code 1
   * with its message). The endpoint does not keep the process alive; it goes
   * when the lock is released or the process ends. Default: none (a second
   * instance gets the conflict, as without single-instance options).
   */
  onSecondInstance?: (message: SecondInstance) => InstanceReplyLike | Promise<InstanceReplyLike>;
  /** Any JSON value a second instance hands over with its argv, cwd and pid (at most 1 MiB with them). Default: none. */
  data?: unknown;
};

/** `unknown` for a synchronous (or not statically known) driver; for an asynchronous one a type none has, whose key says why. */
type SynchronousOnly<D> = D extends { readonly synchronous: false }
  ? { 'an asynchronous driver cannot lock synchronously: use Exclusive.acquire() or Exclusive.run()': never }
  : unknown;

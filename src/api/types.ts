import type { ExclusiveLock } from '../core/handle.js';
import type { AsyncLockDriver, DriverName, HolderRecord, LockDriver, SyncLockDriver } from '../drivers/types.js';
import type { ExclusiveOptions } from './options.js';
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
  (options?: ExclusiveOptions): ExclusiveDecorator;

  /**
   * Holds a lock for the rest of the process: for a whole script (cron job,
   * migration). Released, and its file removed, on exit, `process.exit()`,
   * uncaught exceptions, SIGINT, SIGTERM and SIGHUP (the process then ends
   * as the signal would have ended it). Every later acquisition of the same
   * lock in this thread re-enters. Default name: the calling file.
   *
   * @example
   * ```ts
   * Exclusive.forever({ die: true }); // a second copy prints the message and exits 1
   * ```
   * @throws {CannotAcquireLock} when another holds the lock (unless `die`: then the process exits).
   * @throws {InvalidArgumentError} for bad options, or no default name (code without a file).
   * @throws {LockDriverError} `ERR_DRIVER_UNSUPPORTED` for an asynchronous driver (a type error too).
   */
  forever<D extends DriverName | LockDriver = DriverName>(options?: SyncOptions<D>): ExclusiveLock;

  /**
   * Runs `fn` holding the lock and releases it when `fn`'s promise settles.
   * Default name: the calling file. `options` may be left out:
   * `Exclusive.run(fn)`.
   *
   * @example
   * ```ts
   * const file = await Exclusive.run({ name: 'x' }, async (lock) => lock.lockfile);
   * await Exclusive.run(async () => migrate()); // default name and options
   * ```
   * @throws {CannotAcquireLock} (rejects) when another holds the lock, unless `die`.
   * @throws {InvalidArgumentError} (rejects) for bad options or a missing `fn`.
   */
  run<R>(options: ExclusiveOptions | undefined, fn: (lock: ExclusiveLock) => R): Promise<Awaited<R>>;
  run<R>(fn: (lock: ExclusiveLock) => R): Promise<Awaited<R>>;

  /**
   * Takes the lock synchronously (a try, unless `wait` is set: then it
   * blocks this thread). For `using`. Default name: the calling file.
   *
   * @example
   * ```ts
   * { using lock = Exclusive.lock({ name: 'x' }); /* held here *\/ }
   * ```
   * @throws {CannotAcquireLock} when another holds the lock (unless `die`).
   * @throws {InvalidArgumentError} for bad options, or no default name (code without a file).
   * @throws {LockDriverError} `ERR_DRIVER_UNSUPPORTED` for an asynchronous driver (a type error too).
   */
  lock<D extends DriverName | LockDriver = DriverName>(options?: SyncOptions<D>): ExclusiveLock;

  /**
   * Takes the lock, waiting without blocking per `wait` and `signal`.
   * For `await using`. Default name: the calling file.
   *
   * @example
   * ```ts
   * await using held = await Exclusive.acquire({ name: 'x', wait: true });
   * ```
   * @throws {CannotAcquireLock} (rejects) when another holds the lock, unless `die`.
   * @throws {InvalidArgumentError} for bad options (rejects).
   */
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

/** `unknown` for a synchronous (or not statically known) driver; for an asynchronous one a type none has, whose key says why. */
type SynchronousOnly<D> = D extends { readonly synchronous: false }
  ? { 'an asynchronous driver cannot lock synchronously: use Exclusive.acquire() or Exclusive.run()': never }
  : unknown;

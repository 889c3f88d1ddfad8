import 'reflect-metadata';
import { describe } from '../shared/describe.js';
import { traced, tracedSync, traceName, traceTarget } from '../core/debug.js';
import { callerFile, nameForFile } from './default-name.js';
import type { AsyncLockDriver, DriverName, HolderRecord, LockDriver, SyncLockDriver } from '../drivers/types.js';
import { InvalidArgumentError } from '../shared/errors.js';
import { acquire, acquireForProcess, acquireSync, ExclusiveLock, holderOf, requireSynchronous, runHolding, target, type Target } from '../core/lock.js';
import { validateName } from '../drivers/file/path.js';
import { parseHolderOptions, parseOptions, type ExclusiveOptions, type LockSettings } from './options.js';
import { defaultName, guard, type NotAGenerator } from './wrap.js';

/**
 * The `reflect-metadata` key under which `@Exclusive` records its options
 * and the lock's resolved `name` (the default one too), on the class
 * (prototype for instance methods) with the method's key, and on the
 * decorated function itself.
 *
 * `experimentalDecorators`: recorded when the class is defined. Standard
 * decorators learn their class only from it: a static method's record is
 * complete once the class is defined; an instance method's record appears
 * on the prototype at the first instance, and the one on the function has
 * no default `name` until then (nor a wrong one).
 *
 * @example
 * ```ts
 * class Jobs {
 *   @Exclusive() backup() {}
 *   @Exclusive({ name: 'nightly', wait: true }) nightly() {}
 * }
 * Reflect.getMetadata(EXCLUSIVE_METADATA, Jobs.prototype, 'backup'); // { name: 'my-app/src/jobs:Jobs.backup' }
 * Reflect.getMetadata(EXCLUSIVE_METADATA, Jobs.prototype, 'nightly'); // { name: 'nightly', wait: true }
 * ```
 */
export const EXCLUSIVE_METADATA = 'exclusive-process:options';

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

type Method = (this: any, ...args: any[]) => any;

/**
 * `Symbol.metadata` (Node 20 lacks it; compilers then give standard
 * decorators no `context.metadata`, the only link from a method decorator to
 * its class). Defined as TypeScript's documentation suggests, as esbuild and
 * Babel fall back to: `Symbol.for('Symbol.metadata')`.
 */
const SYMBOL_METADATA: symbol = (Symbol as { metadata?: symbol }).metadata ?? defineSymbolMetadata();

function defineSymbolMetadata(): symbol {
  const symbol = Symbol.for('Symbol.metadata');
  Object.defineProperty(Symbol, 'metadata', { value: symbol, configurable: true });
  return symbol;
}

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
  <M extends Method>(target: object, key: string | symbol, descriptor: TypedPropertyDescriptor<M> & NotAGenerator<M>): TypedPropertyDescriptor<M>;
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

function decorate(...args: unknown[]): unknown {
  if (args.length <= 1) return decorator(parseOptions(args[0]), args[0]);
  return (decorator(parseOptions(undefined), undefined) as (...a: unknown[]) => unknown)(...args);
}

function decorator(settings: LockSettings, options: unknown): ExclusiveDecorator {
  const metadata = { ...(options as object | undefined) };
  return function exclusiveDecorator(value: unknown, contextOrKey: unknown, descriptor?: PropertyDescriptor): any {
    // Applied by the class's file (or a helper library, skipped): the default
    // name's file is where the class is, not where a shared factory such as
    // `const Job = () => Exclusive({ wait: 60_000 })` was written.
    const file = settings.name === undefined ? callerFile(true) : '';
    if (descriptor !== undefined || typeof contextOrKey !== 'object' || contextOrKey === null) {
      return decorateLegacy(settings, metadata, file, value as object, contextOrKey as string | symbol, descriptor);
    }
    return decorateStandard(settings, metadata, file, value, contextOrKey as ClassMethodDecoratorContext);
  } as ExclusiveDecorator;
}

/** The error for a decorated member that is not a method; `what` says what it is: `a getter`. */
function notAMethod(what: string): InvalidArgumentError {
  return new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `@Exclusive decorates methods, not ${what}`);
}

/** What a legacy decorator's descriptor describes, for {@link notAMethod}. */
function legacyMember(descriptor: PropertyDescriptor | undefined): string {
  if (descriptor === undefined) return 'a property'; // property decorators get no descriptor
  if (descriptor.get !== undefined && descriptor.set !== undefined) return 'an accessor';
  if (descriptor.get !== undefined) return 'a getter';
  if (descriptor.set !== undefined) return 'a setter';
  return `a property holding ${describe(descriptor.value)}`;
}

function decorateLegacy(settings: LockSettings, metadata: object, file: string, target: object, key: string | symbol, descriptor: PropertyDescriptor | undefined): PropertyDescriptor {
  if (typeof descriptor?.value !== 'function') throw notAMethod(legacyMember(descriptor));
  const owner = typeof target === 'function' ? target : target.constructor;
  const name = settings.name ?? `${nameForFile(file)}:${owner.name}.${String(key)}`;
  if (settings.name === undefined) traceName(name, file, '@Exclusive');
  descriptor.value = guard(descriptor.value, settings, () => name);
  const record = { ...metadata, name };
  Reflect.defineMetadata(EXCLUSIVE_METADATA, record, target, key);
  Reflect.defineMetadata(EXCLUSIVE_METADATA, record, descriptor.value);
  return descriptor;
}

function decorateStandard(settings: LockSettings, metadata: object, file: string, method: unknown, context: ClassMethodDecoratorContext): Method {
  if (context.kind !== 'method' || typeof method !== 'function') throw notAMethod(`${/^[aeiou]/.test(context.kind) ? 'an' : 'a'} ${context.kind}`);
  const key = context.name;
  // The class is not known at decoration time: find the one that declares
  // the method from `this` on first call (a subclass instance must not get
  // another name). Its own metadata object is `context.metadata`, which
  // holds even when another decorator replaced the method; a class decorator
  // that returned a subclass (`C => class extends C {}`) holds it then, and
  // the declaring class is the nearest one up from there that owns the key.
  const withMetadata = (self: unknown): object | undefined => {
    for (let o = self as object | null | undefined; o != null; o = Object.getPrototypeOf(o)) {
      const cls: unknown = context.static ? o : Object.hasOwn(o, 'constructor') ? (o as { constructor: unknown }).constructor : undefined;
      if (typeof cls === 'function' && Object.hasOwn(cls, SYMBOL_METADATA) && (cls as unknown as Record<symbol, unknown>)[SYMBOL_METADATA] === context.metadata) {
        return owning(o) ?? o;
      }
    }
    return undefined;
  };
  const owning = (from: object): object | undefined => {
    for (let o: object | null = from; o != null && o !== Object.prototype && o !== Function.prototype; o = Object.getPrototypeOf(o)) {
      if (Object.hasOwn(o, key)) return o;
    }
    return undefined;
  };
  const declaring = (self: unknown): object | undefined => context.metadata == null ? withoutMetadata(self) : withMetadata(self);
  // Without `context.metadata` (Babel 2022-03, 2023-01): the prototype that
  // holds this very replacement; else, when another decorator replaced it,
  // the only one in the chain that owns the key. Two owners (a subclass
  // overrides the wrapped method) cannot be told apart: refused, never
  // named after whichever class called first.
  const withoutMetadata = (self: unknown): object | undefined => {
    const owners: object[] = [];
    for (let o = owning(self as object); o !== undefined; o = owning(Object.getPrototypeOf(o) as object)) {
      if ((o as Record<string | symbol, unknown>)[key] === replacement) return o;
      owners.push(o);
    }
    if (owners.length > 1) {
      throw new InvalidArgumentError('ERR_INVALID_LOCK_NAME',
        `No default lock name for @Exclusive ${String(key)}(): it is wrapped by another decorator and overridden in a subclass, and this compiler gives decorators no context.metadata, so its declaring class cannot be told. Pass options.name.`);
    }
    return owners[0];
  };
  /** For the metadata record at construction, which must not fail: an undecidable class is reported at the call. */
  const declaringOrNone = (self: unknown): object | undefined => {
    try {
      return declaring(self);
    } catch {
      return undefined;
    }
  };
  const className = (self: unknown): string => {
    if (self == null) return 'anonymous'; // a detached call before any instance existed
    const owner = declaring(self) ?? (context.static ? self : Object.getPrototypeOf(self));
    return (context.static ? (owner as { name?: string })?.name : (owner as { constructor?: { name?: string } })?.constructor?.name) ?? 'anonymous';
  };
  // A detached call (`const f = obj.m; f()`) has no `this`: the class (static)
  // or the first instance's prototype, seen by the initializer, stands in.
  // Named at the first call, once the class has its final name.
  let initialized: unknown;
  let knownName: string | undefined; // the default name, once known from a class (and logged)
  const nameFor = (self: unknown): string => {
    const name = `${nameForFile(file)}:${className(self)}.${String(key)}`;
    if (knownName === undefined && self != null) {
      knownName = name;
      traceName(name, file, '@Exclusive');
    }
    return name;
  };
  const replacement: Method = guard(method as Method, settings, (self) => settings.name ?? nameFor(self == null || self === globalThis ? initialized : self));
  const record = recordOf(metadata, settings, () => knownName ?? (initialized === undefined ? undefined : nameFor(initialized)));
  Reflect.defineMetadata(EXCLUSIVE_METADATA, record, replacement);
  let recorded = false;
  context.addInitializer(function (this: unknown) {
    initialized ??= context.static ? this : Object.getPrototypeOf(this); // a prototype, not the instance: nothing kept alive
    const owner = recorded || context.private ? undefined : declaringOrNone(this);
    if (owner !== undefined) {
      recorded = true;
      Reflect.defineMetadata(EXCLUSIVE_METADATA, record, owner, key);
    }
  });
  return replacement;
}

/**
 * The metadata record of a standard decorator: the options and `name`. A
 * default name needs the class, known only from the class's definition
 * (static) or first instance, so it is read when the record is: by then the
 * class has its final name. Unknown yet: no `name` rather than a wrong one.
 */
function recordOf(metadata: object, settings: LockSettings, resolveName: () => string | undefined): object {
  if (settings.name !== undefined) return { ...metadata, name: settings.name };
  return Object.defineProperty({ ...metadata }, 'name', { get: resolveName, enumerable: true });
}

/** Options of the forms that wrap no function: `async` describes a function, so there it is refused, not ignored. */
function parseLockOptions(options: unknown, form: string): LockSettings {
  const settings = parseOptions(options);
  if (settings.async !== undefined) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `options.async applies to exclusive(fn) and @Exclusive only, not to ${form}`);
  }
  return settings;
}

/** The target of a form that wraps no function: the given name, else the calling file's (logged). */
function targetOf(settings: LockSettings, form: string): Target {
  return traceTarget(target(settings, settings.name ?? defaultName(form)));
}

function forever(options?: ExclusiveOptions): ExclusiveLock {
  const settings = parseLockOptions(options, 'Exclusive.forever()');
  requireSynchronous(settings, 'Exclusive.forever()');
  const t = targetOf(settings, 'Exclusive.forever()');
  return tracedSync(t, () => acquireForProcess(t));
}

async function run<R>(...args: [ExclusiveOptions | undefined, (lock: ExclusiveLock) => R] | [(lock: ExclusiveLock) => R]): Promise<Awaited<R>> {
  // `run(fn)`: a function alone is the callback (options are never a function).
  const [options, fn] = args.length === 1 && typeof args[0] === 'function' ? [undefined, args[0]] : args;
  if (typeof fn !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `Exclusive.run(options, fn) needs a function, got ${describe(fn)}`);
  }
  const settings = parseLockOptions(options, 'Exclusive.run() (it awaits what fn returns)');
  const t = targetOf(settings, 'Exclusive.run()');
  const lock = await traced(t, () => acquire(t));
  try {
    return await runHolding(lock, t, () => fn(lock));
  } finally {
    await lock.release();
  }
}

function lock(options?: ExclusiveOptions): ExclusiveLock {
  const settings = parseLockOptions(options, 'Exclusive.lock()');
  requireSynchronous(settings, 'Exclusive.lock()');
  const t = targetOf(settings, 'Exclusive.lock()');
  return tracedSync(t, () => acquireSync(t));
}

function acquireLock(options?: ExclusiveOptions): Promise<ExclusiveLock> {
  const settings = parseLockOptions(options, 'Exclusive.acquire()');
  const t = targetOf(settings, 'Exclusive.acquire()');
  return traced(t, () => acquire(t));
}

function holder(name: string, options?: HolderOptions): LockHolder | null | Promise<LockHolder | null> {
  validateName(name, 'name');
  const settings = parseHolderOptions(options);
  const t = target(settings, name);
  const describeHolder = (record: HolderRecord | null): LockHolder | null =>
    record === null ? null : { ...record, name, lockfile: t.resource, driver: settings.driver.kind };
  const record = holderOf(t);
  // An asynchronous driver always answers with a promise (as its type says),
  // also when this thread holds the lock and knows the record at once.
  if (!settings.driver.synchronous) return Promise.resolve(record).then(describeHolder);
  return record instanceof Promise ? record.then(describeHolder) : describeHolder(record);
}

/**
 * Makes code exclusive: as a method decorator (`@Exclusive()`), or through
 * its static helpers `forever`, `run`, `lock`, `acquire` and `holder`.
 *
 * @example
 * ```ts
 * import { Exclusive } from 'exclusive-process';
 * Exclusive.forever({ die: true });
 * ```
 */
export const Exclusive: ExclusiveApi = Object.assign(decorate as ExclusiveDecorator & ((options?: ExclusiveOptions) => ExclusiveDecorator), {
  forever: forever as ExclusiveApi['forever'],
  run: run as ExclusiveApi['run'],
  lock: lock as ExclusiveApi['lock'],
  acquire: acquireLock,
  holder: holder as ExclusiveApi['holder'],
});

import 'reflect-metadata';
import { describe } from './describe.js';
import { callerFile, nameForFile, nameFromCaller } from './default-name.js';
import type { DriverName, HolderRecord, LockDriver } from './drivers/types.js';
import { InvalidArgumentError } from './errors.js';
import { acquire, acquireSync, ExclusiveLock, holderOf, holdForProcess, requireSynchronous, runHolding, target } from './lock.js';
import { validateName } from './lock-path.js';
import { parseHolderOptions, parseOptions, type ExclusiveOptions, type LockSettings } from './options.js';
import { guard } from './wrap.js';

/**
 * The `reflect-metadata` key under which `@Exclusive` records its options,
 * on the class (prototype for instance methods) with the method's key, and
 * on the decorated function itself.
 *
 * @example
 * ```ts
 * Reflect.getMetadata(EXCLUSIVE_METADATA, Jobs.prototype, 'backup'); // { name: 'backup' }
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
  /** Standard (TC39) decorators. */
  <M extends Method>(method: M, context: ClassMethodDecoratorContext): M;
  /** `experimentalDecorators`. */
  (target: object, key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
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
   */
  forever(options?: ExclusiveOptions): ExclusiveLock;

  /**
   * Runs `fn` holding the lock and releases it when `fn`'s promise settles.
   * Default name: the calling file.
   *
   * @example
   * ```ts
   * const file = await Exclusive.run({ name: 'x' }, async (lock) => lock.lockfile);
   * ```
   */
  run<R>(options: ExclusiveOptions | undefined, fn: (lock: ExclusiveLock) => R): Promise<Awaited<R>>;

  /**
   * Takes the lock synchronously (a try, unless `wait` is set: then it
   * blocks this thread). For `using`. Default name: the calling file.
   *
   * @example
   * ```ts
   * { using lock = Exclusive.lock({ name: 'x' }); /* held here *\/ }
   * ```
   */
  lock(options?: ExclusiveOptions): ExclusiveLock;

  /**
   * Takes the lock, waiting without blocking per `wait` and `signal`.
   * For `await using`. Default name: the calling file.
   *
   * @example
   * ```ts
   * await using held = await Exclusive.acquire({ name: 'x', wait: true });
   * ```
   */
  acquire(options?: ExclusiveOptions): Promise<ExclusiveLock>;

  /**
   * Who holds the lock `name` (in `options.dir`, through `options.driver`):
   * `null` when free; `pid: null` when held by a holder that left no
   * readable record. Never takes the lock. Asynchronous drivers return a
   * promise.
   *
   * @example
   * ```ts
   * Exclusive.holder('nightly'); // { pid: 4242, host: 'db1', command: 'node backup.js', since: Date, ... } or null
   * ```
   */
  holder(name: string, options?: HolderOptions & { driver?: DriverName | (LockDriver & { synchronous: true }) }): LockHolder | null;
  holder(name: string, options: HolderOptions): LockHolder | null | Promise<LockHolder | null>;
}

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
    const file = settings.name === undefined ? callerFile() : '';
    if (descriptor !== undefined || typeof contextOrKey !== 'object' || contextOrKey === null) {
      return decorateLegacy(settings, metadata, file, value as object, contextOrKey as string | symbol, descriptor);
    }
    return decorateStandard(settings, metadata, file, value, contextOrKey as ClassMethodDecoratorContext);
  } as ExclusiveDecorator;
}

function notAMethod(what: unknown): InvalidArgumentError {
  return new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `@Exclusive decorates methods, not ${describe(what)}`);
}

function decorateLegacy(settings: LockSettings, metadata: object, file: string, target: object, key: string | symbol, descriptor: PropertyDescriptor | undefined): PropertyDescriptor {
  if (typeof descriptor?.value !== 'function') throw notAMethod(descriptor?.value ?? 'a property');
  const owner = typeof target === 'function' ? target : target.constructor;
  const name = settings.name ?? `${nameForFile(file)}:${owner.name}.${String(key)}`;
  descriptor.value = guard(descriptor.value, settings, () => name);
  Reflect.defineMetadata(EXCLUSIVE_METADATA, metadata, target, key);
  Reflect.defineMetadata(EXCLUSIVE_METADATA, metadata, descriptor.value);
  return descriptor;
}

function decorateStandard(settings: LockSettings, metadata: object, file: string, method: unknown, context: ClassMethodDecoratorContext): Method {
  if (context.kind !== 'method' || typeof method !== 'function') throw notAMethod(`a ${context.kind}`);
  const key = context.name;
  // The class is not known at decoration time: find the one that declares
  // the method from `this` on first call (a subclass instance must not get
  // another name).
  const declaring = (self: unknown): object | undefined => {
    for (let o = self as object | null | undefined; o != null; o = Object.getPrototypeOf(o)) {
      if (Object.hasOwn(o, key) && (o as Record<string | symbol, unknown>)[key] === replacement) return o;
    }
    return undefined;
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
  const replacement: Method = guard(method as Method, settings, (self) => settings.name ?? `${nameForFile(file)}:${className(self == null || self === globalThis ? initialized : self)}.${String(key)}`);
  Reflect.defineMetadata(EXCLUSIVE_METADATA, metadata, replacement);
  let recorded = false;
  context.addInitializer(function (this: unknown) {
    initialized ??= context.static ? this : Object.getPrototypeOf(this); // a prototype, not the instance: nothing kept alive
    const owner = recorded || context.private ? undefined : declaring(this);
    if (owner !== undefined) {
      recorded = true;
      Reflect.defineMetadata(EXCLUSIVE_METADATA, metadata, owner, key);
    }
  });
  return replacement;
}

function forever(options?: ExclusiveOptions): ExclusiveLock {
  const settings = parseOptions(options);
  requireSynchronous(settings, 'Exclusive.forever()');
  const t = target(settings, settings.name ?? nameFromCaller());
  const lock = acquireSync(t);
  holdForProcess(t);
  return lock;
}

async function run<R>(options: ExclusiveOptions | undefined, fn: (lock: ExclusiveLock) => R): Promise<Awaited<R>> {
  if (typeof fn !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `Exclusive.run(options, fn) needs a function, got ${describe(fn)}`);
  }
  const settings = parseOptions(options);
  const t = target(settings, settings.name ?? nameFromCaller());
  const lock = await acquire(t);
  try {
    return await runHolding(lock, t, () => fn(lock));
  } finally {
    await lock.release();
  }
}

function lock(options?: ExclusiveOptions): ExclusiveLock {
  const settings = parseOptions(options);
  requireSynchronous(settings, 'Exclusive.lock()');
  return acquireSync(target(settings, settings.name ?? nameFromCaller()));
}

function acquireLock(options?: ExclusiveOptions): Promise<ExclusiveLock> {
  const settings = parseOptions(options);
  return acquire(target(settings, settings.name ?? nameFromCaller()));
}

function holder(name: string, options?: HolderOptions): LockHolder | null | Promise<LockHolder | null> {
  validateName(name, 'name');
  const settings = parseHolderOptions(options);
  const t = target(settings, name);
  const describeHolder = (record: HolderRecord | null): LockHolder | null =>
    record === null ? null : { ...record, name, lockfile: t.resource, driver: settings.driver.kind };
  const record = holderOf(t);
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
  forever,
  run,
  lock,
  acquire: acquireLock,
  holder: holder as ExclusiveApi['holder'],
});

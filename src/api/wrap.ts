import { describe } from '../shared/describe.js';
import { callerFile, nameForFile } from './default-name.js';
import { traceName, traceTarget } from '../core/debug.js';
import { CannotAcquireLock, InvalidArgumentError } from '../shared/errors.js';
import { acquireOrSkip, acquireOrSkipSync } from '../core/acquire.js';
import type { ExclusiveLock } from '../core/handle.js';
import { chainSignal, runHolding } from '../core/hold.js';
import { requireSynchronous, target, type LockSettings, type Target } from '../core/settings.js';
import { parseOptions, type ExclusiveOptions } from './options.js';

const AsyncFunction = (async () => {}).constructor;
const GeneratorFunction = function* () {}.constructor;
const AsyncGeneratorFunction = async function* () {}.constructor;

/**
 * Wraps `fn` so that no two calls run at once, in this process or any other
 * using the same lock name. Declared `async` functions keep the lock until
 * their promise settles and always return a promise (a conflict rejects).
 * Other functions keep their synchronous shape: a conflict throws, a `wait`
 * blocks the thread, and a returned promise still holds the lock until it
 * settles. `this`, arguments, return values and errors pass through.
 * A function whose `async` was compiled away (target ES2016 or lower) needs
 * `async: true` to be treated as asynchronous.
 *
 * Default name: the file that called `exclusive()` (see README); the
 * returned function tells it as `lockName`.
 *
 * @throws {InvalidArgumentError} at once, for a non-function, a generator
 *   function or bad options; `ERR_INVALID_LOCK_NAME` when no name is given
 *   and the caller has no file (`node -e`).
 * @throws {LockDriverError} at once, `ERR_DRIVER_UNSUPPORTED`, for a
 *   synchronous function with an asynchronous driver (postgres).
 *   Calls throw (or reject with) `CannotAcquireLock` on conflict unless `die`.
 *
 * @example
 * ```ts
 * const nightly = exclusive(async () => { await backup(); });
 * const job = exclusive(main, { name: 'nightly', wait: 30_000 });
 * await job();
 * const legacy = exclusive(compiledToEs2016, { async: true, wait: true }); // returns a promise; waits without blocking
 * job.lockName; // 'nightly'
 * const tick = exclusive(async () => poll(), { name: 'tick', skip: true }); // resolves to undefined when held elsewhere
 * ```
 */
export const exclusive: {
  /** With `async: true` and `skip: true`: every call returns a promise, which resolves to `undefined` when the call was skipped. */
  <F extends (...args: any[]) => any>(
    fn: F & NotAGenerator<F>,
    options: ExclusiveOptions & { async: true; skip: true }
  ): ExclusiveFunction<MaybeSkipped<AsyncVersion<F>>>;
  /** With `async: true` every call returns a promise (a conflict rejects), whatever `fn` is declared to return. */
  <F extends (...args: any[]) => any>(
    fn: F & NotAGenerator<F>,
    options: ExclusiveOptions & { async: true }
  ): ExclusiveFunction<AsyncVersion<F>>;
  /** With `skip: true`: a skipped call returns `undefined` (an `async` function's promise resolves to it). */
  <F extends (...args: any[]) => any>(
    fn: F & NotAGenerator<F>,
    options: ExclusiveOptions & { skip: true }
  ): ExclusiveFunction<MaybeSkipped<F>>;
  <F extends (...args: any[]) => any>(fn: F & NotAGenerator<F>, options?: ExclusiveOptions): ExclusiveFunction<F>;
  /**
   * Inside an exclusive function, method or `Exclusive.run()` callback: an
   * AbortSignal that aborts when the lock is lost (a database driver's
   * session ended: the reason is a `LockLostError`) or released. Pass it to
   * the work the lock protects. Throws `NotHoldingError` elsewhere.
   *
   * @example
   * ```ts
   * const migrate = exclusive(async () => {
   *   await runMigrations({ signal: exclusive.signal() });
   * }, { name: 'migrate', driver });
   * ```
   */
  signal(): AbortSignal;
} = Object.assign(wrap, { signal: chainSignal });

/**
 * What `exclusive(fn)` returns: a function of `fn`'s type that also tells
 * its lock's name (the default one too), read-only.
 *
 * @example
 * ```ts
 * const job: ExclusiveFunction<() => void> = exclusive(() => {});
 * console.log(job.lockName); // 'my-app/scripts/job'
 * ```
 */
export type ExclusiveFunction<F extends (...args: any[]) => any> = F & {
  /** The lock's name: `options.name`, else the default name of the file that called `exclusive()`. */
  readonly lockName: string;
};

/**
 * What `exclusive(fn, { async: true })` returns: `fn` with its result as a promise.
 *
 * @example
 * ```ts
 * const job: AsyncVersion<() => number> = exclusive(() => 1, { async: true }); // () => Promise<number>
 * ```
 */
export type AsyncVersion<F extends (...args: any[]) => any> = (
  this: ThisParameterType<F>,
  ...args: Parameters<F>
) => Promise<Awaited<ReturnType<F>>>;

/**
 * What `exclusive(fn, { skip: true })` returns: `fn` whose result may be
 * `undefined` (a skipped call); a promise's result, for a function declared
 * `async` (or with `async: true`). A plain function returning a promise
 * (its `async` compiled away) returns `undefined` itself when skipped: give
 * it `async: true`.
 *
 * @example
 * ```ts
 * const tick: MaybeSkipped<() => Promise<number>> = exclusive(async () => 1, { skip: true }); // () => Promise<number | undefined>
 * ```
 */
export type MaybeSkipped<F extends (...args: any[]) => any> = (
  this: ThisParameterType<F>,
  ...args: Parameters<F>
) => ReturnType<F> extends PromiseLike<infer T> ? Promise<T | undefined> : ReturnType<F> | undefined;

/**
 * `unknown` (no constraint) for any function except a generator function,
 * which `exclusive()` and `@Exclusive` refuse at run time (the lock would be
 * released before the generator runs): for those, a type no function has,
 * whose key is the reason.
 *
 * @example
 * ```ts
 * declare function only<F extends (...args: any[]) => any>(fn: F & NotAGenerator<F>): F;
 * only(async () => 1); // compiles
 * only(function* () {}); // error: ... 'a generator function cannot be made exclusive: wrap the code that consumes it'
 * ```
 */
export type NotAGenerator<F extends (...args: any[]) => any> = [ReturnType<F>] extends [never]
  ? unknown // a function that only throws
  : ReturnType<F> extends Generator<unknown, unknown, any> | AsyncGenerator<unknown, unknown, any>
    ? { 'a generator function cannot be made exclusive: wrap the code that consumes it': never }
    : unknown;

function wrap<F extends (...args: any[]) => any>(fn: F, options?: ExclusiveOptions): ExclusiveFunction<F> {
  if (typeof fn !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `exclusive(fn) needs a function, got ${describe(fn)}`);
  }
  const settings = parseOptions(options);
  const name = settings.name ?? defaultName('exclusive()');
  const wrapper = guard(fn, settings, () => name);
  Object.defineProperty(wrapper, 'lockName', { value: name, enumerable: false, writable: false, configurable: false });
  return wrapper as ExclusiveFunction<F>;
}

/** The default name of the calling file, logged (NODE_DEBUG=exclusive-process) with the file and `form` that asked. */
export function defaultName(form: string): string {
  const file = callerFile();
  const name = nameForFile(file);
  traceName(name, file, form);
  return name;
}

/**
 * The wrapper shared by `exclusive()` and `@Exclusive`: `nameOf(this)` gives
 * the lock name on first use (decorators learn their class name late). The
 * lock's location is resolved on first call too, so importing or decorating
 * touches no file.
 */
export function guard<F extends (...args: any[]) => any>(fn: F, settings: LockSettings, nameOf: (self: unknown) => string): F {
  if (fn instanceof GeneratorFunction || fn instanceof AsyncGeneratorFunction) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'A generator function cannot be made exclusive: the lock would be released before the generator runs. Wrap the code that consumes it.'
    );
  }
  const isAsync = settings.async ?? fn instanceof AsyncFunction;
  if (!isAsync) requireSynchronous(settings, 'a synchronous function');
  let resolved: Target | undefined;
  let unsettled = 0; // promises returned by synchronous calls, each holding the lock
  const targetFor = (self: unknown): Target => resolved ?? (resolved = traceTarget(target(settings, nameOf(self))));

  async function exclusiveAsync(this: unknown, ...args: unknown[]): Promise<unknown> {
    const t = targetFor(this);
    const lock = await acquireOrSkip(t);
    if (lock === null) return undefined; // skipped: held elsewhere
    try {
      return await runHolding(lock, t, () => fn.apply(this, args));
    } finally {
      await lock.release();
    }
  }

  function exclusiveSync(this: unknown, ...args: unknown[]): unknown {
    const t = targetFor(this);
    let lock: ExclusiveLock | null;
    try {
      lock = acquireOrSkipSync(t);
    } catch (error) {
      throw unsettled > 0 ? explainUnsettled(error, settings.waitMs > 0) : error;
    }
    if (lock === null) return undefined; // skipped: held elsewhere
    let result: unknown;
    try {
      result = runHolding(lock, t, () => fn.apply(this, args));
    } catch (error) {
      lock.release().catch(() => {}); // the function's error is the one to report
      throw error;
    }
    // A plain function that returns a promise keeps the lock until it settles.
    if (isThenable(result)) {
      unsettled++;
      return Promise.resolve(result).finally(() => {
        unsettled--;
        return lock.release();
      });
    }
    lock[Symbol.dispose](); // a failure to release is thrown, not left unhandled
    return result;
  }

  const wrapper = isAsync ? exclusiveAsync : exclusiveSync;
  Object.defineProperty(wrapper, 'name', { value: fn.name });
  Object.defineProperty(wrapper, 'length', { value: fn.length });
  return wrapper as F;
}

/**
 * A call that failed on this very process while an earlier call's promise
 * holds the lock: the function looks synchronous (its `async` compiled
 * away?), so the error would otherwise name this process as the holder (and,
 * with `wait`, not say why it did not wait: that would block the thread the
 * promise needs). Says what happened and what to do.
 */
function explainUnsettled(error: unknown, waited: boolean): unknown {
  if (!(error instanceof CannotAcquireLock) || error.pid !== process.pid) return error;
  const original = error.message;
  error.message =
    `'${error.lockName}' is held by this process: an earlier call of this function returned a promise that has not settled. ` +
    (waited
      ? 'A function not declared `async` is locked synchronously, so a second call cannot wait for it without blocking the thread that must settle it. '
      : '') +
    'If the function is asynchronous (its `async` compiled away by a TypeScript target of ES2016 or lower, or an older Babel or SWC target), pass `async: true` in its options.';
  error.stack = error.stack?.replace(original, error.message);
  return error;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

import { describe } from './describe.js';
import { nameFromCaller } from './default-name.js';
import { InvalidArgumentError } from './errors.js';
import { acquire, acquireSync, chainSignal, requireSynchronous, runHolding, target, type Target } from './lock.js';
import { parseOptions, type ExclusiveOptions, type LockSettings } from './options.js';

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
 *
 * Default name: the file that called `exclusive()` (see README).
 *
 * @example
 * ```ts
 * const nightly = exclusive(async () => { await backup(); });
 * const job = exclusive(main, { name: 'nightly', wait: 30_000 });
 * await job();
 * ```
 */
export const exclusive: {
  <F extends (...args: any[]) => any>(fn: F, options?: ExclusiveOptions): F;
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

function wrap<F extends (...args: any[]) => any>(fn: F, options?: ExclusiveOptions): F {
  if (typeof fn !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `exclusive(fn) needs a function, got ${describe(fn)}`);
  }
  const settings = parseOptions(options);
  const name = settings.name ?? nameFromCaller();
  return guard(fn, settings, () => name);
}

/**
 * The wrapper shared by `exclusive()` and `@Exclusive`: `nameOf(this)` gives
 * the lock name on first use (decorators learn their class name late). The
 * lock's location is resolved on first call too, so importing or decorating
 * touches no file.
 */
export function guard<F extends (...args: any[]) => any>(fn: F, settings: LockSettings, nameOf: (self: unknown) => string): F {
  if (fn instanceof GeneratorFunction || fn instanceof AsyncGeneratorFunction) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE',
      'A generator function cannot be made exclusive: the lock would be released before the generator runs. Wrap the code that consumes it.');
  }
  const isAsync = fn instanceof AsyncFunction;
  if (!isAsync) requireSynchronous(settings, 'a synchronous function');
  let resolved: Target | undefined;
  const targetFor = (self: unknown): Target => (resolved ??= target(settings, nameOf(self)));

  async function exclusiveAsync(this: unknown, ...args: unknown[]): Promise<unknown> {
    const t = targetFor(this);
    const lock = await acquire(t);
    try {
      return await runHolding(lock, t, () => fn.apply(this, args));
    } finally {
      await lock.release();
    }
  }

  function exclusiveSync(this: unknown, ...args: unknown[]): unknown {
    const t = targetFor(this);
    const lock = acquireSync(t);
    let result: unknown;
    try {
      result = runHolding(lock, t, () => fn.apply(this, args));
    } catch (error) {
      lock.release().catch(() => {}); // the function's error is the one to report
      throw error;
    }
    // A plain function that returns a promise keeps the lock until it settles.
    if (isThenable(result)) return Promise.resolve(result).finally(() => lock.release());
    lock[Symbol.dispose](); // a failure to release is thrown, not left unhandled
    return result;
  }

  const wrapper = isAsync ? exclusiveAsync : exclusiveSync;
  Object.defineProperty(wrapper, 'name', { value: fn.name });
  Object.defineProperty(wrapper, 'length', { value: fn.length });
  return wrapper as F;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

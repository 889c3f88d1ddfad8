import type { Entry } from './registry.js';

/**
 * A held lock. Returned by `Exclusive.forever()`, `Exclusive.lock()`,
 * `Exclusive.acquire()` and passed to `Exclusive.run()` callbacks; works with
 * `using` and `await using`.
 *
 * @example
 * ```ts
 * await using lock = await Exclusive.acquire({ name: 'report', wait: 5_000 });
 * console.log(lock.name, lock.lockfile);
 * ```
 */
export class ExclusiveLock implements Disposable, AsyncDisposable {
  /** The lock's name. */
  readonly name: string;
  /** Where the lock lives: the lock file (or mutex name, or advisory key). */
  readonly lockfile: string;
  /** The driver holding it: `'posix'`, `'windows'`, `'portable'`, `'postgres'`, `'redis'`... */
  readonly driver: string;
  /** True when the previous holder died holding the lock (Windows `WAIT_ABANDONED`): the data it guarded may be half-written. */
  readonly abandoned: boolean;
  /** A number that grows with every acquisition, where the driver provides one (postgres, redis); otherwise undefined. Default: undefined. @example `await fence.write(data, lock.fencingToken!)` */
  readonly fencingToken: bigint | undefined;
  // Made on first use of `signal` (or when the driver can lose the lock):
  // most holders never look, and an AbortController per acquisition is a
  // measurable part of a lock's cost.
  #controller: AbortController | undefined;
  #release: (() => void | Promise<void>) | undefined;
  #released: Promise<void> | undefined;
  /** Set when the release failed synchronously, for `[Symbol.dispose]` to throw. */
  #failure: { error: unknown } | undefined;

  /** @internal */
  constructor(name: string, driver: string, entry: Entry, release: () => void | Promise<void>) {
    this.name = name;
    this.lockfile = entry.resource;
    this.driver = driver;
    this.abandoned = entry.lock?.abandoned === true;
    this.fencingToken = entry.lock?.fencingToken;
    this.#release = release;
    const lost = entry.lock?.lost;
    if (lost !== undefined) {
      const onLost = (): void => this.#abort(lost.reason);
      if (lost.aborted) onLost();
      else lost.addEventListener('abort', onLost, { once: true });
    }
  }

  /** Aborted when this handle is released, or when the driver learns the lock was lost (reason: a `LockLostError`). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#release === undefined) this.#controller.abort(this.#releasedReason());
    }
    return this.#controller.signal;
  }

  #abort(reason: unknown): void {
    (this.#controller ??= new AbortController()).abort(reason);
  }

  #releasedReason(): Error {
    return new Error(`The lock '${this.name}' was released.`);
  }

  /** True until `release()` is called. */
  get held(): boolean {
    return this.#release !== undefined;
  }

  /**
   * Releases the lock. Idempotent. Synchronous drivers (posix, windows,
   * portable) have released when this returns; the promise is for drivers
   * that talk to a server.
   */
  release(): Promise<void> {
    if (this.#released === undefined) {
      const release = this.#release!;
      this.#release = undefined;
      try {
        const result = release();
        this.#released = result instanceof Promise ? result : Promise.resolve();
      } catch (error) {
        this.#failure = { error };
        this.#released = Promise.reject(error);
      }
      // After #released is set: an abort listener that calls release() again gets the same promise.
      if (this.#controller !== undefined && !this.#controller.signal.aborted) this.#controller.abort(this.#releasedReason());
    }
    return this.#released;
  }

  /**
   * Releases the lock at the end of a `using` block. A synchronous driver's
   * failure to release is thrown here; use `await using` for the others.
   */
  [Symbol.dispose](): void {
    const released = this.release();
    if (this.#failure === undefined) return;
    released.catch(() => {}); // reported by the throw instead
    throw this.#failure.error;
  }

  /** Releases the lock at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

import { InvalidArgumentError, LockDriverError } from '../shared/errors.js';
import type { LockDriver, LockMode } from '../drivers/types.js';

/** Options after validation, with defaults applied. */
export interface LockSettings {
  readonly name: string | undefined;
  readonly die: boolean;
  /** On a conflict, give up quietly: the acquisition yields `null` (the forms that run a function resolve to `undefined`). */
  readonly skip: boolean;
  readonly exitCode: number;
  /** Milliseconds to wait: 0 = fail at once, Infinity = for ever. */
  readonly waitMs: number;
  readonly signal: AbortSignal | undefined;
  readonly dir: string | undefined;
  readonly driver: LockDriver;
  /** Treat the function as asynchronous (`true`), synchronous (`false`), or as declared (`undefined`). */
  readonly async?: boolean;
  /** The command line recorded as the holder's (internal: the CLI records the command it runs). Default: this process's. */
  readonly command?: string;
  /** `'exclusive'` or `'shared'`. */
  readonly mode: LockMode;
  /** At most this many holders (1: a plain lock). */
  readonly limit: number;
}

/** Settings plus the resolved name and resource: what one acquisition needs. */
export interface Target {
  readonly settings: LockSettings;
  readonly name: string;
  readonly resource: string;
}

/** Resolves where the lock lives (this can fail: bad directory...). */
export function target(settings: LockSettings, name: string): Target {
  return { settings, name, resource: settings.driver.locate(name, settings.dir) };
}

/**
 * Throws unless `settings` suit a synchronous form (`lock()`, `forever()`,
 * sync functions; `what` names it): the driver must be synchronous, and a
 * `signal` that has not aborted yet cannot stop a wait, since no JavaScript
 * (no timer, no abort) runs in a thread blocked in a synchronous wait. An
 * aborted signal is accepted: the call throws its reason, as `acquire()` does.
 */
export function requireSynchronous(settings: LockSettings, what: string): void {
  const { driver, signal } = settings;
  if (!driver.synchronous) {
    throw new LockDriverError(
      'ERR_DRIVER_UNSUPPORTED',
      `The ${driver.kind} driver is asynchronous: ${what} needs a synchronous driver; use Exclusive.acquire() or an async function.`
    );
  }
  if (signal !== undefined && !signal.aborted && settings.waitMs > 0) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `options.signal cannot stop the wait of ${what}: a synchronous wait blocks the thread, so the signal would never be seen. ` +
        'Use Exclusive.acquire() or an async function to wait with a signal, or a synchronous wait without one.'
    );
  }
}

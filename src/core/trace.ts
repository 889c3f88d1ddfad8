import { channel, tracingChannel } from 'node:diagnostics_channel';
import { CannotAcquireLock, type ConflictReason } from '../shared/errors.js';
import type { ExclusiveLock } from './handle.js';
import type { Target } from './settings.js';

/**
 * The `node:diagnostics_channel` names this package publishes on, for
 * tracers and metrics (see docs/observability.md):
 * - `acquire`: a tracing channel (`tracingChannel(CHANNELS.acquire)`: start,
 *   end, asyncStart, asyncEnd, error) around every acquisition, re-entries
 *   included; its context is an {@link AcquireContext}.
 * - `release`: a plain channel; one {@link ReleaseMessage} per released handle.
 * - `lost`: a plain channel; one {@link LostMessage} when a driver learns a held lock was lost.
 *
 * Nothing is built or published while a channel has no subscriber.
 *
 * @example
 * ```ts
 * import { subscribe, tracingChannel } from 'node:diagnostics_channel';
 * import { CHANNELS, type AcquireContext, type LostMessage } from 'exclusive-process';
 *
 * tracingChannel<unknown, AcquireContext>(CHANNELS.acquire).subscribe({
 *   start() {},
 *   end() {},
 *   asyncStart() {},
 *   asyncEnd: (c) => console.log(c.name, c.outcome, c.waitedMs),
 *   error: (c) => console.log(c.name, 'failed:', c.outcome),
 * });
 * subscribe(CHANNELS.lost, (message) => console.error('lost', (message as LostMessage).name));
 * ```
 */
export const CHANNELS = Object.freeze({
  acquire: 'exclusive-process:acquire',
  release: 'exclusive-process:release',
  lost: 'exclusive-process:lost',
} as const);

/**
 * How an acquisition ended: `'acquired'` (re-entries too, see
 * `reentered`), `'skipped'` when the lock was held and `skip` was set (the
 * call then ends normally and its `result` is `null`; NODE_DEBUG logs the
 * holder), a {@link ConflictReason} when it was refused, `'aborted'`
 * when its `signal` aborted it, `'error'` for anything else (a lock
 * directory that cannot be made, a server that cannot be reached...).
 *
 * @example
 * ```ts
 * const failed = (o: AcquireOutcome): boolean => o !== 'acquired';
 * ```
 */
export type AcquireOutcome = 'acquired' | 'skipped' | ConflictReason | 'aborted' | 'error';

/**
 * The context object of the `exclusive-process:acquire` tracing channel. The
 * first fields are set at `start`; `outcome`, `waitedMs` and `reentered` by
 * `end` (synchronous forms) or `asyncStart` (the others); Node sets `result`
 * (the {@link ExclusiveLock}) or `error` (what the call throws).
 *
 * @example
 * ```ts
 * const context: AcquireContext = { name: 'report', driver: 'posix', lockfile: '/run/lock/x', mode: 'exclusive', wait: 0, synchronous: true };
 * ```
 */
export interface AcquireContext {
  /** The lock's name. */
  readonly name: string;
  /** The driver's kind: `'posix'`, `'windows'`, `'portable'`, `'postgres'`... */
  readonly driver: string;
  /** Where the lock lives (lock file, mutex name, advisory key), as `ExclusiveLock.lockfile`. */
  readonly lockfile: string;
  /** The kind of lock asked for. Always `'exclusive'` in this version. */
  readonly mode: 'exclusive';
  /** The `wait` setting in milliseconds: 0 = none, `Infinity` = for ever. */
  readonly wait: number;
  /** True for the synchronous forms (`Exclusive.lock()`, `forever()`, synchronous functions). */
  readonly synchronous: boolean;
  /** How it ended (set when it ends). */
  outcome?: AcquireOutcome;
  /** Milliseconds from start to end, waits included (set when it ends). */
  waitedMs?: number;
  /** True when this call chain already held the lock and re-entered it (set when it ends). */
  reentered?: boolean;
  /** The handle, once acquired, or `null` when skipped (set by Node). */
  result?: ExclusiveLock | null;
  /** What the acquisition threw (set by Node): a `CannotAcquireLock`, the signal's reason... */
  error?: unknown;
}

/**
 * A message of the `exclusive-process:release` channel: one per released
 * handle (published as the release starts).
 *
 * @example
 * ```ts
 * subscribe(CHANNELS.release, (m) => (m as ReleaseMessage).final && console.log('free:', (m as ReleaseMessage).name));
 * ```
 */
export interface ReleaseMessage {
  readonly name: string;
  readonly driver: string;
  readonly lockfile: string;
  /** True when this release gives the lock up (its last handle); false for a re-entry's handle. */
  readonly final: boolean;
}

/**
 * A message of the `exclusive-process:lost` channel: the driver learned that
 * a lock it held is lost (postgres: its session ended).
 *
 * @example
 * ```ts
 * subscribe(CHANNELS.lost, (m) => alert((m as LostMessage).reason.message));
 * ```
 */
export interface LostMessage {
  readonly name: string;
  readonly driver: string;
  readonly lockfile: string;
  /** Why: a `LockLostError`. */
  readonly reason: Error;
}

const acquireChannel = tracingChannel<unknown, AcquireContext>(CHANNELS.acquire);
const releaseChannel = channel(CHANNELS.release);
const lostChannel = channel(CHANNELS.lost);

/** Each sub-channel's own flag: `TracingChannel.hasSubscribers` is missing before Node 20.13. */
function acquireObserved(): boolean {
  const c = acquireChannel;
  return (
    c.start.hasSubscribers || c.end.hasSubscribers || c.asyncStart.hasSubscribers || c.asyncEnd.hasSubscribers || c.error.hasSubscribers
  );
}

/** Runs a synchronous acquisition of `t`, inside the acquire tracing channel when someone listens. */
export function observedSync(t: Target, reentry: boolean, acquire: () => ExclusiveLock | null): ExclusiveLock | null {
  if (!acquireObserved()) return acquire();
  const context = contextOf(t, reentry, true);
  const began = performance.now();
  return acquireChannel.traceSync(() => {
    try {
      return settled(context, began, acquire());
    } catch (error) {
      throw failed(context, began, t, error);
    }
  }, context);
}

/** Runs an asynchronous acquisition of `t`, inside the acquire tracing channel when someone listens; else the very promise of `acquire()`. */
export function observed(t: Target, reentry: boolean, acquire: () => Promise<ExclusiveLock | null>): Promise<ExclusiveLock | null> {
  if (!acquireObserved()) return acquire();
  const context = contextOf(t, reentry, false);
  const began = performance.now();
  return acquireChannel.tracePromise(
    () =>
      acquire().then(
        (lock) => settled(context, began, lock),
        (error: unknown) => Promise.reject(failed(context, began, t, error))
      ),
    context
  );
}

function contextOf({ name, resource, settings }: Target, reentered: boolean, synchronous: boolean): AcquireContext {
  return { name, driver: settings.driver.kind, lockfile: resource, mode: 'exclusive', wait: settings.waitMs, synchronous, reentered };
}

function settled(context: AcquireContext, began: number, lock: ExclusiveLock | null): ExclusiveLock | null {
  context.outcome = lock === null ? 'skipped' : 'acquired';
  context.waitedMs = performance.now() - began;
  return lock;
}

function failed(context: AcquireContext, began: number, { settings }: Target, error: unknown): unknown {
  context.outcome = outcomeOf(error, settings.signal);
  context.waitedMs = performance.now() - began;
  return error;
}

function outcomeOf(error: unknown, signal: AbortSignal | undefined): AcquireOutcome {
  if (error instanceof CannotAcquireLock) return error.reason;
  return signal?.aborted === true && error === signal.reason ? 'aborted' : 'error';
}

/** Publishes a handle's release (`final`: it gives the lock up), when someone listens. */
export function publishRelease(name: string, driver: string, lockfile: string, final: boolean): void {
  if (releaseChannel.hasSubscribers) releaseChannel.publish({ name, driver, lockfile, final } satisfies ReleaseMessage);
}

/** Publishes that the lock held as `name` was lost, when someone listens. */
export function publishLost(name: string, driver: string, lockfile: string, reason: unknown): void {
  if (lostChannel.hasSubscribers) lostChannel.publish({ name, driver, lockfile, reason: reason as Error } satisfies LostMessage);
}

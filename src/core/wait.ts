import { isMainThread } from 'node:worker_threads';
import type { DriverLock, HolderRecord, LockDriver } from '../drivers/types.js';
import { traceAttempt, traceWoken } from './debug.js';
import { markSharer } from './modes.js';
import type { Entry } from './registry.js';
import type { LockSettings } from './settings.js';

/**
 * Waits between retries, doubling from the first to the max. Asynchronous
 * waiters are woken by the driver's change notification, so their poll only
 * finds holders that died without a word; a blocked thread has only its poll.
 */
const POLL_FIRST_MS = 2;
const POLL_MAX_MS = 100;
const SYNC_POLL_MAX_MS = 10;
/** What the polls of all asynchronous waits of a thread may add up to, watched or not (see pollMaxMs). */
const WATCHED_POLLS_PER_SECOND = 200;
const UNWATCHED_POLLS_PER_SECOND = 1000;
/** How often a wait whose watch failed tries again. */
const WATCH_RETRY_MS = 1000;

/**
 * A synchronous wait: no JavaScript runs in this thread until it returns,
 * signal handlers and abort signals included (see requireSynchronous). The
 * main thread waiting for ever blocks in the driver: the kernel hands the
 * lock over at once. Otherwise it polls, sleeping in Atomics.wait, which
 * `worker.terminate()` interrupts; a worker blocked in the kernel (flock)
 * could not be stopped, and `process.exit()`, which stops every worker
 * first, would hang until the lock came.
 */
export function waitSync(attempt: (block: boolean) => DriverLock | null, settings: LockSettings, deadline: number): DriverLock | null {
  if (waitsInKernel(settings)) return attempt(true);
  for (let delay = POLL_FIRST_MS; ; delay = Math.min(delay * 2, SYNC_POLL_MAX_MS)) {
    const left = deadline - performance.now();
    if (left <= 0) return null;
    sleepSync(Math.min(delay, left));
    const lock = attempt(false);
    if (lock !== null) return lock;
  }
}

/** True when a synchronous wait blocks in the driver (the main thread waiting for ever), rather than polling; a counted lock (one of many slots) is polled. */
export function waitsInKernel(settings: LockSettings): boolean {
  return settings.waitMs === Infinity && isMainThread && settings.driver.waitLockSync !== undefined && settings.limit === 1;
}

/** Blocks the thread for `ms` without burning CPU; `worker.terminate()` interrupts it. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Waits for this thread's current holder to let go: true when the
 * reservation passed to us, false at the deadline or abort; for a `shared`
 * waiter, `'join'` when a shared hold let it in beside it (see admitSharers).
 */
export function turn(
  entry: Entry,
  deadline: number,
  signal: AbortSignal | undefined,
  shared = false,
  giveUp?: Set<() => void>
): Promise<boolean | 'join'> {
  return new Promise((resolve) => {
    const done = (result: boolean | 'join'): void => {
      entry.queue.delete(wake);
      giveUp?.delete(abort);
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      resolve(result);
    };
    const wake = (): void => done(true);
    const abort = (): void => done(false);
    if (shared) markSharer(wake, () => done('join'));
    entry.queue.add(wake);
    giveUp?.add(abort);
    const timer = deadline === Infinity ? undefined : setTimeout(abort, Math.max(0, deadline - performance.now()));
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * Waits for the turn of any of `entries` (a counted lock's holds in this
 * thread, all in use): the entry whose reservation passed to us, or
 * undefined at the deadline or abort. Queued on each; the first to pass
 * takes us off the others at once (queues hand over synchronously).
 */
export function anyTurn(entries: readonly Entry[], deadline: number, signal: AbortSignal | undefined): Promise<Entry | undefined> {
  return new Promise((resolve) => {
    const wakes = new Map<Entry, () => void>();
    const done = (result: Entry | undefined): void => {
      for (const [entry, wake] of wakes) entry.queue.delete(wake);
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      resolve(result);
    };
    for (const entry of entries) {
      const wake = (): void => done(entry);
      wakes.set(entry, wake);
      entry.queue.add(wake);
    }
    const abort = (): void => done(undefined);
    const timer = deadline === Infinity ? undefined : setTimeout(abort, Math.max(0, deadline - performance.now()));
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/** The driver's own wait (`waitLock`), stopped by `signal` or at the deadline. */
export async function nativeWait(
  driver: LockDriver,
  resource: string,
  record: HolderRecord,
  deadline: number,
  signal: AbortSignal | undefined
): Promise<DriverLock | null> {
  // AbortSignal.timeout() takes whole milliseconds only.
  const left = deadline === Infinity ? undefined : Math.max(0, Math.ceil(deadline - performance.now()));
  const timeout = left === undefined ? undefined : AbortSignal.timeout(left);
  const stop = signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout ?? new AbortController().signal);
  return driver.waitLock!(resource, record, stop, left);
}

/**
 * Retries the lock whenever the driver reports a change (a release wakes us
 * within a millisecond), and on a poll backing off to pollMaxMs(), which is
 * what finds a holder that died without a word (`kill -9`). The watch is set
 * up once for the whole wait, and again only after it fired (the lock file
 * may have been replaced) or when it could not be set up: waiting on many
 * names costs one watch each and a bounded poll, not a new watch per poll.
 */
export async function pollWait(
  driver: LockDriver,
  resource: string,
  record: HolderRecord,
  deadline: number,
  signal: AbortSignal | undefined
): Promise<DriverLock | null> {
  let wake = (): void => {};
  let cause: WakeCause = 'watching';
  const wakeFor = (why: WakeCause) => (): void => {
    cause = why;
    wake();
  };
  const watch = new WaitWatch(driver, resource, wakeFor('the lock changed'));
  const onAbort = wakeFor('aborted');
  const onTimer = wakeFor('poll');
  signal?.addEventListener('abort', onAbort, { once: true });
  pollingWaits++;
  try {
    // The caller's first try was attempt 1.
    for (let delay = POLL_FIRST_MS, attempt = 2; ; attempt++) {
      const woken = new Promise<void>((resolve) => (wake = resolve));
      // Watch before trying, so a release between the try and the sleep still wakes us. After a
      // change the watch that fired stays set up during the try, and is renewed (the file may
      // have been replaced) only if the try fails: renewing costs 50-100 us of a hand-off.
      const afterChange = watch.changed;
      if (!watch.watching) watch.refresh();
      traceAttempt(record.name, attempt, cause);
      const lock = await driver.tryLock(resource, { ...record, since: new Date() }, signal);
      if (lock !== null) return lock;
      watch.refresh();
      // The change may have been the file being replaced, not there to watch a moment ago: watch it now, and try again under the watch.
      if (afterChange && watch.watchIfUnwatched()) continue;
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted) return null;
      const timer = setTimeout(onTimer, Math.min(delay, left));
      await woken;
      clearTimeout(timer);
      traceWoken(record.name, cause);
      delay = Math.min(delay * 2, pollMaxMs(watch.watching ? WATCHED_POLLS_PER_SECOND : UNWATCHED_POLLS_PER_SECOND));
    }
  } finally {
    pollingWaits--;
    watch.close();
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The driver's change notification for one pollWait(): `changed` once it fired, until it is set up again. */
class WaitWatch {
  /** True before the first watch and after the watch fired: the next try sets it up again. */
  changed = true;
  readonly #driver: LockDriver;
  readonly #resource: string;
  readonly #onChange: () => void;
  #unwatch: (() => void) | undefined;
  #retryAt = 0;

  constructor(driver: LockDriver, resource: string, wake: () => void) {
    this.#driver = driver;
    this.#resource = resource;
    this.#onChange = (): void => {
      this.changed = true;
      wake();
    };
  }

  /** True while a watch is set up. */
  get watching(): boolean {
    return this.#unwatch !== undefined;
  }

  /** Sets the watch up again when it fired, or when it could not be set up and WATCH_RETRY_MS have passed. */
  refresh(): void {
    if (this.changed || (this.#unwatch === undefined && performance.now() >= this.#retryAt)) this.#rewatch();
  }

  /** Sets a watch up now if there is none (and the driver can watch); true when one is set up by this call. */
  watchIfUnwatched(): boolean {
    if (this.#unwatch !== undefined || this.#driver.watch === undefined) return false;
    this.#rewatch();
    return this.#unwatch !== undefined;
  }

  close(): void {
    this.#unwatch?.();
  }

  #rewatch(): void {
    this.changed = false;
    // The new watch first: on one inode the two share the kernel's watch, so no change slips between them.
    const old = this.#unwatch;
    this.#unwatch = this.#driver.watch?.(this.#resource, this.#onChange);
    old?.();
    // Where watching fails every time (no inotify instance left), a failed watch per poll would cost more than the poll.
    if (this.#unwatch === undefined) this.#retryAt = performance.now() + WATCH_RETRY_MS;
  }
}

/** What woke a pollWait() (NODE_DEBUG): the first try runs as the watch is set up. */
type WakeCause = 'watching' | 'the lock changed' | 'poll' | 'aborted';

/** Asynchronous waits of this thread in pollWait(), for the poll budget. */
let pollingWaits = 0;

/**
 * The longest poll of a wait: POLL_MAX_MS, stretched when many names wait at
 * once so that all their polls together stay near `pollsPerSecond` (each
 * poll is a failed lock attempt, some microseconds). A watched wait's poll
 * only finds holders that died without a word; an unwatched one's (no
 * inotify left, a network file system) finds every release, so it may poll
 * more.
 */
function pollMaxMs(pollsPerSecond: number): number {
  return Math.max(POLL_MAX_MS, (pollingWaits * 1000) / pollsPerSecond);
}

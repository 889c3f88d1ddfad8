// How every form takes a lock: reservation, re-entry, try, wait, conflict (docs/internals/lock-core.md).
import type { DriverLock, HolderRecord, LockDriver } from '../drivers/types.js';
import { conflict, conflictSync, skipped } from './conflict.js';
import { debugging, traceAttempt, traced, tracedSync, traceHandoff, traceQueued, traceWaiting, traceWoken } from './debug.js';
import { cleanupOnSignals, registerCleanup, withoutOurSignalHandlers } from './exit.js';
import type { ExclusiveLock } from './handle.js';
import { hold, isReentry, reenter } from './hold.js';
import { canJoin, checkReentry, countedEntries, freeCountedEntry, heldCountedEntry, requestRecord } from './modes.js';
import { endTurn, entryFor, findEntry, type Entry } from './registry.js';
import type { Target } from './settings.js';
import { observed, observedSync } from './trace.js';
import { anyTurn, nativeWait, pollWait, turn, waitsInKernel, waitSync } from './wait.js';

/**
 * Takes the lock synchronously, waiting (blocking this thread) up to
 * `waitMs`. On conflict applies `die` or throws CannotAcquireLock.
 * `processWide` (forever()): every acquisition in this thread re-enters
 * until this handle is released. Logged (debug.ts) and traced on the
 * acquire channel (trace.ts).
 */
export function acquireSync(t: Target, processWide = false): ExclusiveLock {
  return tracedSync(t, () => observedAcquireSync(t, processWide, false)) as ExclusiveLock;
}

/** {@link acquireSync}, except that with `settings.skip` a conflict returns `null` (logged and traced as skipped) instead of throwing. */
export function acquireOrSkipSync(t: Target, processWide = false): ExclusiveLock | null {
  return tracedSync(t, () => observedAcquireSync(t, processWide, t.settings.skip));
}

function observedAcquireSync(t: Target, processWide: boolean, skip: boolean): ExclusiveLock | null {
  const held = heldByChain(t);
  if (held !== undefined) {
    return observedSync(t, true, () => {
      checkReentry(t, held);
      return reenter(t.name, t.settings.driver, held, processWide);
    });
  }
  const found =
    t.settings.limit > 1 ? (freeCountedEntry(t) ?? findEntry(t.settings.driver, t.resource, 0)) : findEntry(t.settings.driver, t.resource);
  if (found !== undefined && canJoin(found, t.settings))
    return observedSync(t, true, () => reenter(t.name, t.settings.driver, found, processWide));
  if (!skip) return observedSync(t, false, () => takeSync(t, found, processWide));
  return observedSync(t, false, () => {
    try {
      return takeSync(t, found, processWide);
    } catch (error) {
      return skipped(t, error);
    }
  });
}

/** The entry of this name that the caller's call chain holds (any of a counted lock's), if any: a request for it re-enters. */
function heldByChain(t: Target): Entry | undefined {
  if (t.settings.limit > 1) return heldCountedEntry(t, isReentry);
  const found = findEntry(t.settings.driver, t.resource);
  return found !== undefined && isReentry(found) ? found : undefined;
}

/** acquireSync() of a lock this call chain does not hold; `found` is its entry, if any. */
function takeSync(t: Target, found: Entry | undefined, processWide: boolean): ExclusiveLock {
  const { settings, resource } = t;
  const { driver } = settings;
  if (settings.signal?.aborted) throw settings.signal.reason;
  // Held by another call chain of this thread (or waited for on another
  // thread, which could take it while we block): a blocking wait could never
  // see it released, so this is a conflict whatever `wait` says. A caller
  // that only polls for another process lends us its turn instead.
  if (found?.busy && !canBorrow(found, driver)) {
    return conflictSync(t, found.lock !== null ? found.record : undefined, found.lock !== null ? 'held' : 'waiting');
  }
  // Reserved (or borrowed) for the whole wait: no JavaScript runs in this
  // thread meanwhile, and the entry must stay registered for the hold to be seen.
  const entry = found ?? entryFor(driver, resource);
  if (entry.busy) entry.lent = true;
  else entry.busy = true;
  const { lock, record, otherPath } = attemptSync(t, entry);
  if (lock !== null) return hold(t, entry, lock, record, processWide);
  endTurn(entry);
  // No signal can have aborted meanwhile: one that could is refused before a wait (requireSynchronous).
  return conflictSync(t, undefined, otherPath ? 'other-path' : undefined);
}

/** What a synchronous try (and wait) got: the lock or null, the record of the last attempt, and whether this thread holds the lock under another path. */
interface SyncAttempt {
  readonly lock: DriverLock | null;
  /** The last attempt's: its `since` is when it succeeded. */
  readonly record: HolderRecord;
  readonly otherPath: boolean;
}

/** Tries the lock for the caller holding `entry`'s turn, then waits per `waitMs`; a throw ends the turn. */
function attemptSync(t: Target, entry: Entry): SyncAttempt {
  const { settings, name, resource } = t;
  const { driver } = settings;
  let record!: HolderRecord;
  let attempts = 0;
  registerCleanup(driver); // before any attempt: a refused one may leave files too (a shared request's gate)
  const attempt = (block: boolean): DriverLock | null => {
    record = requestRecord(t);
    // Not each poll of a blocked thread (up to 100 a second): the wait and its end say enough.
    if (++attempts === 1 || block) traceAttempt(name, attempts, block ? 'blocking until it is released' : 'first try');
    return block ? driver.waitLockSync!(resource, record) : (driver.tryLock(resource, record) as DriverLock | null);
  };
  try {
    const began = performance.now();
    const deadline = began + settings.waitMs;
    let lock = attempt(false);
    // Held by this thread under another path to the same file: same as held by another chain.
    const otherPath = lock === null && settings.waitMs > 0 && driver.heldByThisThread?.(resource) === true;
    if (lock === null && settings.waitMs > 0 && !otherPath) {
      const from = debugging() ? traceSyncWait(t) : '';
      const withdraw = driver.announce?.(resource, record);
      try {
        lock = withoutOurSignalHandlers(() => waitSync(attempt, settings, deadline));
      } finally {
        withdraw?.();
      }
      if (lock !== null) traceHandoff(name, performance.now() - began, from);
    }
    return { lock, record, otherPath };
  } catch (error) {
    endTurn(entry);
    throw error;
  }
}

/** NODE_DEBUG: who holds the lock a synchronous caller is about to wait for, and how it waits; returns the holder's description. */
function traceSyncWait({ settings, name, resource }: Target): string {
  const holder = settings.driver.holder(resource, name) as HolderRecord | null;
  const how = waitsInKernel(settings) ? 'blocking this thread in the kernel' : 'blocking this thread, polling every 2-10 ms';
  return traceWaiting(name, holder, settings.waitMs, how);
}

/**
 * True when a synchronous caller may take the lock over from the
 * asynchronous caller that reserved it: nothing of this thread holds it, and
 * that caller only polls the OS from this thread, so it cannot act while we
 * block, and its attempts wait while we hold (see pausedWhileLent). A native
 * waiter (Windows) waits on another thread, which could take the lock while
 * this one blocks for it: never borrowed from.
 */
function canBorrow(entry: Entry, driver: LockDriver): boolean {
  return entry.lock === null && !entry.lent && driver.waitLock === undefined;
}

/**
 * Takes the lock, waiting up to `waitMs` (in-process waiters queue; the
 * first one waits on the OS). On conflict applies `die` or throws
 * CannotAcquireLock; an aborted `signal` rejects with its reason. Logged
 * (debug.ts) and traced on the acquire channel (trace.ts).
 */
export function acquire(t: Target): Promise<ExclusiveLock> {
  return traced(t, () => observedAcquire(t, false)) as Promise<ExclusiveLock>;
}

/** {@link acquire}, except that with `settings.skip` a conflict resolves to `null` (logged and traced as skipped) instead of rejecting. */
export function acquireOrSkip(t: Target): Promise<ExclusiveLock | null> {
  return traced(t, () => observedAcquire(t, t.settings.skip));
}

function observedAcquire(t: Target, skip: boolean): Promise<ExclusiveLock | null> {
  const held = heldByChain(t);
  if (held !== undefined) {
    return observed(t, true, () => {
      try {
        checkReentry(t, held);
      } catch (error) {
        return Promise.reject(error);
      }
      return Promise.resolve(reenter(t.name, t.settings.driver, held, false));
    });
  }
  const found = t.settings.limit > 1 ? undefined : findEntry(t.settings.driver, t.resource);
  if (found !== undefined && canJoin(found, t.settings))
    return observed(t, true, () => Promise.resolve(reenter(t.name, t.settings.driver, found, false)));
  const taking = (): Promise<ExclusiveLock> => (t.settings.limit > 1 ? takeCounted(t) : take(t, found));
  if (!skip) return observed(t, false, taking);
  return observed(t, false, () => taking().catch((error: unknown) => skipped(t, error)));
}

/** acquire() of a lock this call chain does not hold; `found` is its entry, if any. */
async function take(t: Target, found: Entry | undefined): Promise<ExclusiveLock> {
  const { settings, name, resource } = t;
  const { driver, signal } = settings;
  signal?.throwIfAborted();
  const entry = found ?? entryFor(driver, resource);
  const began = performance.now();
  if (!entry.busy) {
    entry.busy = true;
    return attempt(t, entry, began, undefined);
  }
  const passed = joinsSharedTry(t, entry)
    ? await turn(entry, Infinity, signal, true, entry.sharedTry)
    : settings.waitMs === 0
      ? false
      : await queued(name, entry, began + settings.waitMs, settings.waitMs, signal, settings.mode === 'shared');
  // Let in beside a shared hold, which may have ended before this continuation ran: then start over.
  if (passed === 'join') return entry.lock !== null && entry.mode === 'shared' ? reenter(name, driver, entry, false) : take(t, entry);
  if (!passed) return refused(t, entry);
  return attempt(t, entry, began, 'a caller of this process');
}

/**
 * acquire() of a counted lock: a hold of its own (a slot) for each of this
 * thread's callers up to the limit; past it, waits for the first of them to end.
 */
async function takeCounted(t: Target): Promise<ExclusiveLock> {
  const { settings } = t;
  settings.signal?.throwIfAborted();
  const free = freeCountedEntry(t);
  if (free !== undefined) return take(t, free);
  const entries = countedEntries(t);
  const began = performance.now();
  const entry = settings.waitMs === 0 ? undefined : await anyTurn(entries, began + settings.waitMs, settings.signal);
  if (entry === undefined) return refused(t, entries[0]);
  return attempt(t, entry, began, 'a caller of this process');
}

/**
 * Tries, then waits per `waitMs`, for the caller holding `entry`'s turn
 * since `began`; `from` says who the lock was waited for in this process
 * (NODE_DEBUG), to tell a hand-off.
 */
async function attempt(t: Target, entry: Entry, began: number, from: string | undefined): Promise<ExclusiveLock> {
  const { settings, name, resource } = t;
  const { driver, signal } = settings;
  const deadline = began + settings.waitMs;
  let lock: DriverLock | null;
  let record = requestRecord(t);
  registerCleanup(driver); // before any attempt: a refused one may leave files too (a shared request's gate)
  try {
    traceAttempt(name, 1, entry.lock !== null ? 'lent to a synchronous caller of this thread' : 'first try');
    // Not while a synchronous caller holds it on loan (see pausedWhileLent).
    const tried = entry.lock !== null ? null : driver.tryLock(resource, record, signal);
    if (tried instanceof Promise && settings.mode === 'shared') entry.sharedTry = new Set();
    lock = tried instanceof Promise ? await tried : tried; // no extra tick for synchronous drivers
    if (lock === null) endSharedTry(entry);
    if (lock === null && settings.waitMs > 0) {
      if (debugging()) from = await traceAsyncWait(t);
      record = requestRecord(t);
      lock = await waitAnnounced(t, entry, record, deadline);
    }
    if (lock !== null && from !== undefined) traceHandoff(name, performance.now() - began, from);
  } catch (error) {
    endSharedTry(entry);
    endTurn(entry);
    throw error;
  }
  if (lock !== null) {
    const held = hold(t, entry, lock, record, false); // lets in the shared callers queued to join it
    endSharedTry(entry);
    return held;
  }
  endTurn(entry);
  return refused(t, entry);
}

/**
 * True when a shared caller that may not wait finds this thread's shared
 * first try in flight (an asynchronous driver's): it joins the hold that try
 * takes, as it would have joined it a moment later, instead of being refused.
 */
function joinsSharedTry({ settings }: Target, entry: Entry): boolean {
  return settings.waitMs === 0 && settings.mode === 'shared' && entry.sharedTry !== undefined;
}

/** The shared first try ended: the callers that queued to join it and were not let in are refused. */
function endSharedTry(entry: Entry): void {
  const waiting = entry.sharedTry;
  if (waiting === undefined) return;
  entry.sharedTry = undefined;
  for (const giveUp of [...waiting]) giveUp();
}

/** The driver's wait (native, or polled), announced to the driver for its length (writers queue readers behind them). */
async function waitAnnounced(t: Target, entry: Entry, record: HolderRecord, deadline: number): Promise<DriverLock | null> {
  const { settings, resource } = t;
  const { driver, signal } = settings;
  const withdraw = driver.announce?.(resource, record);
  try {
    return await (driver.waitLock
      ? nativeWait(driver, resource, record, deadline, signal)
      : pollWait(pausedWhileLent(driver, entry), resource, record, deadline, signal));
  } finally {
    withdraw?.();
  }
}

/** Waits for the turn held by another caller of this thread (see turn()), logged; a shared caller may be let in beside it ('join'). */
async function queued(
  name: string,
  entry: Entry,
  deadline: number,
  waitMs: number,
  signal: AbortSignal | undefined,
  shared: boolean
): Promise<boolean | 'join'> {
  traceQueued(name, entry.queue.size + 1, waitMs);
  const passed = await turn(entry, deadline, signal, shared);
  if (passed) traceWoken(name, 'the caller ahead in this process let go: its turn passed to this one');
  return passed;
}

/** NODE_DEBUG: who holds the lock an asynchronous caller is about to wait for, and how it waits; returns the holder's description. */
async function traceAsyncWait({ settings, name, resource }: Target): Promise<string> {
  const { driver } = settings;
  const holder = await driver.holder(resource, name);
  const how = driver.waitLock ? 'the driver waits' : 'woken by each change of the lock file, polling for a holder that dies';
  return traceWaiting(name, holder, settings.waitMs, how);
}

/**
 * An asynchronous acquisition that got no lock: an abort rejects with its
 * reason, else a conflict (whose holder this thread knows if it holds the
 * lock; if it only waited for it here, the driver knows).
 */
function refused(t: Target, entry: Entry): Promise<never> {
  t.settings.signal?.throwIfAborted();
  return conflict(t, entry.lock !== null ? entry.record : undefined);
}

/**
 * The driver as the caller holding the reservation sees it: no attempt while
 * a synchronous caller holds the lock on loan. An attempt then could even
 * succeed: flock on the open file description that holds the lock does.
 */
function pausedWhileLent(driver: LockDriver, entry: Entry): LockDriver {
  return {
    kind: driver.kind,
    synchronous: driver.synchronous,
    locate: (name, dir) => driver.locate(name, dir),
    holder: (resource, name) => driver.holder(resource, name),
    tryLock: (resource, record, signal) => (entry.lock !== null ? null : driver.tryLock(resource, record, signal)),
    ...(driver.watch && { watch: (resource: string, onChange: () => void) => driver.watch!(resource, onChange) }),
  };
}

/** Takes the lock for the whole process (forever()): re-entered by every acquisition in this thread while the handle is held, cleaned up on signals too. */
export function acquireForProcess(t: Target): ExclusiveLock | null {
  const lock = acquireOrSkipSync(t, true);
  if (lock !== null) cleanupOnSignals();
  return lock;
}

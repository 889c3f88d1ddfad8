// How every form takes a lock: reservation, re-entry, try, wait, conflict (docs/internals/lock-core.md).
import { recordForThisProcess } from '../shared/holder-record.js';
import type { DriverLock, HolderRecord, LockDriver } from '../drivers/types.js';
import { conflict, conflictSync } from './conflict.js';
import { cleanupOnSignals, withoutOurSignalHandlers } from './exit.js';
import type { ExclusiveLock } from './handle.js';
import { hold, isReentry, reenter } from './hold.js';
import { endTurn, entryFor, findEntry, type Entry } from './registry.js';
import type { Target } from './settings.js';
import { nativeWait, pollWait, turn, waitSync } from './wait.js';

/**
 * Takes the lock synchronously, waiting (blocking this thread) up to
 * `waitMs`. On conflict applies `die` or throws CannotAcquireLock.
 * `processWide` (forever()): every acquisition in this thread re-enters
 * until this handle is released.
 */
export function acquireSync(t: Target, processWide = false): ExclusiveLock {
  const { settings, name, resource } = t;
  const { driver } = settings;
  const found = findEntry(driver, resource);
  if (found !== undefined && isReentry(found)) return reenter(name, driver, found, processWide);
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
function attemptSync({ settings, name, resource }: Target, entry: Entry): SyncAttempt {
  const { driver } = settings;
  let record!: HolderRecord;
  const attempt = (block: boolean): DriverLock | null => {
    record = recordForThisProcess(name, settings.command);
    return block ? driver.waitLockSync!(resource, record) : (driver.tryLock(resource, record) as DriverLock | null);
  };
  try {
    const deadline = performance.now() + settings.waitMs;
    let lock = attempt(false);
    // Held by this thread under another path to the same file: same as held by another chain.
    const otherPath = lock === null && settings.waitMs > 0 && driver.heldByThisThread?.(resource) === true;
    if (lock === null && settings.waitMs > 0 && !otherPath) lock = withoutOurSignalHandlers(() => waitSync(attempt, settings, deadline));
    return { lock, record, otherPath };
  } catch (error) {
    endTurn(entry);
    throw error;
  }
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
 * CannotAcquireLock; an aborted `signal` rejects with its reason.
 */
export async function acquire(t: Target): Promise<ExclusiveLock> {
  const { settings, name, resource } = t;
  const { driver, signal } = settings;
  const found = findEntry(driver, resource);
  if (found !== undefined && isReentry(found)) return reenter(name, driver, found, false);
  signal?.throwIfAborted();
  const entry = found ?? entryFor(driver, resource);
  const deadline = performance.now() + settings.waitMs;
  if (!entry.busy) entry.busy = true;
  else if (settings.waitMs === 0 || !(await turn(entry, deadline, signal))) return refused(t, entry);
  let lock: DriverLock | null;
  let record = recordForThisProcess(name, settings.command);
  try {
    // Not while a synchronous caller holds it on loan (see pausedWhileLent).
    const tried = entry.lock !== null ? null : driver.tryLock(resource, record, signal);
    lock = tried instanceof Promise ? await tried : tried; // no extra tick for synchronous drivers
    if (lock === null && settings.waitMs > 0) {
      record = recordForThisProcess(name, settings.command);
      lock = await (driver.waitLock
        ? nativeWait(driver, resource, record, deadline, signal)
        : pollWait(pausedWhileLent(driver, entry), resource, record, deadline, signal));
    }
  } catch (error) {
    endTurn(entry);
    throw error;
  }
  if (lock !== null) return hold(t, entry, lock, record, false);
  endTurn(entry);
  return refused(t, entry);
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
export function acquireForProcess(t: Target): ExclusiveLock {
  const lock = acquireSync(t, true);
  cleanupOnSignals();
  return lock;
}

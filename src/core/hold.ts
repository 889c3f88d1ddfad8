import { NotHoldingError } from '../shared/errors.js';
import type { DriverLock, HolderRecord, LockDriver } from '../drivers/types.js';
import { cleanupOnSignals } from './exit.js';
import { ExclusiveLock } from './handle.js';
import { traceLost, traceRelease, traceReentry } from './debug.js';
import { admitSharers } from './modes.js';
import { chain, endTurn, findEntry, type Entry, type Handle } from './registry.js';
import type { Target } from './settings.js';
import { publishLost, publishRelease } from './trace.js';

/**
 * True when this call chain holds the lock now: one of its handles for the
 * entry is unreleased. A continuation that outlived its holds (a timer set
 * while holding) has only released handles, and must not re-enter a later
 * holder's hold.
 */
export function isReentry(entry: Entry): boolean {
  return entry.lock !== null && (entry.processWide > 0 || heldHandle(entry) !== undefined);
}

/** The innermost unreleased handle this call chain has for `entry`. */
function heldHandle(entry: Entry): Handle | undefined {
  return chain
    .getStore()
    ?.get(entry)
    ?.findLast((handle) => handle.held);
}

/** One more handle on a lock held through the caller's call chain (or `forever()`). */
export function reenter(name: string, driver: LockDriver, entry: Entry, processWide: boolean): ExclusiveLock {
  entry.handles++;
  traceReentry(name, entry.handles);
  return handle(name, entry.kind ?? driver.kind, entry, processWide);
}

/** Records `lock` as `entry`'s hold, taken by `t`, and returns its first handle. */
export function hold(
  { name, resource, settings: { driver, mode, limit } }: Target,
  entry: Entry,
  lock: DriverLock,
  record: HolderRecord,
  processWide: boolean
): ExclusiveLock {
  entry.lock = lock;
  entry.kind = driver.kind;
  entry.resource = resource;
  entry.handles = 1;
  entry.record = lock.details === undefined ? record : { ...record, details: lock.details };
  entry.mode = mode === 'shared' ? mode : undefined;
  entry.limit = limit > 1 ? limit : undefined;
  if (driver.releaseOnSignals === true) cleanupOnSignals();
  if (lock.lost !== undefined) reportLoss(lock.lost, name, driver.kind, resource);
  const held = handle(name, driver.kind, entry, processWide);
  if (lock.descriptor !== undefined) descriptors.set(held, lock.descriptor);
  if (mode === 'shared') admitSharers(entry); // this thread's shared calls queued behind the acquisition share it
  return held;
}

/**
 * A handle whose release gives up its share of the hold; a `forever()`
 * handle also its share of the process-wide re-entry, which therefore ends
 * with it, not with the hold (that may be a run() it was taken inside).
 */
function handle(name: string, kind: string, entry: Entry, processWide: boolean): ExclusiveLock {
  if (!processWide) return new ExclusiveLock(name, kind, entry, () => letGo(entry, name, kind));
  entry.processWide++;
  return new ExclusiveLock(name, kind, entry, () => {
    entry.processWide--;
    return letGo(entry, name, kind);
  });
}

/** Logs and publishes (lost channel) the loss of a hold, once, when the driver reports it. */
function reportLoss(lost: AbortSignal, name: string, kind: string, resource: string): void {
  const onLost = (): void => {
    traceLost(name, lost.reason);
    publishLost(name, kind, resource, lost.reason);
  };
  if (lost.aborted) onLost();
  else lost.addEventListener('abort', onLost, { once: true });
}

/** The descriptors of held locks that live on one (see `DriverLock.descriptor`). */
const descriptors = new WeakMap<ExclusiveLock, number>();

/** The open file descriptor holding `lock` (posix), for the `exclusive` command to hand to its command; undefined otherwise. */
export function lockDescriptor(lock: ExclusiveLock): number | undefined {
  return lock.held ? descriptors.get(lock) : undefined;
}

/** Releases one handle, logged and published (release channel) as `name`; the last one gives the lock up. */
function letGo(entry: Entry, name: string, kind: string): void | Promise<void> {
  const left = --entry.handles;
  traceRelease(name, entry.resource, left);
  publishRelease(name, kind, entry.resource, left === 0);
  if (left > 0) return;
  const lock = entry.lock!;
  entry.lock = null;
  entry.record = null;
  const done = (): void => endTurn(entry);
  let result: void | Promise<void>;
  try {
    result = lock.release();
  } catch (error) {
    done(); // a failed release must not leave the reservation (and our queue) stuck
    throw error;
  }
  if (result instanceof Promise) return result.finally(done);
  done();
}

/** Runs `fn` as the holder of `entry`'s lock, so nested acquisitions in its call chain re-enter. */
export function runHolding<R>(lock: ExclusiveLock, t: Target, fn: () => R): R {
  const entry = findEntry(t.settings.driver, t.resource);
  if (entry === undefined || !lock.held) return fn(); // released already: nothing to re-enter
  const held = chain.getStore();
  const handles = held?.get(entry) ?? [];
  if (handles.at(-1) === lock) return fn();
  return chain.run(new Map(held).set(entry, [...handles, lock]), fn);
}

/**
 * A signal that aborts when any lock held by the current call chain is lost
 * or released; throws NotHoldingError outside such a chain.
 */
export function chainSignal(): AbortSignal {
  const held = chain.getStore();
  if (held === undefined || held.size === 0) {
    throw new NotHoldingError('exclusive.signal() was called outside an exclusive function, method or Exclusive.run() callback.');
  }
  // Per lock, the innermost handle still held (else the last, already released: its signal has aborted).
  const signals = [...held.values()].map((handles) => (handles.findLast((handle) => handle.held) ?? handles.at(-1)!).signal);
  return signals.length === 1 ? signals[0] : AbortSignal.any(signals);
}

/** The holder as this thread knows it (we hold it), or as the driver reports it. */
export function holderOf(t: Target): HolderRecord | null | Promise<HolderRecord | null> {
  // A lookup, not entryFor(): asking about a name must not add it to the registry.
  const record = findEntry(t.settings.driver, t.resource)?.record;
  if (record) return record;
  return t.settings.driver.holder(t.resource, t.name);
}

/**
 * Every holder as the driver reports them (`holders()`, else its one
 * `holder()`). This thread's own hold is reported by the driver too: a
 * shared or counted lock has others beside it.
 */
export function holdersOf(t: Target): HolderRecord[] | Promise<HolderRecord[]> {
  const { driver } = t.settings;
  if (driver.holders !== undefined) return driver.holders(t.resource, t.name);
  const one = holderOf(t);
  return one instanceof Promise ? one.then((record) => (record === null ? [] : [record])) : one === null ? [] : [one];
}

// Shared and counted locks in one thread: re-entry rules, joining a shared hold, a counted lock's holds (docs/internals/modes.md).
import { lockMismatch, LockModeError } from '../shared/errors.js';
import { recordForThisProcess } from '../shared/holder-record.js';
import type { HolderRecord } from '../drivers/types.js';
import { entryFor, findEntry, type Entry } from './registry.js';
import type { LockSettings, Target } from './settings.js';

/** The record an acquisition by `t` writes (its `since` is now), carrying the mode and limit it asks for. */
export function requestRecord({ name, settings }: Target): HolderRecord {
  return recordForThisProcess(name, settings.command, settings.mode, settings.limit);
}

/**
 * Throws unless the call chain that holds `entry` may re-enter it with
 * `settings`: holding it exclusively covers a shared request, but a shared
 * hold cannot become exclusive (waiting for the other shared holders, this
 * chain among them, would never end), and a lock is not counted and plain at once.
 */
export function checkReentry(t: Target, entry: Entry): void {
  const { mode, limit } = t.settings;
  if ((entry.limit ?? 1) !== limit) throw lockMismatch(t.name, { mode: entry.mode, limit: entry.limit }, { mode, limit });
  if (entry.mode === 'shared' && mode === 'exclusive') {
    throw new LockModeError(
      'ERR_LOCK_UPGRADE',
      t.name,
      `This call chain holds the lock '${t.name}' shared and asked for it exclusively: it would wait for itself. ` +
        'Take it exclusively from the start (an exclusive holder may take it shared inside), or release it before asking again.'
    );
  }
}

/** True when a shared request may join this thread's shared hold of `entry` now: no call of the thread, and no process, waits to write. */
export function canJoin(entry: Entry, settings: LockSettings): boolean {
  if (settings.mode !== 'shared' || entry.mode !== 'shared' || entry.lock === null || entry.lent) return false;
  for (const waiter of entry.queue) if (!sharers.has(waiter)) return false;
  return entry.lock.contended?.() !== true;
}

/** The queue callbacks of shared waiters, with how to let each join a shared hold instead of taking its own turn. */
const sharers = new WeakMap<() => void, () => void>();

/** Marks the queue callback `wake` as a shared waiter's, which `join` lets in beside the current shared hold. */
export function markSharer(wake: () => void, join: () => void): void {
  sharers.set(wake, join);
}

/** Lets the shared waiters at the head of `entry`'s queue join the shared hold just taken, up to the first exclusive waiter. */
export function admitSharers(entry: Entry): void {
  for (const waiter of entry.queue) {
    const join = sharers.get(waiter);
    if (join === undefined || entry.lock?.contended?.() === true) return;
    entry.queue.delete(waiter);
    join();
  }
}

/** The entry this call chain holds among a counted lock's holds in this thread, if any (for re-entry). */
export function heldCountedEntry(t: Target, isHeld: (entry: Entry) => boolean): Entry | undefined {
  for (let slot = 0; slot < t.settings.limit; slot++) {
    const entry = findEntry(t.settings.driver, t.resource, slot);
    if (entry !== undefined && isHeld(entry)) return entry;
  }
  return undefined;
}

/** A counted lock's hold entries for this thread, when all are in use (each registered while busy). */
export function countedEntries({ settings, resource }: Target): Entry[] {
  return Array.from({ length: settings.limit }, (_, slot) => entryFor(settings.driver, resource, slot));
}

/** The first of a counted lock's entries no caller of this thread is using (registered), if any. */
export function freeCountedEntry({ settings, resource }: Target): Entry | undefined {
  for (let slot = 0; slot < settings.limit; slot++) {
    const entry = findEntry(settings.driver, resource, slot);
    if (entry === undefined) return entryFor(settings.driver, resource, slot);
    if (!entry.busy) return entry;
  }
  return undefined;
}

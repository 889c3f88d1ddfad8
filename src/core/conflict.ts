import { writeSync } from 'node:fs';
import { CannotAcquireLock, type ConflictDetails, type ConflictReason } from '../shared/errors.js';
import { isThisProcess } from '../shared/holder-record.js';
import type { HolderRecord } from '../drivers/types.js';
import type { LockSettings, Target } from './settings.js';
import { traceSkip } from './debug.js';

/** For a synchronous wait refused at once: what would make it deadlock (see ConflictDetails). */
export type Deadlock = ConflictDetails['deadlock'];

/** A conflict; `holder` when this thread knows it (it holds the lock), else undefined: the driver is asked. */
export async function conflict(t: Target, holder: HolderRecord | null | undefined): Promise<never> {
  const holders = await holdersFor(t, holder);
  return conflictWith(t, holders, undefined);
}

/** {@link conflict} for synchronous drivers, which answer `holder()` synchronously. */
export function conflictSync(t: Target, holder: HolderRecord | null | undefined, deadlock: Deadlock): never {
  return conflictWith(t, holdersFor(t, holder) as HolderRecord[], deadlock);
}

/**
 * Who holds it: `holder` when this thread knows it, plus, for a driver that
 * knows several (shared and counted locks), all of them; else the driver's one.
 */
function holdersFor(t: Target, holder: HolderRecord | null | undefined): HolderRecord[] | Promise<HolderRecord[]> {
  const { driver } = t.settings;
  const listed = driver.holders?.(t.resource, t.name) ?? driver.holder(t.resource, t.name);
  const merge = (found: HolderRecord[] | HolderRecord | null): HolderRecord[] => {
    const all = Array.isArray(found) ? found : found === null ? [] : [found];
    return holder === undefined || holder === null ? all : [holder, ...all.filter((other) => other.pid !== holder.pid)];
  };
  return listed instanceof Promise ? listed.then(merge) : merge(listed);
}

/**
 * The one conflict policy. `die` prints the case's message and exits with
 * `exitCode`, but only when the holder is not this process: another call of
 * this process (a server's second request) gets CannotAcquireLock, as
 * without `die`, rather than ending the process that holds the lock.
 */
function conflictWith(t: Target, holders: HolderRecord[], deadlock: Deadlock): never {
  const { settings } = t;
  const holder = holders[0] ?? null;
  const ours = holder !== null && isThisProcess(holder);
  const details = { ...conflictDetails(settings, holder, ours, deadlock), holders, ...(settings.limit > 1 && { limit: settings.limit }) };
  const error = new CannotAcquireLock(t.name, t.resource, holder?.pid ?? null, details);
  if (settings.die && !ours) die(error, settings.exitCode);
  throw error;
}

/**
 * Which case it is: a refused synchronous wait would deadlock; any other
 * failed wait ran out; without a wait, the holder is this process or another.
 */
function conflictReason(waitMs: number, ours: boolean, deadlock: Deadlock): ConflictReason {
  return deadlock !== undefined && waitMs > 0 ? 'would-deadlock' : waitMs > 0 ? 'timed-out' : ours ? 'held-in-process' : 'held-elsewhere';
}

function conflictDetails(settings: LockSettings, holder: HolderRecord | null, ours: boolean, deadlock: Deadlock): ConflictDetails {
  const reason = conflictReason(settings.waitMs, ours, deadlock);
  return {
    reason,
    holder: holder && { ...holder }, // a copy: this thread's own record is shared with holder()
    ...(reason === 'timed-out' && { waitedMs: settings.waitMs }),
    ...((reason === 'would-deadlock' || reason === 'held-in-process') && deadlock !== undefined && { deadlock }),
  };
}

/**
 * The `skip` option's end: `null` for a conflict with another holder (a
 * process, or another call of this one), logged; anything else (an abort,
 * an I/O error) is rethrown. The error is built anyway: it carries the
 * holder for the log, and a conflict costs a syscall or a round trip already.
 */
export function skipped(t: Target, error: unknown): null {
  if (!(error instanceof CannotAcquireLock) || (error.reason !== 'held-elsewhere' && error.reason !== 'held-in-process')) throw error;
  traceSkip(t.name, error.reason, error.pid);
  return null;
}

/** The `die` option's end: the conflict's message on stderr, then exit. */
export function die(error: Error, exitCode: number): never {
  writeSync(2, `${error.message}\n`);
  process.exit(exitCode);
}

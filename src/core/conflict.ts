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
  return conflictWith(t, holder !== undefined ? holder : await t.settings.driver.holder(t.resource, t.name), undefined);
}

/** {@link conflict} for synchronous drivers, which answer `holder()` synchronously. */
export function conflictSync(t: Target, holder: HolderRecord | null | undefined, deadlock: Deadlock): never {
  return conflictWith(t, holder !== undefined ? holder : (t.settings.driver.holder(t.resource, t.name) as HolderRecord | null), deadlock);
}

/**
 * The one conflict policy. `die` prints the case's message and exits with
 * `exitCode`, but only when the holder is not this process: another call of
 * this process (a server's second request) gets CannotAcquireLock, as
 * without `die`, rather than ending the process that holds the lock.
 */
function conflictWith(t: Target, holder: HolderRecord | null, deadlock: Deadlock): never {
  const { settings } = t;
  const ours = holder !== null && isThisProcess(holder);
  const error = new CannotAcquireLock(t.name, t.resource, holder?.pid ?? null, conflictDetails(settings, holder, ours, deadlock));
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

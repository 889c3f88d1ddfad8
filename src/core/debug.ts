import { debuglog } from 'node:util';
import type { ExclusiveLock } from './handle.js';
import type { Target } from './settings.js';
import type { HolderRecord, LockDriver } from '../drivers/types.js';
import { CannotAcquireLock } from '../shared/errors.js';

/**
 * `NODE_DEBUG=exclusive-process`: which names locks get and what happens to
 * them, so a default name is seen before it conflicts. Each helper checks
 * `enabled` before building its line, so a disabled log costs a property read.
 */
const log = debuglog('exclusive-process');

/** Logs where a default name came from. */
export function traceName(name: string, file: string, form: string): void {
  if (log.enabled) log("name '%s' resolved from file %s (%s)", name, file, form);
}

/** Logs where a lock lives when a form first resolves it; returns `t`. */
export function traceTarget(t: Target): Target {
  if (log.enabled) log("lock '%s' is %s (%s driver)", t.name, t.resource, t.settings.driver.kind);
  return t;
}

/** `acquireSync(t)` with its outcome logged by name (`null`: skipped, logged by {@link traceSkip}). */
export function tracedSync(t: Target, acquire: () => ExclusiveLock | null): ExclusiveLock | null {
  if (!log.enabled) return acquire();
  log("acquiring '%s'", t.name);
  try {
    return acquired(t, acquire());
  } catch (error) {
    throw failed(t, error);
  }
}

/** `acquire(t)` with its outcome logged by name; disabled, the very promise of `acquire()` (no extra async step). */
export function traced(t: Target, acquire: () => Promise<ExclusiveLock | null>): Promise<ExclusiveLock | null> {
  return log.enabled ? tracedAsync(t, acquire) : acquire();
}

async function tracedAsync(t: Target, acquire: () => Promise<ExclusiveLock | null>): Promise<ExclusiveLock | null> {
  log("acquiring '%s'", t.name);
  try {
    return acquired(t, await acquire());
  } catch (error) {
    throw failed(t, error);
  }
}

function acquired(t: Target, lock: ExclusiveLock | null): ExclusiveLock | null {
  if (lock !== null) log("acquired '%s' (%s)", t.name, t.resource);
  return lock;
}

/** Logs a conflict that `skip` turned into a quiet skip. */
export function traceSkip(name: string, reason: string, pid: number | null): void {
  if (log.enabled) log("skipped '%s' (options.skip): %s, by pid %s", name, reason, pid ?? 'unknown');
}

function failed(t: Target, error: unknown): unknown {
  if (error instanceof CannotAcquireLock) log("conflict on '%s': held by pid %s", t.name, error.pid ?? 'unknown');
  else log("acquiring '%s' failed: %s", t.name, (error as Error)?.message ?? String(error));
  return error;
}

/** True when `NODE_DEBUG=exclusive-process` is on: for a caller that must gather something (the holder) before logging it. */
export function debugging(): boolean {
  return log.enabled;
}

/** Logs one attempt on the OS (`attempt` counts from 1). */
export function traceAttempt(name: string, attempt: number, why: string): void {
  if (log.enabled) log("trying '%s' (attempt %d, %s)", name, attempt, why);
}

/** Logs who holds the lock a caller is about to wait for, and how it will wait; returns the holder as described (for traceHandoff). */
export function traceWaiting(name: string, holder: HolderRecord | null, waitMs: number, how: string): string {
  const described = describeHolder(holder);
  log("'%s' is held by %s: waiting %s (%s)", name, described, describeWait(waitMs), how);
  return described;
}

/** Logs an in-process caller queued behind another caller of this thread. */
export function traceQueued(name: string, ahead: number, waitMs: number): void {
  if (log.enabled) log("'%s' is busy in this process: queued behind %d caller(s), waiting %s", name, ahead, describeWait(waitMs));
}

/** Logs a wake-up of a wait and its cause (a change of the lock, a poll, an abort...). */
export function traceWoken(name: string, cause: string): void {
  if (log.enabled) log("woken on '%s' (%s)", name, cause);
}

/** Logs a hand-off: a waiter got the lock after its holder released it. */
export function traceHandoff(name: string, waitedMs: number, from: string): void {
  if (log.enabled) log("acquired '%s' after waiting %s ms: handed over from %s", name, waitedMs.toFixed(1), from);
}

/** Logs a re-entry by the call chain (or process, after forever()) that holds the lock. */
export function traceReentry(name: string, handles: number): void {
  if (log.enabled) log("re-entered '%s' (%d handles held)", name, handles);
}

/** Logs a handle's release: the last one gives the lock up. */
export function traceRelease(name: string, resource: string, left: number): void {
  if (!log.enabled) return;
  if (left === 0) log("released '%s' (%s)", name, resource);
  else log("released a handle of '%s' (%d still held: the lock stays)", name, left);
}

/** Logs a lock the driver reports lost. */
export function traceLost(name: string, reason: unknown): void {
  if (log.enabled) log("lost '%s': %s", name, (reason as Error)?.message ?? String(reason));
}

/** Logs the cleanup of the drivers at exit (or on a signal). */
export function traceCleanup(when: string, drivers: Iterable<LockDriver>): void {
  if (log.enabled) log('%s: cleaning up the %s driver(s)', when, Array.from(drivers, (driver) => driver.kind).join(', ') || 'no');
}

function describeHolder(holder: HolderRecord | null): string {
  if (holder === null) return 'nobody any more (it was released meanwhile)';
  if (holder.pid === null) return 'an unknown holder';
  return `pid ${holder.pid}${holder.command ? ` (\`${holder.command}\`${holder.since ? `, since ${holder.since.toISOString()}` : ''})` : ''}`;
}

function describeWait(waitMs: number): string {
  return waitMs === Infinity ? 'for ever' : `up to ${waitMs} ms`;
}

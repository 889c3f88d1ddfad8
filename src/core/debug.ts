import { debuglog } from 'node:util';
import type { ExclusiveLock } from './handle.js';
import type { Target } from './settings.js';
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

/** `acquireSync(t)` with its outcome logged by name. */
export function tracedSync(t: Target, acquire: () => ExclusiveLock): ExclusiveLock {
  if (!log.enabled) return acquire();
  log("acquiring '%s'", t.name);
  try {
    return acquired(t, acquire());
  } catch (error) {
    throw failed(t, error);
  }
}

/** `acquire(t)` with its outcome logged by name; disabled, the very promise of `acquire()` (no extra async step). */
export function traced(t: Target, acquire: () => Promise<ExclusiveLock>): Promise<ExclusiveLock> {
  return log.enabled ? tracedAsync(t, acquire) : acquire();
}

async function tracedAsync(t: Target, acquire: () => Promise<ExclusiveLock>): Promise<ExclusiveLock> {
  log("acquiring '%s'", t.name);
  try {
    return acquired(t, await acquire());
  } catch (error) {
    throw failed(t, error);
  }
}

function acquired(t: Target, lock: ExclusiveLock): ExclusiveLock {
  log("acquired '%s' (%s)", t.name, t.resource);
  return lock;
}

function failed(t: Target, error: unknown): unknown {
  if (error instanceof CannotAcquireLock) log("conflict on '%s': held by pid %s", t.name, error.pid ?? 'unknown');
  else log("acquiring '%s' failed: %s", t.name, (error as Error)?.message ?? String(error));
  return error;
}

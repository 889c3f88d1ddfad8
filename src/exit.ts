import { isMainThread } from 'node:worker_threads';
import type { LockDriver } from './drivers/types.js';

/**
 * Cleanup when the process (or worker thread) ends: every driver that held a
 * lock gets `cleanup()` on exit, `process.exit()` and uncaught exceptions,
 * and on SIGINT, SIGTERM and SIGHUP (and SIGBREAK on Windows).
 *
 * For the signals we only act when nobody else listens: then we clean up
 * and re-raise the signal with its default action, so the process ends as
 * it would have without us (a shell sees 128 + the signal number). When the
 * application has its own handler, shutting down is its business, and our
 * 'exit' hook cleans up when it exits. Correctness never depends on any of
 * this: the OS releases the locks of a dead process by itself.
 */

// SIGBREAK: Ctrl+Break on Windows, which would otherwise end the process without cleanup.
const SIGNALS: readonly NodeJS.Signals[] = process.platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] : ['SIGINT', 'SIGTERM', 'SIGHUP'];
const drivers = new Set<LockDriver>();
let installed = false;

/** Makes sure `driver.cleanup()` runs once when this process or thread ends. */
export function registerCleanup(driver: LockDriver): void {
  if (drivers.has(driver) || driver.cleanup === undefined) return;
  drivers.add(driver);
  if (installed) return;
  installed = true;
  process.once('exit', cleanupAll);
  if (isMainThread) for (const signal of SIGNALS) process.on(signal, onSignal);
}

function cleanupAll(): void {
  for (const driver of drivers) {
    try {
      driver.cleanup!();
    } catch {
      // Exiting anyway; the OS releases what remains.
    }
  }
  drivers.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  cleanupAll();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

/**
 * Runs `fn`, a synchronous wait, with our signal handlers detached. No
 * JavaScript runs until it returns, so they could only hold a SIGTERM back
 * until the lock comes; detached, the signal ends the process at once, as it
 * would have without us (the OS still releases every lock it held).
 */
export function withoutOurSignalHandlers<T>(fn: () => T): T {
  if (!installed || !isMainThread) return fn();
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  try {
    return fn();
  } finally {
    for (const signal of SIGNALS) process.on(signal, onSignal);
  }
}

/**
 * True when JavaScript listens for a termination signal. Such a handler only
 * runs when the thread returns to the event loop, so a thread blocked in a
 * system call (the kernel restarts the call after a handled signal) must
 * come back now and then.
 */
export function terminationSignalsHandled(): boolean {
  return SIGNALS.some((signal) => process.listenerCount(signal) > 0);
}

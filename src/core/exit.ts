import { constants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { raiseSignal } from '../shared/raise-signal.js';
import type { LockDriver } from '../drivers/types.js';
import { traceCleanup } from './debug.js';

/**
 * Runs every driver's `cleanup()` when the process or thread ends and, after
 * `forever()`, on signals nobody else handles, then ends as the signal would
 * have. Correctness never depends on it. See docs/internals/exit-cleanup.md.
 */

// SIGBREAK: Ctrl+Break on Windows, which would otherwise end the process without cleanup.
const SIGNALS: readonly NodeJS.Signals[] =
  process.platform === 'win32' ? ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] : ['SIGINT', 'SIGTERM', 'SIGHUP'];
const drivers = new Set<LockDriver>();
/** Cleanups that must run before the locks are released (a single-instance socket goes before its lock). */
const beforeRelease = new Set<() => void>();
let exitHooked = false;
let signalsHooked = false;

/** Makes sure `driver.cleanup()` runs once when this process or thread ends. */
export function registerCleanup(driver: LockDriver): void {
  if (drivers.has(driver) || driver.cleanup === undefined) return;
  drivers.add(driver);
  hookExit();
}

/**
 * Makes sure `step` runs once when this process or thread ends (on the same
 * occasions as the drivers' cleanup), before any lock is released: what it
 * removes is then never another holder's. Returns a function that forgets it.
 */
export function registerExitStep(step: () => void): () => void {
  beforeRelease.add(step);
  hookExit();
  return () => beforeRelease.delete(step);
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => cleanupAll('exit'));
  process.on('uncaughtExceptionMonitor', cleanupIfFatal);
}

/**
 * Deno emits no 'exit' when an uncaught exception or unhandled rejection
 * ends the process (Node and Bun do); every runtime calls this monitor first.
 * The error is fatal when no 'uncaughtException' listener takes it.
 */
function cleanupIfFatal(): void {
  if (process.listenerCount('uncaughtException') === 0) cleanupAll('uncaught exception');
}

/** Also cleans up on SIGINT, SIGTERM and SIGHUP (main thread only: workers get no signals). */
export function cleanupOnSignals(): void {
  if (signalsHooked || !isMainThread) return;
  signalsHooked = true;
  for (const signal of SIGNALS) process.prependListener(signal, onSignal);
}

function cleanupAll(when: string): void {
  traceCleanup(when, drivers);
  for (const step of beforeRelease) {
    try {
      step();
    } catch {
      // As below.
    }
  }
  beforeRelease.clear();
  for (const driver of drivers) {
    try {
      driver.cleanup!();
    } catch {
      // Exiting anyway; the OS releases what remains.
    }
  }
  drivers.clear();
}

/**
 * Marks the signal handler of every copy of this package loaded in the
 * process (npm link, two versions in node_modules), so that no copy takes
 * another's handler for the application's and leaves the signal to it.
 */
const OURS = Symbol.for('exclusive-process.signal-handler');

// First in line (prependListener), so an application handler added with
// `once` is still counted when we look: it is the one to shut down.
const onSignal = Object.assign(
  (signal: NodeJS.Signals): void => {
    if (process.listeners(signal).some((listener) => !(OURS in listener))) return;
    cleanupAll(`${signal}, before ending as the signal would`);
    for (const s of SIGNALS) process.removeListener(s, onSignal);
    signalsHooked = false;
    endAsSignalWould(signal);
  },
  { [OURS]: true }
);

/**
 * STATUS_CONTROL_C_EXIT: how Windows' default console handler ends a process
 * on Ctrl+C, Ctrl+Break or closing the console (cmd shows -1073741510).
 */
const STATUS_CONTROL_C_EXIT = 0xc000013a;

/**
 * Ends the process by `signal` once the locks are cleaned up; it must never
 * go on running (it would believe it still holds them). Windows cannot
 * re-raise: `process.kill()` of SIGBREAK or SIGHUP throws ENOSYS there, and
 * of SIGINT or SIGTERM is TerminateProcess with code 1. So it exits with the
 * code Windows itself would have given (TerminateProcess's 1 for SIGTERM,
 * which only `process.kill()` sends there).
 */
function endAsSignalWould(signal: NodeJS.Signals): void {
  const number = constants.signals[signal];
  if (process.platform !== 'win32' && process.listenerCount(signal) > 0) {
    // Another copy of this package still listens (an application's handler would have kept us
    // from getting here): it ends the process, once its own cleanup ran, when the signal reaches it.
    process.kill(process.pid, signal);
    return;
  }
  if (process.platform !== 'win32') raiseSignal(signal); // returns only if the signal did not end the process
  const code = process.platform !== 'win32' ? 128 + number : signal === 'SIGTERM' ? 1 : STATUS_CONTROL_C_EXIT;
  try {
    process.exit(code);
  } finally {
    // Reached only if an 'exit' listener threw: end anyway rather than run on without the locks.
    process.kill(process.pid, 'SIGKILL');
  }
}

/**
 * Runs `fn`, a synchronous wait, with our signal handlers detached. No
 * JavaScript runs until it returns, so they could only hold a SIGTERM back
 * until the lock comes; detached, the signal ends the process at once, as it
 * would have without us (the OS still releases every lock it held).
 */
export function withoutOurSignalHandlers<T>(fn: () => T): T {
  if (!signalsHooked) return fn();
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  try {
    return fn();
  } finally {
    for (const signal of SIGNALS) process.prependListener(signal, onSignal);
  }
}

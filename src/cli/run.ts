import { CannotAcquireLock, LockLostError } from '../shared/errors.js';
import { acquire } from '../core/acquire.js';
import { lockDescriptor } from '../core/hold.js';
import { target, type LockSettings } from '../core/settings.js';
import { parseOptions } from '../api/options.js';
import type { ExclusiveLock } from '../core/handle.js';
import type { LockDriver } from '../drivers/types.js';
import type { RunRequest } from './args.js';
import { driverFor } from './driver.js';
import { displayCommand } from './holder-command.js';
import { dieBySignal, forward, trapSignals, type ForwardedSignal } from './signals.js';
import { startGuard, type Guard } from './guard.js';
import { say } from './say.js';
import { sayError, seconds } from './messages.js';
import { startChild, type ChildEnd } from './supervise.js';

/** Exit codes of the tool itself (the shell conventions of env(1), timeout(1), nohup(1)). */
export const EXIT = {
  /** Bad command line. */
  usage: 2,
  /** The tool failed (lock directory, driver), or lost the lock while the command ran. */
  failure: 125,
  /** The command exists but cannot be executed. */
  cannotExecute: 126,
  /** The command was not found. */
  notFound: 127,
} as const;

/**
 * `exclusive [options] <name> -- <command>`: takes the lock (waiting as
 * asked), runs the command holding it, and ends the way the command ended.
 * Never returns.
 *
 * Signals: while waiting, a forwarded signal stops the wait and the tool
 * dies by it (there is nothing to forward to yet); while the command runs,
 * they are passed on, unless the whole process group got them (then the
 * command did too: see guard.ts), and the lock stays held until it ends.
 */
export async function runCommand(request: RunRequest): Promise<never> {
  const driver = driverFor(request);
  const waiting = new AbortController();
  let childPid: number | undefined;
  let guard: Guard | undefined;
  let fatal: ForwardedSignal | undefined;
  trapSignals((signal) => {
    if (childPid !== undefined) {
      void forwardOnce(signal, performance.now());
    } else {
      fatal ??= signal;
      waiting.abort(new Error(`interrupted by ${signal}`));
    }
  });

  const settings = {
    ...parseOptions({
      dir: request.dir,
      driver,
      wait: request.waitMs === Infinity ? true : request.waitMs,
      signal: waiting.signal,
      mode: request.mode,
      limit: request.limit,
    }),
    // The tool holds the lock, but the record names what it runs: `status`
    // and conflict messages then show `pg_dump -Fc db`, not `node exclusive ...`.
    command: displayCommand(request.command),
  };
  /** Passes `signal` on, unless it went to our whole process group: then the command has it already. */
  async function forwardOnce(signal: ForwardedSignal, receivedAt: number): Promise<void> {
    if (guard !== undefined && (await guard.reachedGroup(signal, receivedAt))) return;
    if (childPid !== undefined) forward(childPid, signal); // still running (never a reaped, reusable pid)
  }

  const verbose = request.verbose ? (text: string): void => say(`exclusive: ${text}\n`) : undefined;
  const asked = performance.now();
  const lock = await takeOrExit(settings, request, verbose, () => fatal, driver);
  const took = performance.now();
  verbose?.(`got the lock after ${seconds(took - asked)}; running ${displayCommand(request.command)}`);
  // The command never runs without the lock: the guard stops it when we die.
  // It is started first, so it watches from the command's start.
  const descriptor = lockDescriptor(lock);
  guard = startGuard(descriptor);
  await guard?.ready;
  if (fatal !== undefined) {
    guard?.end();
    await endBySignal(lock, driver, fatal);
  }

  // Behind a gate until the guard knows its pid: a tool killed in between leaves nothing running.
  const child = startChild(request.command, descriptor, guard?.started === true);
  childPid = child.pid;
  if (childPid !== undefined) await guard?.watch(childPid);
  child.open();
  const loss = stopOnLoss(lock, childPid);
  const end = await child.ended;
  guard?.end();
  loss.stop();
  childPid = undefined; // it is gone (and reaped): never signal a reused pid
  await release(lock);
  verbose?.(`${describeEnd(end)} after ${seconds(performance.now() - took)}; released the lock`);
  if (loss.lost) process.exit(EXIT.failure);
  return exitLike(end, request.command[0], driver);
}

/**
 * Takes the lock, or ends the tool: by the signal that interrupted the wait
 * (`fatal()`), or as a conflict (the library's `die` message, which `-q`
 * silences, with the `-E` code).
 */
async function takeOrExit(
  settings: LockSettings,
  request: RunRequest,
  verbose: ((text: string) => void) | undefined,
  fatal: () => ForwardedSignal | undefined,
  driver: LockDriver
): Promise<ExclusiveLock> {
  const asked = performance.now();
  try {
    return await take(settings, request.name, verbose);
  } catch (error) {
    const signal = fatal();
    if (signal !== undefined) await endBySignal(undefined, driver, signal);
    if (!(error instanceof CannotAcquireLock)) throw error;
    if (settings.waitMs > 0) verbose?.(`gave up waiting after ${seconds(performance.now() - asked)}`);
    if (!request.quiet) sayError(error.message);
    process.exit(request.conflictExitCode);
  }
}

/**
 * A lock can be lost while held (a database session ended): the command
 * must not go on unprotected, so it gets SIGTERM, and SIGKILL
 * LOST_KILL_AFTER_MS later if it ignores that (as `timeout -k` does):
 * someone else may hold the lock by then. `lost` tells the tool to report a failure.
 */
function stopOnLoss(lock: ExclusiveLock, pid: number | undefined): { readonly lost: boolean; stop(): void } {
  let lost = false;
  let kill: NodeJS.Timeout | undefined;
  const onLost = (): void => {
    if (!(lock.signal.reason instanceof LockLostError) || pid === undefined) return;
    lost = true;
    forward(pid, 'SIGTERM');
    kill = setTimeout(() => forward(pid, 'SIGKILL'), LOST_KILL_AFTER_MS);
    say(`exclusive: ${lock.signal.reason.message} Stopping the command (SIGTERM, then SIGKILL after ${LOST_KILL_AFTER_MS / 1000} s).\n`);
  };
  if (lock.signal.aborted)
    onLost(); // lost before we looked
  else lock.signal.addEventListener('abort', onLost, { once: true });
  return {
    get lost() {
      return lost;
    },
    stop() {
      clearTimeout(kill);
      lock.signal.removeEventListener('abort', onLost);
    },
  };
}

/**
 * Takes the lock as asked. `verbose` is told where the lock lives and, when
 * someone holds it and the tool will wait, who and for how long: so a first
 * attempt without waiting comes before the wait.
 */
async function take(settings: LockSettings, name: string, verbose: ((text: string) => void) | undefined): Promise<ExclusiveLock> {
  const t = target(settings, name);
  if (verbose === undefined) return acquire(t);
  verbose(`lock '${name}': ${t.resource} (${settings.driver.kind} driver)`);
  if (settings.waitMs === 0) return acquire(t);
  const started = performance.now();
  try {
    return await acquire({ ...t, settings: { ...settings, waitMs: 0 } });
  } catch (error) {
    if (!(error instanceof CannotAcquireLock)) throw error;
    const limit = settings.waitMs === Infinity ? 'for ever (-w 0)' : `up to ${seconds(settings.waitMs)}`;
    verbose(`held by pid ${error.pid ?? 'unknown'}; waiting ${limit}`);
  }
  const left = Math.max(0, settings.waitMs - (performance.now() - started));
  return acquire({ ...t, settings: { ...settings, waitMs: left } });
}

/** How the command ended, for `-v`. */
function describeEnd(end: ChildEnd): string {
  switch (end.kind) {
    case 'exited':
      return `the command exited with code ${end.code}`;
    case 'signaled':
      return `the command was killed by ${end.signal}`;
    case 'failed':
      return 'the command could not start';
  }
}

/** How long a command may ignore the SIGTERM sent when the lock is lost before it is killed. */
const LOST_KILL_AFTER_MS = 5000;

/** Longest wait for a server driver's release before exiting anyway. */
const RELEASE_GRACE_MS = 3000;

/**
 * Releases the lock, but never lets an unreachable server hold up our exit:
 * the server frees a session's locks when its connection closes, which our
 * exit does. File locks release at once.
 */
async function release(lock: ExclusiveLock): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, RELEASE_GRACE_MS)));
  await Promise.race([lock.release().catch(() => {}), grace]);
  clearTimeout(timer);
}

async function endBySignal(lock: ExclusiveLock | undefined, driver: LockDriver, signal: NodeJS.Signals): Promise<never> {
  if (lock !== undefined) await release(lock);
  driver.cleanup?.(); // dying by a signal skips the 'exit' hook that would remove our lock file
  return dieBySignal(signal);
}

/** Ends the tool as the command ended (the lock is already released). */
function exitLike(end: ChildEnd, file: string, driver: LockDriver): never {
  switch (end.kind) {
    case 'exited':
      return process.exit(end.code);
    case 'signaled':
      driver.cleanup?.();
      return dieBySignal(end.signal);
    case 'failed': {
      const notFound = end.error.code === 'ENOENT';
      const reason = notFound ? 'command not found' : end.error.code === 'EACCES' ? 'permission denied' : end.error.message;
      say(`exclusive: ${file}: ${reason}\n`);
      process.exit(notFound ? EXIT.notFound : EXIT.cannotExecute);
    }
  }
}

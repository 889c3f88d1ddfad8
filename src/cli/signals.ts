import { constants } from 'node:os';
import { raiseSignal } from '../shared/raise-signal.js';

/**
 * Signals and the tool: which ones it takes over, when not to forward one,
 * and how to end "the way the child ended".
 */

/**
 * Signals the tool catches and forwards to the command: every signal whose
 * default action would end the tool and that can be caught safely (not the
 * faults SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, which Node cannot
 * return from, nor SIGXCPU, which is about the tool's own CPU time). Those
 * not in the list (real-time signals, SIGKILL) still end the tool: the guard
 * (guard.ts) sees to it that the command does not run on unlocked.
 * SIGPOLL is SIGIO; SIGPWR and SIGSTKFLT exist on Linux only.
 */
export const FORWARDED_SIGNALS = (
  [
    'SIGINT',
    'SIGTERM',
    'SIGHUP',
    'SIGQUIT',
    'SIGUSR1',
    'SIGUSR2',
    'SIGALRM',
    'SIGVTALRM',
    'SIGPROF',
    'SIGIO',
    'SIGPWR',
    'SIGSTKFLT',
  ] as const
).filter((signal) => constants.signals[signal as keyof typeof constants.signals] !== undefined);

/** One of {@link FORWARDED_SIGNALS}. */
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

/** Signals whose default action dumps core: re-raising one would dump a core of Node, not of the command. */
const CORE_SIGNALS = new Set([
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGIOT',
  'SIGBUS',
  'SIGFPE',
  'SIGSEGV',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGSYS',
]);

/** Calls `handler` for each forwarded signal until the returned function is called. */
export function trapSignals(handler: (signal: ForwardedSignal) => void): () => void {
  const listeners = FORWARDED_SIGNALS.map((signal) => {
    const listener = (): void => handler(signal);
    process.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) process.removeListener(signal, listener);
  };
}

/** Sends `signal` to `pid`, ignoring a process that is already gone. */
export function forward(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: it ended meanwhile; its exit is on its way to us.
  }
}

/**
 * Ends this process as if `signal` had killed it, so a shell, cron or a
 * supervisor sees what happened to the command (a shell reports 128+n, and
 * bash stops a script whose command died of SIGINT). Signals that dump core
 * exit with 128+n instead (as coreutils `timeout` does when it cannot
 * disable core dumps). The caller has already released the lock.
 */
export function dieBySignal(signal: NodeJS.Signals): never {
  const number = constants.signals[signal] ?? 0;
  if (process.platform !== 'win32' && !CORE_SIGNALS.has(signal)) {
    process.removeAllListeners(signal);
    try {
      // Listening then unlistening resets the disposition to the default,
      // which also undoes Node's own SIG_IGN of SIGPIPE.
      const noop = (): void => {};
      process.on(signal, noop);
      process.removeListener(signal, noop);
    } catch {
      // SIGKILL and SIGSTOP cannot be listened to: their action is the default anyway.
    }
    raiseSignal(signal);
  }
  process.exit(128 + number);
}

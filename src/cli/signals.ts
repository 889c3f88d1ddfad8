import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

/**
 * Signals and the tool: which ones it takes over, when not to forward one,
 * and how to end "the way the child ended".
 */

/**
 * Signals the tool catches and forwards to the command. Without a handler,
 * these would end the tool (or, for SIGUSR1, start Node's inspector) while
 * the command runs on unlocked.
 */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** One of {@link FORWARDED_SIGNALS}. */
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

/** Signals whose default action dumps core: re-raising one would dump a core of Node, not of the command. */
const CORE_SIGNALS = new Set(['SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGIOT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGXCPU', 'SIGXFSZ', 'SIGSYS']);

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

/**
 * True when `signal` is a keyboard signal (Ctrl-C, Ctrl-\) and we run in the
 * foreground process group of our terminal: the terminal then sent it to the
 * whole group, the command included, and forwarding it would deliver it
 * twice (a second SIGINT can cut short the command's own cleanup). Linux
 * only (/proc); elsewhere we always forward.
 */
export function keyboardSignalReachedChild(signal: ForwardedSignal): boolean {
  if (signal !== 'SIGINT' && signal !== 'SIGQUIT') return false;
  try {
    const stat = readFileSync('/proc/self/stat', 'latin1');
    // After "pid (comm) ": state ppid pgrp session tty_nr tpgid. comm may hold ') '.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    const foreground = Number(fields[5]);
    return foreground > 0 && foreground === pgrp;
  } catch {
    return false;
  }
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
    process.kill(process.pid, signal);
  }
  process.exit(128 + number);
}

import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who a process is, beyond its pid: pids are reused (containers reuse small
 * ones constantly), so a recorded holder is believed only while the process
 * with that pid also has the recorded start time.
 */

/** Start time of `pid` as an opaque string, or undefined where the OS does not tell. */
export function processStartTime(pid: number): string | undefined {
  if (process.platform === 'win32') {
    try {
      // Creation time (GetProcessTimes); loads the same kernel32 binding as the windows driver.
      return (require('../native/kernel32.js') as typeof import('../native/kernel32.js')).loadKernel32().processCreationTime(pid);
    } catch {
      return undefined;
    }
  }
  return procStat(pid)?.start;
}

/**
 * Linux: the state and start time of `pid` from /proc/PID/stat (undefined
 * elsewhere, or when it cannot be read). The state is field 3 (`R`, `S`,
 * `Z` for a zombie...); the start time (field 22, clock ticks since boot) is
 * as seen from this process's time namespace. The one parser of that file.
 *
 * @example
 * ```ts
 * procStat(process.pid); // { state: 'R', start: '1234567' }
 * ```
 */
export function procStat(pid: number): { state: string; start: string } | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    // The command name (field 2) may hold spaces and parentheses, so count from the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], start: fields[19] };
  } catch {
    return undefined;
  }
}

/** True when a process with this pid exists (EPERM means it exists but is another user's). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True when the process recorded as `pid` with start time `start` still runs.
 * Without a recorded start time (or an OS that gives none), a live pid counts,
 * and so does a pid whose /proc entry we may not read (another user's
 * process under `hidepid=2`), unless `visibleIfRunning` says the recorded
 * holder would be visible to us (see {@link visibilityKey}): then the pid
 * belongs to someone else now.
 * A zombie (exited, not yet reaped by its parent) does not: a container's
 * init that never reaps would otherwise keep its locks for ever. But a
 * zombie main thread alone is not a dead process: after `kill -9` (or when
 * the main thread exits by itself) other threads may still be exiting,
 * with files open and I/O in flight, so it runs until they are all gone.
 */
export function isRunning(pid: number, start: string | undefined, visibleIfRunning = false): boolean {
  if (!pidExists(pid)) return false;
  if (process.platform === 'linux') {
    const stat = procStat(pid);
    // Hidden from us (/proc mounted hidepid=2), or no /proc: it exists, and
    // may be the holder, unless the holder would be visible to us.
    if (stat === undefined) return !(visibleIfRunning && procShowsSelf());
    if (start !== undefined && stat.start !== start) return false;
    return !(stat.state === 'Z' || stat.state === 'X') || threadsRemain(pid);
  }
  if (start === undefined) return true;
  const now = processStartTime(pid);
  return now === undefined || now === start;
}

/** True when /proc is mounted and is this process's own (its pid namespace's): then a pid missing from it is hidden or gone. */
function procShowsSelf(): boolean {
  try {
    return readlinkSync('/proc/self') === String(process.pid);
  } catch {
    return false;
  }
}

let ownKey: string | null | undefined;

/**
 * Linux: `uid:gid` when every process with the same key sees this one in
 * /proc whatever its `hidepid` (same real, effective, saved and file-system
 * ids; no capabilities, which a viewer would need too; dumpable, which
 * /proc shows by owning our entry as us rather than root); null otherwise
 * (or outside Linux). Read once: a process that changes its ids while
 * holding a lock is not supported by this check.
 *
 * @example
 * ```ts
 * visibilityKey(); // '1000:1000', or null for root or a setuid program
 * ```
 */
export function visibilityKey(): string | null {
  if (ownKey === undefined) ownKey = process.platform === 'linux' ? readVisibilityKey() : null;
  return ownKey;
}

function readVisibilityKey(): string | null {
  try {
    const status = readFileSync('/proc/self/status', 'latin1');
    const ids = (field: string): string[] => new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim().split(/\s+/) ?? [];
    const [uids, gids] = [ids('Uid'), ids('Gid')];
    if (uids.length !== 4 || gids.length !== 4 || new Set(uids).size !== 1 || new Set(gids).size !== 1) return null;
    if (!/^0+$/.test(ids('CapPrm')[0] ?? '')) return null;
    const entry = statSync(`/proc/${process.pid}`);
    if (String(entry.uid) !== uids[0] || String(entry.gid) !== gids[0]) return null; // not dumpable
    return `${uids[0]}:${gids[0]}`;
  } catch {
    return null;
  }
}

/** Linux: true while a thread other than the main one of `pid` is listed in /proc/PID/task. */
function threadsRemain(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => tid !== String(pid));
  } catch {
    return false; // reaped meanwhile: gone
  }
}

/** The longest command line kept in a holder record. */
export const MAX_COMMAND = 300;

/** `command`, cut to MAX_COMMAND characters. */
export function truncateCommand(command: string): string {
  return command.length > MAX_COMMAND ? `${command.slice(0, MAX_COMMAND - 1)}…` : command;
}

let self: { pid: number; start: string | undefined; host: string; command: string } | undefined;

/** This process's identity, computed once (the pid is re-read: it changes in a forked child). */
export function currentProcess(): { pid: number; start: string | undefined; host: string; command: string } {
  if (self === undefined || self.pid !== process.pid) {
    const command = [process.argv0, ...process.argv.slice(1)].join(' ');
    self = {
      pid: process.pid,
      start: processStartTime(process.pid),
      host: hostname(),
      command: truncateCommand(command),
    };
  }
  return self;
}

import { closeSync, readFileSync } from 'node:fs';
import { decodeRecord, limitOf, modeOf } from '../../shared/holder-record.js';
import { locateLockFile, readHead, type LocatedLockFile, type OpenLockFile } from './lock-file.js';
import type { HolderRecord } from '../types.js';

/**
 * Linux: who holds a `flock` on a file, read from /proc/locks without
 * touching the lock, so asking never makes a concurrent acquisition fail.
 *
 * /proc/locks names a file by its super block's device and its inode
 * (`00:28:257`). `stat` does not always give that device: btrfs reports a
 * per-subvolume anonymous device (0:41 where the super block is 0:40), and
 * so may other file systems that stack or subdivide (overlayfs). So the
 * file's mount is looked up too (`mnt_id` in /proc/self/fdinfo, then its
 * `major:minor` in /proc/self/mountinfo, which is the super block's device),
 * and either device matches.
 */

/**
 * The pid holding an exclusive flock (with `shared`, any flock) on the open `file` (0: a holder in a
 * pid namespace we cannot see), null when nobody does, undefined where
 * /proc/locks is absent (not Linux, no procfs).
 *
 * @example
 * ```ts
 * const file = openExistingLockFile(path);
 * if (file !== undefined) flockHolder(file); // 4242, 0, null or undefined
 * ```
 */
export function flockHolder(file: OpenLockFile, shared = false): number | null | undefined {
  let table: string;
  try {
    table = readFileSync('/proc/locks', 'latin1');
  } catch {
    return undefined;
  }
  const statDevice = deviceId(BigInt(file.dev));
  let mount: string | undefined | null = null; // the mount's device, looked up only for a line whose inode matches
  for (const line of table.split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 2131 fe:00:2146317 0 EOF" (blocked waiters are marked "->")
    const fields = line.trim().split(/\s+/);
    if (fields[1] !== 'FLOCK' || (fields[3] !== 'WRITE' && !(shared && fields[3] === 'READ'))) continue;
    const id = fields[5] ?? '';
    const colon = id.lastIndexOf(':');
    if (id.slice(colon + 1) !== String(file.ino)) continue;
    const device = id.slice(0, colon);
    if (device !== statDevice && device !== (mount ??= mountDevice(file.fd))) continue;
    return Number(fields[4]);
  }
  return null;
}

/**
 * The holder of the flock on the open lock `file` according to /proc/locks,
 * with its record when the record names that pid: null when free,
 * `{ pid: null }` when held by a holder we cannot name, undefined without
 * /proc/locks.
 *
 * @example
 * ```ts
 * flockHolderRecord(file); // { name: 'nightly', pid: 4242, ... }
 * ```
 */
export function flockHolderRecord(file: OpenLockFile, shared = false): HolderRecord | null | undefined {
  const pid = flockHolder(file, shared);
  if (pid === undefined || pid === null) return pid;
  const record = decodeRecord(readHead(file.fd));
  // 0: the holder is in a pid namespace we cannot see (another container); its record has its own pid.
  if (pid === 0) return record ?? { name: '', pid: null };
  return record !== null && record.pid === pid ? record : { name: record?.name ?? '', pid };
}

/**
 * The flock holder of the lock file at `path` (see flockHolderRecord),
 * never created, for a process that does not use flock itself (the portable
 * driver). Needs no read access to the file (see locateLockFile): another
 * user's 0600 lock file is still seen held. Null also when there is no such
 * regular file (then no flock user can lock it either).
 *
 * @example
 * ```ts
 * flockHolderAt('/run/lock/exclusive-process.nightly.lock'); // null: free
 * ```
 */
export function flockHolderAt(path: string): HolderRecord | null | undefined {
  let file: LocatedLockFile | undefined;
  try {
    file = locateLockFile(path);
  } catch {
    return null; // a symlink, a FIFO, a hard link: no flock user locks it (they refuse it too)
  }
  if (file === undefined) return null;
  try {
    return flockHolderRecord(file, true); // shared holders (posix readers, counted holders) hold the name too
  } finally {
    closeSync(file.fd);
  }
}

/** A user-space dev_t as /proc/locks prints it: hex `major:minor`, at least two digits each. */
function deviceId(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return hexPair(major, minor);
}

function hexPair(major: bigint, minor: bigint): string {
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

/** The super block device of the mount that `fd` was opened through, as /proc/locks prints it; undefined when /proc does not say. */
function mountDevice(fd: number): string | undefined {
  try {
    const mountId = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))?.[1];
    if (mountId === undefined) return undefined;
    // "46 27 0:40 / /mnt rw,relatime - btrfs /dev/loop0 rw": mount id, parent id, major:minor (decimal).
    for (const line of readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
      const [id, , device] = line.split(' ', 3);
      if (id !== mountId || device === undefined) continue;
      const [major, minor] = device.split(':');
      return hexPair(BigInt(major), BigInt(minor));
    }
  } catch {
    // No procfs, or a mount table we cannot read: the stat device is all we have.
  }
  return undefined;
}

/**
 * True when a plain (exclusive) holder holds the lock file at `path`: the
 * kernel's exclusive flock holder (Linux: /proc/locks) is the process whose
 * record the file holds, and that record asks for a plain lock. Not a
 * process that only flocks the file for a moment to remove it (its pid is
 * not the record's); elsewhere, unknown: false.
 */
export function plainHolderAt(path: string): boolean {
  let file: LocatedLockFile | undefined;
  try {
    file = locateLockFile(path);
  } catch {
    return false; // a symlink, a FIFO, a hard link: no flock user holds it
  }
  if (file === undefined) return false;
  try {
    const holder = flockHolderRecord(file);
    const recorded = holder?.since !== undefined; // the fallback for a pid that is not the record's has no record fields
    return recorded && holder.pid !== null && modeOf(holder) === 'exclusive' && limitOf(holder) === 1;
  } finally {
    closeSync(file.fd);
  }
}

import { closeSync, futimesSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { decodeRecord, encodeRecord } from '../../shared/holder-record.js';
import { lockFilePath } from '../file/path.js';
import { isRunning } from '../../shared/process-identity.js';
import { LockFileError } from '../../shared/errors.js';
import { loadNative } from '../../native/libc.js';
import { locateLockFile, lockFileError, openLockFile, readHead, writeRecord, type OpenLockFile } from '../file/lock-file.js';
import type { DriverLock, HolderRecord, LockDriver } from '../types.js';
import { evictIdle } from '../file/idle-cache.js';
import { watchLockFile } from '../file/watch.js';
import { flockHolderRecord } from '../file/proc-locks.js';
import { claimPathFor, fileLockNamesIn, fileRegistryKey, liveClaimAt } from '../file/claim.js';

/**
 * The POSIX driver: `flock(2)` through ffi-rs on a lock file.
 *
 * flock, not fcntl/lockf: flock locks belong to an open file description, so
 * two descriptors (two processes, or two worker threads of one) exclude each
 * other, and closing an unrelated descriptor of the file does not drop them.
 * The kernel releases them when the holder dies, even by `kill -9`.
 *
 * Files stay open between acquisitions (open/create/unlink cost 10-100x a
 * lock operation on disk) and are removed when this process exits, or when
 * more than MAX_IDLE (idle-cache.ts) are idle. A file is only ever unlinked
 * by a process holding its lock, and every acquisition checks that the path
 * still names the locked file, so a waiter that locked a file just unlinked
 * retries.
 *
 * A process that cannot load native code may hold the same name with the
 * portable driver, whose claim is `<lock>.pid` beside our `<lock>.lock`:
 * after locking, we back off while that claim is live (it checks our flock
 * after creating its claim, so one of us always sees the other).
 */

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const { EWOULDBLOCK, EAGAIN, EINTR } = constants.errno;
/** How often a blocking wait looks again while a portable-driver process holds the name. */
const PORTABLE_POLL_MS = 10;
/** Attempts when the file keeps being replaced under us (only a hostile process does that). */
const MAX_REOPEN = 100;

interface CachedFile extends OpenLockFile {
  held: boolean;
}

export function createPosixDriver(): LockDriver {
  const native = loadNative();
  const flock = native.flock;
  const files = new Map<string, CachedFile>(); // insertion order = least recently used first
  /** Paths a wait watches, with how many: their files stay open until it ends, so its retries do not reopen them. */
  const waiting = new Map<string, number>();
  const inUse = (path: string, file: CachedFile): boolean => file.held || waiting.has(path);

  /** Locks `path` (blocking, or failing at once with LOCK_NB): the lock, or null when held elsewhere. */
  function lock(path: string, record: HolderRecord, operation: number): DriverLock | null {
    for (let reopened = 0; reopened < MAX_REOPEN; ) {
      let cached = files.get(path);
      if (cached === undefined) cached = { ...openLockFile(path), held: false };
      else files.delete(path);
      files.set(path, cached); // most recently used last
      const errno = flock(cached.fd, operation);
      if (errno !== 0) {
        if (errno === EWOULDBLOCK || errno === EAGAIN) {
          evictIdle(files, removeIfFree, inUse); // failed tries on many names keep no descriptor each (waits keep theirs, see watch)
          return null;
        }
        if (errno === EINTR) continue; // a signal interrupted a blocking wait: wait again
        throw lockFileError(Object.assign(new Error(`flock failed (errno ${errno})`), { code: errnoName(errno) }), path);
      }
      if (namesFile(path, cached)) {
        if (portableHolds(path, () => flock(cached.fd, LOCK_UN))) {
          // A portable-driver process holds this name (see portable.ts): not ours after all.
          flock(cached.fd, LOCK_UN);
          if ((operation & LOCK_NB) !== 0) return null;
          sleepSync(PORTABLE_POLL_MS); // a blocking wait: its release does not touch our file, so poll
          continue;
        }
        cached.held = true;
        // Another user's file, opened read-only: held all the same; holder() then has the pid from the kernel but no record.
        if (cached.writable) writeRecord(cached.fd, encodeRecord(record));
        return { release: () => release(path, cached), descriptor: cached.fd };
      }
      // Unlinked (by a process cleaning up) between our open and our lock: that file is dead.
      flock(cached.fd, LOCK_UN);
      drop(path, cached);
      reopened++;
    }
    throw new LockFileError('ERR_LOCK_FILE_UNSAFE', path,
      `The lock file ${path} keeps being replaced while we lock it; another program is interfering with the lock directory.`);
  }

  function release(path: string, file: CachedFile): void {
    file.held = false;
    flock(file.fd, LOCK_UN);
    // Wake waiters watching the file. Touching the time (not the content)
    // after unlocking cannot clobber the record of whoever locks it next.
    try {
      const now = Date.now() / 1000;
      futimesSync(file.fd, now, now);
    } catch {
      // Not the owner: waiters fall back to their poll.
    }
    if (files.get(path) === file) evictIdle(files, removeIfFree, inUse);
  }

  /** Unlinks the file if we can lock it and it is still the file at `path`, then closes it. */
  function removeIfFree(path: string, file: CachedFile): void {
    if (file.held || flock(file.fd, LOCK_EX | LOCK_NB) === 0) {
      try {
        if (namesFile(path, file)) unlinkSync(path);
      } catch {
        // Already gone, or the directory became read-only: nothing to clean.
      }
    }
    drop(path, file);
  }

  function drop(path: string, file: CachedFile): void {
    if (files.get(path) === file) files.delete(path);
    try {
      closeSync(file.fd);
    } catch {
      // Closed already.
    }
  }

  return {
    kind: 'posix',
    synchronous: true,
    locate: (name, dir) => lockFilePath(name, dir),
    registryKey: fileRegistryKey,
    tryLock: (path, record) => lock(path, record, LOCK_EX | LOCK_NB),
    // Blocks in the kernel, which hands the lock over within a fraction of a millisecond.
    waitLockSync: (path, record) => lock(path, record, LOCK_EX)!,
    watch(path, onChange) {
      const stop = watchLockFile(path, onChange);
      if (stop === undefined) return undefined;
      waiting.set(path, (waiting.get(path) ?? 0) + 1);
      return () => {
        stop();
        const left = waiting.get(path)! - 1;
        if (left > 0) return void waiting.set(path, left);
        waiting.delete(path);
        evictIdle(files, removeIfFree, inUse);
      };
    },
    heldByThisThread(path) {
      let stat;
      try {
        stat = statSync(path);
      } catch {
        return false; // no file there: nothing held through it
      }
      for (const file of files.values()) if (file.held && file.ino === stat.ino && file.dev === stat.dev) return true;
      return false;
    },
    holder(path) {
      // Located, not read: another user's unreadable (0600) file still shows its flock holder in /proc/locks.
      const file = locateLockFile(path);
      if (file === undefined) return liveClaimAt(claimPathFor(path));
      try {
        const holder = flockHolderRecord(file);
        if (holder !== undefined) return holder ?? liveClaimAt(claimPathFor(path));
        if (!file.readable) throw lockFileError(Object.assign(new Error('not readable'), { code: 'EACCES' }), path);
        // No /proc/locks (not Linux): probe with a shared lock.
        if (flock(file.fd, LOCK_SH | LOCK_NB) === 0) return liveClaimAt(claimPathFor(path));
        const record = decodeRecord(readHead(file.fd));
        return record !== null && record.pid !== null && isRunning(record.pid, record.start) ? record : { name: record?.name ?? '', pid: null };
      } finally {
        closeSync(file.fd); // also drops the probe's shared lock
      }
    },
    // Also the names held only through portable-driver claims, which holder() sees too.
    list: (dir) => fileLockNamesIn(dir),
    cleanup() {
      for (const [path, file] of [...files]) removeIfFree(path, file);
    },
  };
}

/**
 * True when a live portable-driver claim holds the name of the lock file
 * `path`, which we have just flocked. A claim we may not read (another
 * user's 0600 file) is never taken for free: `unlock` drops our flock, then
 * its ERR_LOCK_PERMISSION is thrown.
 */
function portableHolds(path: string, unlock: () => void): boolean {
  try {
    return liveClaimAt(claimPathFor(path)) !== null;
  } catch (error) {
    unlock();
    throw error;
  }
}

/** True when `path` still names the open file (same device and inode). */
function namesFile(path: string, file: OpenLockFile): boolean {
  try {
    const stat = lstatSync(path);
    return stat.ino === file.ino && stat.dev === file.dev;
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function errnoName(errno: number): string | undefined {
  return Object.entries(constants.errno).find(([, value]) => value === errno)?.[0];
}

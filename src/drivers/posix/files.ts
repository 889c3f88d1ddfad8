import { closeSync, futimesSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { encodeRecord } from '../../shared/holder-record.js';
import { LockFileError } from '../../shared/errors.js';
import { lockFileError, openLockFile, writeRecord, type OpenLockFile } from '../file/lock-file.js';
import { evictIdle } from '../file/idle-cache.js';
import { watchLockFile } from '../file/watch.js';
import { portableHolderAt } from '../file/slot-claims.js';
import type { Native } from '../../native/libc.js';
import type { DriverLock, HolderRecord } from '../types.js';

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;
const { EWOULDBLOCK, EAGAIN, EINTR } = constants.errno;
/** How often a blocking wait looks again while a portable-driver process holds the name. */
const PORTABLE_POLL_MS = 10;
/** Attempts when the file keeps being replaced under us (only a hostile process does that). */
const MAX_REOPEN = 100;

/** An open lock file, and this thread's hold on it. */
export interface CachedFile extends OpenLockFile {
  /** True while this thread holds a flock on it (exclusive, or shared by `shares` holds). */
  held: boolean;
  /** Holds of this thread sharing one LOCK_SH on the descriptor (0: not shared): unlocked when the last lets go. */
  shares: number;
}

/**
 * The lock files this thread keeps open between acquisitions (most
 * recently used last), and flock on them. Idle ones beyond the cache's
 * bound are unlinked if free and closed.
 */
export class LockFiles {
  readonly #flock: Native['flock'];
  readonly #files = new Map<string, CachedFile>(); // insertion order = least recently used first
  /** Paths a wait watches, with how many: their files stay open until it ends, so its retries do not reopen them. */
  readonly #waiting = new Map<string, number>();

  constructor(flock: Native['flock']) {
    this.#flock = flock;
  }

  /** Locks `path` (blocking, or failing at once with LOCK_NB): the lock, or null when held elsewhere. */
  lock(path: string, record: HolderRecord, operation: number): DriverLock | null {
    for (;;) {
      const cached = this.take(path, operation);
      if (cached === null) return null;
      if (!portableHolds(path, () => this.unlock(path, cached, false))) return this.#held(path, cached, record);
      // A portable-driver process holds this name (see portable/index.ts): not ours after all.
      this.unlock(path, cached, false);
      if ((operation & LOCK_NB) !== 0) return null;
      sleepSync(PORTABLE_POLL_MS); // a blocking wait: its release does not touch our file, so poll
    }
  }

  /**
   * Flocks the file at `path` with `operation` (LOCK_EX or LOCK_SH, plus
   * LOCK_NB to fail at once): its open file, or null when held elsewhere.
   * A file this thread holds is never flocked again (that would convert its
   * lock, not wait): a shared hold is shared once more, anything else is null.
   */
  take(path: string, operation: number): CachedFile | null {
    const shared = (operation & LOCK_SH) !== 0;
    for (let reopened = 0; reopened < MAX_REOPEN;) {
      const cached = this.#use(path);
      if (cached.held) return shared && cached.shares > 0 ? (cached.shares++, cached) : null;
      const errno = this.#flock(cached.fd, operation);
      if (errno !== 0) {
        if (errno === EWOULDBLOCK || errno === EAGAIN) {
          this.#evict(); // failed tries on many names keep no descriptor each (waits keep theirs, see watch)
          return null;
        }
        if (errno === EINTR) continue; // a signal interrupted a blocking wait: wait again
        throw lockFileError(Object.assign(new Error(`flock failed (errno ${errno})`), { code: errnoName(errno) }), path);
      }
      if (namesFile(path, cached)) {
        cached.held = true;
        cached.shares = shared ? 1 : 0;
        return cached;
      }
      // Unlinked (by a process cleaning up) between our open and our lock: that file is dead.
      this.#flock(cached.fd, LOCK_UN);
      this.#drop(path, cached);
      reopened++;
    }
    throw new LockFileError(
      'ERR_LOCK_FILE_UNSAFE',
      path,
      `The lock file ${path} keeps being replaced while we lock it; another program is interfering with the lock directory.`
    );
  }

  /** Turns this thread's exclusive flock on `file` into a shared one (not atomic on Linux: another process may take it exclusively between). */
  downgrade(file: CachedFile): void {
    while (this.#flock(file.fd, LOCK_SH) === EINTR);
    file.shares = 1;
  }

  /** True when flocking `path` with `operation | LOCK_NB` would succeed now (tried, then undone); false too when this thread holds it. */
  probe(path: string, operation: number): boolean {
    const file = this.take(path, operation | LOCK_NB);
    if (file === null) return false;
    this.unlock(path, file, false);
    return true;
  }

  /** How this thread holds `path`: 'exclusive', 'shared', or undefined. */
  heldHere(path: string): 'exclusive' | 'shared' | undefined {
    const file = this.#files.get(path);
    return file?.held !== true ? undefined : file.shares > 0 ? 'shared' : 'exclusive';
  }

  /** Writes `bytes` (a holder record) at the start of a file this thread holds, when it may write it. */
  write(file: CachedFile, bytes: Buffer): void {
    if (file.writable) writeRecord(file.fd, bytes);
  }

  /** Touches the open file of `path`, if any, to wake waiters watching it. */
  touch(path: string): void {
    const file = this.#files.get(path);
    if (file !== undefined) touchFile(file.fd);
  }

  /** Gives up one of this thread's holds on `file` (the flock goes with the last); `touch` wakes waiters watching it. */
  unlock(path: string, file: CachedFile, touch = true): void {
    if (file.shares > 1) file.shares--;
    else {
      file.held = false;
      file.shares = 0;
      this.#flock(file.fd, LOCK_UN);
    }
    if (touch) touchFile(file.fd);
    if (this.#files.get(path) === file && !file.held) this.#evict();
  }

  /** Watches `path` for a wait, keeping its file open until the returned stop is called. */
  watch(path: string, onChange: () => void): (() => void) | undefined {
    const stop = watchLockFile(path, onChange);
    if (stop === undefined) return undefined;
    this.#waiting.set(path, (this.#waiting.get(path) ?? 0) + 1);
    return () => {
      stop();
      const left = this.#waiting.get(path)! - 1;
      if (left > 0) return void this.#waiting.set(path, left);
      this.#waiting.delete(path);
      this.#evict();
    };
  }

  heldByThisThread(path: string): boolean {
    let stat;
    try {
      stat = statSync(path);
    } catch {
      return false; // no file there: nothing held through it
    }
    for (const file of this.#files.values()) if (file.held && file.ino === stat.ino && file.dev === stat.dev) return true;
    return false;
  }

  cleanup(): void {
    for (const [path, file] of [...this.#files]) this.#removeIfFree(path, file);
  }

  /** The open file of `path` (opened on first use), now the most recently used. */
  #use(path: string): CachedFile {
    let cached = this.#files.get(path);
    if (cached === undefined) cached = { ...openLockFile(path), held: false, shares: 0 };
    else this.#files.delete(path);
    this.#files.set(path, cached); // most recently used last
    return cached;
  }

  #held(path: string, cached: CachedFile, record: HolderRecord): DriverLock {
    // Another user's file, opened read-only: held all the same; holder() then has the pid from the kernel but no record.
    if (cached.writable) writeRecord(cached.fd, encodeRecord(record));
    return { release: () => this.#release(path, cached), descriptor: cached.fd };
  }

  #release(path: string, file: CachedFile): void {
    this.unlock(path, file);
  }

  #evict(): void {
    evictIdle(
      this.#files,
      (path, file) => this.#removeIfFree(path, file),
      (path, file) => file.held || this.#waiting.has(path)
    );
  }

  /**
   * Unlinks the file if we can lock it exclusively and it is still the file
   * at `path`, then closes it. Held shared, it may have other holders:
   * unlinked under them, the next process would lock a new file beside theirs.
   */
  #removeIfFree(path: string, file: CachedFile): void {
    if ((file.held && file.shares === 0) || this.#flock(file.fd, LOCK_EX | LOCK_NB) === 0) {
      try {
        if (namesFile(path, file)) unlinkSync(path);
      } catch {
        // Already gone, or the directory became read-only: nothing to clean.
      }
    }
    this.#drop(path, file);
  }

  #drop(path: string, file: CachedFile): void {
    if (this.#files.get(path) === file) this.#files.delete(path);
    try {
      closeSync(file.fd);
    } catch {
      // Closed already.
    }
  }
}

/**
 * True when a live portable-driver claim (exclusive, shared or counted) holds the name of the lock file
 * `path`, which we have just flocked. A claim we may not read (another
 * user's 0600 file) is never taken for free: `unlock` drops our flock, then
 * its ERR_LOCK_PERMISSION is thrown.
 */
function portableHolds(path: string, unlock: () => void): boolean {
  try {
    return portableHolderAt(path) !== null;
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

/**
 * Wakes waiters watching the file. Touching the time (not the content)
 * after unlocking cannot clobber the record of whoever locks it next.
 */
function touchFile(fd: number): void {
  try {
    const now = Date.now() / 1000;
    futimesSync(fd, now, now);
  } catch {
    // Not the owner: waiters fall back to their poll.
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function errnoName(errno: number): string | undefined {
  return Object.entries(constants.errno).find(([, value]) => value === errno)?.[0];
}

import { LockFileError } from '../../shared/errors.js';
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { lockFilePath } from '../file/path.js';
import { claimPathFor, createClaim, fileLockNamesIn, fileRegistryKey, isLive, lockPathFor, newToken, readClaim, tempPath, unlinkClaim, unlinkQuietly, unlinkStaleClaim, type Claim } from '../file/claim.js';
import { flockHolderAt } from '../file/proc-locks.js';
import type { DriverLock, HolderRecord, LockDriver } from '../types.js';
import { watchLockFile } from '../file/watch.js';

/**
 * The portable driver: a pid file, no native code. For platforms where the
 * native binding cannot load (an unusual architecture, a sandbox without
 * native addons); chosen explicitly (`driver: 'portable'`), never silently.
 *
 * Held = the lock file exists and names a live holder (see `isLive` in
 * drivers/file/claim.ts: pid + start time + boot, same host). Acquiring creates
 * the file complete and atomically (temp file + link, drivers/file/claim.ts);
 * releasing removes it if it is still ours (same token).
 *
 * Reclaiming a dead holder's file, with exactly one winner. The classic bug
 * (proper-lockfile, exclusiveprocess): A and B both find the file stale, A
 * deletes it and creates its own, then B deletes A's fresh file. There is no
 * "unlink if still this file" in POSIX, so we make sure nobody *can* change
 * the name between our check and our unlink:
 *
 * 1. Every claim has a random token. A claim is unlinked only by its creator
 *    (release) or by whoever holds its *reclaim guard*, the claim file
 *    `<lock>.<token>.reclaim`, created exclusively like any claim. (A file we
 *    did not write, garbage included, is named by a hash of its inode,
 *    change time and content instead of a token.)
 * 2. The guard holder re-reads the lock file; if it still has the stale
 *    token, it unlinks it. Between that read and the unlink, the name could
 *    only change if the stale file were unlinked first, which only its dead
 *    creator or the (exclusive) guard holder could do; a new file can only be
 *    linked once the name is free. So only the stale file is ever unlinked.
 * 3. The guard holder then removes its guard. That is safe because tokens
 *    never repeat: a slow reclaimer that takes the guard later re-reads the
 *    lock file, finds another token (or none), and unlinks nothing.
 * 4. A guard whose creator died (mid-reclaim) is itself a stale claim,
 *    reclaimed by the same steps through its own guard. Each level needs a
 *    crash inside a window of microseconds; we go MAX_DEPTH levels deep,
 *    then report the lock held (the next poll retries).
 *
 * A live holder is never judged dead (its pid runs with its start time), so
 * its file is never touched; a holder that is judged dead cannot act any more.
 *
 * No clock, mtime or timeout is involved: a file is stale only when its
 * holder is known dead, so clock jumps and slow holders cannot break it.
 *
 * Limits: liveness can only be checked for processes of this host (by host
 * name: machines sharing a directory, e.g. on NFS, need distinct names) and
 * pid namespace; a record from elsewhere counts as held until removed by
 * hand. Outside Linux there is no start time, so a dead holder's pid reused
 * by an unrelated process keeps the lock held until that process ends (never
 * the reverse).
 *
 * Beside the posix driver: the claim is `<lock>.pid` beside the posix
 * driver's `<lock>.lock`, so neither misreads the other's file. Each
 * announces itself, then looks for the other: posix flocks `.lock`, then
 * backs off if a live claim exists; we link our claim, then back off if
 * /proc/locks shows `.lock` flocked. Whichever looks second sees the first,
 * so the two never both hold a name (both may back off, which a retry
 * settles). Without /proc/locks (outside Linux) we cannot see flocks: there
 * every process using a lock must use this driver.
 */

/** What follows `<lock>.` in a temp file or reclaim guard name: a token (or a hashed id, `x` + 23 hex digits), then the kind. */
const LEFTOVER = /^(?:[0-9a-f]{24}|x[0-9a-f]{23})\.(tmp|reclaim)$/;
/** Attempts of one tryLock when others keep creating and removing the file. */
const MAX_ROUNDS = 100;
/** Levels of guards reclaimed in a row (each needs a crash mid-reclaim). */
const MAX_DEPTH = 8;

/**
 * Creates the portable (pid file) driver. `Exclusive` uses it when
 * `driver: 'portable'` is given. Default: not used (the platform's native
 * driver is, and where it cannot load the default fails with
 * ERR_DRIVER_UNAVAILABLE rather than switching drivers).
 *
 * Lock files are `exclusive-process.<name>.pid` in the lock directory (the
 * posix driver's end in `.lock`), start with the one-line JSON holder record, and
 * exist only while the lock is held (or after a holder died, until the next
 * acquisition reclaims them).
 *
 * @example
 * ```ts
 * import { Exclusive } from 'exclusive-process';
 * Exclusive.forever({ name: 'nightly', driver: 'portable', die: true });
 * ```
 */
export function createPortableDriver(): LockDriver {
  /** Lock path -> token of the claim we hold there. */
  const held = new Map<string, string>();

  function tryLock(path: string, record: HolderRecord): DriverLock | null {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // Look before creating: under contention this saves a temp file per try.
      const seen = readClaim(path);
      if (seen === undefined) {
        // Held by a posix-driver process: say so without writing. Creating and
        // removing our claim would wake our own watch (and every portable
        // waiter's), whose retry would do it again: a loop that starves the event loop.
        if (flockHolderAt(lockPathFor(path))) return null;
        const token = newToken();
        if (!createClaim(path, path, record, token)) continue; // another process was faster: look at its claim
        if (flockHolderAt(lockPathFor(path))) {
          // A posix-driver process holds this name; it checks for our claim after locking, so one of us always sees the other.
          removeOwn(path, token);
          return null;
        }
        held.set(path, token);
        return { release: () => release(path, token) };
      }
      if (isLive(seen)) return null;
      if (!reclaim(path, path, seen, record, 0)) return null;
      sweepLeftovers(path, record); // a holder died: it may have left a temp file or a guard too
    }
    throw new LockFileError('ERR_LOCK_FILE_UNSAFE', path,
      `The lock file ${path} keeps being replaced while we lock it; another program is interfering with the lock directory.`);
  }

  /**
   * Removes the stale claim `seen` at `target` under its guard (see the
   * module comment). True when `target` no longer holds `seen` (we removed
   * it, or someone did before us); false when a live process is reclaiming
   * it (it will hold the lock), or after MAX_ROUNDS /
   * MAX_DEPTH: the caller then reports the lock held and its poll retries.
   */
  function reclaim(path: string, target: string, seen: Claim, record: HolderRecord, depth: number): boolean {
    const guard = `${path}.${seen.id}.reclaim`;
    for (let round = 0; ;) {
      const token = newToken();
      if (createClaim(path, guard, record, token)) {
        try {
          if (readClaim(target)?.id === seen.id) {
            unlinkStaleClaim(target, seen);
            // The stale creator may have died between link() and removing its temp file.
            if (seen.token !== undefined) unlinkQuietly(tempPath(path, seen.token));
          }
        } finally {
          removeOwn(guard, token);
        }
        return true;
      }
      const other = readClaim(guard);
      // A live process is reclaiming: it will hold the lock. Say so now and
      // let the caller's wait policy retry, rather than block the thread.
      if (other !== undefined && isLive(other)) return false;
      if (++round > MAX_ROUNDS) return false;
      if (other === undefined) continue; // its reclaimer just finished: take the guard and look again
      if (depth >= MAX_DEPTH || !reclaim(path, guard, other, record, depth + 1)) return false;
    }
  }

  /**
   * Removes what processes that died mid-acquisition left beside the lock
   * file at `path`: temp files never linked (a live creator whose temp file
   * goes just tries again, see createClaim), and reclaim guards whose
   * creators died, through their own guards like any stale claim. They
   * never block anyone, but would pile up.
   */
  function sweepLeftovers(path: string, record: HolderRecord): void {
    const prefix = `${basename(path)}.`;
    let names: string[];
    try {
      names = readdirSync(dirname(path));
    } catch {
      return;
    }
    for (const name of names) {
      // Exactly `<lock>.<token or id>.tmp|.reclaim`: not the files of another lock whose name starts like ours.
      const kind = name.startsWith(prefix) ? LEFTOVER.exec(name.slice(prefix.length))?.[1] : undefined;
      if (kind === undefined) continue;
      const leftover = join(dirname(path), name);
      try {
        const claim = readClaim(leftover);
        if (claim === undefined || isLive(claim)) continue;
        if (kind === 'tmp') unlinkQuietly(leftover);
        else reclaim(path, leftover, claim, record, 1);
      } catch {
        // Not a regular file, or not ours to remove: leave it.
      }
    }
  }

  /** Removes our claim; a claim that cannot be removed (read-only file system...) throws and stays ours, for exit cleanup to retry. */
  function release(path: string, token: string): void {
    removeOwn(path, token);
    if (held.get(path) === token) held.delete(path);
  }

  return {
    kind: 'portable',
    synchronous: true,
    locate: (name, dir) => claimPathFor(lockFilePath(name, dir)),
    registryKey: (path) => fileRegistryKey(lockPathFor(path)),
    tryLock,
    // By name: the file disappears on release and a new one appears on the
    // next acquisition, which a watch on the file itself would not follow.
    watch: (path, onChange) => watchLockFile(path, onChange, true),
    heldByThisThread(path) {
      const token = readClaim(path)?.token;
      return token !== undefined && [...held.values()].includes(token);
    },
    holder(path) {
      const claim = readClaim(path);
      if (claim !== undefined && isLive(claim)) return claim.record;
      return flockHolderAt(lockPathFor(path)) ?? null;
    },
    list: (dir) => fileLockNamesIn(dir), // with the names held through posix lock files, which holder() sees too
    cleanup() {
      for (const [path, token] of [...held]) {
        try {
          release(path, token);
        } catch {
          // Exiting: the claim names a process about to be gone, so the next acquirer reclaims it.
        }
      }
    },
  };
}

/**
 * Unlinks the claim at `path` if it is still the one with `token`. Safe
 * between the read and the unlink: the only others who may remove our claim
 * hold its guard, which needs us to be dead.
 */
function removeOwn(path: string, token: string): void {
  let ours: boolean;
  try {
    ours = readClaim(path)?.token === token;
  } catch {
    return; // replaced by something unsafe: not ours any more
  }
  if (ours) unlinkClaim(path); // a LockFileError when it cannot be removed: the lock is still held
}


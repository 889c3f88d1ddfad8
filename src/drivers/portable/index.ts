import { LockFileError } from '../../shared/errors.js';
import { lockFilePath } from '../file/path.js';
import { flockHolderAt } from '../file/proc-locks.js';
import { watchLockFile } from '../file/watch.js';
import { claimPathFor, createClaim, fileLockNamesIn, fileRegistryKey, isLive, lockPathFor, newToken, readClaim } from '../file/claim.js';
import { MAX_ROUNDS, reclaim, removeOwn, sweepLeftovers } from './reclaim.js';
import type { DriverLock, HolderRecord, LockDriver } from '../types.js';

/**
 * The portable driver: a pid file, no native code, for platforms where the
 * native binding cannot load; chosen explicitly, never silently. Held = the
 * claim file exists and names a live holder (`isLive`, claim.ts); a dead
 * holder's claim is reclaimed with exactly one winner (reclaim.ts). See
 * docs/internals/portable-reclaim.md.
 */

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
  return {
    kind: 'portable',
    synchronous: true,
    locate: (name, dir) => claimPathFor(lockFilePath(name, dir)),
    registryKey: (path) => fileRegistryKey(lockPathFor(path)),
    tryLock: (path, record) => tryClaim(held, path, record),
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
          release(held, path, token);
        } catch {
          // Exiting: the claim names a process about to be gone, so the next acquirer reclaims it.
        }
      }
    },
  };
}

/** Creates our claim at `path` (reclaiming a dead holder's first): the lock, or null when held. */
function tryClaim(held: Map<string, string>, path: string, record: HolderRecord): DriverLock | null {
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
      return { release: () => release(held, path, token) };
    }
    if (isLive(seen)) return null;
    if (!reclaim(path, path, seen, record, 0)) return null;
    sweepLeftovers(path, record); // a holder died: it may have left a temp file or a guard too
  }
  throw new LockFileError(
    'ERR_LOCK_FILE_UNSAFE',
    path,
    `The lock file ${path} keeps being replaced while we lock it; another program is interfering with the lock directory.`
  );
}

/** Removes our claim; a claim that cannot be removed (read-only file system...) throws and stays ours, for exit cleanup to retry. */
function release(held: Map<string, string>, path: string, token: string): void {
  removeOwn(path, token);
  if (held.get(path) === token) held.delete(path);
}

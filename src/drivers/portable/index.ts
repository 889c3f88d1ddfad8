import { LockFileError } from '../../shared/errors.js';
import { lockFilePath } from '../file/path.js';
import { flockHolderAt } from '../file/proc-locks.js';
import { watchLockFiles } from '../file/watch.js';
import { basename } from 'node:path';
import {
  CLAIM_FILE_SUFFIX,
  claimPathFor,
  createClaim,
  fileLockNamesIn,
  fileRegistryKey,
  isLive,
  lockPathFor,
  newToken,
  readClaim,
} from '../file/claim.js';
import { liveSlotHolders } from '../file/slot-claims.js';
import { MAX_ROUNDS, reclaim, removeOwn, sweepLeftovers } from './reclaim.js';
import { isPlain, PortableModes } from './modes.js';
import type { DriverLock, HolderRecord, LockDriver } from '../types.js';

/**
 * The portable driver: a pid file, no native code, for platforms where the
 * native binding cannot load; chosen explicitly, never silently. Held = the
 * claim file exists and names a live holder (`isLive`, claim.ts); a dead
 * holder's claim is reclaimed with exactly one winner (reclaim.ts). See
 * docs/internals/portable-reclaim.md; shared and counted holds are slot
 * claims beside it (modes.ts, docs/internals/modes.md).
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
  /** Claim path -> token of each claim we hold there (exclusive, slot or gate claims). */
  const held = new Map<string, string>();
  const modes = new PortableModes(held);
  return {
    kind: 'portable',
    synchronous: true,
    modes: { shared: true, counted: true },
    locate: (name, dir) => claimPathFor(lockFilePath(name, dir)),
    registryKey: (path) => fileRegistryKey(lockPathFor(path)),
    tryLock: (path, record) => (isPlain(record) ? tryClaim(held, modes, path, record) : modes.enter(path, record)),
    announce: (path, record) => modes.announce(path, record),
    // By name: the files disappear on release and new ones appear on the next
    // acquisition, which a watch on a file itself would not follow. Every
    // file of the name: a writer waits for slot claims to go, readers for
    // the gate, and a posix holder's release touches `<stem>.lock`.
    watch: (path, onChange) => watchLockFiles(path, `${basename(path.slice(0, -CLAIM_FILE_SUFFIX.length))}.`, onChange),
    heldByThisThread(path) {
      const token = readClaim(path)?.token;
      return token !== undefined && [...held.values()].includes(token);
    },
    holder: (path) => holdersAt(path)[0] ?? null,
    holders: (path) => holdersAt(path),
    list: (dir) => fileLockNamesIn(dir), // with the names held through posix lock files, which holder() sees too
    cleanup() {
      for (const [path, token] of [...held]) {
        try {
          release(held, path, token);
        } catch {
          // Exiting: the claim names a process about to be gone, so the next acquirer reclaims it.
        }
      }
      modes.clearMarkers((path, record) => tryClaim(held, modes, path, record));
    },
  };
}

/** Every holder of the name whose claim file is `path`: ours (exclusive, else shared or counted), else a posix-driver holder. */
function holdersAt(path: string): HolderRecord[] {
  const claim = readClaim(path);
  if (claim !== undefined && isLive(claim)) return [claim.record!];
  const slots = liveSlotHolders(path);
  if (slots.length > 0) return slots;
  const posix = flockHolderAt(lockPathFor(path));
  return posix ? [posix] : [];
}

/** Creates our claim at `path` (reclaiming a dead holder's first): the lock, or null when held. */
function tryClaim(held: Map<string, string>, modes: PortableModes, path: string, record: HolderRecord): DriverLock | null {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    // Look before creating: under contention this saves a temp file per try.
    const seen = readClaim(path);
    if (seen === undefined) {
      // Held by a posix-driver process, or by readers: say so without writing.
      // Creating and removing our claim would wake our own watch (and every
      // portable waiter's), whose retry would do it again: a loop that starves the event loop.
      if (othersIn(modes, path, record)) return modes.missed(path);
      const token = newToken();
      if (!createClaim(path, path, record, token)) continue; // another process was faster: look at its claim
      // A posix-driver process or a reader holds this name; each checks for our claim after taking its own, so one of us always sees the other.
      if (backOff(modes, path, record, token)) return modes.missed(path);
      held.set(path, token);
      modes.clearMarker(path);
      return { release: () => release(held, path, token) };
    }
    if (isLive(seen)) return modes.missed(path);
    if (!reclaim(path, path, seen, record, 0)) return null;
    sweepLeftovers(path, record); // a holder died: it may have left a temp file or a guard too
  }
  throw new LockFileError(
    'ERR_LOCK_FILE_UNSAFE',
    path,
    `The lock file ${path} keeps being replaced while we lock it; another program is interfering with the lock directory.`
  );
}

/** True when a posix-driver process, or a shared holder, holds the name; throws ERR_LOCK_MISMATCH when counted holders do. */
function othersIn(modes: PortableModes, path: string, record: HolderRecord): boolean {
  return Boolean(flockHolderAt(lockPathFor(path))) || modes.readersIn(path, record);
}

/** With our claim (`token`) created: true (the claim removed) when others hold the name after all. */
function backOff(modes: PortableModes, path: string, record: HolderRecord, token: string): boolean {
  let others = true;
  try {
    others = othersIn(modes, path, record);
  } finally {
    if (others) removeOwn(path, token);
  }
  return others;
}

/** Removes our claim; a claim that cannot be removed (read-only file system...) throws and stays ours, for exit cleanup to retry. */
function release(held: Map<string, string>, path: string, token: string): void {
  removeOwn(path, token);
  if (held.get(path) === token) held.delete(path);
}

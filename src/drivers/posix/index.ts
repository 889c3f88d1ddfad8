import { lockFilePath } from '../file/path.js';
import { loadNative } from '../../native/libc.js';
import { fileLockNamesIn, fileRegistryKey } from '../file/claim.js';
import { LockFiles } from './files.js';
import { flockHolder } from './holder.js';
import { PosixModes } from './modes.js';
import type { LockDriver } from '../types.js';

/**
 * The POSIX driver: `flock(2)` through ffi-rs on a lock file.
 *
 * flock, not fcntl/lockf: flock locks belong to an open file description, so
 * two descriptors (two processes, or two worker threads of one) exclude each
 * other, and closing an unrelated descriptor of the file does not drop them.
 * The kernel releases them when the holder dies, even by `kill -9`.
 *
 * Files stay open between acquisitions (open/create/unlink cost 10-100x a
 * lock operation on disk, see files.ts) and are removed when this process
 * exits, or when more than MAX_IDLE (file/idle-cache.ts) are idle. A file is
 * only ever unlinked by a process holding its lock, and every acquisition
 * checks that the path still names the locked file, so a waiter that locked
 * a file just unlinked retries.
 *
 * A process that cannot load native code may hold the same name with the
 * portable driver, whose claim is `<lock>.pid` beside our `<lock>.lock`
 * (its shared and counted holders' are slot claims, file/slot-claims.ts):
 * after locking, we back off while such a claim is live (it checks our
 * flock after creating its claim, so one of us always sees the other).
 */

export function createPosixDriver(): LockDriver {
  const { flock } = loadNative();
  const files = new LockFiles(flock);
  const modes = new PosixModes(files);
  return {
    kind: 'posix',
    synchronous: true,
    modes: { shared: true, counted: true },
    locate: (name, dir) => lockFilePath(name, dir),
    registryKey: fileRegistryKey,
    tryLock: (path, record) => modes.lock(path, record, false),
    // Blocks in the kernel, which hands the lock over within a fraction of a millisecond (not for counted locks: the core polls those).
    waitLockSync: (path, record) => modes.lock(path, record, true)!,
    announce: (path, record) => modes.announce(path, record),
    watch: (path, onChange) => files.watch(path, onChange),
    heldByThisThread: (path) => files.heldByThisThread(path),
    // Held exclusively: its holder; else the shared or counted holders' own records.
    holder: (path) => flockHolder(flock, path) ?? modes.slotHolders(path)[0] ?? null,
    holders: (path) => {
      const holder = flockHolder(flock, path);
      return holder !== null ? [holder] : modes.slotHolders(path);
    },
    // Also the names held only through portable-driver claims, which holder() sees too.
    list: (dir) => fileLockNamesIn(dir),
    cleanup: () => files.cleanup(),
  };
}

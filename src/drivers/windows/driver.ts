import { LockFileError } from '../../shared/errors.js';
import { lockDirectory, lockNamesIn } from '../file/path.js';
import { readRecordAt } from '../file/lock-file.js';
import { INFINITE } from '../../native/kernel32.js';
import { infoFileName, removeInfo, removeInfoIfFree } from './info-file.js';
import { announceWriter, lockHere } from './mutex.js';
import { directoryKey, mutexName } from './mutex-name.js';
import { newDriverState, type DriverState } from './state.js';
import { releaseWaiters, waitOnWaiter } from './waiting.js';
import type { WindowsScope } from './index.js';
import { familyHolders, forgetFamilies, lockInFamily } from './mode-holds.js';
import { mutexHolder } from './holder.js';
import { familyOf } from './modes.js';
import type { DriverLock, HolderRecord, SyncLockDriver } from '../types.js';

/**
 * The named-mutex driver of one scope for this thread. A mutex belongs to
 * the thread that acquired it: `tryLock` and `waitLockSync` acquire on the
 * calling thread (mutex.ts), `waitLock` on a waiter thread (waiting.ts).
 * See docs/internals/windows-mutex.md.
 */
export function buildDriver(scope: WindowsScope): SyncLockDriver {
  const state = newDriverState(scope);
  return {
    kind: 'windows',
    synchronous: true,
    modes: { shared: true, counted: true },
    locate: (name, dir) => locate(state, name, dir),
    tryLock: (resource, record) => lockAs(state, resource, record, 0),
    waitLock: (resource, record, signal) => waitOnWaiter(state, resource, record, signal),
    // Blocks this thread in the kernel, as flock does for the posix driver: the release (or the owner's death) hands
    // the mutex over at once. The shared code never calls it while this thread holds the lock (that is a conflict).
    waitLockSync(resource, record) {
      const lock = lockAs(state, resource, record, INFINITE);
      if (lock === null)
        throw new LockFileError(
          'ERR_LOCK_IO',
          resource,
          `This thread already holds the mutex ${resource}: waiting for it would never end.`
        );
      return lock;
    },
    announce: (resource, record) => announceWriter(state, resource, record),
    // A shared or counted lock's holders are its slots' (the first of them for holder()); else the mutex's holder.
    holder: (resource, name) => familyHolders(state, resource, name)?.[0] ?? mutexHolder(state, resource, name),
    holders(resource, name) {
      const holders = familyHolders(state, resource, name);
      if (holders !== undefined && holders.length > 0) return holders;
      const holder = mutexHolder(state, resource, name);
      return holder === null ? [] : [holder];
    },
    list: (dir) =>
      lockNamesIn(
        dir,
        (path) => readRecordAt(path)?.name,
        (name) => infoFileName(mutexName(name, dir, scope))
      ),
    cleanup: () => cleanup(state),
  };
}

/** A lock as `record` asks: exclusive (the name's mutex), or a slot of a shared or counted lock; waiting up to `ms` (0 or INFINITE). */
function lockAs(state: DriverState, resource: string, record: HolderRecord, ms: number): DriverLock | null {
  const family = familyOf(record);
  return family === undefined ? lockHere(state, resource, record, ms) : lockInFamily(state, resource, record, family, ms);
}

/** The mutex name of a lock, remembering its directory for the info file. */
function locate(state: DriverState, name: string, dir: string | undefined): string {
  const resource = mutexName(name, dir, state.scope);
  const key = directoryKey(resource);
  if (!state.directories.has(key)) state.directories.set(key, lockDirectory(dir));
  return resource;
}

/** At exit: releases what this thread and its waiters hold, removing their records first, and closes every handle. */
function cleanup(state: DriverState): void {
  const { k } = state;
  releaseWaiters(state);
  for (const [resource, cached] of state.handles) {
    if (cached.held) {
      if (cached.info !== undefined) removeInfo(cached.info); // none for a writer's wait that kept the mutex
      cached.held = false;
      k.releaseMutex(cached.handle);
      k.closeHandle(cached.handle);
    } else {
      k.closeHandle(cached.handle);
      if (cached.info !== undefined) removeInfoIfFree(k, resource, cached.info);
    }
  }
  state.handles.clear();
  forgetFamilies(state);
}
